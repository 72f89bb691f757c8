import { RestError } from '@azure/data-tables';

import { DomainError } from '../../domain/errors';

/** The table is gone (a restarted emulator, a recreated account): create it again. */
export function isTableNotFound(error: unknown): boolean {
  return (
    error instanceof RestError &&
    error.statusCode === 404 &&
    /TableNotFound/.test(`${error.code ?? ''} ${error.message}`)
  );
}

/** A store that does not answer is a 503 for the caller, never a 500. */
export function storeUnavailable(error: unknown): DomainError {
  return new DomainError(
    'STORE.UNAVAILABLE',
    'The lease store is not reachable; try again shortly',
    {
      retryAfterSeconds: 5,
      cause: error,
    },
  );
}

/**
 * Whether a failure is the store's (unreachable, timed out, 5xx): a RestError
 * of the SDK's transport or of the service, or an abort. Anything else thrown
 * while talking to the store (a TypeError, bad JSON in a row) is a bug and
 * stays what it is: a 500, never a retryable 503.
 */
function isStoreFault(error: unknown): boolean {
  if (error instanceof RestError) {
    const status = error.statusCode;
    return status === undefined || status >= 500 || status === 408;
  }
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}

/**
 * Runs store work so that a store fault reaches the caller as
 * `STORE.UNAVAILABLE` (503 + Retry-After): the one rule for the lease store
 * and the audit trail alike.
 */
export async function storeCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isStoreFault(error)) throw storeUnavailable(error);
    throw error;
  }
}
