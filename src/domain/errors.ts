/**
 * Domain errors carry a stable code; only the HTTP layer maps codes to
 * statuses and problem types (see `src/api/problem.ts`).
 */
export const ErrorCodes = [
  'REQUEST.INVALID',
  'REQUEST.BODY_TOO_LARGE',
  'REQUEST.UNSUPPORTED_MEDIA_TYPE',
  'AUTH.UNAUTHENTICATED',
  'AUTH.FORBIDDEN',
  'AUTH.UNAVAILABLE',
  'LEASE.IP_NOT_ALLOWED',
  'LEASE.NO_CLIENT_IP',
  'LEASE.TTL_OUT_OF_RANGE',
  'LEASE.NOT_FOUND',
  'LEASE.NOT_ACTIVE',
  'LEASE.LIMIT_REACHED',
  'VAULT.NOT_FOUND',
  'VAULT.AT_CAPACITY',
  'VAULT.UPDATE_TIMEOUT',
  'STORE.UNAVAILABLE',
  'ROUTE.NOT_FOUND',
  'ROUTE.METHOD_NOT_ALLOWED',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

/**
 * Codes that say the broker could not do it right now (the caller may retry),
 * as opposed to a refusal of the request itself. Anything that is not a
 * DomainError is a bug.
 */
const UNAVAILABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'AUTH.UNAVAILABLE',
  'VAULT.UPDATE_TIMEOUT',
  'STORE.UNAVAILABLE',
]);

/** A request the broker refused (the caller's doing: a 4xx), not a fault of its own. */
export function isRefusal(error: unknown): error is DomainError {
  return error instanceof DomainError && !UNAVAILABLE.has(error.code);
}

export interface FieldError {
  path: string;
  message: string;
}

export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly errors: FieldError[] | undefined;
  /** Seconds after which a retry may succeed (503s). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { errors?: FieldError[]; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DomainError';
    this.code = code;
    this.errors = options.errors;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isDomainError(error: unknown, code?: ErrorCode): error is DomainError {
  return error instanceof DomainError && (code === undefined || error.code === code);
}

/** Normalise anything thrown into an Error, so logging never has to guess. */
export function ensureError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  let text: string;
  try {
    text = typeof thrown === 'string' ? thrown : JSON.stringify(thrown);
  } catch {
    text = String(thrown);
  }
  return new Error(`Non-error value thrown: ${text}`);
}
