import type {
  HttpHandler,
  HttpRequest,
  HttpResponseInit,
  InvocationContext,
} from '@azure/functions';

import { runInInvocation } from '../app/invocation';
import { redact } from '../app/redact';
import type { Services } from '../app/services';
import { DomainError, isDomainError } from '../domain/errors';
import { canonicalRule, clientAddressFromForwardedFor } from '../domain/ip';
import { type Lease, vaultOfLeaseId } from '../domain/lease';
import { type Principal, requireAnyRole, requireRole } from '../domain/principal';
import { RefusedByWriter } from '../leases/leases';
import type { AuditEntry } from '../ports/audit-log';
import { openApiDocument } from './openapi';
import { problemResponse } from './problem';
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

type ServicesProvider = () => Services;

const iso = (ms: number) => new Date(ms).toISOString();

/** The contract's lease resource (`vaultUri` is an additive field, when known). */
export function leaseResource(lease: Lease, vaultUri?: string): Record<string, unknown> {
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
    ...(vaultUri === undefined ? {} : { vaultUri }),
  };
}

/** Lease resources with their vault's data-plane URI (one lookup per vault, cached below). */
async function leaseResources(
  services: Services,
  leases: Lease[],
): Promise<Record<string, unknown>[]> {
  const names = [...new Set(leases.map((lease) => lease.vault))];
  const uris = new Map(
    await Promise.all(names.map(async (name) => [name, await services.vaultUri?.(name)] as const)),
  );
  return leases.map((lease) => leaseResource(lease, uris.get(lease.vault)));
}

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

function leaseIdParam(request: HttpRequest, audit: AuditScope): string {
  const id = request.params.id ?? '';
  const result = LeaseId.safeParse(id);
  // A malformed id cannot name a lease: 404 like any unknown id.
  if (!result.success) throw new DomainError('LEASE.NOT_FOUND', 'No lease with that id');
  audit.leaseId = result.data;
  audit.vault = vaultOfLeaseId(result.data);
  return result.data;
}

/** A page of a list: `{ value, nextLink? }`, the next page's link built from this request's URL. */
function page(request: HttpRequest, value: unknown[], token: string | undefined): HttpResponseInit {
  if (token === undefined) return json(200, { value });
  const url = new URL(request.url);
  url.searchParams.set('$skiptoken', token);
  return json(200, { value, nextLink: url.toString() });
}

/** The contract's audit item (plus appId and invocationId when known). */
function auditResource(entry: AuditEntry): Record<string, unknown> {
  return {
    at: iso(entry.at),
    action: entry.action,
    principal: entry.principal,
    ...(entry.appId ? { appId: entry.appId } : {}),
    vault: entry.vault,
    ip: entry.ip,
    leaseId: entry.leaseId,
    outcome: entry.outcome,
    detail: entry.detail,
    ...(entry.invocationId ? { invocationId: entry.invocationId } : {}),
  };
}

/**
 * What an authenticated handler tells the audit trail about the request, as
 * far as it got: the fields of a refusal's entry. Only validated values are
 * put here (a vault name that passed the schema, a parsed address); what the
 * caller sent otherwise only shows in the entry's detail, truncated.
 */
interface AuditScope {
  /** What was attempted, the first word of a refusal's detail (`grant`, `list-leases`, ...). */
  attempt: string;
  /** The lease action a server-side failure (5xx) is recorded under. */
  action?: Extract<AuditEntry['action'], 'grant' | 'renew' | 'release'>;
  principal?: Principal;
  vault?: string;
  ip?: string;
  leaseId?: string;
}

type ScopedHandler = (
  request: HttpRequest,
  context: InvocationContext,
  audit: AuditScope,
) => Promise<HttpResponseInit>;

function refusalDetail(attempt: string, error: unknown): string {
  const why = isDomainError(error) ? `${error.code}: ${error.message}` : 'internal error';
  return redact(`${attempt}: ${why}`).slice(0, 1024);
}

/**
 * Wraps a handler so that anything thrown becomes problem+json, and runs it in
 * its invocation's scope (audit entries written anywhere below carry its id).
 *
 * With an audit scope, every refusal (4xx) is one `refused` entry with who,
 * what and why, and a server-side failure of a lease action one entry with
 * outcome `failure`. A 500 is logged with the invocation id and says nothing
 * of the error; logged text passes through `redact`, so no token reaches a log.
 */
function withProblems(
  services: ServicesProvider,
  handler: ScopedHandler,
  scope?: Omit<AuditScope, 'principal'>,
): HttpHandler {
  return (request, context) =>
    runInInvocation(context.invocationId, async () => {
      const audit: AuditScope = { attempt: scope?.attempt ?? context.functionName, ...scope };
      try {
        return await handler(request, context, audit);
      } catch (error) {
        const response = problemResponse(error);
        const status = response.status ?? 500;
        // The writer pass records its own capacity refusals, with the lease id.
        const recorded = error instanceof RefusedByWriter;
        if (scope && !recorded && (status < 500 || audit.action !== undefined)) {
          await services().audit.append({
            at: services().clock.now(),
            action: status < 500 ? 'refused' : (audit.action ?? 'refused'),
            principal: audit.principal?.id ?? 'anonymous',
            appId: audit.principal?.appId,
            vault: audit.vault,
            ip: audit.ip,
            leaseId: audit.leaseId,
            outcome: status < 500 ? 'refused' : 'failure',
            detail: refusalDetail(audit.attempt, error),
            invocationId: context.invocationId,
          });
        }
        if (status === 500) {
          let logger;
          try {
            logger = services().logger;
          } catch {
            logger = undefined;
          }
          const message = redact(
            error instanceof Error ? `${error.name}: ${error.message}` : 'non-error thrown',
          );
          context.error(`Unhandled error in ${context.functionName}: ${message}`);
          logger?.error('Unhandled error', {
            invocationId: context.invocationId,
            function: context.functionName,
            message,
          });
        }
        return response;
      }
    });
}

export function createHandlers(services: ServicesProvider) {
  /**
   * Authenticate and remember the principal for the audit line of a refusal.
   * Role checks follow at once, before any input is validated, so a caller
   * without the role learns nothing from validation messages.
   */
  const authenticate = async (request: HttpRequest, audit: AuditScope) => {
    const principal = await services().auth.authenticate(request.headers);
    audit.principal = principal;
    return principal;
  };

  /** An endpoint without query parameters refuses any, as the list endpoints refuse unknown ones. */
  const noQuery = (request: HttpRequest) => parseWith(NoQuery, queryObject(request), 'query');

  const record = (
    context: InvocationContext,
    action: AuditEntry['action'],
    principal: Principal,
    lease: Lease,
    detail?: string,
  ) =>
    services().audit.append({
      at: services().clock.now(),
      action,
      principal: principal.id,
      appId: principal.appId,
      vault: lease.vault,
      ip: lease.ip,
      leaseId: lease.id,
      outcome: 'success',
      detail,
      invocationId: context.invocationId,
    });

  return {
    grantLease: withProblems(
      services,
      async (request, context, audit) => {
        const principal = await authenticate(request, audit);
        requireRole(principal, 'Lease.Request', 'Requesting a lease');
        noQuery(request);
        const body = parseWith(GrantBody, await readJsonBody(request, false), 'request body');
        audit.vault = body.vault.toLowerCase();
        const keyHeader = request.headers.get('idempotency-key');
        const idempotencyKey =
          keyHeader === null
            ? undefined
            : parseWith(IdempotencyKey, keyHeader, 'Idempotency-Key header');
        const forwarded = request.headers.get('x-forwarded-for');
        const clientAddress = clientAddressFromForwardedFor(forwarded);
        // Only an address in canonical form reaches the entry's ip field.
        audit.ip = body.ip === undefined ? clientAddress : canonicalRule(body.ip);
        if (body.ip === undefined && forwarded !== null && clientAddress === undefined) {
          throw new DomainError(
            'LEASE.NO_CLIENT_IP',
            'The last X-Forwarded-For entry is not an IP address',
          );
        }
        const result = await services().leases.grant(principal, {
          ...body,
          idempotencyKey,
          clientAddress,
        });
        if (result.created)
          await record(
            context,
            'grant',
            principal,
            result.lease,
            `expires ${iso(result.lease.expiresAt)}`,
          );
        const location = `/api/leases/${result.lease.id}`;
        const [resource] = await leaseResources(services(), [result.lease]);
        return json(result.created ? 201 : 200, resource, {
          Location: location,
        });
      },
      { attempt: 'grant', action: 'grant' },
    ),

    listLeases: withProblems(
      services,
      async (request, _context, audit) => {
        const principal = await authenticate(request, audit);
        requireAnyRole(principal, ['Lease.Request', 'Lease.Read'], 'Listing leases');
        const query = parseWith(ListQuery, queryObject(request), 'query');
        audit.vault = query.vault?.toLowerCase();
        const result = await services().leases.list(principal, {
          vault: query.vault,
          status: query.status,
          top: query.$top,
          skipToken: query.$skiptoken,
        });
        return page(request, await leaseResources(services(), result.leases), result.skipToken);
      },
      { attempt: 'list-leases' },
    ),

    getLease: withProblems(
      services,
      async (request, _context, audit) => {
        const principal = await authenticate(request, audit);
        requireAnyRole(principal, ['Lease.Request', 'Lease.Read'], 'Reading a lease');
        noQuery(request);
        const id = leaseIdParam(request, audit);
        const lease = await services().leases.get(principal, id);
        return json(200, (await leaseResources(services(), [lease]))[0]);
      },
      { attempt: 'get-lease' },
    ),

    renewLease: withProblems(
      services,
      async (request, context, audit) => {
        const principal = await authenticate(request, audit);
        requireAnyRole(principal, ['Lease.Request', 'Lease.Admin'], 'Changing a lease');
        noQuery(request);
        const id = leaseIdParam(request, audit);
        const body = parseWith(RenewBody, await readJsonBody(request, true), 'request body');
        const lease = await services().leases.renew(principal, id, body.ttlSeconds);
        await record(context, 'renew', principal, lease, `expires ${iso(lease.expiresAt)}`);
        return json(200, (await leaseResources(services(), [lease]))[0]);
      },
      { attempt: 'renew', action: 'renew' },
    ),

    releaseLease: withProblems(
      services,
      async (request, context, audit) => {
        const principal = await authenticate(request, audit);
        requireAnyRole(principal, ['Lease.Request', 'Lease.Admin'], 'Changing a lease');
        noQuery(request);
        const id = leaseIdParam(request, audit);
        const { lease, changed } = await services().leases.release(principal, id);
        if (changed) {
          const due = `was due to expire ${iso(lease.expiresAt)}`;
          await record(context, 'release', principal, lease, `released, ${due}`);
        }
        return json(200, (await leaseResources(services(), [lease]))[0]);
      },
      { attempt: 'release', action: 'release' },
    ),

    listAudit: withProblems(
      services,
      async (request, _context, audit) => {
        const principal = await authenticate(request, audit);
        requireRole(principal, 'Lease.Read', 'Reading the audit trail');
        const query = parseWith(AuditQuery, queryObject(request), 'query');
        audit.vault = query.vault?.toLowerCase();
        const found = await services().audit.query({
          vault: query.vault?.toLowerCase(),
          principal: query.principal,
          since: query.since === undefined ? undefined : Date.parse(query.since),
          top: query.$top,
          continuation: query.$skiptoken,
        });
        return page(request, found.entries.map(auditResource), found.continuation);
      },
      { attempt: 'read-audit' },
    ),

    listVaults: withProblems(
      services,
      async (request, _context, audit) => {
        const principal = await authenticate(request, audit);
        requireRole(principal, 'Lease.Read', 'Listing vaults');
        noQuery(request);
        return json(200, { value: await services().vaults() });
      },
      { attempt: 'list-vaults' },
    ),

    health: withProblems(services, async () => {
      try {
        await services().health();
        return json(200, { status: 'ok' });
      } catch {
        return json(503, { status: 'unavailable' }, { 'Retry-After': '5' });
      }
    }),

    openApi: withProblems(services, () => Promise.resolve(json(200, openApiDocument()))),
  };
}
