import { setTimeout as sleep } from 'node:timers/promises';

import { printable } from '../../src/contract/printable';
import type { TokenProvider } from './client';
import type { DataPlaneEndpoint } from './data-plane-endpoint';
import {
  CredentialError,
  DeadlineError,
  UntrustedDataPlaneError,
  VaultRefusedError,
  WrongAddressError,
} from './errors';
import { backoffMs, networkReason, tlsFailure } from './retry';

export interface DataPlaneProgress {
  attempt: number;
  elapsedMs: number;
  /** The address the vault says it sees, from its last 403 ForbiddenByFirewall. */
  clientAddress?: string;
  /** What the last probe got: `403 ForbiddenByFirewall`, `503`, `ECONNRESET`, ... */
  last?: string;
}

export interface WaitForDataPlaneOptions {
  /** Where the token may go (`DataPlaneEndpoint.resolve`): the only address probed. */
  endpoint: DataPlaneEndpoint;
  /** The lease's IP or CIDR, e.g. `52.10.20.30/32`. */
  leasedIp: string;
  /** A data-plane token for `endpoint.scope` (see `tokenProvider`). */
  token: TokenProvider;
  /** Overall limit. Default 180 s (Azure has been seen to take 30-90 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (progress: DataPlaneProgress) => void;
  /** First pause between probes (default 250 ms); it grows to `maxIntervalMs` (default 1 s). */
  intervalMs?: number;
  maxIntervalMs?: number;
  /**
   * Consecutive refusals naming an address outside the lease before giving up with
   * WrongAddressError (default 3): the address the vault sees does not depend on its rules, so
   * waiting cannot help, but one stray probe through another NAT address should not fail a job.
   */
  wrongAddressAfter?: number;
  fetch?: typeof fetch;
}

export const DEFAULT_DATA_PLANE_TIMEOUT_MS = 180_000;
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

interface VaultAnswer {
  code?: string;
  innerCode?: string;
  message?: string;
}

async function readVaultError(response: Response): Promise<VaultAnswer> {
  try {
    const body = (await response.json()) as {
      error?: { code?: unknown; message?: unknown; innererror?: { code?: unknown } };
    };
    const error = body.error ?? {};
    return {
      ...(typeof error.code === 'string' ? { code: error.code } : {}),
      ...(typeof error.innererror?.code === 'string' ? { innerCode: error.innererror.code } : {}),
      ...(typeof error.message === 'string' ? { message: error.message } : {}),
    };
  } catch {
    return {};
  }
}

/** `Client address: a.b.c.d` in a Key Vault firewall refusal. */
export function clientAddressOf(message: string | undefined): string | undefined {
  return message === undefined
    ? undefined
    : /Client address:\s*([0-9A-Fa-f.:]+[0-9A-Fa-f])/.exec(message)?.[1];
}

function probeUrl(vaultUri: string): string {
  const base = vaultUri.endsWith('/') ? vaultUri : `${vaultUri}/`;
  return new URL('secrets?api-version=7.5&maxresults=1', base).toString();
}

/**
 * Waits until the vault's data plane lets this client in: probes `GET {vaultUri}secrets` with a
 * data-plane token until the answer is no longer 403 ForbiddenByFirewall (a 200, or a 403 of
 * another kind such as missing RBAC rights, means the network let us through). Throttling, 5xx
 * and network errors are probed again. Pauses grow from `intervalMs` to `maxIntervalMs`.
 *
 * Throws WrongAddressError when the vault keeps naming a client address outside the lease,
 * DeadlineError when `timeoutMs` passes, CredentialError on a 401 (the token is not for this
 * vault), VaultRefusedError when public network access is disabled, UntrustedDataPlaneError at
 * once on a TLS failure (an untrusted certificate or a name mismatch does not pass by waiting).
 */
export async function waitForDataPlane(
  options: WaitForDataPlaneOptions,
): Promise<{ elapsedMs: number; attempts: number }> {
  const doFetch = options.fetch ?? fetch;
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_DATA_PLANE_TIMEOUT_MS;
  const deadline = started + timeoutMs;
  const intervalMs = options.intervalMs ?? 250;
  const maxIntervalMs = options.maxIntervalMs ?? 1000;
  const wrongAddressAfter = options.wrongAddressAfter ?? 3;
  const vaultUri = options.endpoint.uri;
  const url = probeUrl(vaultUri);
  let mismatches = 0;
  let clientAddress: string | undefined;
  let last = 'no answer yet';

  for (let attempt = 1; ; attempt += 1) {
    const remaining = deadline - Date.now();
    const timeout = AbortSignal.timeout(Math.max(1, Math.min(PROBE_TIMEOUT_MS, remaining)));
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      const token = await options.token();
      const response = await doFetch(url, {
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
        signal,
      });
      if (response.ok) {
        await response.body?.cancel();
        return { elapsedMs: Date.now() - started, attempts: attempt };
      }
      const answer = await readVaultError(response);
      last = printable(`${response.status} ${answer.innerCode ?? answer.code ?? ''}`.trim());
      if (response.status === 401) {
        throw new CredentialError(
          `the vault refused the data-plane token (401 ${printable(answer.code ?? '')}): set ` +
            `KV_LEASE_VAULT_TOKEN to a token for the vault, or sign in with an identity that ` +
            `can get one${options.endpoint.scope ? ` (scope ${options.endpoint.scope})` : ''}`,
        );
      }
      if (response.status === 403) {
        if (answer.innerCode === 'ForbiddenByConnection') {
          throw new VaultRefusedError(
            `the vault's public network access is disabled: no firewall rule can open it (${printable(answer.message ?? '')})`,
          );
        }
        const firewall =
          answer.innerCode === 'ForbiddenByFirewall' ||
          /Client address is not authorized/i.test(answer.message ?? '');
        // Any other 403 (no RBAC role, access policy) came from past the firewall: we are in.
        if (!firewall) return { elapsedMs: Date.now() - started, attempts: attempt };
        clientAddress = clientAddressOf(answer.message) ?? clientAddress;
        const seen = clientAddressOf(answer.message);
        mismatches = seen && !addressInLease(seen, options.leasedIp) ? mismatches + 1 : 0;
        if (seen && mismatches >= wrongAddressAfter) {
          throw new WrongAddressError(seen, options.leasedIp);
        }
      } else if (response.status !== 429 && response.status < 500) {
        throw new VaultRefusedError(
          `the vault answered ${response.status} ${printable(answer.code ?? '')} to ${url}: is ${vaultUri} the right vault URI?`,
        );
      }
    } catch (error) {
      if (
        error instanceof CredentialError ||
        error instanceof WrongAddressError ||
        error instanceof VaultRefusedError
      ) {
        throw error;
      }
      if (options.signal?.aborted) throw options.signal.reason;
      const tls = tlsFailure(error);
      if (tls) throw new UntrustedDataPlaneError(vaultUri, tls, { cause: error, tls: true });
      last = networkReason(error);
    }
    const elapsedMs = Date.now() - started;
    options.onProgress?.({ attempt, elapsedMs, ...(clientAddress ? { clientAddress } : {}), last });
    const pause = Math.min(maxIntervalMs, backoffMs(attempt, intervalMs * 2, maxIntervalMs * 2));
    if (Date.now() + pause >= deadline) {
      if (clientAddress && !addressInLease(clientAddress, options.leasedIp)) {
        throw new WrongAddressError(clientAddress, options.leasedIp);
      }
      throw new DeadlineError(
        `the vault's data plane did not let ${options.leasedIp} in within ` +
          `${Math.round(timeoutMs / 1000)} s (last answer: ${last}` +
          `${clientAddress ? `, client address ${clientAddress}` : ''}); the rule may still be ` +
          `propagating: wait longer (--wait-timeout) or check the vault's firewall`,
      );
    }
    await sleep(pause, undefined, options.signal ? { signal: options.signal } : {});
  }
}
