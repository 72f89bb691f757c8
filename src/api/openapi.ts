import { z } from 'zod';

import { PROBLEM_BASE, requestSchemas, resourceSchemas } from '../contract';
import type { ErrorCode } from '../domain/errors';
import type { Route, RouteDoc } from './handle';
import { PROBLEM_KINDS } from './problem';

/**
 * The OpenAPI 3.1 document, generated from the route table (src/api/routes.ts)
 * and the contract's zod schemas (src/contract). OpenAPI 3.1 schemas are JSON
 * Schema 2020-12, zod's own target. A route added to the table gets its path
 * entry, and every status it can answer, without an edit here:
 *
 * - success answers are the route's `answers`;
 * - errors are those of every endpoint of its kind (a use case: validation,
 *   token, role, key set, store; any endpoint: body size and a bug) plus the
 *   route's own `errors`, each mapped to its status through PROBLEM_KINDS.
 *
 * 405 is not listed under an operation: it answers a method that has none
 * (with `Allow` naming the path's operations).
 */

type Json = Record<string, unknown>;

const COMPONENTS = '#/components/schemas/';

/** Every named schema of a registry, its cross-references pointing at the components. */
function components(registry: typeof requestSchemas, io: 'input' | 'output'): Json {
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    uri: (id) => `${COMPONENTS}${id}`,
  }) as { schemas: Record<string, Json> };
  return Object.fromEntries(
    Object.entries(schemas).map(([id, { $schema: _schema, $id: _id, ...schema }]) => [id, schema]),
  );
}

/** A schema as a reference when it is a named component, else inline. */
function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const id = (io === 'input' ? requestSchemas : resourceSchemas).get(schema)?.id;
  if (id !== undefined) return { $ref: `${COMPONENTS}${id}` };
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  }) as Json;
  return rest;
}

const UNAUTHENTICATED_HEADERS = { 'WWW-Authenticate': 'Bearer' };
const RETRY_HEADERS = { 'Retry-After': 'Seconds to wait before a retry' };

/** Errors any endpoint can answer: a body over 16 KiB (refused first), a bug. */
const ANY_ROUTE: ErrorCode[] = ['REQUEST.BODY_TOO_LARGE'];
/** Errors every use case can answer: its input, the token, the role, the key set, the store. */
const USE_CASE_ROUTE: ErrorCode[] = [
  'REQUEST.INVALID',
  'AUTH.UNAUTHENTICATED',
  'AUTH.FORBIDDEN',
  'AUTH.UNAVAILABLE',
  'STORE.UNAVAILABLE',
];

/** The domain errors a route can answer, by the kind of route and its own declaration. */
export function errorsOf(route: Route): ErrorCode[] {
  const codes = new Set<ErrorCode>([...ANY_ROUTE, ...(route.errors ?? [])]);
  if ('useCase' in route) for (const code of USE_CASE_ROUTE) codes.add(code);
  if (route.body) codes.add('REQUEST.UNSUPPORTED_MEDIA_TYPE');
  return [...codes];
}

function headerObjects(headers: Record<string, string> | undefined): Json | undefined {
  if (!headers) return undefined;
  return Object.fromEntries(
    Object.entries(headers).map(([name, description]) => [
      name,
      { description, required: true, schema: { type: 'string' } },
    ]),
  );
}

/** The responses of one operation: its answers, then a problem per status of its errors. */
function responses(route: Route): Json {
  const byStatus = new Map<number, { titles: string[]; headers: Record<string, string> }>();
  for (const code of errorsOf(route)) {
    const kind = PROBLEM_KINDS[code];
    const entry = byStatus.get(kind.status) ?? { titles: [], headers: {} };
    entry.titles.push(`${kind.slug} (${kind.title})`);
    if (kind.status === 401) Object.assign(entry.headers, UNAUTHENTICATED_HEADERS);
    if (kind.status === 503) Object.assign(entry.headers, RETRY_HEADERS);
    byStatus.set(kind.status, entry);
  }
  const internal = PROBLEM_KINDS.INTERNAL;
  byStatus.set(internal.status, { titles: [`${internal.slug} (${internal.title})`], headers: {} });

  const result: Json = {};
  for (const [status, answer] of Object.entries(route.answers)) {
    const headers = headerObjects(answer.headers);
    result[status] = {
      description: answer.description,
      ...(headers ? { headers } : {}),
      content: {
        'application/json': answer.schema ? { schema: schemaOf(answer.schema, 'output') } : {},
      },
    };
  }
  for (const [status, { titles, headers }] of [...byStatus].sort(([a], [b]) => a - b)) {
    // A status the route answers with a resource of its own (health's 503) stays that.
    if (String(status) in result) continue;
    const headerObject = headerObjects(Object.keys(headers).length > 0 ? headers : undefined);
    result[String(status)] = {
      description: titles.join('; '),
      ...(headerObject ? { headers: headerObject } : {}),
      content: { 'application/problem+json': { schema: { $ref: `${COMPONENTS}Problem` } } },
    };
  }
  return result;
}

function parameters(route: RouteDoc): Json[] {
  const names = [...route.route.matchAll(/\{(\w+)\}/g)].map((match) => match[1] as string);
  const path = names.map((name) => {
    const schema = route.params?.[name];
    if (!schema) throw new Error(`Route ${route.name} has no schema for its {${name}} segment`);
    return { name, in: 'path', required: true, schema: schemaOf(schema, 'input') };
  });
  const query = route.query
    ? Object.entries(
        (schemaOf(route.query, 'input') as { properties?: Record<string, Json> }).properties ?? {},
      ).map(([name, schema]) => ({ name, in: 'query', required: false, schema }))
    : [];
  const headers = Object.entries(route.headers ?? {}).map(([name, schema]) => ({
    name,
    in: 'header',
    required: false,
    schema: schemaOf(schema, 'input'),
  }));
  return [...path, ...query, ...headers];
}

function operation(route: Route, operationId: string): Json {
  const list = parameters(route);
  return {
    operationId,
    summary: route.summary,
    ...('useCase' in route ? {} : { security: [] }),
    ...(list.length > 0 ? { parameters: list } : {}),
    ...(route.body
      ? {
          requestBody: {
            required: route.body.required,
            content: { 'application/json': { schema: schemaOf(route.body.schema, 'input') } },
          },
        }
      : {}),
    responses: responses(route),
  };
}

/** The `paths` object: one entry per route of the table, one operation per method. */
function paths(table: Route[]): Json {
  const result: Record<string, Json> = {};
  for (const route of table) {
    const entry = (result[`/${route.route}`] ??= {});
    for (const method of route.methods) {
      const key = method.toLowerCase();
      if (key in entry) throw new Error(`Two routes answer ${method} /${route.route}`);
      const operationId =
        route.methods.length === 1 ? route.name : `${route.name}${method[0]}${key.slice(1)}`;
      entry[key] = operation(route, operationId);
    }
  }
  return result;
}

/** The Problem component, its `type` narrowed to the problem types this broker has. */
function problemComponent(schemas: Json): Json {
  const problem = schemas.Problem as { properties: Record<string, Json> };
  return {
    ...problem,
    properties: {
      ...problem.properties,
      type: {
        ...problem.properties.type,
        enum: Object.values(PROBLEM_KINDS).map((kind) => `${PROBLEM_BASE}${kind.slug}`),
      },
    },
  };
}

const cache = new WeakMap<Route[], Json>();

/** The document of a route table (the one in src/api/routes.ts), built once. */
export function openApiDocument(table: Route[]): Json {
  const known = cache.get(table);
  if (known) return known;
  const resources = components(resourceSchemas, 'output');
  const document = {
    openapi: '3.1.0',
    info: {
      title: 'kv-lease',
      version: '1.1.0',
      description:
        'Time-limited leases on the IP firewall rules of Azure resources (targets: Key Vaults, ' +
        'storage accounts, SQL servers). Every error is ' +
        'application/problem+json (RFC 9457); its type is one of: ' +
        Object.values(PROBLEM_KINDS)
          .map((kind) => `${PROBLEM_BASE}${kind.slug}`)
          .join(', ') +
        '. A method a path does not serve is answered 405 with Allow.',
    },
    servers: [{ url: '/api' }],
    security: [{ entra: [] }],
    paths: paths(table),
    components: {
      securitySchemes: {
        entra: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'Entra ID access token with app roles Lease.Request, Lease.Read, Lease.Admin',
        },
      },
      schemas: {
        ...components(requestSchemas, 'input'),
        ...resources,
        Problem: problemComponent(resources),
      },
    },
  };
  cache.set(table, document);
  return document;
}
