/**
 * The messages of a TDS login, as far as the emulated SQL server needs them: it reads the
 * client's PRELOGIN and LOGIN7 and answers a PRELOGIN response, then an ERROR token and a DONE
 * token (a login that fails, which is all the emulator ever answers). Section numbers are those
 * of [MS-TDS].
 */

/** §2.2.6.5: PRELOGIN option tokens. */
const PRELOGIN = {
  VERSION: 0x00,
  ENCRYPTION: 0x01,
  INSTOPT: 0x02,
  THREADID: 0x03,
  MARS: 0x04,
  FEDAUTHREQUIRED: 0x06,
  TERMINATOR: 0xff,
} as const;
/** §2.2.6.5, ENCRYPTION: "encryption is on". */
const ENCRYPT_ON = 0x01;

/** §2.2.7: token types. */
const TOKEN_ERROR = 0xaa;
const TOKEN_DONE = 0xfd;
/** §2.2.7.6, DONE Status: the statement (here, the login) ended in an error. */
const DONE_ERROR = 0x0002;

/** §2.2.6.4: LOGIN7's OptionFlags3 bit saying a FeatureExt block follows. */
const OPTION_FLAGS3_EXTENSION = 0x10;
/** §2.2.6.4, FeatureExt: FEDAUTH and the terminator. */
const FEATURE_FEDAUTH = 0x02;
const FEATURE_TERMINATOR = 0xff;
/** §2.2.6.4, FEDAUTH bFedAuthLibrary: a token the client already holds (`access token`). */
const FEDAUTH_LIBRARY_SECURITYTOKEN = 0x01;
const LOGIN7_FIXED_LENGTH = 94;

/** Throws unless `payload` is a PRELOGIN option list ending in its terminator (§2.2.6.5). */
export function checkPrelogin(payload: Buffer): void {
  for (let offset = 0; offset < payload.length; offset += 5) {
    if (payload[offset] === PRELOGIN.TERMINATOR) return;
    if (offset + 5 > payload.length) break;
    const dataOffset = payload.readUInt16BE(offset + 1);
    const dataLength = payload.readUInt16BE(offset + 3);
    if (dataOffset + dataLength > payload.length) break;
  }
  throw new Error('Malformed PRELOGIN: no option terminator.');
}

/**
 * The server's PRELOGIN answer (§2.2.6.5): version 12.0 (Azure SQL Database's), encryption on
 * (NOTE: under TDS 8.0 the TLS session already exists and tedious ignores this option; what
 * Azure sends here in strict mode is unverified), no instance, no MARS, and FEDAUTHREQUIRED
 * as Azure SQL sends it to a client that offers federated authentication.
 */
export function preloginResponse(): Buffer {
  const options: [number, Buffer][] = [
    [PRELOGIN.VERSION, Buffer.from([12, 0, 0x07, 0xd0, 0, 0])],
    [PRELOGIN.ENCRYPTION, Buffer.from([ENCRYPT_ON])],
    [PRELOGIN.INSTOPT, Buffer.from([0])],
    [PRELOGIN.THREADID, Buffer.alloc(0)],
    [PRELOGIN.MARS, Buffer.from([0])],
    [PRELOGIN.FEDAUTHREQUIRED, Buffer.from([1])],
  ];
  const headerLength = options.length * 5 + 1;
  const header = Buffer.alloc(headerLength);
  let dataOffset = headerLength;
  options.forEach(([token, data], index) => {
    // PL_OPTION_TOKEN, PL_OFFSET and PL_OPTION_LENGTH, both big-endian.
    header.writeUInt8(token, index * 5);
    header.writeUInt16BE(dataOffset, index * 5 + 1);
    header.writeUInt16BE(data.length, index * 5 + 3);
    dataOffset += data.length;
  });
  header.writeUInt8(PRELOGIN.TERMINATOR, headerLength - 1);
  return Buffer.concat([header, ...options.map(([, data]) => data)]);
}

/** What the emulator reads from a LOGIN7. The token itself is never kept. */
export interface Login7 {
  userName: string;
  serverName: string;
  database: string;
  /** A FEDAUTH feature carrying a security token (an Entra access token) was sent. */
  accessToken: boolean;
}

function utf16(payload: Buffer, fieldOffset: number): string {
  const offset = payload.readUInt16LE(fieldOffset);
  const chars = payload.readUInt16LE(fieldOffset + 2);
  if (offset + chars * 2 > payload.length) throw new Error('Malformed LOGIN7: string past end.');
  return payload.toString('utf16le', offset, offset + chars * 2);
}

/** §2.2.6.4, FeatureExt: whether a FEDAUTH feature with a security token is among the features. */
function carriesAccessToken(payload: Buffer): boolean {
  if (((payload[27] ?? 0) & OPTION_FLAGS3_EXTENSION) === 0) return false;
  // ibExtension points at a DWORD holding the offset of the FeatureExt block.
  const pointer = payload.readUInt16LE(56);
  if (pointer + 4 > payload.length) throw new Error('Malformed LOGIN7: extension past end.');
  let offset = payload.readUInt32LE(pointer);
  while (offset < payload.length && payload[offset] !== FEATURE_TERMINATOR) {
    if (offset + 5 > payload.length) break;
    const feature = payload.readUInt8(offset);
    const length = payload.readUInt32LE(offset + 1);
    const data = offset + 5;
    if (data + length > payload.length) break;
    if (feature === FEATURE_FEDAUTH && length > 0) {
      const library = (payload.readUInt8(data) >> 1) & 0x7f;
      if (library === FEDAUTH_LIBRARY_SECURITYTOKEN && length >= 5) {
        return payload.readUInt32LE(data + 1) > 0;
      }
    }
    offset = data + length;
  }
  return false;
}

/** Reads the fields of a LOGIN7 (§2.2.6.4) the answer depends on; throws when malformed. */
export function parseLogin7(payload: Buffer): Login7 {
  if (payload.length < LOGIN7_FIXED_LENGTH || payload.readUInt32LE(0) > payload.length) {
    throw new Error('Malformed LOGIN7: shorter than its fixed part or its stated length.');
  }
  // Offset/length pairs: HostName at 36, UserName 40, Password 44, AppName 48, ServerName 52,
  // Extension 56, CltIntName 60, Language 64, Database 68.
  return {
    userName: utf16(payload, 40),
    serverName: utf16(payload, 52),
    database: utf16(payload, 68),
    accessToken: carriesAccessToken(payload),
  };
}

function usVarChar(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf16le');
  const length = Buffer.alloc(2);
  length.writeUInt16LE(text.length);
  return Buffer.concat([length, bytes]);
}

function bVarChar(text: string): Buffer {
  return Buffer.concat([Buffer.from([text.length]), Buffer.from(text, 'utf16le')]);
}

export interface SqlError {
  number: number;
  state: number;
  /** Severity; 14 for the login refusals Azure SQL sends. */
  class: number;
  message: string;
}

/**
 * A failed login's answer, one tabular-result message: an ERROR token (§2.2.7.10: Number,
 * State, Class, MsgText, ServerName, ProcName, LineNumber) and a DONE token (§2.2.7.6) with
 * DONE_ERROR set, as SQL Server ends a login it refuses.
 */
export function loginFailure(error: SqlError, serverName: string): Buffer {
  const head = Buffer.alloc(6);
  head.writeInt32LE(error.number, 0);
  head.writeUInt8(error.state, 4);
  head.writeUInt8(error.class, 5);
  const lineNumber = Buffer.alloc(4);
  const body = Buffer.concat([
    head,
    usVarChar(error.message),
    bVarChar(serverName.slice(0, 128)),
    bVarChar(''),
    lineNumber,
  ]);
  const errorHeader = Buffer.alloc(3);
  errorHeader.writeUInt8(TOKEN_ERROR, 0);
  errorHeader.writeUInt16LE(body.length, 1);
  // DONE: Status, CurCmd, DoneRowCount (8 bytes since TDS 7.2).
  const done = Buffer.alloc(13);
  done.writeUInt8(TOKEN_DONE, 0);
  done.writeUInt16LE(DONE_ERROR, 1);
  return Buffer.concat([errorHeader, body, done]);
}
