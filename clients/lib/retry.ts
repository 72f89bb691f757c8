import { setTimeout as sleep } from 'node:timers/promises';

import { DeadlineError, type FieldError, ProblemError, UnreachableError } from './errors';

/** Statuses worth another attempt: throttled, or a gateway / service that may come back. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

export interface RetryInfo {
  attempt: number;
  status?: number;
  delayMs: number;
  reason: string;
}

/**
 * `Retry-After` in milliseconds: delta-seconds or an HTTP date (RFC 9110 10.2.3); undefined when
 * absent or unreadable.
 */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Exponential backoff with jitter: half fixed, half random, capped. */
export function backoffMs(
  attempt: number,
  baseMs = 500,
  capMs = 10_000,
  random = Math.random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fieldErrors(value: unknown): FieldError[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const errors = value.filter(isRecord).map((item) => ({
    path: typeof item['path'] === 'string' ? item['path'] : '',
    message: typeof item['message'] === 'string' ? item['message'] : '',
  }));
  return errors.length > 0 ? errors : undefined;
}

/** Any error answer as a ProblemError: problem+json as sent, anything else by its status line. */
export async function problemFrom(response: Response): Promise<ProblemError> {
  const text = await response.text().catch(() => '');
  const retryAfter = retryAfterMs(response.headers.get('retry-after'));
  const retryAfterSeconds = retryAfter === undefined ? undefined : Math.ceil(retryAfter / 1000);
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (isRecord(body) && typeof body['title'] === 'string') {
    return new ProblemError({
      status: response.status,
      type: typeof body['type'] === 'string' ? body['type'] : undefined,
      title: body['title'],
      detail: typeof body['detail'] === 'string' ? body['detail'] : undefined,
      errors: fieldErrors(body['errors']),
      retryAfterSeconds,
    });
  }
  // NOTE: a front end's HTML error page is not repeated: it says nothing the status does not.
  return new ProblemError({
    status: response.status,
    title: `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
    detail: 'the answer was not problem+json (a proxy or the Functions host answered?)',
    retryAfterSeconds,
  });
}

/** `ECONNREFUSED`, `ENOTFOUND`, ...: what fetch's cause says, rather than its 'fetch failed'. */
export function networkReason(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' ? code : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * TLS failures that no retry can mend: the certificate is not trusted, does not name the host,
 * has expired, or the server does not speak TLS. By the code Node gives the cause of fetch's error.
 */
const TLS_FAILURES: Readonly<Record<string, 'trust' | 'name' | 'date' | 'protocol'>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'trust',
  UNABLE_TO_GET_ISSUER_CERT: 'trust',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'trust',
  SELF_SIGNED_CERT_IN_CHAIN: 'trust',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'trust',
  CERT_UNTRUSTED: 'trust',
  CERT_SIGNATURE_FAILURE: 'trust',
  CERT_REVOKED: 'trust',
  INVALID_CA: 'trust',
  ERR_TLS_CERT_ALTNAME_INVALID: 'name',
  HOSTNAME_MISMATCH: 'name',
  CERT_HAS_EXPIRED: 'date',
  CERT_NOT_YET_VALID: 'date',
  ERR_SSL_WRONG_VERSION_NUMBER: 'protocol',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'protocol',
};

/**
 * A permanent TLS failure of a fetch, as `CODE: what to trust or fix`; undefined for any other
 * error (those may pass and are retried).
 */
export function tlsFailure(error: unknown): string | undefined {
  const code = networkReason(error);
  switch (TLS_FAILURES[code]) {
    case 'trust':
      return (
        `${code}: the server's certificate is not trusted; for the local emulator, trust its CA ` +
        `with NODE_EXTRA_CA_CERTS=<its CA file> (npm start prints the line); behind a ` +
        `TLS-inspecting proxy, add the proxy's CA to NODE_EXTRA_CA_CERTS`
      );
    case 'name':
      return (
        `${code}: the server's certificate does not name this host, so it is not that server; ` +
        `check the URI and the DNS (a proxy or a private endpoint answering for it)`
      );
    case 'date':
      return `${code}: the server's certificate is outside its validity dates; check the server's certificate and this machine's clock`;
    case 'protocol':
      return `${code}: the server does not speak TLS on that port (plain http?); fix the URI`;
    default:
      return undefined;
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

export interface RetryingFetchOptions {
  /** What is being done, for messages: `POST /api/leases`. */
  what: string;
  deadlineMs: number;
  signal?: AbortSignal | undefined;
  onRetry?: ((info: RetryInfo) => void) | undefined;
  fetch?: typeof fetch | undefined;
  /** The request of one attempt; called anew for each (a fresh token, a fresh body). */
  request: () => Promise<{ url: string; init: RequestInit }>;
}

/**
 * Sends a request until it gets an answer that is not worth retrying, within the deadline:
 * 429/502/503/504 and network errors are retried after `Retry-After` (seconds or a date) or an
 * exponential backoff with jitter. A wait that would end past the deadline is not started: the
 * last failure is thrown instead, so the caller never waits beyond its deadline.
 */
export async function retryingFetch(options: RetryingFetchOptions): Promise<Response> {
  const doFetch = options.fetch ?? fetch;
  const deadline = Date.now() + options.deadlineMs;
  let lastFailure: Error | undefined;
  for (let attempt = 1; ; attempt += 1) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw lastFailure ?? new DeadlineError(`${options.what} did not answer in time`);
    }
    const { url, init } = await options.request();
    const timeout = AbortSignal.timeout(remaining);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let delayMs: number;
    let status: number | undefined;
    let reason: string;
    try {
      const response = await doFetch(url, { ...init, signal });
      if (response.ok) return response;
      if (!RETRYABLE_STATUSES.has(response.status)) throw await problemFrom(response);
      const problem = await problemFrom(response);
      lastFailure = problem;
      status = response.status;
      reason = problem.message;
      delayMs =
        retryAfterMs(response.headers.get('retry-after')) ?? backoffMs(attempt, 500, 10_000);
    } catch (error) {
      if (error instanceof ProblemError) throw error;
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted || isTimeout(error)) {
        throw new DeadlineError(
          `${options.what} did not answer within ${Math.round(options.deadlineMs / 1000)} s`,
          { cause: error },
        );
      }
      const origin = new URL(url).origin;
      const tls = tlsFailure(error);
      if (tls) {
        // Permanent: retrying until the deadline would only delay the same answer.
        throw new UnreachableError(`cannot reach the broker at ${origin}: ${tls}`, {
          cause: error,
        });
      }
      reason = networkReason(error);
      lastFailure = new UnreachableError(`cannot reach the broker at ${origin} (${reason})`, {
        cause: error,
      });
      delayMs = backoffMs(attempt, 250, 5_000);
    }
    if (Date.now() + delayMs >= deadline) throw lastFailure;
    options.onRetry?.({ attempt, ...(status === undefined ? {} : { status }), delayMs, reason });
    await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : {});
  }
}
