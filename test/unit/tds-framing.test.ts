import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { addressIn40615 } from '../../clients/lib/probes/sql-tds';
import {
  encodeMessage,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageReader,
  PACKET_TYPE,
} from '../../dev/emulator/sql/tds-packet';

/** Splits `bytes` at the given cut points (sorted, deduplicated, inside the buffer). */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const inside = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...inside, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

describe('TDS framing of the emulated SQL endpoint (MS-TDS §2.2.3.1)', () => {
  it('When a message is encoded in packets of any size and read back in chunks of any size, then the same message comes out once', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 9000 }),
        fc.integer({ min: 512, max: 4096 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (payload, packetSize, points) => {
          const reader = new MessageReader();
          const wire = encodeMessage(PACKET_TYPE.LOGIN7, Buffer.from(payload), packetSize);
          const messages = cut(wire, points).flatMap((chunk) => reader.push(chunk));

          expect(messages).toEqual([{ type: PACKET_TYPE.LOGIN7, payload: Buffer.from(payload) }]);
        },
      ),
    );
  });

  it('When a message spans packets, then only the last one is marked end-of-message and each states its own length', () => {
    const wire = encodeMessage(PACKET_TYPE.PRELOGIN, Buffer.alloc(5000, 7), 4096);

    expect(wire.readUInt8(1)).toBe(0);
    expect(wire.readUInt16BE(2)).toBe(4096);
    expect(wire.readUInt8(4096 + 1)).toBe(1);
    expect(wire.readUInt16BE(4096 + 2)).toBe(HEADER_LENGTH + 5000 - (4096 - HEADER_LENGTH));
  });

  it('When a packet states a length below its header, or a message changes type midway, or grows past the limit, then the reader refuses it', () => {
    const short = Buffer.from([0x12, 0x01, 0x00, 0x04, 0, 0, 1, 0]);
    const first = encodeMessage(PACKET_TYPE.LOGIN7, Buffer.alloc(100), 64).subarray(0, 64);
    const other = encodeMessage(PACKET_TYPE.PRELOGIN, Buffer.alloc(10));
    const huge = Buffer.alloc(4096);
    huge.writeUInt8(PACKET_TYPE.LOGIN7, 0);
    huge.writeUInt16BE(4096, 2);
    const oversized = new MessageReader();

    expect(() => new MessageReader().push(short)).toThrow(/too small/);
    expect(() => new MessageReader().push(Buffer.concat([first, other]))).toThrow(
      /inside a message/,
    );
    expect(() => {
      for (let sent = 0; sent <= MAX_MESSAGE_LENGTH; sent += 4096) oversized.push(huge);
    }).toThrow(/too large/);
  });
});

describe('The address in an Azure SQL 40615 message', () => {
  it.each([
    [
      "Cannot open server 'sql-x' requested by the login. Client with IP address '52.10.20.30' is not allowed to access the server.  To enable access, use the Azure Management Portal or run sp_set_firewall_rule on the master database to create a firewall rule for this IP address or address range.  It may take up to five minutes for this change to take effect.",
      '52.10.20.30',
    ],
    ['Client with IP address 20.1.2.3 is not allowed to access the server.', '20.1.2.3'],
    ["Client with IP address '999.1.2.3' is not allowed to access the server.", undefined],
    ['Client is not allowed to access the server.', undefined],
  ])('When the message is %j, then the address is %j', (message, address) => {
    expect(addressIn40615(message)).toBe(address);
  });
});
