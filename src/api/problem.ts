import type { HttpResponseInit } from '@azure/functions';

import { type Problem, PROBLEM_BASE } from '../contract';
import { DomainError, type ErrorCode, isDomainError } from '../domain/errors';

interface ProblemKind {
  status: number;
  slug: string;
  title: string;
}

/**
 * RFC 9457 problem types: one stable URI per error kind (`PROBLEM_BASE` and
 * the slug, listed in the README). Only this module maps domain error codes
 * to HTTP statuses.
 */
export const PROBLEM_KINDS: Record<ErrorCode | 'INTERNAL', ProblemKind> = {
  'REQUEST.INVALID': { status: 400, slug: 'invalid-request', title: 'The request is not valid' },
  'REQUEST.BODY_TOO_LARGE': {
    status: 413,
    slug: 'body-too-large',
    title: 'The request body is too large',
  },
  'REQUEST.UNSUPPORTED_MEDIA_TYPE': {
    status: 415,
    slug: 'unsupported-media-type',
    title: 'The request body must be JSON',
  },
  'AUTH.UNAUTHENTICATED': {
    status: 401,
    slug: 'unauthenticated',
    title: 'A valid bearer token is required',
  },
  'AUTH.FORBIDDEN': { status: 403, slug: 'forbidden', title: 'The caller may not do this' },
  'AUTH.UNAVAILABLE': {
    status: 503,
    slug: 'auth-unavailable',
    title: 'Tokens cannot be validated right now',
  },
  'LEASE.IP_NOT_ALLOWED': {
    status: 400,
    slug: 'ip-not-allowed',
    title: 'This IP address cannot be leased',
  },
  'LEASE.NO_CLIENT_IP': {
    status: 400,
    slug: 'no-client-ip',
    title: 'The caller address is unknown',
  },
  'LEASE.TTL_OUT_OF_RANGE': {
    status: 400,
    slug: 'ttl-out-of-range',
    title: 'ttlSeconds is out of range',
  },
  'LEASE.NOT_FOUND': { status: 404, slug: 'lease-not-found', title: 'No such lease' },
  'LEASE.NOT_ACTIVE': { status: 409, slug: 'lease-not-active', title: 'The lease is not active' },
  'LEASE.LIMIT_REACHED': {
    status: 409,
    slug: 'lease-limit-reached',
    title: 'Too many active leases',
  },
  'VAULT.NOT_FOUND': { status: 404, slug: 'vault-not-found', title: 'No such vault' },
  'VAULT.AT_CAPACITY': {
    status: 409,
    slug: 'vault-at-capacity',
    title: 'The vault firewall is full',
  },
  'VAULT.UPDATE_TIMEOUT': {
    status: 503,
    slug: 'vault-update-timeout',
    title: 'The vault could not be updated in time',
  },
  // A refusal Resource Manager will repeat (403, 404, 400): a bad gateway, not a retry later.
  'VAULT.UNAVAILABLE': {
    status: 502,
    slug: 'vault-unavailable',
    title: 'Resource Manager refuses the broker access to the vault',
  },
  'STORE.UNAVAILABLE': {
    status: 503,
    slug: 'store-unavailable',
    title: 'The lease store is unavailable',
  },
  'ROUTE.NOT_FOUND': { status: 404, slug: 'not-found', title: 'No such resource' },
  'ROUTE.METHOD_NOT_ALLOWED': {
    status: 405,
    slug: 'method-not-allowed',
    title: 'Method not allowed',
  },
  INTERNAL: { status: 500, slug: 'internal', title: 'Something went wrong' },
};

/**
 * The response for anything thrown by a handler. A non-domain error becomes
 * a bare 500 that carries nothing of the error: the caller logs it instead.
 */
export function problemResponse(error: unknown): HttpResponseInit {
  const known = isDomainError(error);
  const kind = PROBLEM_KINDS[known ? error.code : 'INTERNAL'];
  const body: Problem = {
    type: `${PROBLEM_BASE}${kind.slug}`,
    title: kind.title,
    status: kind.status,
    detail: known ? error.message : 'An unexpected error occurred; it has been logged.',
  };
  if (known && error.errors && error.errors.length > 0) body.errors = error.errors;
  const headers: Record<string, string> = { 'Content-Type': 'application/problem+json' };
  if (kind.status === 401) headers['WWW-Authenticate'] = 'Bearer';
  if (kind.status === 503) headers['Retry-After'] = String((known && error.retryAfterSeconds) || 5);
  return { status: kind.status, headers, body: JSON.stringify(body) };
}

/**
 * 405 for a method a path does not serve: `Allow` names the methods it does
 * (RFC 9110 §15.5.6), so a client learns what it may send.
 */
export function methodNotAllowedResponse(
  method: string,
  path: string,
  allow: readonly string[],
): HttpResponseInit {
  const response = problemResponse(
    new DomainError(
      'ROUTE.METHOD_NOT_ALLOWED',
      `${method.slice(0, 16)} is not an operation of ${path.slice(0, 200)}: it allows ${allow.join(', ')}`,
    ),
  );
  return { ...response, headers: { ...(response.headers as object), Allow: allow.join(', ') } };
}
