import { setTimeout as sleep } from 'node:timers/promises';

import type { TokenProvider } from './client';
import type { DataPlaneEndpoint, DataPlaneKind } from './data-plane-endpoint';
import {
  CredentialError,
  DeadlineError,
  UntrustedDataPlaneError,
  VaultRefusedError,
  WrongAddressError,
} from './errors';
import { probeFor, type TdsLogin } from './probes/index';
import { backoffMs, networkReason, tlsFailure } from './retry';

export { clientAddressOf } from './probes/index';

export interface DataPlaneProgress {
  attempt: number;
  elapsedMs: number;
  /** The address the target says it sees (a vault's or a SQL server's refusal names it). */
  clientAddress?: string;
  /** What the last probe got: `403 ForbiddenByFirewall`, `403 AuthorizationFailure`, `503`, ... */
  last?: string;
}

export interface WaitForDataPlaneOptions {
  /** Where the token may go (`DataPlaneEndpoint.resolve`): the only address probed; its kind picks the probe. */
  endpoint: DataPlaneEndpoint;
  /** The lease's IP or CIDR, e.g. `52.10.20.30/32`. */
  leasedIp: string;
  /** A data-plane token for `endpoint.scope` (see `tokenProvider`). */
  token: TokenProvider;
  /** Overall limit. Default `defaultWaitMs(kind)`: 180 s, 6 min for SQL. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal;
  onProgress?: (progress: DataPlaneProgress) => void;
  /** First pause between probes (default 250 ms); it grows to `maxIntervalMs` (default 1 s). */
  intervalMs?: number;
  maxIntervalMs?: number;
  /**
   * Consecutive refusals naming an address outside the lease before giving up with
   * WrongAddressError (default 3): the address the target sees does not depend on its rules, so
   * waiting cannot help, but one stray probe through another NAT address should not fail a job.
   */
  wrongAddressAfter?: number;
  fetch?: typeof fetch;
  /** The SQL probe's TDS login (tests); default the one of probes/sql-tds.ts. */
  tdsLogin?: TdsLogin;
}

export const DEFAULT_DATA_PLANE_TIMEOUT_MS = 180_000;
/** SQL caches firewall rules per database for up to five minutes (targets-facts). */
export const DEFAULT_SQL_TIMEOUT_MS = 360_000;

/**
 * The default limit of a wait for a kind: 180 s (Key Vault and Storage have been seen to take
 * 30-90 s), 6 min for SQL (up to five minutes).
 */
export function defaultWaitMs(kind: DataPlaneKind): number {
  return kind === 'sql' ? DEFAULT_SQL_TIMEOUT_MS : DEFAULT_DATA_PLANE_TIMEOUT_MS;
}
const PROBE_TIMEOUT_MS = 10_000;

function ipv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

/** Whether an IPv4 address lies in an IPv4 address or CIDR (`a.b.c.d` or `a.b.c.d/n`). */
export function addressInLease(address: string, lease: string): boolean {
  const [network = '', prefixText = '32'] = lease.split('/');
  const ip = ipv4(address.replace(/^::ffff:/i, ''));
  const base = ipv4(network);
  const prefix = Number(prefixText);
  if (ip === undefined || base === undefined || !Number.isInteger(prefix)) return false;
  if (prefix < 0 || prefix > 32) return false;
  const size = 2 ** (32 - prefix);
  return Math.floor(ip / size) === Math.floor(base / size);
}

/**
 * Waits until the target's data plane lets this client in: probes it (the probe of the
 * endpoint's kind, clients/lib/probes/) with a data-plane token until the firewall no longer
 * refuses. Throttling, 5xx and network errors are probed again. Pauses grow from `intervalMs` to
 * `maxIntervalMs`.
 *
 * Throws WrongAddressError when the target keeps naming a client address outside the lease,
 * DeadlineError when `timeoutMs` passes, CredentialError on a 401 (the token is not for this
 * target), VaultRefusedError when no rule can help (public network access disabled),
 * UntrustedDataPlaneError at once on a TLS failure (an untrusted certificate or a name mismatch
 * does not pass by waiting).
 */
export async function waitForDataPlane(
  options: WaitForDataPlaneOptions,
): Promise<{ elapsedMs: number; attempts: number }> {
  const started = Date.now();
  const { endpoint } = options;
  const timeoutMs = options.timeoutMs ?? defaultWaitMs(endpoint.kind);
  const deadline = started + timeoutMs;
  const intervalMs = options.intervalMs ?? 250;
  const maxIntervalMs = options.maxIntervalMs ?? 1000;
  const wrongAddressAfter = options.wrongAddressAfter ?? 3;
  const what = endpoint.what;
  const probe = probeFor(endpoint, {
    fetch: options.fetch ?? fetch,
    tdsLogin: options.tdsLogin,
  });
  let mismatches = 0;
  let clientAddress: string | undefined;
  let last = 'no answer yet';

  for (let attempt = 1; ; attempt += 1) {
    const remaining = deadline - Date.now();
    const timeout = AbortSignal.timeout(Math.max(1, Math.min(PROBE_TIMEOUT_MS, remaining)));
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      const answer = await probe(await options.token(), signal);
      if (answer.outcome === 'through') {
        return { elapsedMs: Date.now() - started, attempts: attempt };
      }
      last = answer.last;
      if (answer.outcome === 'refused') {
        const seen = answer.clientAddress;
        clientAddress = seen ?? clientAddress;
        mismatches = seen && !addressInLease(seen, options.leasedIp) ? mismatches + 1 : 0;
        if (seen && mismatches >= wrongAddressAfter) {
          throw new WrongAddressError(seen, options.leasedIp, what);
        }
      }
    } catch (error) {
      if (
        error instanceof CredentialError ||
        error instanceof WrongAddressError ||
        error instanceof VaultRefusedError ||
        error instanceof UntrustedDataPlaneError
      ) {
        throw error;
      }
      if (options.signal?.aborted) throw options.signal.reason;
      const tls = tlsFailure(error);
      if (tls) {
        throw new UntrustedDataPlaneError(endpoint.uri, tls, {
          cause: error,
          tls: true,
          what: endpoint.tokenName,
        });
      }
      if (!timeout.aborted && !isNetworkError(error)) throw error;
      last = networkReason(error);
    }
    const elapsedMs = Date.now() - started;
    options.onProgress?.({ attempt, elapsedMs, ...(clientAddress ? { clientAddress } : {}), last });
    const pause = Math.min(maxIntervalMs, backoffMs(attempt, intervalMs * 2, maxIntervalMs * 2));
    if (Date.now() + pause >= deadline) {
      if (clientAddress && !addressInLease(clientAddress, options.leasedIp)) {
        throw new WrongAddressError(clientAddress, options.leasedIp, what);
      }
      throw new DeadlineError(
        `the ${what}'s data plane did not let ${options.leasedIp} in within ` +
          `${Math.round(timeoutMs / 1000)} s (last answer: ${last}` +
          `${clientAddress ? `, client address ${clientAddress}` : ''}); the rule may still be ` +
          `propagating: wait longer (--wait-timeout) or check the ${what}'s firewall` +
          (endpoint.kind === 'storage'
            ? " (a runner in the account's own region is not let in by IP rules, and a disabled public network access refuses alike)"
            : ''),
      );
    }
    await sleep(pause, undefined, options.signal ? { signal: options.signal } : {});
  }
}

/**
 * Whether a thrown error is the network's (probed again) rather than a defect (reported at once):
 * fetch's `TypeError: fetch failed` and errors carrying a system error code.
 */
function isNetworkError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'TypeError' || error.name === 'AbortError' || error.name === 'TimeoutError') {
    return true;
  }
  const code = (error as { code?: unknown }).code ?? (error.cause as { code?: unknown })?.code;
  return typeof code === 'string';
}
