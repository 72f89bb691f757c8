import type { HttpRequest, HttpResponseInit } from '@azure/functions';

import { DomainError } from '../domain/errors';
import type { Attempt } from '../domain/events';
import { callerAddress, canonicalRule } from '../domain/ip';
import { vaultOfLeaseId } from '../domain/lease';
import { whoami } from '../leases/whoami';
import type { AuditEntry } from '../ports/audit-log';
import type { LeaseWithVaultUri } from '../vaults/vault-uri';
import { type Route, useCaseRoute } from './handle';
import { openApiDocument } from './openapi';
import { parseWith, queryObject, readJsonBody } from './request';
import {
  AuditQuery,
  GrantBody,
  IdempotencyKey,
  LeaseId,
  ListQuery,
  NoQuery,
  RenewBody,
} from './schemas';

const iso = (ms: number) => new Date(ms).toISOString();

function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResponseInit {
  return {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

/** The contract's lease resource (`vaultUri`: additive, when known). */
export function leaseResource(lease: LeaseWithVaultUri): Record<string, unknown> {
  return {
    id: lease.id,
    vault: lease.vault,
    ip: lease.ip,
    status: lease.status,
    principal: lease.principal,
    ...(lease.reason === undefined ? {} : { reason: lease.reason }),
    createdAt: iso(lease.createdAt),
    expiresAt: iso(lease.expiresAt),
    ...(lease.endedAt === undefined ? {} : { endedAt: iso(lease.endedAt) }),
    ...(lease.vaultUri === undefined ? {} : { vaultUri: lease.vaultUri }),
  };
}

/**
 * The contract's audit item, every field present (`null` where it does not
 * apply), plus `appId` and `invocationId`.
 */
export function auditResource(entry: AuditEntry): Record<string, unknown> {
  return {
    at: iso(entry.at),
    action: entry.action,
    principal: entry.principal,
    appId: entry.appId ?? null,
    vault: entry.vault ?? null,
    ip: entry.ip ?? null,
    leaseId: entry.leaseId ?? null,
    outcome: entry.outcome,
    detail: entry.detail ?? null,
    invocationId: entry.invocationId ?? null,
  };
}

/** A page of a list: `{ value, nextLink? }`, the next page's link built from this request's URL. */
function page(request: HttpRequest, value: unknown[], token: string | undefined): HttpResponseInit {
  if (token === undefined) return json(200, { value });
  const url = new URL(request.url);
  url.searchParams.set('$skiptoken', token);
  return json(200, { value, nextLink: url.toString() });
}

/** Endpoints without query parameters refuse any, as the list endpoints refuse unknown ones. */
const noQuery = (request: HttpRequest) => parseWith(NoQuery, queryObject(request), 'query');

/** The `{id}` of the path; a malformed id cannot name a lease: 404 like any unknown id. */
function leaseIdParam(request: HttpRequest, attempt: Attempt): string {
  const result = LeaseId.safeParse(request.params.id ?? '');
  if (!result.success) throw new DomainError('LEASE.NOT_FOUND', 'No lease with that id');
  attempt.leaseId = result.data;
  attempt.vault = vaultOfLeaseId(result.data);
  return result.data;
}

/**
 * The grant's input: the body, the Idempotency-Key and the caller's address
 * (rightmost X-Forwarded-For entry). Only an address in canonical form
 * reaches the attempt (and so a refusal's audit entry).
 */
async function grantInput(request: HttpRequest, attempt: Attempt) {
  noQuery(request);
  const body = parseWith(GrantBody, await readJsonBody(request, false), 'request body');
  attempt.vault = body.vault.toLowerCase();
  const keyHeader = request.headers.get('idempotency-key');
  const idempotencyKey =
    keyHeader === null ? undefined : parseWith(IdempotencyKey, keyHeader, 'Idempotency-Key header');
  // An explicit ip leaves the header unread: a garbled one does not stop an admin's grant.
  const clientAddress =
    body.ip === undefined ? callerAddress(request.headers.get('x-forwarded-for')) : undefined;
  attempt.ip = body.ip === undefined ? clientAddress : canonicalRule(body.ip);
  return { ...body, idempotencyKey, clientAddress };
}

/**
 * The one route table: what each endpoint runs, validates and answers. The
 * host registers it (src/functions/index.ts, through src/app/definitions.ts)
 * and the local runner serves the very same entries.
 */
export const routes: Route[] = [
  useCaseRoute({
    name: 'grantLease',
    methods: ['POST'],
    route: 'leases',
    useCase: (s) => s.leases.grant,
    input: grantInput,
    respond: ({ lease, created }) =>
      json(created ? 201 : 200, leaseResource(lease), { Location: `/api/leases/${lease.id}` }),
  }),
  useCaseRoute({
    name: 'listLeases',
    methods: ['GET'],
    route: 'leases',
    useCase: (s) => s.leases.list,
    input: (request, attempt) => {
      const query = parseWith(ListQuery, queryObject(request), 'query');
      attempt.vault = query.vault?.toLowerCase();
      return {
        vault: query.vault,
        status: query.status,
        top: query.$top,
        skipToken: query.$skiptoken,
      };
    },
    respond: (result, request) => page(request, result.leases.map(leaseResource), result.skipToken),
  }),
  useCaseRoute({
    name: 'getLease',
    methods: ['GET'],
    route: 'leases/{id}',
    useCase: (s) => s.leases.get,
    input: (request, attempt) => {
      noQuery(request);
      return { id: leaseIdParam(request, attempt) };
    },
    respond: (lease) => json(200, leaseResource(lease)),
  }),
  useCaseRoute({
    name: 'releaseLease',
    methods: ['DELETE'],
    route: 'leases/{id}',
    useCase: (s) => s.leases.release,
    input: (request, attempt) => {
      noQuery(request);
      return { id: leaseIdParam(request, attempt) };
    },
    respond: (lease) => json(200, leaseResource(lease)),
  }),
  useCaseRoute({
    name: 'renewLease',
    methods: ['POST'],
    route: 'leases/{id}/renew',
    useCase: (s) => s.leases.renew,
    input: async (request, attempt) => {
      noQuery(request);
      const id = leaseIdParam(request, attempt);
      const body = parseWith(RenewBody, await readJsonBody(request, true), 'request body');
      return { id, ttlSeconds: body.ttlSeconds };
    },
    respond: (lease) => json(200, leaseResource(lease)),
  }),
  useCaseRoute({
    name: 'listVaults',
    methods: ['GET'],
    route: 'vaults',
    useCase: (s) => s.vaults,
    input: (request) => {
      noQuery(request);
    },
    respond: (vaults) => json(200, { value: vaults }),
  }),
  useCaseRoute({
    name: 'listAudit',
    methods: ['GET'],
    route: 'audit',
    useCase: (s) => s.audit,
    input: (request, attempt) => {
      const query = parseWith(AuditQuery, queryObject(request), 'query');
      attempt.vault = query.vault?.toLowerCase();
      return {
        vault: query.vault?.toLowerCase(),
        principal: query.principal,
        since: query.since === undefined ? undefined : Date.parse(query.since),
        top: query.$top,
        continuation: query.$skiptoken,
      };
    },
    respond: (found, request) =>
      page(request, found.entries.map(auditResource), found.continuation),
  }),
  {
    // Any authenticated caller, no role: authenticated here rather than through a use case, so
    // that nothing (not even a refusal) reaches the audit trail.
    name: 'whoami',
    methods: ['GET'],
    route: 'whoami',
    answer: async (s, request) => {
      const principal = await s.auth.authenticate(request.headers);
      noQuery(request);
      return json(200, whoami(principal, request.headers.get('x-forwarded-for')));
    },
  },
  {
    name: 'health',
    methods: ['GET'],
    route: 'health',
    answer: async (s) => {
      try {
        await s.health();
        return json(200, { status: 'ok' });
      } catch {
        return json(503, { status: 'unavailable' }, { 'Retry-After': '5' });
      }
    },
  },
  {
    name: 'openApi',
    methods: ['GET'],
    route: 'openapi.json',
    answer: () => Promise.resolve(json(200, openApiDocument())),
  },
];
