import type { EventEmitter } from 'node:events';
import { rootCertificates } from 'node:tls';

import { networkReason, tlsFailure } from '../retry';

/**
 * One TDS login to an Azure SQL logical server, to learn whether its firewall lets this client
 * through: Azure SQL answers a login from an address no server-level rule admits with error
 * 40615, "Client with IP address 'a.b.c.d' is not allowed to access the server", before it
 * looks at the credentials; any other answer (18456 login failed, or a login that succeeds)
 * means the firewall let the login reach authentication. The client is `tedious`
 * (Microsoft's TDS client for Node.js), with the Entra access token the caller holds for
 * `https://database.windows.net/.default`.
 *
 * NOTE: encryption is TDS 8.0 "strict": the TLS handshake (ALPN `tds/8.0`) comes before any
 * TDS byte, the server's certificate is always checked (tedious ignores
 * trustServerCertificate in this mode), and so the LOGIN7 carrying the token is sent only to a
 * server that proved to be `host`. Azure SQL Database accepts strict encryption; TDS 7.x with
 * `encrypt: true` would start TLS inside PRELOGIN packets, after a cleartext PRELOGIN.
 */

export type TdsLoginResult =
  /** 40615: no firewall rule admits the address the server names (when it names one). */
  | { result: 'refused'; clientAddress?: string }
  /** The login reached authentication: the firewall let it through. */
  | { result: 'through' }
  /** No answer to judge by. `permanent`: trying again cannot help (say why, stop). */
  | { result: 'failed'; reason: string; permanent: boolean };

export interface TdsLoginOptions {
  /** The server's host name (`<server>.database.windows.net`) or address. */
  host: string;
  port: number;
  /** An Entra access token for Azure SQL; sent only inside the checked TLS session. */
  token: string;
  signal?: AbortSignal;
  /**
   * An extra CA (PEM) to trust besides the public roots, for tests against the emulator. When
   * set, NODE_EXTRA_CA_CERTS no longer applies to this probe (Node's `ca` replaces the store).
   */
  trustedCa?: string;
  /** The whole attempt: connect, TLS, PRELOGIN and LOGIN7. Default 10 s. */
  timeoutMs?: number;
}

export const DEFAULT_TDS_TIMEOUT_MS = 10_000;

/** Azure SQL's login errors a probe tells apart (the rest mean "through"). */
const CLIENT_NOT_ALLOWED = 40615;
const PUBLIC_ACCESS_DENIED = 47073;

/**
 * The address in a 40615 message: the one quoted after "IP address", else (as Azure/sql-action
 * reads it) the first dotted quad in the text.
 */
export function addressIn40615(message: string): string | undefined {
  const quoted = /IP address '([^']*)'/i.exec(message)?.[1];
  const candidate = quoted ?? /\b\d{1,3}(?:\.\d{1,3}){3}\b/.exec(message)?.[0];
  if (candidate === undefined) return undefined;
  const parts = candidate.split('.');
  const valid =
    parts.length === 4 && parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255);
  return valid ? candidate : undefined;
}

/**
 * Tries one login (no retry, not even tedious' own on transient errors) and says what the
 * firewall did. Never rejects, never logs, and never returns or puts the token in a reason.
 */
export async function tryTdsLogin(options: TdsLoginOptions): Promise<TdsLoginResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TDS_TIMEOUT_MS;
  const scrub = (text: string): string =>
    options.token.length >= 8 ? text.split(options.token).join('<token>') : text;
  if (options.signal?.aborted) return { result: 'failed', reason: 'aborted', permanent: false };
  // Loaded on first use: most runs never probe a SQL server.
  const { Connection } = await import('tedious');
  return new Promise<TdsLoginResult>((resolve) => {
    const serverErrors: { number: number; message: string }[] = [];
    let settled = false;
    let connection: InstanceType<typeof Connection> | undefined;
    const finish = (result: TdsLoginResult): void => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      clearTimeout(guard);
      connection?.close();
      resolve(result.result === 'failed' ? { ...result, reason: scrub(result.reason) } : result);
    };
    const onAbort = (): void => finish({ result: 'failed', reason: 'aborted', permanent: false });
    // tedious times the attempt itself (connectTimeout); this catches a stall past it.
    const guard = setTimeout(() => finish(timedOut(options, timeoutMs)), timeoutMs + 1_000);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // Aborted while tedious was loading: no event will come.
    if (options.signal?.aborted) {
      onAbort();
      return;
    }
    try {
      connection = new Connection({
        server: options.host,
        authentication: {
          type: 'azure-active-directory-access-token',
          options: { token: options.token },
        },
        options: {
          port: options.port,
          database: 'master',
          encrypt: 'strict',
          connectTimeout: timeoutMs,
          maxRetriesOnTransientErrors: 0,
          ...(options.trustedCa === undefined
            ? {}
            : { cryptoCredentialsDetails: { ca: [...rootCertificates, options.trustedCa] } }),
        },
      });
    } catch (error) {
      finish({ result: 'failed', reason: `bad settings: ${message(error)}`, permanent: true });
      return;
    }
    connection.on('errorMessage', (sqlError) => {
      serverErrors.push({ number: sqlError.number, message: sqlError.message });
    });
    // Past the login, Azure SQL's "Redirect" policy sends the client to the database's node:
    // the gateway accepted the login, so the firewall let it through.
    (connection as EventEmitter).on('rerouting', () => finish({ result: 'through' }));
    // Errors after the login are of no interest; without a listener they would throw.
    connection.on('error', () => undefined);
    connection.connect((error) => {
      finish(
        error === undefined
          ? { result: 'through' }
          : judge(error, serverErrors, options, timeoutMs),
      );
    });
  });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function timedOut(options: TdsLoginOptions, timeoutMs: number): TdsLoginResult {
  return {
    result: 'failed',
    reason: `no answer from ${options.host}:${options.port} within ${timeoutMs} ms`,
    permanent: false,
  };
}

function judge(
  error: Error,
  serverErrors: readonly { number: number; message: string }[],
  options: TdsLoginOptions,
  timeoutMs: number,
): TdsLoginResult {
  const refusal = serverErrors.find((e) => e.number === CLIENT_NOT_ALLOWED);
  if (refusal) {
    const clientAddress = addressIn40615(refusal.message);
    return clientAddress === undefined
      ? { result: 'refused' }
      : { result: 'refused', clientAddress };
  }
  if (serverErrors.some((e) => e.number === PUBLIC_ACCESS_DENIED)) {
    // NOTE: not "through": the server refuses every public login, and no rule changes that.
    return {
      result: 'failed',
      reason: `${options.host} refuses public connections (error ${PUBLIC_ACCESS_DENIED}: public network access is disabled); connect through its private endpoint`,
      permanent: true,
    };
  }
  if (serverErrors.length > 0) return { result: 'through' };
  const code = (error as { code?: unknown }).code;
  if (code === 'ETIMEOUT') return timedOut(options, timeoutMs);
  const tls = tlsFailure(error);
  if (tls !== undefined) {
    return { result: 'failed', reason: `${options.host}:${options.port}: ${tls}`, permanent: true };
  }
  return {
    result: 'failed',
    reason: `${options.host}:${options.port}: ${socketReason(error)}`,
    permanent: false,
  };
}

/**
 * The socket's error code: tedious wraps it (`cause`), and wraps the attempts on each address
 * of the host in an AggregateError ("Could not connect (sequence)") whose codes say more.
 */
function socketReason(error: Error): string {
  const cause = error.cause;
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    const reasons = cause.errors.map((inner: unknown) => {
      const code = (inner as { code?: unknown }).code;
      return typeof code === 'string' ? code : message(inner);
    });
    return [...new Set(reasons)].join(', ');
  }
  return networkReason(error);
}
