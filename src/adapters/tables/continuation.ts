import { DomainError } from '../../domain/errors';

/**
 * A `$skiptoken` must have the shape of a continuation the Tables SDK issues
 * (base64 JSON of the next, opaque keys); anything else is the caller's
 * error, answered 400 before it reaches the SDK's parser. A forged but
 * well-formed token can only move within what the query's filter allows.
 */
const OPAQUE_KEY = /^[\w!*+/=.:-]{1,1024}$/;

export function checkContinuation(token: string): string {
  let valid = false;
  try {
    if (token.length <= 2048) {
      const keys = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as unknown;
      if (typeof keys === 'object' && keys !== null && !Array.isArray(keys)) {
        const { nextPartitionKey, nextRowKey, ...rest } = keys as Record<string, unknown>;
        valid =
          Object.keys(rest).length === 0 &&
          typeof nextPartitionKey === 'string' &&
          OPAQUE_KEY.test(nextPartitionKey) &&
          (nextRowKey === undefined ||
            (typeof nextRowKey === 'string' && OPAQUE_KEY.test(nextRowKey)));
      }
    }
  } catch {
    valid = false;
  }
  if (!valid) {
    const message = 'is not a token this API issued';
    throw new DomainError('REQUEST.INVALID', `$skiptoken ${message}`, {
      errors: [{ path: '$skiptoken', message }],
    });
  }
  return token;
}
