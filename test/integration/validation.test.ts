import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import {
  lockedVault,
  rulesOf,
  STATIC_RULE,
  type TestBroker,
  testBroker,
  testEmulator,
  vaultId,
} from '../support/harness';

const VAULT = 'kv-valid';
let emulator: RunningEmulator;
let broker: TestBroker;
const xff = { 'x-forwarded-for': '52.20.30.40' };

beforeAll(async () => {
  emulator = await testEmulator();
  emulator.createVault(lockedVault(VAULT));
  broker = testBroker({ emulator, vaults: [VAULT] });
});
afterAll(async () => {
  await emulator.close();
});

async function expectNothingWritten(): Promise<void> {
  expect(await broker.store.liveLeases(VAULT)).toEqual([]);
  expect(emulator.stats().perVault[vaultId(VAULT).toLowerCase()]?.writes ?? 0).toBe(0);
  expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
}

type Case = [
  name: string,
  body: string | object | undefined,
  headers: Record<string, string>,
  status: number,
  type: string,
];

const json = { 'content-type': 'application/json' };
const cases: Case[] = [
  ['vault missing', { ttlSeconds: 600 }, xff, 400, 'invalid-request'],
  ['vault not a string', { vault: 42 }, xff, 400, 'invalid-request'],
  ['vault injection-shaped', { vault: "kv' or PartitionKey ne '" }, xff, 400, 'invalid-request'],
  ['vault too long', { vault: 'k'.repeat(64) }, xff, 400, 'invalid-request'],
  ['neither vault nor target', { ttlSeconds: 600 }, xff, 400, 'invalid-request'],
  [
    'vault and target naming different targets',
    { vault: VAULT, target: 'kv-other' },
    xff,
    400,
    'invalid-request',
  ],
  ['vault unknown', { vault: 'kv-unknown' }, xff, 404, 'vault-not-found'],
  ['ttl below minimum', { vault: VAULT, ttlSeconds: 59 }, xff, 400, 'ttl-out-of-range'],
  ['ttl above maximum', { vault: VAULT, ttlSeconds: 7201 }, xff, 400, 'ttl-out-of-range'],
  ['ttl fractional', { vault: VAULT, ttlSeconds: 60.5 }, xff, 400, 'ttl-out-of-range'],
  ['ttl negative', { vault: VAULT, ttlSeconds: -1 }, xff, 400, 'ttl-out-of-range'],
  ['ttl a string', { vault: VAULT, ttlSeconds: '600' }, xff, 400, 'invalid-request'],
  ['reason too long', { vault: VAULT, reason: 'r'.repeat(257) }, xff, 400, 'invalid-request'],
  // Contract §5: control characters (C0, DEL, C1) in a reason are refused.
  ...[
    ['an ANSI escape', 'run \u001b]52;c;ZXZpbA==\u0007 42'],
    ['a NUL', 'run\u000042'],
    ['a line feed', 'run 42\nFAKE: granted'],
    ['a DEL', 'run\u007f42'],
    ['a C1 CSI (U+009B)', 'run \u009b2J'],
    ['a NEL (U+0085)', 'run\u008542'],
  ].map(([what, reason]): Case => [
    `reason with ${what}`,
    { vault: VAULT, reason },
    xff,
    400,
    'invalid-request',
  ]),
  ['unknown field', { vault: VAULT, admin: true }, xff, 400, 'invalid-request'],
  ['private ip (RFC 1918)', { vault: VAULT, ip: '10.1.2.3' }, {}, 400, 'ip-not-allowed'],
  ['private ip 172.16/12', { vault: VAULT, ip: '172.20.0.1' }, {}, 400, 'ip-not-allowed'],
  ['private ip 192.168/16', { vault: VAULT, ip: '192.168.1.1' }, {}, 400, 'ip-not-allowed'],
  ['loopback ip', { vault: VAULT, ip: '127.0.0.1' }, {}, 400, 'ip-not-allowed'],
  ['link-local ip', { vault: VAULT, ip: '169.254.169.254' }, {}, 400, 'ip-not-allowed'],
  ['shared address space', { vault: VAULT, ip: '100.64.1.1' }, {}, 400, 'ip-not-allowed'],
  ['this-network 0/8', { vault: VAULT, ip: '0.0.0.0' }, {}, 400, 'ip-not-allowed'],
  ['multicast', { vault: VAULT, ip: '239.1.1.1' }, {}, 400, 'ip-not-allowed'],
  ['broadcast', { vault: VAULT, ip: '255.255.255.255' }, {}, 400, 'ip-not-allowed'],
  ['reserved 240/4', { vault: VAULT, ip: '240.0.0.1' }, {}, 400, 'ip-not-allowed'],
  ['documentation range', { vault: VAULT, ip: '198.51.100.7' }, {}, 400, 'ip-not-allowed'],
  ['ipv6', { vault: VAULT, ip: '2001:4860::8888' }, {}, 400, 'ip-not-allowed'],
  ['cidr with host bits', { vault: VAULT, ip: '52.1.2.3/24' }, {}, 400, 'ip-not-allowed'],
  ['cidr wider than min prefix', { vault: VAULT, ip: '52.1.0.0/16' }, {}, 400, 'ip-not-allowed'],
  ['garbage ip', { vault: VAULT, ip: 'not-an-ip' }, {}, 400, 'ip-not-allowed'],
  ['octal-looking ip', { vault: VAULT, ip: '052.1.2.3' }, {}, 400, 'ip-not-allowed'],
  [
    'private caller address',
    { vault: VAULT },
    { 'x-forwarded-for': '52.1.1.1, 10.0.0.4:443' },
    400,
    'ip-not-allowed',
  ],
  [
    'ipv6 caller address',
    { vault: VAULT },
    { 'x-forwarded-for': '[2001:db8::1]:443' },
    400,
    'ip-not-allowed',
  ],
  ['garbage caller address', { vault: VAULT }, { 'x-forwarded-for': 'evil' }, 400, 'no-client-ip'],
  ['no caller address at all', { vault: VAULT }, {}, 400, 'no-client-ip'],
  ['malformed JSON', '{"vault": ', { ...json, ...xff }, 400, 'invalid-request'],
  ['JSON array', '[1,2]', { ...json, ...xff }, 400, 'invalid-request'],
  ['JSON null', 'null', { ...json, ...xff }, 400, 'invalid-request'],
  ['empty body', '', { ...json, ...xff }, 400, 'invalid-request'],
  [
    'wrong content type',
    `{"vault":"${VAULT}"}`,
    { 'content-type': 'text/plain', ...xff },
    415,
    'unsupported-media-type',
  ],
  ['no content type', `{"vault":"${VAULT}"}`, { ...xff }, 415, 'unsupported-media-type'],
  [
    'oversized body',
    JSON.stringify({ vault: VAULT, reason: 'x'.repeat(17 * 1024) }),
    { ...json, ...xff },
    413,
    'body-too-large',
  ],
  [
    'oversized declared length',
    `{"vault":"${VAULT}"}`,
    { ...json, ...xff, 'content-length': '99999' },
    413,
    'body-too-large',
  ],
  [
    'idempotency key too long',
    { vault: VAULT },
    { ...xff, 'idempotency-key': 'k'.repeat(129) },
    400,
    'invalid-request',
  ],
];

describe('When a grant request is invalid', () => {
  it.each(cases)(
    '%s: then it answers a 4xx problem and writes nothing',
    async (_name, body, headers, status, type) => {
      const response = await broker.call('POST', '/api/leases', { body, headers });
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(response.body).toMatchObject({ type: `urn:kv-lease:problem:${type}`, status });
      expect(typeof response.body.detail).toBe('string');
      expect(JSON.stringify(response.body)).not.toMatch(/at .*\.js:\d+|RestError|stack/);
      await expectNothingWritten();
    },
  );
});

describe('When other requests are invalid', () => {
  it.each([
    ['GET', '/api/leases?status=bogus', 400],
    ['GET', '/api/leases?vault=kv-unknown', 404],
    ['GET', '/api/leases?vault=%27%20or%201', 400],
    ['GET', '/api/leases?$top=0', 400],
    ['GET', '/api/leases?$skiptoken=garbage', 400],
    ['GET', '/api/leases?unknown=1', 400],
    ['GET', '/api/leases/..%2F..%2Fetc', 404],
    ['GET', "/api/leases/kv-valid.abc'%20or%20'1", 404],
    ['DELETE', '/api/leases/kv-valid.000000000000000000000000', 404],
    ['POST', '/api/leases/not-a-lease/renew', 404],
    ['GET', '/api/audit?since=yesterday', 400],
    // Contract §4: target= is a synonym of vault=; both naming different targets is a 400.
    ['GET', `/api/leases?vault=${VAULT}&target=kv-other`, 400],
    ['GET', '/api/leases?target=kv-unknown', 404],
    ['GET', '/api/leases?kind=cosmos', 400],
    ['GET', `/api/audit?vault=${VAULT}&target=kv-other`, 400],
    ['GET', '/api/audit?kind=cosmos', 400],
  ])('%s %s: then it answers %i problem+json', async (method, path, status) => {
    const response = await broker.call(method, path, method === 'POST' ? { body: {} } : {});
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    await expectNothingWritten();
  });

  it('When a reason is printable text beyond ASCII (accents, NBSP, emoji, CJK), then the grant takes it unchanged', async () => {
    const reason = 'Déploiement\u00a0№ 42 ✓ 🚀 構築 https://dev.azure.com/o/p/_build?id=1';
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault: VAULT, reason },
      headers: { 'x-forwarded-for': '52.20.30.42' },
    });
    expect(granted.status).toBe(201);
    expect(granted.body.reason).toBe(reason);
    await broker.call('DELETE', `/api/leases/${granted.body.id}`);
  });

  it('renew with an unknown field or a bad ttl: then 400 and the lease is unchanged', async () => {
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault: VAULT },
      headers: { 'x-forwarded-for': '52.20.30.41' },
    });
    expect(granted.status).toBe(201);
    for (const body of [{ ttlSeconds: 5 }, { ttlSeconds: 600, extra: 1 }, '{bad']) {
      const response = await broker.call('POST', `/api/leases/${granted.body.id}/renew`, {
        body,
        headers: typeof body === 'string' ? { 'content-type': 'application/json' } : {},
      });
      expect(response.status).toBe(400);
    }
    expect((await broker.call('GET', `/api/leases/${granted.body.id}`)).body.expiresAt).toBe(
      granted.body.expiresAt,
    );
    await broker.call('DELETE', `/api/leases/${granted.body.id}`);
  });
});

describe('The OpenAPI document', () => {
  it('When fetched, then it is OpenAPI 3.1 with every contract path and the request schemas from zod', async () => {
    const response = await broker.call('GET', '/api/openapi.json');
    expect(response.status).toBe(200);
    expect(response.body.openapi).toBe('3.1.0');
    expect(Object.keys(response.body.paths).sort()).toEqual(
      [
        '/audit',
        '/health',
        '/leases',
        '/leases/{id}',
        '/leases/{id}/renew',
        '/openapi.json',
        '/targets',
        '/vaults',
        '/whoami',
      ].sort(),
    );
    const grant = response.body.components.schemas.GrantRequest;
    // A v1 body names `vault`, a v1.1 body `target`: one of them (contract §4).
    expect(grant.required).toBeUndefined();
    expect(grant.description).toMatch(/`target` \(or, as in v1, `vault`\) is required/);
    expect(grant.additionalProperties).toBe(false);
    expect(grant.properties.reason.maxLength).toBe(256);
  });

  it('When the store answers, then health is 200 ok', async () => {
    const response = await broker.call('GET', '/api/health');
    expect(response).toMatchObject({ status: 200, body: { status: 'ok' } });
  });
});
