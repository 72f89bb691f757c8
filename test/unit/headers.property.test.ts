import { HttpRequest, type HttpResponseInit, InvocationContext } from '@azure/functions';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createEntraAuthenticator } from '../../src/adapters/entra/authenticator';
import type { Services } from '../../src/api/services';
import { functionDefinitions, type HttpDefinition } from '../../src/app/definitions';
import { silentLogger } from '../../src/domain/logger';
import type { Authenticator, Principal, Role } from '../../src/domain/principal';
import type { UseCase } from '../../src/domain/use-case';
import type { GrantRequest, GrantResult } from '../../src/leases/leases';
import { identity, startTenant, type Tenant } from '../security/support';

/**
 * Header parsing at the HTTP surface, property by property: the grant
 * handler is driven with HttpRequest objects built directly, in front of a
 * use case that only records what reached it.
 */

const ADMIN: Principal = { id: 'admin', roles: new Set<Role>(['Lease.Admin']) };

function harness(auth: Authenticator = { authenticate: () => Promise.resolve(ADMIN) }) {
  const reached: GrantRequest[] = [];
  const unused = () => Promise.reject(new Error('not used'));
  const grantUseCase: UseCase<GrantRequest, GrantResult> = {
    name: 'grant',
    roles: ['Lease.Request'],
    purpose: 'Requesting a lease',
    run: (_principal, request) => {
      reached.push(request);
      const now = Date.parse('2026-11-25T10:00:00.000Z');
      return Promise.resolve({
        created: true,
        lease: {
          id: `kv-prop.${'a'.repeat(24)}`,
          vault: 'kv-prop',
          ip: `${request.clientAddress ?? request.ip}/32`,
          status: 'active',
          principal: 'admin',
          createdAt: now,
          expiresAt: now + 600_000,
        },
      });
    },
  };
  const other = { name: 'other', roles: [], purpose: 'Other', run: unused };
  const services: Services = {
    auth,
    events: { emit: () => Promise.resolve() },
    leases: { grant: grantUseCase, list: other, get: other, renew: other, release: other },
    targets: other,
    audit: other,
    health: () => Promise.resolve(),
    sweep: unused,
    shutdown: () => Promise.resolve(),
    logger: silentLogger,
  };
  const handler = functionDefinitions(() => services).find(
    (definition): definition is HttpDefinition => definition.name === 'grantLease',
  )!.handler;
  const handlers = { grantLease: handler };
  const grant = async (headers: Record<string, string>, body: object = { vault: 'kv-prop' }) => {
    const response = (await handlers.grantLease(
      new HttpRequest({
        method: 'POST',
        url: 'http://127.0.0.1/api/leases',
        headers: { 'content-type': 'application/json', ...headers },
        body: { string: JSON.stringify(body) },
      }),
      new InvocationContext({ functionName: 'grantLease' }),
    )) as HttpResponseInit;
    const text = typeof response.body === 'string' ? response.body : '';
    return {
      status: response.status ?? 200,
      headers: new Headers(response.headers),
      text,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined,
    };
  };
  return { reached, grant };
}

/** Characters a header value may carry (no NUL, CR, LF). */
const headerChar = fc
  .integer({ min: 1, max: 0xff })
  .filter((code) => code !== 10 && code !== 13)
  .map((code) => String.fromCharCode(code));
const headerText = (maxLength: number) => fc.string({ unit: headerChar, maxLength });
const printable = fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code));
const octet = fc.integer({ min: 0, max: 255 });
/** Public unicast addresses, far from every special range. */
const publicQuad = fc
  .tuple(fc.constantFrom(8, 20, 40, 52, 104, 151), octet, octet, fc.integer({ min: 1, max: 254 }))
  .map((parts) => parts.join('.'));

describe('Authorization', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    tenant = await startTenant();
  });
  afterAll(async () => {
    await tenant.close();
  });

  const entra = () =>
    createEntraAuthenticator({
      tenantId: tenant.id,
      audiences: (tenant.env().AUTH_AUDIENCE ?? '').split(','),
      jwksUri: tenant.jwksUri,
    });

  it('When the header is anything but "Bearer <three base64url segments>", then 401 with WWW-Authenticate: Bearer, no key fetch, and the value is not echoed', async () => {
    const { grant, reached } = harness(entra());
    const before = tenant.requests();
    await fc.assert(
      fc.asyncProperty(
        headerText(300).filter(
          (value) =>
            !/^[\t ]*bearer[\t ]+[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*[\t ]*$/i.test(
              value,
            ),
        ),
        async (value) => {
          const response = await grant({ authorization: value, 'x-forwarded-for': '52.1.2.3' });
          expect(response.status).toBe(401);
          expect(response.headers.get('www-authenticate')).toBe('Bearer');
          expect(response.headers.get('content-type')).toBe('application/problem+json');
          const trimmed = value.trim();
          if (trimmed.length >= 12) expect(response.text).not.toContain(trimmed);
        },
      ),
      { numRuns: 300 },
    );
    expect(tenant.requests()).toBe(before);
    expect(reached).toEqual([]);
  });

  it('When the header is a JWS of random bytes, then it is 401, never 500 or 503', async () => {
    const { grant, reached } = harness(entra());
    const segment = fc
      .uint8Array({ minLength: 1, maxLength: 120 })
      .map((bytes) => Buffer.from(bytes).toString('base64url'));
    const header = fc.oneof(
      segment,
      fc
        .record({
          alg: fc.constantFrom('RS256', 'HS256', 'none', 'ES256', 'PS256'),
          kid: fc.string(),
        })
        .map((value) => Buffer.from(JSON.stringify(value)).toString('base64url')),
    );
    await fc.assert(
      fc.asyncProperty(header, segment, fc.option(segment, { nil: '' }), async (h, p, s) => {
        const response = await grant({
          authorization: `Bearer ${h}.${p}.${s}`,
          'x-forwarded-for': '52.1.2.3',
        });
        expect(response.status).toBe(401);
      }),
      { numRuns: 200 },
    );
    expect(reached).toEqual([]);
  });

  it('When a valid token is sent with any casing of the scheme and surrounding blanks, then it is accepted', async () => {
    const { grant, reached } = harness(entra());
    const token = await tenant.token(identity('Lease.Request'));
    const scheme = fc
      .array(fc.boolean(), { minLength: 6, maxLength: 6 })
      .map((upper) => [...'bearer'].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));
    const blanks = fc.string({ unit: fc.constantFrom(' ', '\t'), minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(scheme, blanks, async (s, gap) => {
        const response = await grant({
          authorization: `${s}${gap}${token}`,
          'x-forwarded-for': '52.1.2.3',
        });
        expect(response.status).toBe(201);
      }),
      { numRuns: 30 },
    );
    expect(reached).toHaveLength(30);
  });
});

describe('X-Forwarded-For at the grant handler', () => {
  it('When any earlier entries precede a public last entry (with or without port), then the use case gets exactly the last address', async () => {
    const { grant, reached } = harness();
    const earlier = fc.array(
      fc.oneof(
        publicQuad,
        fc.constantFrom('10.0.0.1', '127.0.0.1', '::1', 'unknown', '[2001:db8::1]:80'),
        headerText(20).filter((t) => !t.includes(',')),
      ),
      { maxLength: 12 },
    );
    await fc.assert(
      fc.asyncProperty(
        earlier,
        publicQuad,
        fc.option(fc.integer({ min: 0, max: 65535 })),
        async (before, last, port) => {
          reached.length = 0;
          const value = [...before, port === null ? last : `${last}:${port}`].join(', ');
          const response = await grant({ 'x-forwarded-for': value });
          expect(response.status).toBe(201);
          expect(reached).toHaveLength(1);
          expect(reached[0]?.clientAddress).toBe(last);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('When the last entry is IPv4-mapped IPv6, bracketed or not, then the IPv4 address reaches the use case', async () => {
    const { grant, reached } = harness();
    await fc.assert(
      fc.asyncProperty(
        publicQuad,
        fc.integer({ min: 0, max: 65535 }),
        fc.boolean(),
        async (quad, port, bracketed) => {
          reached.length = 0;
          const last = bracketed ? `[::ffff:${quad}]:${port}` : `::ffff:${quad}`;
          const response = await grant({ 'x-forwarded-for': `203.0.113.1, ${last}` });
          expect(response.status).toBe(201);
          expect(reached[0]?.clientAddress).toBe(quad);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('When the last entry is not an address, then 400 no-client-ip and the use case is never reached', async () => {
    const { grant, reached } = harness();
    const garbage = headerText(80).filter((text) => {
      const last = text.split(',').pop()?.trim() ?? '';
      return !/^[\d.:[\]a-fA-F]*$/.test(last) || last === '';
    });
    await fc.assert(
      fc.asyncProperty(fc.array(publicQuad, { maxLength: 4 }), garbage, async (before, last) => {
        const response = await grant({ 'x-forwarded-for': [...before, last].join(', ') });
        expect(response.status).toBe(400);
        expect(response.body?.type).toBe('urn:kv-lease:problem:no-client-ip');
      }),
      { numRuns: 300 },
    );
    expect(reached).toEqual([]);
  });

  it('When an admin names an ip, then X-Forwarded-For garbage does not matter: the body wins', async () => {
    const { grant, reached } = harness();
    await fc.assert(
      fc.asyncProperty(headerText(60), publicQuad, async (forwarded, ip) => {
        reached.length = 0;
        const response = await grant({ 'x-forwarded-for': forwarded }, { vault: 'kv-prop', ip });
        expect(response.status).toBe(201);
        expect(reached[0]?.ip).toBe(ip);
      }),
      { numRuns: 100 },
    );
  });
});

describe('Idempotency-Key at the grant handler', () => {
  it('When the key is 1 to 128 printable ASCII characters, then it reaches the use case unchanged', async () => {
    const { grant, reached } = harness();
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: printable, minLength: 1, maxLength: 128 }),
        async (key) => {
          reached.length = 0;
          const response = await grant({ 'idempotency-key': key, 'x-forwarded-for': '52.1.2.3' });
          expect(response.status).toBe(201);
          expect(reached[0]?.idempotencyKey).toBe(key);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('When the key is longer, holds a blank, a control or a non-ASCII character, then 400 and the use case is never reached', async () => {
    const { grant, reached } = harness();
    const word = fc.string({ unit: printable, minLength: 1, maxLength: 40 });
    const invalid = fc.oneof(
      fc.string({ unit: printable, minLength: 129, maxLength: 400 }),
      fc
        .tuple(
          word,
          fc.constantFrom(' ', '\t', '\x7f', '\x01', '\x1b', '\u00e9', '\u00a0', '\u00ff'),
          word,
        )
        .map((parts) => parts.join('')),
    );
    await fc.assert(
      fc.asyncProperty(invalid, async (key) => {
        const response = await grant({ 'idempotency-key': key, 'x-forwarded-for': '52.1.2.3' });
        expect(response.status).toBe(400);
        expect(response.body?.type).toBe('urn:kv-lease:problem:invalid-request');
        expect(JSON.stringify(response.body?.errors)).toContain('Idempotency-Key');
      }),
      { numRuns: 300 },
    );
    expect(reached).toEqual([]);
  });

  it('When the key is empty, then 400 as well (a present but empty header is not "no key")', async () => {
    const { grant, reached } = harness();
    expect((await grant({ 'idempotency-key': '', 'x-forwarded-for': '52.1.2.3' })).status).toBe(
      400,
    );
    expect(reached).toEqual([]);
  });
});
