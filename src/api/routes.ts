import type { HttpRequest, HttpResponseInit } from '@azure/functions';

import {
  type AuditItem,
  AuditList,
  AuditQuery,
  GrantBody,
  Health,
  IdempotencyKey,
  type Lease,
  LeaseId,
  LeaseList,
  LeaseResource,
  ListQuery,
  NoQuery,
  RenewBody,
  TargetList,
  VaultList,
  WhoAmI,
} from '../contract';
import { DomainError } from '../domain/errors';
import type { Attempt } from '../domain/events';
import { callerAddress, canonicalRule } from '../domain/ip';
import { isVisible, vaultOfLeaseId } from '../domain/lease';
import { whoami } from '../leases/whoami';
import type { LeaseWithDataPlane } from '../overview/data-plane';
import type { TargetSummary } from '../overview/targets';
import type { AuditEntry } from '../ports/audit-log';
import { keyVaultKind } from '../targets/keyvault/kind';
import { kindOf } from '../targets/kinds';
import { type Route, useCaseRoute } from './handle';
import { openApiDocument } from './openapi';
import { parseWith, queryObject, readJsonBody } from './request';

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

/**
 * The contract's lease resource (`vaultUri`: additive, when known). The use
 * cases only answer visible leases; a `pending` or `failed` one here is a bug,
 * answered 500 rather than with a status the contract does not have.
 */
export function leaseResource(lease: LeaseWithDataPlane): Lease {
  const status = lease.status;
  if (!isVisible(lease)) throw new Error(`A ${status} lease reached the API`);
  return {
    id: lease.id,
    vault: lease.vault,
    target: lease.vault,
    kind: kindOf(lease.kind).name as Lease['kind'],
    ip: lease.ip,
    status: status as Lease['status'],
    principal: lease.principal,
    ...(lease.reason === undefined ? {} : { reason: lease.reason }),
    createdAt: iso(lease.createdAt),
    expiresAt: iso(lease.expiresAt),
    ...(lease.endedAt === undefined ? {} : { endedAt: iso(lease.endedAt) }),
    ...(lease.vaultUri === undefined ? {} : { vaultUri: lease.vaultUri }),
    ...(lease.dataPlane === undefined ? {} : { dataPlane: lease.dataPlane }),
    ...(lease.warnings?.length ? { warnings: lease.warnings } : {}),
  };
}

/** `GET /api/vaults` (v1): the Key Vaults among the targets, their address as `vaultUri`. */
function vaultResources(targets: TargetSummary[]) {
  return targets
    .filter((target) => target.kind === keyVaultKind.name)
    .map(({ kind: _kind, dataPlane, ...vault }) => ({
      ...vault,
      ...(dataPlane === undefined ? {} : { vaultUri: dataPlane }),
    }));
}

/**
 * The contract's audit item, every field present (`null` where it does not
 * apply), plus `appId` and `invocationId`.
 */
export function auditResource(entry: AuditEntry): AuditItem {
  return {
    at: iso(entry.at),
    action: entry.action,
    principal: entry.principal,
    appId: entry.appId ?? null,
    vault: entry.vault ?? null,
    target: entry.vault ?? null,
    kind:
      entry.vault === undefined ? null : (kindOf(entry.kind).name as AuditItem['kind'] & string),
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

/** The target a request names, lower-cased: `target`, or `vault` as v1 names it (the schemas check both agree). */
function targetNamed(input: { vault?: string | undefined; target?: string | undefined }) {
  return (input.target ?? input.vault)?.toLowerCase();
}

/**
 * The grant's input: the body, the Idempotency-Key and the caller's address
 * (rightmost X-Forwarded-For entry). Only an address in canonical form
 * reaches the attempt (and so a refusal's audit entry).
 */
async function grantInput(request: HttpRequest, attempt: Attempt) {
  noQuery(request);
  const { target, ...body } = parseWith(
    GrantBody,
    await readJsonBody(request, false),
    'request body',
  );
  // The schema requires one of them.
  const vault = targetNamed({ ...body, target }) ?? '';
  attempt.vault = vault;
  const keyHeader = request.headers.get('idempotency-key');
  const idempotencyKey =
    keyHeader === null ? undefined : parseWith(IdempotencyKey, keyHeader, 'Idempotency-Key header');
  // An explicit ip leaves the header unread: a garbled one does not stop an admin's grant.
  const clientAddress =
    body.ip === undefined ? callerAddress(request.headers.get('x-forwarded-for')) : undefined;
  attempt.ip = body.ip === undefined ? clientAddress : canonicalRule(body.ip);
  return { ...body, vault, idempotencyKey, clientAddress };
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
    summary: "Lease the caller's IP (or, for Lease.Admin, a named ip) on a vault firewall",
    headers: { 'Idempotency-Key': IdempotencyKey },
    body: { schema: GrantBody, required: true },
    answers: {
      201: {
        description: 'Granted: the vault holds the rule',
        schema: LeaseResource,
        headers: { Location: 'The lease: /api/leases/{id}' },
      },
      200: {
        description: 'Idempotent repeat: the same active lease',
        schema: LeaseResource,
        headers: { Location: 'The lease: /api/leases/{id}' },
      },
    },
    errors: [
      'LEASE.IP_NOT_ALLOWED',
      'LEASE.NO_CLIENT_IP',
      'LEASE.TTL_OUT_OF_RANGE',
      'VAULT.NOT_FOUND',
      'VAULT.AT_CAPACITY',
      'LEASE.LIMIT_REACHED',
      'VAULT.UNAVAILABLE',
      'VAULT.UPDATE_TIMEOUT',
    ],
    useCase: (s) => s.leases.grant,
    input: grantInput,
    respond: ({ lease, created }) =>
      json(created ? 201 : 200, leaseResource(lease), { Location: `/api/leases/${lease.id}` }),
  }),
  useCaseRoute({
    name: 'listLeases',
    methods: ['GET'],
    route: 'leases',
    summary: 'Leases, the own ones for Lease.Request, every one for Lease.Read',
    query: ListQuery,
    answers: { 200: { description: 'A page of leases', schema: LeaseList } },
    errors: ['VAULT.NOT_FOUND'],
    useCase: (s) => s.leases.list,
    input: (request, attempt) => {
      const query = parseWith(ListQuery, queryObject(request), 'query');
      const vault = targetNamed(query);
      attempt.vault = vault;
      return {
        vault,
        kind: query.kind,
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
    summary: 'One lease (a point read)',
    params: { id: LeaseId },
    answers: { 200: { description: 'The lease', schema: LeaseResource } },
    errors: ['LEASE.NOT_FOUND'],
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
    summary: 'Release a lease: its rule is gone from the vault before the answer',
    params: { id: LeaseId },
    answers: { 200: { description: 'Released (or already ended)', schema: LeaseResource } },
    errors: ['LEASE.NOT_FOUND', 'VAULT.UNAVAILABLE', 'VAULT.UPDATE_TIMEOUT'],
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
    summary: 'Renew an active lease: expiresAt = now + ttlSeconds',
    params: { id: LeaseId },
    body: { schema: RenewBody, required: false },
    answers: { 200: { description: 'Renewed', schema: LeaseResource } },
    errors: ['LEASE.NOT_FOUND', 'LEASE.NOT_ACTIVE', 'LEASE.TTL_OUT_OF_RANGE'],
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
    summary: 'The managed vaults, their rule counts and health',
    answers: { 200: { description: 'Managed vaults', schema: VaultList } },
    useCase: (s) => s.targets,
    input: (request) => {
      noQuery(request);
    },
    respond: (targets) => json(200, { value: vaultResources(targets) }),
  }),
  useCaseRoute({
    name: 'listTargets',
    methods: ['GET'],
    route: 'targets',
    summary:
      'Every managed target (Key Vaults, storage accounts, SQL servers), its kind, rule counts and health',
    answers: { 200: { description: 'Managed targets', schema: TargetList } },
    useCase: (s) => s.targets,
    input: (request) => {
      noQuery(request);
    },
    respond: (targets) => json(200, { value: targets }),
  }),
  useCaseRoute({
    name: 'listAudit',
    methods: ['GET'],
    route: 'audit',
    summary: 'The audit trail, newest first',
    query: AuditQuery,
    answers: { 200: { description: 'A page of the audit trail', schema: AuditList } },
    useCase: (s) => s.audit,
    input: (request, attempt) => {
      const query = parseWith(AuditQuery, queryObject(request), 'query');
      const vault = targetNamed(query);
      attempt.vault = vault;
      return {
        vault,
        kind: query.kind,
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
    summary: 'Who the broker takes the caller for, and the address a grant without ip would lease',
    errors: ['AUTH.UNAUTHENTICATED', 'AUTH.FORBIDDEN', 'AUTH.UNAVAILABLE', 'REQUEST.INVALID'],
    answers: { 200: { description: 'The caller as the broker sees it', schema: WhoAmI } },
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
    summary: 'Whether the lease store answers',
    answers: {
      200: { description: 'The lease store answers', schema: Health },
      503: {
        description: 'The lease store does not answer',
        schema: Health,
        headers: { 'Retry-After': 'Seconds to wait before asking again' },
      },
    },
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
    summary: 'This document',
    answers: { 200: { description: 'The OpenAPI 3.1 document of this API' } },
    // The table itself, read when the document is first asked for.
    answer: () => Promise.resolve(json(200, openApiDocument(routes))),
  },
];
