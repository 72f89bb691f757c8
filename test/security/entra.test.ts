import { randomUUID } from 'node:crypto';

import type * as Jose from 'jose' with { 'resolution-mode': 'import' };
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import {
  lockedVault,
  publicIp,
  rulesOf,
  STATIC_RULE,
  testEmulator,
  vaultId,
} from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';
import {
  b64url,
  bearer,
  type CallResult,
  identity,
  isProblem,
  makeKey,
  type SecureBroker,
  secureBroker,
  type SigningKey,
  startTenant,
  type Tenant,
} from './support';

/**
 * AUTH_MODE=entra end to end: tokens minted by a tenant whose key set is served
 * on loopback, sent through the same handlers the Functions host registers.
 */

const AUTH_VAULT = 'kv-sec-auth'; // nothing may ever be written here
const ROLE_VAULT = 'kv-sec-roles';
const PROCESS_VAULT = 'kv-sec-proc';
const TOKEN_VAULT = 'kv-sec-tokens';

let emulator: RunningEmulator;
let tenant: Tenant;
let broker: SecureBroker;
let stranger: SigningKey;
let jose: typeof Jose;

beforeAll(async () => {
  jose = await import('jose');
  emulator = await testEmulator();
  for (const name of [AUTH_VAULT, ROLE_VAULT, PROCESS_VAULT, TOKEN_VAULT])
    emulator.createVault(lockedVault(name));
  [tenant, stranger] = await Promise.all([startTenant(), makeKey('key-nobody-published')]);
  broker = secureBroker({ emulator, vaults: [AUTH_VAULT, ROLE_VAULT], env: tenant.env() });
});

afterAll(async () => {
  await tenant.close();
  await emulator.close();
});

let ipCounter = 0;
/** A fresh public caller address, as the front end appends it. */
function xff(): Record<string, string> {
  ipCounter += 1;
  return { 'x-forwarded-for': `203.0.113.7, ${publicIp(4000 + ipCounter)}:50000` };
}

function expectUnauthenticated(response: CallResult, token?: string): void {
  expect(response.status, response.text).toBe(401);
  expect(response.headers.get('www-authenticate')).toBe('Bearer');
  expect(response.body.type).toBe('urn:kv-lease:problem:unauthenticated');
  expect(isProblem(response)).toBe(true);
  if (token) {
    for (const part of token.split('.').filter((segment) => segment.length >= 8)) {
      expect(response.text).not.toContain(part);
    }
  }
}

async function expectNothingWritten(vault: string): Promise<void> {
  expect(await broker.store.liveLeases(vault)).toEqual([]);
  const listed = await broker.store.listLeases({ vault, status: 'all', top: 1000 });
  expect(listed.items).toEqual([]);
  expect(emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writes ?? 0).toBe(0);
  expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
}

describe('When a request carries no valid bearer token', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const requester = identity('Lease.Request', 'Lease.Read');

  /** [case, Authorization header value or undefined]. */
  const cases: [string, () => Promise<string | undefined>][] = [
    ['no token', async () => undefined],
    ['an empty bearer', async () => 'Bearer '],
    [
      'an expired token',
      async () =>
        `Bearer ${await tenant.token(requester, { iat: now() - 7200, nbf: now() - 7200, exp: now() - 600 })}`,
    ],
    [
      'a token not valid yet',
      async () => `Bearer ${await tenant.token(requester, { nbf: now() + 600 })}`,
    ],
    [
      'a wrong issuer',
      async () =>
        `Bearer ${await tenant.token(requester, { iss: 'https://sts.windows.net/evil-tenant/' })}`,
    ],
    [
      'a wrong audience',
      async () => `Bearer ${await tenant.token(requester, { aud: 'api://another-api' })}`,
    ],
    [
      'a wrong tenant (tid) under the right issuer',
      async () => `Bearer ${await tenant.token(requester, { tid: randomUUID() })}`,
    ],
    [
      "another tenant's v2 token",
      async () =>
        `Bearer ${await tenant.token(
          requester,
          { tid: randomUUID(), iss: `https://login.microsoftonline.com/${randomUUID()}/v2.0` },
          { version: 2 },
        )}`,
    ],
    [
      'an unknown key id',
      async () => `Bearer ${await tenant.token(requester, {}, { key: stranger })}`,
    ],
    [
      'alg: none',
      async () =>
        `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(tenant.claims(identity('Lease.Admin')))}.`,
    ],
    [
      'HS256 signed with the public key (PEM)',
      async () =>
        `Bearer ${await new jose.SignJWT(tenant.claims(identity('Lease.Admin')))
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: tenant.key.kid })
          .sign(new TextEncoder().encode(tenant.key.publicPem))}`,
    ],
    [
      'HS256 signed with the public key (JWK)',
      async () =>
        `Bearer ${await new jose.SignJWT(tenant.claims(identity('Lease.Admin')))
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: tenant.key.kid })
          .sign(new TextEncoder().encode(JSON.stringify(tenant.key.publicJwk)))}`,
    ],
    [
      'a tampered payload (roles raised to Lease.Admin)',
      async () => {
        const [header, , signature] = (await tenant.token(requester)).split('.');
        const raised = b64url(tenant.claims({ ...requester, roles: ['Lease.Admin'] }));
        return `Bearer ${header}.${raised}.${signature}`;
      },
    ],
    [
      'a stripped signature',
      async () => `Bearer ${(await tenant.token(requester)).split('.').slice(0, 2).join('.')}.`,
    ],
    ['the Basic scheme', async () => `Basic ${await tenant.token(requester)}`],
    [
      'two tokens in one header',
      async () =>
        `Bearer ${await tenant.token(requester)}, Bearer ${await tenant.token(requester)}`,
    ],
    [
      'a token over 8 KiB',
      async () => `Bearer ${await tenant.token(requester, { padding: 'x'.repeat(9000) })}`,
    ],
    ['garbage', async () => 'Bearer not.a.jwt'],
    ['no oid claim', async () => `Bearer ${await tenant.token(requester, { oid: undefined })}`],
    ['no exp claim', async () => `Bearer ${await tenant.token(requester, { exp: undefined })}`],
  ];

  it.each(cases)(
    'with %s: then every protected endpoint answers 401 with WWW-Authenticate: Bearer',
    async (_name, header) => {
      const authorization = await header();
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
      const token = authorization?.split(/\s+/)[1];
      const grant = await broker.call('POST', '/api/leases', {
        body: { vault: AUTH_VAULT, ttlSeconds: 600 },
        headers: { ...headers, ...xff() },
      });
      expectUnauthenticated(grant, token);
      const fake = `${AUTH_VAULT}.${'0'.repeat(24)}`;
      for (const [method, path] of [
        ['GET', '/api/leases'],
        ['GET', `/api/leases/${fake}`],
        ['POST', `/api/leases/${fake}/renew`],
        ['DELETE', `/api/leases/${fake}`],
        ['GET', '/api/vaults'],
        ['GET', '/api/audit'],
      ] as const) {
        expectUnauthenticated(await broker.call(method, path, { headers }), token);
      }
      await expectNothingWritten(AUTH_VAULT);
    },
  );

  it('then the refusal is audited as anonymous, with why, and without the token', async () => {
    const token = await tenant.token(requester, { aud: 'api://another-api' });
    const response = await broker.call('POST', '/api/leases', {
      body: { vault: AUTH_VAULT },
      headers: { ...bearer(token), ...xff() },
    });
    expectUnauthenticated(response, token);
    const entry = (await broker.auditTrail()).find(
      (candidate) => candidate.invocationId === response.invocationId,
    );
    expect(entry).toMatchObject({
      action: 'refused',
      principal: 'anonymous',
      outcome: 'refused',
      vault: undefined,
    });
    expect(entry?.detail).toMatch(/^grant: AUTH\.UNAUTHENTICATED: .*audience/);
    expect(JSON.stringify(entry)).not.toContain(token.split('.')[1]);
  });

  it('then health and the OpenAPI document still answer without a token', async () => {
    expect((await broker.call('GET', '/api/health')).status).toBe(200);
    const openapi = await broker.call('GET', '/api/openapi.json');
    expect(openapi.status).toBe(200);
  });
});

describe('When a valid token carries no known role', () => {
  it.each([
    ['no roles claim', { roles: undefined }],
    ['an empty roles claim', { roles: [] }],
    ['only foreign roles', { roles: ['Reader', 'Lease.Superuser', 'lease.admin'] }],
    ['roles in a scope claim instead', { roles: undefined, scp: 'Lease.Admin' }],
  ])('with %s: then every protected endpoint answers 403', async (_name, overrides) => {
    const token = await tenant.token(identity(), overrides);
    const fake = `${AUTH_VAULT}.${'0'.repeat(24)}`;
    for (const [method, path, body] of [
      ['POST', '/api/leases', { vault: AUTH_VAULT }],
      ['GET', '/api/leases', undefined],
      ['GET', `/api/leases/${fake}`, undefined],
      ['POST', `/api/leases/${fake}/renew`, {}],
      ['DELETE', `/api/leases/${fake}`, undefined],
      ['GET', '/api/vaults', undefined],
      ['GET', '/api/audit', undefined],
    ] as const) {
      const response = await broker.call(method, path, {
        body,
        headers: { ...bearer(token), ...xff() },
      });
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(response.body.type).toBe('urn:kv-lease:problem:forbidden');
      expect(response.headers.get('www-authenticate')).toBeNull();
      expect(isProblem(response)).toBe(true);
    }
    await expectNothingWritten(AUTH_VAULT);
  });

  it('then a 403 comes before input validation: a role-less caller learns nothing from it', async () => {
    const token = await tenant.token(identity());
    const response = await broker.call('POST', '/api/leases?debug=1', {
      body: '{"vault": ',
      headers: { ...bearer(token), 'content-type': 'text/plain' },
    });
    expect(response.status).toBe(403);
  });
});

describe('The role matrix of the contract', () => {
  type Who = 'none' | 'request' | 'read' | 'admin';
  const people: Record<Who, ReturnType<typeof identity>> = {
    none: identity(),
    request: identity('Lease.Request'),
    read: identity('Lease.Read'),
    admin: identity('Lease.Admin'),
  };
  /** Another pipeline: its leases are "another's" to everyone above. */
  const other = identity('Lease.Request');
  const tokens = {} as Record<Who | 'other', string>;

  beforeAll(async () => {
    for (const who of Object.keys(people) as Who[]) tokens[who] = await tenant.token(people[who]);
    tokens.other = await tenant.token(other);
  });

  const as = (who: Who | 'other', extra: Record<string, string> = {}) => ({
    ...bearer(tokens[who]),
    ...xff(),
    ...extra,
  });

  async function leaseOf(who: 'other' | 'request'): Promise<{ id: string; expiresAt: string }> {
    const response = await broker.call('POST', '/api/leases', {
      body: { vault: ROLE_VAULT, ttlSeconds: 900 },
      headers: as(who),
    });
    expect(response.status, response.text).toBe(201);
    return response.body;
  }

  const everyone: Who[] = ['none', 'request', 'read', 'admin'];

  /** Each row: an attempt and the status each role gets; every cell is a fresh attempt. */
  const rows: [string, (who: Who) => Promise<CallResult>, Record<Who, number>][] = [
    [
      'POST /api/leases for the caller’s own IP',
      (who) =>
        broker.call('POST', '/api/leases', { body: { vault: ROLE_VAULT }, headers: as(who) }),
      { none: 403, request: 201, read: 403, admin: 201 },
    ],
    [
      'POST /api/leases naming an explicit ip',
      (who) =>
        broker.call('POST', '/api/leases', {
          body: { vault: ROLE_VAULT, ip: publicIp(9000 + Math.floor(Math.random() * 1000)) },
          headers: as(who),
        }),
      { none: 403, request: 403, read: 403, admin: 201 },
    ],
    [
      'POST /api/leases for a CIDR',
      (who) =>
        broker.call('POST', '/api/leases', {
          body: { vault: ROLE_VAULT, ip: `52.99.${Math.floor(Math.random() * 250)}.0/24` },
          headers: as(who),
        }),
      { none: 403, request: 403, read: 403, admin: 201 },
    ],
    [
      'GET /api/leases',
      (who) => broker.call('GET', `/api/leases?vault=${ROLE_VAULT}`, { headers: as(who) }),
      { none: 403, request: 200, read: 200, admin: 200 },
    ],
    [
      'GET /api/leases/{id} of another caller',
      async (who) =>
        broker.call('GET', `/api/leases/${(await leaseOf('other')).id}`, { headers: as(who) }),
      { none: 403, request: 404, read: 200, admin: 200 },
    ],
    [
      'POST /api/leases/{id}/renew of another caller',
      async (who) =>
        broker.call('POST', `/api/leases/${(await leaseOf('other')).id}/renew`, {
          body: { ttlSeconds: 1800 },
          headers: as(who),
        }),
      { none: 403, request: 404, read: 403, admin: 200 },
    ],
    [
      'DELETE /api/leases/{id} of another caller',
      async (who) =>
        broker.call('DELETE', `/api/leases/${(await leaseOf('other')).id}`, { headers: as(who) }),
      { none: 403, request: 404, read: 403, admin: 200 },
    ],
    [
      'GET /api/vaults',
      (who) => broker.call('GET', '/api/vaults', { headers: as(who) }),
      { none: 403, request: 403, read: 200, admin: 200 },
    ],
    [
      'GET /api/audit',
      (who) => broker.call('GET', '/api/audit', { headers: as(who) }),
      { none: 403, request: 403, read: 200, admin: 200 },
    ],
    [
      'GET /api/health',
      (who) => broker.call('GET', '/api/health', { headers: as(who) }),
      { none: 200, request: 200, read: 200, admin: 200 },
    ],
    [
      'GET /api/openapi.json',
      (who) => broker.call('GET', '/api/openapi.json', { headers: as(who) }),
      { none: 200, request: 200, read: 200, admin: 200 },
    ],
  ];

  describe.each(rows)('%s', (_name, attempt, expected) => {
    it.each(everyone)('as %s: then exactly the contract’s answer', async (who) => {
      const response = await attempt(who);
      expect(response.status, response.text).toBe(expected[who]);
      if (response.status >= 400) expect(isProblem(response)).toBe(true);
    });
  });

  it('When refused, then another caller’s lease is left exactly as it was', async () => {
    const lease = await leaseOf('other');
    for (const who of ['none', 'request', 'read'] as const) {
      await broker.call('POST', `/api/leases/${lease.id}/renew`, {
        body: { ttlSeconds: 3600 },
        headers: as(who),
      });
      await broker.call('DELETE', `/api/leases/${lease.id}`, { headers: as(who) });
    }
    const after = await broker.call('GET', `/api/leases/${lease.id}`, { headers: as('admin') });
    expect(after.body).toMatchObject({ status: 'active', expiresAt: lease.expiresAt });
  });

  it('When a Lease.Request caller lists, reads, renews and releases, then only its own leases exist for it', async () => {
    const mine = await leaseOf('request');
    const theirs = await leaseOf('other');

    const listed = await broker.call('GET', '/api/leases?status=all&$top=1000', {
      headers: as('request'),
    });
    const ids = listed.body.value.map((lease: { id: string }) => lease.id);
    expect(ids).toContain(mine.id);
    expect(ids).not.toContain(theirs.id);
    expect(
      listed.body.value.every(
        (lease: { principal: string }) => lease.principal === people.request.oid,
      ),
    ).toBe(true);

    expect(
      (await broker.call('GET', `/api/leases/${mine.id}`, { headers: as('request') })).status,
    ).toBe(200);
    const renewed = await broker.call('POST', `/api/leases/${mine.id}/renew`, {
      body: { ttlSeconds: 1200 },
      headers: as('request'),
    });
    expect(renewed.status).toBe(200);
    const released = await broker.call('DELETE', `/api/leases/${mine.id}`, {
      headers: as('request'),
    });
    expect(released.body.status).toBe('released');

    for (const [method, path] of [
      ['GET', `/api/leases/${theirs.id}`],
      ['POST', `/api/leases/${theirs.id}/renew`],
      ['DELETE', `/api/leases/${theirs.id}`],
    ] as const) {
      const response = await broker.call(method, path, {
        body: method === 'POST' ? {} : undefined,
        headers: as('request'),
      });
      expect(response.status).toBe(404);
      // Indistinguishable from a lease that does not exist.
      const unknown = await broker.call(
        method,
        path.replace(theirs.id, `${ROLE_VAULT}.${'z'.repeat(24)}`),
        {
          body: method === 'POST' ? {} : undefined,
          headers: as('request'),
        },
      );
      expect(unknown.status).toBe(404);
      expect(response.body.detail.replace(theirs.id, 'X')).toBe(
        unknown.body.detail.replace(`${ROLE_VAULT}.${'z'.repeat(24)}`, 'X'),
      );
    }
  });

  it('When a Lease.Read caller lists, then it sees every caller’s leases', async () => {
    const mine = await leaseOf('request');
    const theirs = await leaseOf('other');
    const listed = await broker.call('GET', `/api/leases?vault=${ROLE_VAULT}&$top=1000`, {
      headers: as('read'),
    });
    const ids = listed.body.value.map((lease: { id: string }) => lease.id);
    expect(ids).toEqual(expect.arrayContaining([mine.id, theirs.id]));
  });

  it('When a caller holds Lease.Request and Lease.Read, then it sees another’s lease but may not change it (403)', async () => {
    const both = await tenant.token(identity('Lease.Request', 'Lease.Read'));
    const theirs = await leaseOf('other');
    const headers = { ...bearer(both), ...xff() };
    expect((await broker.call('GET', `/api/leases/${theirs.id}`, { headers })).status).toBe(200);
    const renew = await broker.call('POST', `/api/leases/${theirs.id}/renew`, {
      body: {},
      headers,
    });
    expect(renew.status).toBe(403);
    expect((await broker.call('DELETE', `/api/leases/${theirs.id}`, { headers })).status).toBe(403);
  });

  it('When an admin releases another caller’s lease, then its rule is gone and the audit names the admin', async () => {
    const theirs = await leaseOf('other');
    const held = (await broker.call('GET', `/api/leases/${theirs.id}`, { headers: as('admin') }))
      .body;
    expect(rulesOf(emulator, ROLE_VAULT)).toContain(held.ip);
    const released = await broker.call('DELETE', `/api/leases/${theirs.id}`, {
      headers: as('admin'),
    });
    expect(released.body).toMatchObject({ status: 'released', principal: other.oid });
    expect(rulesOf(emulator, ROLE_VAULT)).not.toContain(held.ip);
    const entry = (await broker.auditTrail()).find(
      (e) => e.invocationId === released.invocationId && e.action === 'release',
    );
    expect(entry).toMatchObject({
      action: 'release',
      principal: people.admin.oid,
      appId: people.admin.appId,
      leaseId: theirs.id,
    });
  });

  it('When a v2 token is used, then the grant works and azp is kept as the application id', async () => {
    const pipeline = identity('Lease.Request');
    const token = await tenant.token(pipeline, {}, { version: 2 });
    const response = await broker.call('POST', '/api/leases', {
      body: { vault: ROLE_VAULT },
      headers: { ...bearer(token), ...xff() },
    });
    expect(response.status).toBe(201);
    expect(response.body.principal).toBe(pipeline.oid);
    const entry = (await broker.auditTrail()).find((e) => e.invocationId === response.invocationId);
    expect(entry).toMatchObject({
      action: 'grant',
      principal: pipeline.oid,
      appId: pipeline.appId,
    });
  });
});

describe('Tokens as the platform means them', () => {
  /** The pipeline's application, which LEASE_POLICY names in appIds. */
  const pipeline = identity('Lease.Request');
  /** An operator who leases through the console (a user, named in oids). */
  const operator = identity('Lease.Request', 'Lease.Read');
  const consoleClient = randomUUID();
  let policed: SecureBroker;

  beforeAll(() => {
    policed = secureBroker({
      emulator,
      vaults: [TOKEN_VAULT],
      env: {
        ...tenant.env(),
        LEASE_POLICY: JSON.stringify([
          { name: 'pipelines', vaults: [TOKEN_VAULT], appIds: [pipeline.appId] },
          { name: 'operators', vaults: [TOKEN_VAULT], oids: [operator.oid] },
        ]),
      },
    });
  });

  /** A user's v2 access token obtained through `client`, with scopes `scp` (undefined: none). */
  const userToken = (who: ReturnType<typeof identity>, client: string, scp?: string) =>
    tenant.token(who, { azp: client, scp, sub: randomUUID() }, { version: 2 });

  async function grant(token: string) {
    return policed.call('POST', '/api/leases', {
      body: { vault: TOKEN_VAULT, ttlSeconds: 300 },
      headers: { ...bearer(token), ...xff() },
    });
  }

  async function expectNothingLeased(): Promise<void> {
    const listed = await policed.store.listLeases({ vault: TOKEN_VAULT, status: 'all', top: 1000 });
    expect(
      listed.items.filter(
        (lease) => lease.principal !== operator.oid && lease.principal !== pipeline.oid,
      ),
    ).toEqual([]);
  }

  it('When an ID token with the user’s roles is sent as a bearer token, then every endpoint answers 401 saying so, and nothing is leased', async () => {
    // What the console's sign-in returns besides the access token: aud is the
    // broker's own client id (in AUTH_AUDIENCE), no azp, a nonce.
    const idToken = await tenant.token(
      identity('Lease.Admin'),
      { azp: undefined, nonce: randomUUID(), sub: randomUUID(), name: 'Op' },
      { version: 2 },
    );
    for (const [method, path] of [
      ['POST', '/api/leases'],
      ['GET', '/api/leases'],
      ['GET', '/api/whoami'],
    ] as const) {
      const response = await policed.call(method, path, {
        body: method === 'POST' ? { vault: TOKEN_VAULT } : undefined,
        headers: { ...bearer(idToken), ...xff() },
      });
      expectUnauthenticated(response, idToken);
      expect(response.body.detail).toMatch(/is an ID token: send an access token/);
    }
    await expectNothingLeased();
  });

  it('When a user’s token lacks the user_impersonation scope, then 403 naming the scope, whatever its roles, and nothing is leased', async () => {
    const admin = identity('Lease.Admin');
    for (const scp of ['User.Read', '', undefined]) {
      const token = await tenant.token(
        admin,
        { azp: consoleClient, scp, idtyp: scp === undefined ? 'user' : undefined },
        { version: 2 },
      );
      for (const [method, path] of [
        ['POST', '/api/leases'],
        ['GET', '/api/whoami'],
      ] as const) {
        const response = await policed.call(method, path, {
          body: method === 'POST' ? { vault: TOKEN_VAULT } : undefined,
          headers: { ...bearer(token), ...xff() },
        });
        expect(response.status, `${String(scp)} ${path}`).toBe(403);
        expect(response.body.type).toBe('urn:kv-lease:problem:forbidden');
        expect(response.body.detail).toContain('user_impersonation');
        expect(isProblem(response)).toBe(true);
      }
    }
    await expectNothingLeased();
  });

  it('When the pipeline application calls as itself, then LEASE_POLICY matches it by appIds and the lease records the application', async () => {
    const response = await grant(await tenant.token(pipeline));
    expect(response.status, response.text).toBe(201);
    const stored = await policed.store.getLease(response.body.id, TOKEN_VAULT);
    expect(stored).toMatchObject({ principal: pipeline.oid, appId: pipeline.appId });
  });

  it('When a user calls through the pipeline’s application id with user_impersonation, then appIds do not match the user: 403 naming the user alone', async () => {
    const user = identity('Lease.Request');
    const response = await grant(await userToken(user, pipeline.appId, 'user_impersonation'));
    expect(response.status, response.text).toBe(403);
    expect(response.body.detail).toBe(
      `Requesting a lease: LEASE_POLICY has no rule that lets ${user.oid} lease the vault ${TOKEN_VAULT}`,
    );
    await expectNothingLeased();
  });

  it('When a user named in oids calls with user_impersonation, then the grant succeeds; the audit keeps the client application, the lease does not hold it', async () => {
    const response = await grant(
      await userToken(operator, consoleClient, 'openid user_impersonation'),
    );
    expect(response.status, response.text).toBe(201);
    expect(response.body.principal).toBe(operator.oid);
    const stored = await policed.store.getLease(response.body.id, TOKEN_VAULT);
    expect(stored?.appId).toBeUndefined();
    const entry = (await policed.auditTrail()).find(
      (e) => e.invocationId === response.invocationId,
    );
    expect(entry).toMatchObject({ action: 'grant', principal: operator.oid, appId: consoleClient });
  });
});

describe('When the key set cannot be fetched', () => {
  it('then a request with a token answers 503 auth-unavailable with Retry-After, not 401 or 500', async () => {
    const unreachable = secureBroker({
      emulator,
      vaults: [AUTH_VAULT],
      env: { ...tenant.env(), AUTH_JWKS_URI: 'http://127.0.0.1:9/keys' },
    });
    const token = await tenant.token(identity('Lease.Request', 'Lease.Read'));
    for (const [method, path, body] of [
      ['POST', '/api/leases', { vault: AUTH_VAULT }],
      ['GET', '/api/leases', undefined],
    ] as const) {
      const response = await unreachable.call(method, path, {
        body,
        headers: { ...bearer(token), ...xff() },
      });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(response.headers.get('www-authenticate')).toBeNull();
      expect(response.body.type).toBe('urn:kv-lease:problem:auth-unavailable');
      expect(isProblem(response)).toBe(true);
    }
    // No token at all is still the caller's fault: 401, without a key fetch.
    const anonymous = await unreachable.call('GET', '/api/leases');
    expect(anonymous.status).toBe(401);
    expect(await unreachable.store.liveLeases(AUTH_VAULT)).toEqual([]);
  });
});

describe('A real broker process with AUTH_MODE=entra', () => {
  let processTenant: Tenant;
  let brokers: BrokerProcess[] = [];

  beforeAll(async () => {
    processTenant = await startTenant();
    const [entra, keyless] = await Promise.all([
      startBrokers({ count: 1, emulator, vaults: [PROCESS_VAULT], env: processTenant.env() }),
      startBrokers({
        count: 1,
        emulator,
        vaults: [PROCESS_VAULT],
        env: { ...processTenant.env(), AUTH_JWKS_URI: 'http://127.0.0.1:9/keys' },
      }),
    ]);
    brokers = [...entra, ...keyless];
  });

  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.child.stop()));
    await processTenant.close();
  });

  it('When called over HTTP, then 401/403/201/404 follow the token, and 503 when the keys are unreachable', async () => {
    const [entra, keyless] = brokers as [BrokerProcess, BrokerProcess];
    const grant = (url: string, headers: Record<string, string>) =>
      http('POST', `${url}/api/leases`, { vault: PROCESS_VAULT }, headers);

    const anonymous = await grant(entra.url, { 'x-forwarded-for': '52.77.0.1' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(anonymous.headers.get('content-type')).toBe('application/problem+json');

    const pipeline = identity('Lease.Request');
    const token = await processTenant.token(pipeline);
    const [header, , signature] = token.split('.');
    const tampered = `${header}.${b64url(processTenant.claims({ ...pipeline, roles: ['Lease.Admin'] }))}.${signature}`;
    expect(
      (await grant(entra.url, { ...bearer(tampered), 'x-forwarded-for': '52.77.0.1' })).status,
    ).toBe(401);

    const reader = await processTenant.token(identity('Lease.Read'));
    expect(
      (await grant(entra.url, { ...bearer(reader), 'x-forwarded-for': '52.77.0.1' })).status,
    ).toBe(403);

    const granted = await grant(entra.url, {
      ...bearer(token),
      'x-forwarded-for': '52.77.0.1:443',
    });
    expect(granted.status).toBe(201);
    expect(granted.body).toMatchObject({ ip: '52.77.0.1/32', principal: pipeline.oid });
    expect(rulesOf(emulator, PROCESS_VAULT)).toContain('52.77.0.1/32');

    const someoneElse = await processTenant.token(identity('Lease.Request'));
    const peek = await http(
      'GET',
      `${entra.url}/api/leases/${granted.body.id}`,
      undefined,
      bearer(someoneElse),
    );
    expect(peek.status).toBe(404);

    const released = await http(
      'DELETE',
      `${entra.url}/api/leases/${granted.body.id}`,
      undefined,
      bearer(token),
    );
    expect(released.body.status).toBe('released');

    const unavailable = await grant(keyless.url, {
      ...bearer(token),
      'x-forwarded-for': '52.77.0.2',
    });
    expect(unavailable.status).toBe(503);
    expect(unavailable.headers.get('retry-after')).toBe('5');
    expect(unavailable.body.type).toBe('urn:kv-lease:problem:auth-unavailable');
  });
});
