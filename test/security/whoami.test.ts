import Ajv2020 from 'ajv/dist/2020';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { type AuditEntry } from '../../src/ports/audit-log';
import {
  lockedVault,
  publicIp,
  rulesOf,
  STATIC_RULE,
  type TestBroker,
  testBroker,
  testEmulator,
  vaultId,
} from '../support/harness';
import {
  bearer,
  identity,
  isProblem,
  type SecureBroker,
  secureBroker,
  startTenant,
  type Tenant,
} from './support';

/**
 * GET /api/whoami (contract section 5) through the handlers the host
 * registers: who the caller is, and the address a grant without `ip` would
 * lease, taken by the grant's own rule. It changes nothing and is not audited.
 */

const GRANT_VAULT = 'kv-who-grant'; // the disabled broker's grants land here
const QUIET_VAULT = 'kv-who-quiet'; // nothing may ever be written here

let emulator: RunningEmulator;
let tenant: Tenant;
let open: TestBroker;
let secure: SecureBroker;

beforeAll(async () => {
  emulator = await testEmulator();
  emulator.createVault(lockedVault(GRANT_VAULT));
  emulator.createVault(lockedVault(QUIET_VAULT));
  tenant = await startTenant();
  open = testBroker({ emulator, vaults: [GRANT_VAULT] });
  secure = secureBroker({ emulator, vaults: [QUIET_VAULT], env: tenant.env() });
});

afterAll(async () => {
  await tenant.close();
  await emulator.close();
});

async function everyEntry(broker: TestBroker): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  let continuation: string | undefined;
  do {
    const page = await broker.audit.query({ top: 1000, continuation });
    entries.push(...page.entries);
    continuation = page.continuation;
  } while (continuation);
  return entries;
}

describe('GET /api/whoami with AUTH_MODE=disabled', () => {
  it('When anyone asks, then it is local-dev with every role and the rightmost X-Forwarded-For address as /32', async () => {
    const response = await open.call('GET', '/api/whoami', {
      headers: { 'x-forwarded-for': '198.51.100.7, 10.0.0.1, 52.1.2.3:443' },
    });
    expect(response.status, response.text).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.body).toEqual({
      principal: 'local-dev',
      roles: ['Lease.Request', 'Lease.Read', 'Lease.Admin'],
      ip: '52.1.2.3/32',
    });
  });

  it('When the leftmost entry is a forged public address, then it is ignored: only the last entry counts', async () => {
    const response = await open.call('GET', '/api/whoami', {
      headers: { 'x-forwarded-for': `${publicIp(77)}, ${publicIp(78)}` },
    });
    expect(response.body.ip).toBe(`${publicIp(78)}/32`);
  });

  /** Headers covering every way of taking an address: good, refused and unreadable. */
  const headers: [string, string | undefined][] = [
    ['a public address with port', '52.20.30.40:50000'],
    ['a forged entry before a public one', '52.20.30.41, 52.20.30.42'],
    ['IPv4-mapped IPv6, bracketed, with port', '203.0.113.9, [::ffff:52.20.30.43]:443'],
    ['a private last entry', '52.20.30.44, 10.1.2.3'],
    ['loopback', '127.0.0.1'],
    ['a documentation address', '198.51.100.10'],
    ['IPv6', '2001:4860::1'],
    ['garbage', 'not-an-address'],
    ['an empty header', ''],
    ['a trailing comma', '52.20.30.45,'],
    ['no header at all', undefined],
  ];

  it.each(headers)(
    'When X-Forwarded-For is %s, then whoami reports exactly what a grant without ip leases or answers',
    async (_name, header) => {
      const init: { headers: Record<string, string> } = {
        headers: header === undefined ? {} : { 'x-forwarded-for': header },
      };
      const who = await open.call('GET', '/api/whoami', init);
      expect(who.status, who.text).toBe(200);
      const grant = await open.call('POST', '/api/leases', {
        ...init,
        body: { vault: GRANT_VAULT, ttlSeconds: 60 },
      });
      if (grant.status === 201) {
        expect(who.body.ip).toBe(grant.body.ip);
        expect(who.body).not.toHaveProperty('ipProblem');
      } else {
        expect(grant.status, grant.text).toBe(400);
        expect([
          'urn:kv-lease:problem:no-client-ip',
          'urn:kv-lease:problem:ip-not-allowed',
        ]).toContain(grant.body.type);
        expect(who.body).not.toHaveProperty('ip');
        expect(who.body.ipProblem).toBe(grant.body.detail);
      }
    },
  );

  it('When the caller has no usable address, then ipProblem says why', async () => {
    const none = await open.call('GET', '/api/whoami');
    expect(none.body.ipProblem).toMatch(/No X-Forwarded-For header/);
    const private_ = await open.call('GET', '/api/whoami', {
      headers: { 'x-forwarded-for': '192.168.1.20' },
    });
    expect(private_.body).toEqual({
      principal: 'local-dev',
      roles: ['Lease.Request', 'Lease.Read', 'Lease.Admin'],
      ipProblem: expect.stringMatching(/^192\.168\.1\.20 lies in a private \(RFC 1918\) range/),
    });
  });

  it('When whoami is asked many times, then the audit trail and the store gain nothing', async () => {
    const before = (await everyEntry(open)).length;
    for (const header of ['52.9.9.9', 'garbage', '10.0.0.1']) {
      expect(
        (await open.call('GET', '/api/whoami', { headers: { 'x-forwarded-for': header } })).status,
      ).toBe(200);
    }
    expect((await open.call('GET', '/api/whoami?debug=1')).status).toBe(400);
    expect((await everyEntry(open)).length).toBe(before);
  });
});

describe('GET /api/whoami in the OpenAPI document', () => {
  it('When the document is fetched, then whoami is declared, and its answers validate against the declared schema', async () => {
    const document = (await open.call('GET', '/api/openapi.json')).body;
    const operation = document.paths['/whoami'].get;
    expect(operation.operationId).toBe('whoami');
    // 413 (a body over 16 KiB) and 500 (a bug) are every route's.
    expect(Object.keys(operation.responses).sort()).toEqual([
      '200',
      '400',
      '401',
      '403',
      '413',
      '500',
      '503',
    ]);
    expect(operation.responses['200'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/WhoAmI',
    });
    const validate = new Ajv2020({ strict: false }).compile(document.components.schemas.WhoAmI);
    for (const header of ['52.7.7.7', '10.0.0.1', 'garbage']) {
      const answer = await open.call('GET', '/api/whoami', {
        headers: { 'x-forwarded-for': header },
      });
      expect(validate(answer.body), JSON.stringify(validate.errors)).toBe(true);
    }
    expect(validate({ principal: 'x', roles: ['Lease.Owner'] })).toBe(false);
  });
});

describe('GET /api/whoami with AUTH_MODE=entra', () => {
  it('When a Lease.Request pipeline asks, then it gets its oid, its role and its address', async () => {
    const pipeline = identity('Lease.Request', 'Some.Other.Role');
    const response = await secure.call('GET', '/api/whoami', {
      headers: { ...bearer(await tenant.token(pipeline)), 'x-forwarded-for': '52.3.4.5:1000' },
    });
    expect(response.status, response.text).toBe(200);
    expect(response.body).toEqual({
      principal: pipeline.oid,
      roles: ['Lease.Request'],
      ip: '52.3.4.5/32',
    });
  });

  it('When a caller holds no role, then it is still answered (any authenticated caller), with no roles', async () => {
    const nobody = identity();
    const response = await secure.call('GET', '/api/whoami', {
      headers: { ...bearer(await tenant.token(nobody, {}, { version: 2 })) },
    });
    expect(response.status, response.text).toBe(200);
    expect(response.body.principal).toBe(nobody.oid);
    expect(response.body.roles).toEqual([]);
    expect(response.body.ipProblem).toMatch(/No X-Forwarded-For header/);
  });

  it('When there is no or a bad token, then 401 with WWW-Authenticate: Bearer, and no address is told', async () => {
    const attempts: Record<string, string>[] = [
      { 'x-forwarded-for': '52.3.4.6' },
      { authorization: 'Bearer a.b.c', 'x-forwarded-for': '52.3.4.6' },
      {
        ...bearer(await tenant.token(identity('Lease.Admin'), { aud: 'api://another' })),
        'x-forwarded-for': '52.3.4.6',
      },
    ];
    for (const headers of attempts) {
      const response = await secure.call('GET', '/api/whoami', { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      expect(isProblem(response)).toBe(true);
      expect(response.text).not.toContain('52.3.4.6');
    }
  });

  it('When whoami is answered or refused, then nothing is audited and no vault is written', async () => {
    const before = await secure.auditTrail();
    const token = await tenant.token(identity('Lease.Admin'));
    await secure.call('GET', '/api/whoami', { headers: bearer(token) });
    await secure.call('GET', '/api/whoami', {
      headers: { ...bearer(token), 'x-forwarded-for': '52.3.4.7' },
    });
    await secure.call('GET', '/api/whoami?top=1', { headers: bearer(token) });
    await secure.call('GET', '/api/whoami');
    expect(await secure.auditTrail()).toEqual(before);
    expect(await secure.store.liveLeases(QUIET_VAULT)).toEqual([]);
    expect(emulator.stats().perVault[vaultId(QUIET_VAULT).toLowerCase()]?.writes ?? 0).toBe(0);
    expect(rulesOf(emulator, QUIET_VAULT)).toEqual([STATIC_RULE]);
  });
});
