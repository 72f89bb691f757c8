import { HttpRequest, InvocationContext } from '@azure/functions';
import Ajv2020 from 'ajv/dist/2020';
import { describe, expect, it } from 'vitest';

import type { Route } from '../../src/api/handle';
import { errorsOf, openApiDocument } from '../../src/api/openapi';
import { PROBLEM_KINDS } from '../../src/api/problem';
import { auditResource, leaseResource, routes } from '../../src/api/routes';
import { functionDefinitions, type HttpDefinition } from '../../src/app/definitions';
import { createChecker } from '../support/conformance';

/**
 * The OpenAPI document itself (GET /api/openapi.json): valid JSON Schema
 * 2020-12 wherever it holds a schema, every $ref resolving, every route of
 * the table and every status it can answer listed; and the checker the test
 * helpers run on every answer, fed answers it must refuse.
 */

const document = openApiDocument(routes) as Record<string, any>;

function* refsIn(value: unknown, at: string): Generator<[string, string]> {
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) yield* refsIn(item, `${at}/${index}`);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string') yield [at, item];
      else yield* refsIn(item, `${at}/${key}`);
    }
  }
}

function resolve(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<any>((node, segment) => (node === undefined ? undefined : node[segment]), document);
}

const escape = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** JSON pointers of every schema object of the document: components, parameters, bodies, answers. */
function schemasIn(): string[] {
  const found = Object.keys(document.components.schemas).map(
    (name) => `/components/schemas/${escape(name)}`,
  );
  for (const [path, item] of Object.entries<any>(document.paths)) {
    const at = `/paths/${escape(path)}`;
    for (const [method, operation] of Object.entries<any>(item)) {
      for (const [index] of (operation.parameters ?? []).entries()) {
        found.push(`${at}/${method}/parameters/${index}/schema`);
      }
      for (const type of Object.keys(operation.requestBody?.content ?? {})) {
        found.push(`${at}/${method}/requestBody/content/${escape(type)}/schema`);
      }
      for (const [status, response] of Object.entries<any>(operation.responses)) {
        for (const [type, media] of Object.entries<any>(response.content ?? {})) {
          if (media.schema)
            found.push(`${at}/${method}/responses/${status}/content/${escape(type)}/schema`);
        }
      }
    }
  }
  return found;
}

describe('The OpenAPI document', () => {
  it('When every $ref is followed, Then each one resolves inside the document', () => {
    const refs = [...refsIn(document, '#')];
    expect(refs.length).toBeGreaterThan(20);
    const dangling = refs.filter(([, ref]) => resolve(ref) === undefined);
    expect(dangling).toEqual([]);
  });

  it('When ajv (JSON Schema 2020-12, strict) compiles every schema in it, Then none fails', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, validateFormats: false });
    // The document's own members are keywords without meaning: the document is
    // then one schema, in which `#/components/schemas/...` resolves in place.
    ajv.addVocabulary(['openapi', 'info', 'servers', 'security', 'paths', 'components']);
    ajv.addSchema({ ...document, $id: 'urn:test:openapi' });
    const pointers = schemasIn();
    expect(pointers.length).toBeGreaterThan(40);
    for (const pointer of pointers) {
      expect(() => ajv.compile({ $ref: `urn:test:openapi#${pointer}` }), pointer).not.toThrow();
    }
  });

  it('When the route table is read, Then every route and method is an operation named after it', () => {
    for (const route of routes) {
      for (const method of route.methods) {
        const operation = document.paths[`/${route.route}`]?.[method.toLowerCase()];
        expect(operation?.operationId, `${method} /${route.route}`).toBe(route.name);
      }
    }
    const operations = Object.values<any>(document.paths).flatMap((item) => Object.keys(item));
    expect(operations).toHaveLength(routes.reduce((n, route) => n + route.methods.length, 0));
  });

  it('When a route can raise a domain error, Then its status is listed under the operation', () => {
    for (const route of routes) {
      const operation = document.paths[`/${route.route}`][route.methods[0]!.toLowerCase()];
      const statuses = Object.keys(operation.responses).map(Number);
      for (const code of errorsOf(route)) {
        expect(statuses, `${route.name}: ${code}`).toContain(PROBLEM_KINDS[code].status);
      }
      for (const status of [413, 500]) expect(statuses, route.name).toContain(status);
    }
    const renew = document.paths['/leases/{id}/renew'].post.responses;
    expect(Object.keys(renew)).toEqual(expect.arrayContaining(['413', '415', '404', '409']));
    expect(Object.keys(document.paths['/leases'].get.responses)).toContain('404');
  });

  it('When a route is added to the table, Then the document has its path and every status of its kind', () => {
    const extra: Route = {
      name: 'probeThing',
      methods: ['POST'],
      route: 'things/{thing}',
      summary: 'A route only this test has',
      params: { thing: routes.find((r) => r.name === 'getLease')!.params!.id! },
      body: routes.find((r) => r.name === 'renewLease')!.body!,
      answers: { 202: { description: 'Accepted' } },
      errors: ['VAULT.AT_CAPACITY'],
      useCase: () => {
        throw new Error('not run');
      },
      input: () => undefined,
      respond: () => ({}),
    };
    const grown = openApiDocument([...routes, extra]) as Record<string, any>;
    const operation = grown.paths['/things/{thing}'].post;
    expect(operation.operationId).toBe('probeThing');
    expect(Object.keys(operation.responses).sort()).toEqual(
      ['202', '400', '401', '403', '409', '413', '415', '500', '503'].sort(),
    );
    expect(operation.parameters[0]).toMatchObject({ name: 'thing', in: 'path', required: true });
  });

  it('When an audit item has fields that do not apply, Then the broker sends null and the document allows it', () => {
    const checker = createChecker(document);
    const item = auditResource({
      at: Date.UTC(2026, 10, 25),
      action: 'refused',
      principal: 'x',
      outcome: 'refused',
    } as any);
    expect(Object.values(item)).toContain(null);
    const answer = (value: unknown[]) => ({
      method: 'GET',
      path: '/api/audit',
      status: 200,
      headers: new Headers({ 'content-type': 'application/json' }),
      text: JSON.stringify({ value }),
    });
    expect(checker.problems(answer([item]))).toEqual([]);
    const lease = leaseResource({
      id: 'kv-a.abcdefghijklmnopqrstuvwx',
      vault: 'kv-a',
      ip: '52.1.2.3/32',
      status: 'active',
      principal: 'p',
      createdAt: 0,
      expiresAt: 1000,
    });
    expect(
      checker.problems({
        ...answer([]),
        path: '/api/leases',
        text: JSON.stringify({ value: [lease] }),
      }),
    ).toEqual([]);
  });
});

describe('The answer checker', () => {
  const checker = createChecker(document);
  const json = { 'content-type': 'application/json' };
  const problemJson = { 'content-type': 'application/problem+json' };
  const lease = {
    id: 'kv-a.abcdefghijklmnopqrstuvwx',
    vault: 'kv-a',
    ip: '52.1.2.3/32',
    status: 'active',
    principal: 'p',
    createdAt: '2026-11-25T10:00:00.000Z',
    expiresAt: '2026-11-25T10:20:00.000Z',
  };
  const get = (status: number, body: unknown, headers: Record<string, string> = json) => ({
    method: 'GET',
    path: `/api/leases/${lease.id}`,
    status,
    headers: new Headers(headers),
    text: JSON.stringify(body),
  });
  const problem = (status: number, slug: string) => ({
    type: `urn:kv-lease:problem:${slug}`,
    title: 't',
    status,
    detail: 'd',
  });

  it('When an answer matches its operation, Then it has nothing to say', () => {
    expect(checker.problems(get(200, lease))).toEqual([]);
    expect(checker.problems(get(404, problem(404, 'lease-not-found'), problemJson))).toEqual([]);
  });

  it('When the status is not declared for the operation, Then it says so', () => {
    expect(
      checker.problems(get(409, problem(409, 'lease-not-active'), problemJson)).join(),
    ).toMatch(/status 409 is not declared/);
  });

  it('When a field is not in the schema, or null where it may not be, Then it says so', () => {
    expect(checker.problems(get(200, { ...lease, secret: 'x' })).join()).toMatch(
      /additional properties/,
    );
    expect(checker.problems(get(200, { ...lease, reason: null })).join()).toMatch(/reason/);
    const { principal: _principal, ...missing } = lease;
    expect(checker.problems(get(200, missing)).join()).toMatch(/principal/);
  });

  it('When the content type or a problem type is not the declared one, Then it says so', () => {
    expect(checker.problems(get(200, lease, { 'content-type': 'text/plain' })).join()).toMatch(
      /Content-Type text\/plain is not declared/,
    );
    expect(checker.problems(get(404, problem(404, 'lease-not-found'), json)).join()).toMatch(
      /Content-Type application\/json is not declared/,
    );
    expect(checker.problems(get(404, problem(404, 'made-up'), problemJson)).join()).toMatch(/type/);
  });

  it('When a declared header is missing (Retry-After on a 503), Then it says so', () => {
    const answer = get(503, problem(503, 'store-unavailable'), problemJson);
    expect(checker.problems(answer).join()).toMatch(/Retry-After is missing/);
    answer.headers.set('retry-after', '5');
    expect(checker.problems(answer)).toEqual([]);
  });

  it('When a method the path does not serve is answered, Then only a 405 naming the path methods passes', () => {
    const put = {
      method: 'PUT',
      path: `/api/leases/${lease.id}`,
      status: 405,
      headers: new Headers({ ...problemJson, allow: 'GET, DELETE' }),
      text: JSON.stringify(problem(405, 'method-not-allowed')),
    };
    expect(checker.problems(put)).toEqual([]);
    expect(checker.problems({ ...put, headers: new Headers(problemJson) }).join()).toMatch(/Allow/);
    expect(checker.problems({ ...put, status: 404 }).join()).toMatch(/expected 405/);
  });

  it('When a path is not the API, Then only a 404 not-found passes (the console aside)', () => {
    const unknown = {
      method: 'GET',
      path: '/api/secrets',
      status: 200,
      headers: new Headers(json),
      text: '{}',
    };
    expect(checker.problems(unknown).join()).toMatch(/expected 404/);
    expect(checker.problems({ ...unknown, path: '/api/console/app.js' })).toEqual([]);
  });
});

describe('Methods a path does not serve', () => {
  const definitions = functionDefinitions(() => {
    throw new Error('not needed for a 405');
  }).filter((d): d is HttpDefinition => d.kind === 'http');

  it('When any route is asked another method, Then a 405 definition answers it with Allow', async () => {
    const checker = createChecker(document);
    for (const route of routes) {
      const refusing = definitions.find((d) => d.route === route.route && d.refusesOtherMethods);
      expect(refusing, route.route).toBeDefined();
      const served = definitions
        .filter((d) => d.route === route.route && !d.refusesOtherMethods)
        .flatMap((d) => d.methods);
      expect(refusing!.methods.filter((m) => served.includes(m))).toEqual([]);
      expect(refusing!.methods).toContain('PUT');
      const path = `/api/${route.route.replace('{id}', 'kv-a.abcdefghijklmnopqrstuvwx')}`;
      const response = (await refusing!.handler(
        new HttpRequest({ method: 'PUT', url: `http://127.0.0.1${path}` }),
        new InvocationContext({ functionName: refusing!.name }),
      )) as { status: number; headers: Record<string, string>; body: string };
      expect(response.status).toBe(405);
      expect(
        checker.problems({
          method: 'PUT',
          path,
          status: response.status,
          headers: new Headers(response.headers),
          text: response.body,
        }),
      ).toEqual([]);
    }
  });
});
