import type { HttpRequest } from '@azure/functions';
import type { z } from 'zod';

import { MAX_BODY_BYTES } from '../contract';
import { DomainError, type FieldError } from '../domain/errors';

function invalid(message: string, errors: FieldError[]): DomainError {
  return new DomainError('REQUEST.INVALID', message, { errors });
}

/**
 * zod issues as the `errors` member of a problem. `root` names the value
 * itself when an issue is about all of it: `(body)`, `(query)` or a header.
 */
export function fieldErrors(error: z.ZodError, root = '(body)'): FieldError[] {
  return error.issues.slice(0, 20).map((issue) => ({
    path: issue.path.map(String).join('.') || root,
    message:
      issue.code === 'unrecognized_keys'
        ? `unknown field(s): ${issue.keys.map((key) => key.slice(0, 64)).join(', ')}`
        : issue.message,
  }));
}

export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const root = what.endsWith(' header')
      ? what.slice(0, -' header'.length)
      : what === 'query'
        ? '(query)'
        : '(body)';
    const errors = fieldErrors(result.error, root);
    throw invalid(
      `The ${what} is not valid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
      errors,
    );
  }
  return result.data;
}

function tooLarge(): DomainError {
  return new DomainError(
    'REQUEST.BODY_TOO_LARGE',
    `The request body exceeds ${MAX_BODY_BYTES} bytes`,
  );
}

/**
 * The one home of the body limit: a body over MAX_BODY_BYTES, declared or
 * sent, is refused before anything else is done with the request (the
 * handler runs this before authentication). A copy of the body is read, and
 * no further than the limit, so the route can still read the body itself.
 */
export async function refuseOversizedBody(request: HttpRequest): Promise<void> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw tooLarge();
  if (request.body === null) return;
  const reader = (request.clone().body as ReadableStream<Uint8Array> | null)?.getReader();
  if (!reader) return;
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      size += value.byteLength;
      if (size > MAX_BODY_BYTES) throw tooLarge();
    }
  } finally {
    // NOTE: not awaited: a tee'd branch's cancel settles only once the other
    // branch (the route's own read) is cancelled or read too.
    reader.cancel().catch(() => undefined);
  }
}

/**
 * The JSON body of a request (its size already admitted by
 * `refuseOversizedBody`): `application/json` (or a `+json` type),
 * well-formed. An empty body is `{}` when `optional`.
 */
export async function readJsonBody(request: HttpRequest, optional: boolean): Promise<unknown> {
  const text = await request.text();
  if (text.trim().length === 0) {
    if (optional) return {};
    throw invalid('A JSON body is required', [{ path: '(body)', message: 'is required' }]);
  }
  const mediaType =
    (request.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (mediaType !== 'application/json' && !/^application\/[\w.+-]+\+json$/.test(mediaType)) {
    throw new DomainError(
      'REQUEST.UNSUPPORTED_MEDIA_TYPE',
      `Content-Type must be application/json, not "${mediaType.slice(0, 100) || '(none)'}"`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalid('The body is not well-formed JSON', [
      { path: '(body)', message: 'is not well-formed JSON' },
    ]);
  }
}

/** Query parameters as a plain object (first value of each name). */
export function queryObject(request: HttpRequest): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of request.query.entries()) {
    if (!(name in result)) result[name] = value;
  }
  return result;
}
