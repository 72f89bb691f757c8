import type { Logger } from '../domain/logger';

/**
 * Scrubs credentials from text bound for logs or the audit trail.
 *
 * The broker never logs request headers; this is the second line of defence
 * for messages that might embed one anyway (an SDK error quoting a request, a
 * caller echoing a token in a field): anything shaped like a JWS compact token
 * (`eyJ….eyJ….…`), and whatever follows `Bearer ` in an Authorization-like
 * text, is replaced by `[redacted]`.
 */
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
const BEARER_VALUE = /\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi;

export const REDACTED = '[redacted]';

export function redact(text: string): string {
  return text.replace(JWT_LIKE, REDACTED).replace(BEARER_VALUE, `$1 ${REDACTED}`);
}

/** `redact` applied to every string inside a log line's properties (depth-limited). */
function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redact(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) =>
      /^(authorization|cookie|x-ms-token)/i.test(key)
        ? [key, REDACTED]
        : [key, redactValue(item, depth + 1)],
    ),
  );
}

/** Wraps a logger so that no line it writes can carry a bearer token. */
export function redactingLogger(inner: Logger): Logger {
  const scrub = (properties?: Record<string, unknown>) =>
    properties === undefined ? undefined : (redactValue(properties, 0) as Record<string, unknown>);
  return {
    info: (message, properties) => inner.info(redact(message), scrub(properties)),
    warn: (message, properties) => inner.warn(redact(message), scrub(properties)),
    error: (message, properties) => inner.error(redact(message), scrub(properties)),
  };
}
