import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { HttpRequest, type HttpResponseInit, InvocationContext } from '@azure/functions';
import { z } from 'zod';

import { openApiDocument } from '../../src/api/openapi';
import { routes } from '../../src/api/routes';
import { createConsoleHandlers } from '../../src/console/handler';
import {
  type AuditItem,
  AuditList,
  AuditQuery,
  type Lease,
  LeaseList,
  ListQuery,
  type Target,
  TargetList,
  type Vault,
  VaultList,
} from '../../src/contract';

/**
 * A stand-in for the broker's API as the console reads it, for the parts of
 * contract §4 the broker does not serve yet on this branch (`GET
 * /api/targets`, `kind` and `target` on leases and audit entries, the `kind=`
 * filter). The console's own files come from the real console handler
 * (src/console/handler.ts, the built dist/console) with AUTH_MODE=disabled.
 *
 * It cannot drift from the contract: every query it is sent is parsed with the
 * contract's query schema (a parameter the broker would refuse is refused
 * here, 400), and every answer is parsed with the contract's resource schema
 * before it is sent. As `v1`, it is a broker without targets: its OpenAPI
 * document (the real one of this branch, less /targets and the kind= and
 * target= parameters) has no /targets, `GET /api/targets` is 404, and
 * `kind=` is refused like any unknown parameter.
 */

export interface FakeApiOptions {
  /** Absent: a v1 broker (no GET /api/targets). */
  targets?: Target[];
  vaults?: Vault[];
  leases: Lease[];
  audit: AuditItem[];
  /** `status=all` answers a nextLink on every page (after the first, with one more lease each): a list that never ends. */
  endlessHistory?: boolean;
}

export interface FakeApi {
  url: string;
  /** Every API request the page made (not the console's own files), in order. */
  requests: URL[];
  close(): Promise<void>;
}

/** A v1 broker's queries: the v1.1 ones without `kind` and `target` (and so without their refinement). */
function v1<S extends { kind: unknown; target: unknown }>(shape: S): Omit<S, 'kind' | 'target'> {
  const { kind: _kind, target: _target, ...rest } = shape;
  return rest;
}
const V1_LIST_QUERY = z.strictObject(v1(ListQuery.shape));
const V1_AUDIT_QUERY = z.strictObject(v1(AuditQuery.shape));

function v11Document(): Record<string, any> {
  const document = structuredClone(openApiDocument(routes)) as Record<string, any>;
  // As the broker of contract §4 will declare it (what the console reads: the path exists).
  document.paths['/targets'] ??= {
    get: {
      operationId: 'listTargets',
      responses: { 200: { description: 'Managed targets of every kind' } },
    },
  };
  return document;
}

function v1Document(): Record<string, any> {
  const document = structuredClone(openApiDocument(routes)) as Record<string, any>;
  delete document.paths['/targets'];
  for (const path of ['/leases', '/audit']) {
    const get = document.paths[path].get;
    get.parameters = get.parameters.filter(
      (p: { name: string }) => p.name !== 'kind' && p.name !== 'target',
    );
  }
  return document;
}

class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function parseQuery<T extends z.ZodType>(schema: T, url: URL): z.output<T> {
  const parsed = schema.safeParse(Object.fromEntries(url.searchParams));
  if (!parsed.success) throw new Refused(400, `bad query: ${parsed.error.message}`);
  return parsed.data;
}

/** A page of `items` from `$skiptoken` (an offset), `top` long, with the next page's link. */
function page<T>(url: URL, items: T[], top: number): { value: T[]; nextLink?: string } {
  const from = Number(url.searchParams.get('$skiptoken') ?? '0');
  const value = items.slice(from, from + top);
  if (from + top >= items.length) return { value };
  const next = new URL(url);
  next.searchParams.set('$skiptoken', String(from + top));
  return { value, nextLink: next.toString() };
}

const kindOf = (item: { kind?: string | null }) => item.kind ?? 'keyvault';

export async function startFakeApi(options: FakeApiOptions): Promise<FakeApi> {
  const v11 = options.targets !== undefined;
  const document = v11 ? v11Document() : v1Document();
  const files = createConsoleHandlers({ settings: () => ({ authMode: 'disabled' }) });
  const requests: URL[] = [];

  const api = (url: URL): unknown => {
    switch (url.pathname) {
      case '/api/openapi.json':
        return document;
      case '/api/targets':
        if (!options.targets) throw new Refused(404, 'no such route');
        return TargetList.parse({ value: options.targets });
      case '/api/vaults':
        return VaultList.parse({ value: options.vaults ?? [] });
      case '/api/leases': {
        const query = parseQuery(v11 ? ListQuery : V1_LIST_QUERY, url);
        const target = 'target' in query ? (query.target as string | undefined) : undefined;
        const kind = 'kind' in query ? query.kind : undefined;
        const leases = options.leases
          .filter((lease) => query.status === 'all' || lease.status === query.status)
          .filter(
            (lease) =>
              (target ?? query.vault) === undefined || lease.vault === (target ?? query.vault),
          )
          .filter((lease) => kind === undefined || kindOf(lease) === kind)
          .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
        if (options.endlessHistory && query.status === 'all') {
          // Page k > 0 holds one more lease, created k minutes ago: never a page without one in the window.
          const from = Number(query.$skiptoken ?? '0');
          const next = new URL(url);
          next.searchParams.set('$skiptoken', String(from + 1));
          const name = target ?? query.vault ?? 'kv-endless';
          const created = Date.now() - from * 60_000;
          const more: Lease = {
            id: `${name}.endless${String(from).padStart(17, '0')}`,
            vault: name,
            ip: '52.10.9.9/32',
            status: 'expired',
            principal: 'pipeline-oid',
            createdAt: new Date(created).toISOString(),
            expiresAt: new Date(created + 30_000).toISOString(),
          };
          return LeaseList.parse({
            value: from === 0 ? leases : [more],
            nextLink: next.toString(),
          });
        }
        return LeaseList.parse(page(url, leases, query.$top));
      }
      case '/api/audit': {
        const query = parseQuery(v11 ? AuditQuery : V1_AUDIT_QUERY, url);
        const kind = 'kind' in query ? query.kind : undefined;
        const items = options.audit
          .filter((item) => query.vault === undefined || item.vault === query.vault)
          .filter((item) => kind === undefined || (item.vault !== null && kindOf(item) === kind));
        return AuditList.parse(page(url, items, query.$top));
      }
      default:
        throw new Refused(404, 'no such route');
    }
  };

  const send = (response: ServerResponse, init: HttpResponseInit) => {
    response.writeHead(init.status ?? 200, init.headers as Record<string, string>);
    response.end(init.body as string);
  };

  const serve = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const file = /^\/api\/console\/([^/]+)$/.exec(url.pathname)?.[1];
    if (url.pathname === '/api/console' || file !== undefined) {
      const handler = file === undefined ? files.page : files.asset;
      const init = await handler(
        new HttpRequest({
          method: 'GET',
          url: url.toString(),
          params: file === undefined ? {} : { file: decodeURIComponent(file) },
        }),
        new InvocationContext(),
      );
      send(response, init);
      return;
    }
    requests.push(url);
    try {
      const body = JSON.stringify(api(url));
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(body);
    } catch (error) {
      const status = error instanceof Refused ? error.status : 500;
      response.writeHead(status, { 'content-type': 'application/problem+json' });
      response.end(
        JSON.stringify({
          type: 'urn:kv-lease:problem:fake',
          title: 'refused',
          status,
          detail: String(error),
        }),
      );
    }
  };

  const server = createServer((request, response) => void serve(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
