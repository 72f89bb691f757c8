/**
 * One emulated SQL server's TDS endpoint: a TLS listener speaking TDS 8.0 ("strict"
 * encryption in [MS-TDS]: the TLS handshake comes first, with ALPN `tds/8.0`, and PRELOGIN
 * and LOGIN7 travel inside it), which Azure SQL Database accepts and which keeps the token off
 * the wire until the certificate is checked. It answers the client's PRELOGIN, reads its
 * LOGIN7, and ends every login with the error the firewall judge picks: 40615 while no rule
 * admits the caller, else 18456 (the login reached authentication). It never logs anything,
 * so a token in a LOGIN7 goes nowhere.
 *
 * NOTE: one listener per server rather than one for all chosen by SNI or LOGIN7's ServerName:
 * clients reach the emulator by IP (127.0.0.1), for which TLS sends no server name and the
 * LOGIN7 names only the IP, and `<name>.localhost` does not resolve everywhere.
 */
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';

import type { Certificate } from '../certificate';
import {
  checkPrelogin,
  type Login7,
  loginFailure,
  parseLogin7,
  preloginResponse,
  type SqlError,
} from './tds-login';
import { encodeMessage, MessageReader, PACKET_TYPE } from './tds-packet';

/** Picks the error a login ends with, from what the login says and the TCP peer. */
export type LoginJudge = (login: Login7, peer: string | undefined) => SqlError;

/** A client that says nothing for this long is dropped, as SQL Server drops idle logins. */
const IDLE_TIMEOUT_MS = 30_000;

export class TdsListener {
  private readonly server: Server;
  private readonly sockets = new Set<TLSSocket>();
  private listening: Promise<AddressInfo> | undefined;

  constructor(
    certificate: Certificate,
    /** The server name the ERROR token carries (the logical server's name). */
    private readonly serverName: string,
    private readonly judge: LoginJudge,
  ) {
    this.server = createServer(
      { key: certificate.key, cert: certificate.cert, ALPNProtocols: ['tds/8.0'] },
      (socket) => this.serve(socket),
    );
    // A client that refuses the certificate or drops the handshake: nothing to answer.
    this.server.on('tlsClientError', () => undefined);
  }

  /** Starts listening once; later calls return the same address. */
  listen(host: string): Promise<AddressInfo> {
    this.listening ??= new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
    return this.listening;
  }

  /** The port, once listening. */
  port(): number | undefined {
    const address = this.server.address();
    return address !== null && typeof address === 'object' ? address.port : undefined;
  }

  /** Drops every connection and stops listening, also when `listen` is still under way. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (this.listening === undefined) return;
    await this.listening.catch(() => undefined);
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private serve(socket: TLSSocket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    const reader = new MessageReader();
    let stage: 'prelogin' | 'login7' | 'answered' = 'prelogin';
    socket.on('data', (bytes: Buffer) => {
      try {
        for (const message of reader.push(bytes)) {
          if (stage === 'prelogin' && message.type === PACKET_TYPE.PRELOGIN) {
            checkPrelogin(message.payload);
            // [MS-TDS] §2.2.2: the PRELOGIN answer travels as a tabular result.
            socket.write(encodeMessage(PACKET_TYPE.TABULAR_RESULT, preloginResponse()));
            stage = 'login7';
          } else if (stage === 'login7' && message.type === PACKET_TYPE.LOGIN7) {
            const error = this.judge(parseLogin7(message.payload), socket.remoteAddress);
            socket.end(
              encodeMessage(PACKET_TYPE.TABULAR_RESULT, loginFailure(error, this.serverName)),
            );
            stage = 'answered';
          } else {
            throw new Error(`Unexpected TDS message of type ${message.type} at ${stage}.`);
          }
        }
      } catch {
        // A malformed or out-of-order message: a server drops such a client without a word.
        socket.destroy();
      }
    });
  }
}
