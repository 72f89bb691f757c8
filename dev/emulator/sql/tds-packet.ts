/**
 * TDS packets, as far as the emulated SQL login needs them: the 8-byte header every packet
 * starts with, a reader that reassembles a message from its packets, and a writer. See
 * [MS-TDS] §2.2.3.1 (packet header), §2.2.3.1.1 (type) and §2.2.3.1.2 (status).
 */

/** [MS-TDS] §2.2.3.1.1: the packet types the login exchange uses. */
export const PACKET_TYPE = {
  /** Tabular result: the server's answer (LOGINACK, ERROR, DONE, ...). */
  TABULAR_RESULT: 0x04,
  /** TDS 7.x login (LOGIN7). */
  LOGIN7: 0x10,
  /** Pre-login, from the client and (the same type) the server's answer. */
  PRELOGIN: 0x12,
} as const;

/** [MS-TDS] §2.2.3.1.2: the last packet of a message. */
const STATUS_END_OF_MESSAGE = 0x01;
export const HEADER_LENGTH = 8;
/** The packet size before LOGIN7 negotiates one ([MS-TDS] §2.2.6.4, PacketSize; 4096 by default). */
export const DEFAULT_PACKET_SIZE = 4096;
/** A message larger than this is refused: a LOGIN7 with a token is a few KiB. */
export const MAX_MESSAGE_LENGTH = 256 * 1024;

export interface TdsMessage {
  type: number;
  payload: Buffer;
}

/** One message as packets of at most `packetSize` bytes, the last marked end-of-message. */
export function encodeMessage(
  type: number,
  payload: Buffer,
  packetSize = DEFAULT_PACKET_SIZE,
): Buffer {
  const room = packetSize - HEADER_LENGTH;
  const packets: Buffer[] = [];
  let packetId = 1;
  for (let offset = 0; offset === 0 || offset < payload.length; offset += room) {
    const chunk = payload.subarray(offset, offset + room);
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt8(type, 0);
    header.writeUInt8(offset + room >= payload.length ? STATUS_END_OF_MESSAGE : 0, 1);
    // Length (big-endian, header included), SPID 0, PacketID (mod 256), Window 0.
    header.writeUInt16BE(HEADER_LENGTH + chunk.length, 2);
    header.writeUInt16BE(0, 4);
    header.writeUInt8(packetId % 256, 6);
    header.writeUInt8(0, 7);
    packets.push(header, chunk);
    packetId += 1;
  }
  return Buffer.concat(packets);
}

/**
 * Feeds bytes as they arrive and returns the messages they complete. Throws on a malformed
 * header or an oversized message (the caller then drops the connection, as a server does).
 */
export class MessageReader {
  private pending = Buffer.alloc(0);
  private parts: Buffer[] = [];
  private partsLength = 0;
  private type: number | undefined;

  push(bytes: Buffer): TdsMessage[] {
    this.pending = Buffer.concat([this.pending, bytes]);
    const messages: TdsMessage[] = [];
    while (this.pending.length >= HEADER_LENGTH) {
      const type = this.pending.readUInt8(0);
      const status = this.pending.readUInt8(1);
      const length = this.pending.readUInt16BE(2);
      if (length < HEADER_LENGTH) throw new Error(`TDS packet length ${length} is too small.`);
      if (this.type !== undefined && type !== this.type) {
        throw new Error(`TDS packet of type ${type} inside a message of type ${this.type}.`);
      }
      if (this.pending.length < length) break;
      this.type = type;
      this.parts.push(this.pending.subarray(HEADER_LENGTH, length));
      this.partsLength += length - HEADER_LENGTH;
      if (this.partsLength > MAX_MESSAGE_LENGTH) throw new Error('TDS message too large.');
      this.pending = this.pending.subarray(length);
      if ((status & STATUS_END_OF_MESSAGE) !== 0) {
        messages.push({ type, payload: Buffer.concat(this.parts) });
        this.parts = [];
        this.partsLength = 0;
        this.type = undefined;
      }
    }
    return messages;
  }
}
