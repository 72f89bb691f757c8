import type {
  HttpHandler,
  HttpRequest,
  HttpResponseInit,
  InvocationContext,
} from '@azure/functions';

import type { Services } from '../app/services';
import type { AuditEntry } from '../audit/port';
import { type Principal, requireRole } from '../auth/principal';
import { DomainError } from '../domain/errors';
import { clientAddressFromForwardedFor } from '../domain/ip';
import type { Lease } from '../domain/lease';
import { openApiDocument } from './openapi';
import { problemResponse } from './problem';
import { checkDeclaredLength, parseWith, queryObject, readJsonBody } from './request';
import { AuditQuery, GrantBody, IdempotencyKey, LeaseId, ListQuery, RenewBody } from './schemas';

type ServicesProvider = () => Services;

const iso = (ms: number) => new Date(ms).toISOString();

/** The contract's lease resource. */
export function leaseResource(lease: Lease): Record<string, unknown> {
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
  };
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

function leaseIdParam(request: HttpRequest): string {
  const id = request.params.id ?? '';
  const result = LeaseId.safeParse(id);
  // A malformed id cannot name a lease: 404 like any unknown id.
  if (!result.success) throw new DomainError('LEASE.NOT_FOUND', 'No lease with that id');
  return result.data;
}

function nextLink(request: HttpRequest, token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  const url = new URL(request.url);
  url.searchParams.set('$skiptoken', token);
  return url.toString();
}

/**
 * Wraps a handler so that anything thrown becomes problem+json; a 500 is
 * logged with the invocation id and says nothing of the error.
 */
/** What a mutating handler tells the audit trail about itself. */
interface AuditScope {
  action: AuditEntry['action'];
  principal?: Principal;
  vault?: string;
  leaseId?: string;
}

function withProblems(
  services: ServicesProvider,
  handler: (
    request: HttpRequest,
    context: InvocationContext,
    audit: AuditScope | undefined,
  ) => Promise<HttpResponseInit>,
  auditAction?: AuditEntry['action'],
): HttpHandler {
  return async (request, context) => {
    const audit: AuditScope | undefined = auditAction ? { action: auditAction } : undefined;
    try {
      return await handler(request, context, audit);
    } catch (error) {
      const response = problemResponse(error);
      if (audit) {
        await services().audit.append({
          at: Date.now(),
          action: 'refused',
          principal: audit.principal?.id ?? 'anonymous',
          appId: audit.principal?.appId,
          vault: audit.vault,
          leaseId: audit.leaseId,
          outcome: (response.status ?? 500) >= 500 ? 'failure' : 'refused',
          detail:
            `${audit.action}: ${error instanceof DomainError ? `${error.code}: ${error.message}` : 'internal error'}`.slice(
              0,
              1024,
            ),
          invocationId: context.invocationId,
        });
      }
      if ((response.status ?? 500) === 500) {
        let logger;
        try {
          logger = services().logger;
        } catch {
          logger = undefined;
        }
        const message =
          error instanceof Error ? `${error.name}: ${error.message}` : 'non-error thrown';
        context.error(`Unhandled error in ${context.functionName}: ${message}`);
        logger?.error('Unhandled error', {
          invocationId: context.invocationId,
          function: context.functionName,
          message,
        });
      }
      return response;
    }
  };
}

export function createHandlers(services: ServicesProvider) {
  const authenticate = (request: HttpRequest) => services().auth.authenticate(request.headers);

  /** Authenticate and remember the principal for the audit line of a refusal. */
  const authenticateFor = async (request: HttpRequest, audit: AuditScope | undefined) => {
    const principal = await authenticate(request);
    if (audit) audit.principal = principal;
    return principal;
  };

  const record = (
    context: InvocationContext,
    action: AuditEntry['action'],
    principal: Principal,
    lease: Lease,
    detail?: string,
  ) =>
    services().audit.append({
      at: Date.now(),
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
        checkDeclaredLength(request);
        const principal = await authenticateFor(request, audit);
        const body = parseWith(GrantBody, await readJsonBody(request, false), 'request body');
        if (audit) audit.vault = body.vault.toLowerCase();
        const keyHeader = request.headers.get('idempotency-key');
        const idempotencyKey =
          keyHeader === null
            ? undefined
            : parseWith(IdempotencyKey, keyHeader, 'Idempotency-Key header');
        const forwarded = request.headers.get('x-forwarded-for');
        const clientAddress = clientAddressFromForwardedFor(forwarded);
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
        return json(result.created ? 201 : 200, leaseResource(result.lease), {
          Location: location,
        });
      },
      'grant',
    ),

    listLeases: withProblems(services, async (request) => {
      const principal = await authenticate(request);
      const query = parseWith(ListQuery, queryObject(request), 'query');
      const result = await services().leases.list(principal, {
        vault: query.vault,
        status: query.status,
        top: query.$top,
        skipToken: query.$skiptoken,
      });
      const link = nextLink(request, result.skipToken);
      return json(200, {
        value: result.leases.map(leaseResource),
        ...(link ? { nextLink: link } : {}),
      });
    }),

    getLease: withProblems(services, async (request) => {
      const principal = await authenticate(request);
      return json(
        200,
        leaseResource(await services().leases.get(principal, leaseIdParam(request))),
      );
    }),

    renewLease: withProblems(
      services,
      async (request, context, audit) => {
        checkDeclaredLength(request);
        const principal = await authenticateFor(request, audit);
        const id = leaseIdParam(request);
        if (audit) audit.leaseId = id;
        const body = parseWith(RenewBody, await readJsonBody(request, true), 'request body');
        const lease = await services().leases.renew(principal, id, body.ttlSeconds);
        await record(context, 'renew', principal, lease, `expires ${iso(lease.expiresAt)}`);
        return json(200, leaseResource(lease));
      },
      'renew',
    ),

    releaseLease: withProblems(
      services,
      async (request, context, audit) => {
        const principal = await authenticateFor(request, audit);
        const id = leaseIdParam(request);
        if (audit) audit.leaseId = id;
        const { lease, changed } = await services().leases.release(principal, id);
        if (changed) await record(context, 'release', principal, lease);
        return json(200, leaseResource(lease));
      },
      'release',
    ),

    listAudit: withProblems(services, async (request) => {
      const principal = await authenticate(request);
      requireRole(principal, 'Lease.Read', 'Reading the audit trail');
      const query = parseWith(AuditQuery, queryObject(request), 'query');
      const page = await services().audit.query({
        vault: query.vault?.toLowerCase(),
        principal: query.principal,
        since: query.since === undefined ? undefined : Date.parse(query.since),
        top: query.$top,
        continuation: query.$skiptoken,
      });
      const link = nextLink(request, page.continuation);
      return json(200, {
        value: page.entries.map((entry) => ({
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
        })),
        ...(link ? { nextLink: link } : {}),
      });
    }),

    listVaults: withProblems(services, async (request) => {
      const principal = await authenticate(request);
      requireRole(principal, 'Lease.Read', 'Listing vaults');
      return json(200, { value: await services().vaults() });
    }),

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

export type Handlers = ReturnType<typeof createHandlers>;
