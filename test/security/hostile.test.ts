import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import {
  lockedVault,
  rulesOf,
  STATIC_RULE,
  storageConnectionString,
  testEmulator,
  vaultId,
} from '../support/harness';
import {
  bearer,
  type CallResult,
  identity,
  isProblem,
  type SecureBroker,
  secureBroker,
  startTenant,
  type Tenant,
} from './support';

/**
 * A corpus of hostile requests across every endpoint, sent with real Entra
 * tokens. Each must answer 4xx problem+json, and together they must leave no
 * trace but audit entries: no firewall call at all, no row in the lease table,
 * and one `refused` audit entry per request saying who and why.
 *
 * test/integration/validation.test.ts covers the plain invalid-input cases
 * (with auth disabled); this corpus adds injection shapes, every refused IP
 * class, header abuse and body abuse, and checks the audit trail for each.
 */

const VAULT = 'kv-hostile';
const UNKNOWN_ID = `${VAULT}.${'a'.repeat(24)}`;

let emulator: RunningEmulator;
let tenant: Tenant;
let broker: SecureBroker;
const admin = identity('Lease.Admin');
const pipeline = identity('Lease.Request');
const tokens = { admin: '', pipeline: '' };

beforeAll(async () => {
  emulator = await testEmulator();
  emulator.createVault(lockedVault(VAULT));
  tenant = await startTenant();
  broker = secureBroker({ emulator, vaults: [VAULT], env: tenant.env() });
  tokens.admin = await tenant.token(admin);
  tokens.pipeline = await tenant.token(pipeline);
});
afterAll(async () => {
  await tenant.close();
  await emulator.close();
});

type As = 'admin' | 'pipeline' | 'anonymous';

interface Case {
  name: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** Sent as is when a string (no Content-Type added), else as JSON. */
  body?: string | object;
  headers?: Record<string, string>;
  /** Whose token is sent; `anonymous` sends the headers alone. */
  as?: As;
  status: number;
  type?: string;
}

const json = { 'content-type': 'application/json' };
const xffPublic = { 'x-forwarded-for': '52.30.40.50' };
const grant = (
  name: string,
  body: string | object,
  status: number,
  type?: string,
  headers: Record<string, string> = {},
  as: As = 'admin',
): Case => ({
  name,
  method: 'POST',
  path: '/api/leases',
  body,
  headers: { ...(typeof body === 'string' ? json : {}), ...xffPublic, ...headers },
  as,
  status,
  ...(type ? { type } : {}),
});
const adminIp = (name: string, ip: string): Case =>
  grant(`ip: ${name} (${ip})`, { vault: VAULT, ip }, 400, 'ip-not-allowed');
const callerIp = (name: string, forwarded: string, type = 'ip-not-allowed'): Case =>
  grant(
    `X-Forwarded-For: ${name}`,
    { vault: VAULT },
    400,
    type,
    { 'x-forwarded-for': forwarded },
    'pipeline',
  );
const get = (
  name: string,
  path: string,
  status: number,
  type?: string,
  as: As = 'admin',
): Case => ({
  name,
  method: 'GET',
  path,
  as,
  status,
  ...(type ? { type } : {}),
});
const onLease = (name: string, encodedId: string): Case[] => [
  get(`GET lease ${name}`, `/api/leases/${encodedId}`, 404, 'lease-not-found'),
  {
    name: `renew lease ${name}`,
    method: 'POST',
    path: `/api/leases/${encodedId}/renew`,
    body: {},
    as: 'admin',
    status: 404,
    type: 'lease-not-found',
  },
  {
    name: `DELETE lease ${name}`,
    method: 'DELETE',
    path: `/api/leases/${encodedId}`,
    as: 'admin',
    status: 404,
    type: 'lease-not-found',
  },
];
const skipToken = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

const corpus: Case[] = [
  // Injection-shaped vault names, in bodies and queries.
  grant('vault: OData quote break', { vault: "kv' or PartitionKey ne '" }, 400, 'invalid-request'),
  grant('vault: tautology', { vault: `${VAULT}' or '1' eq '1` }, 400, 'invalid-request'),
  grant('vault: NUL byte', { vault: `${VAULT}\u0000` }, 400, 'invalid-request'),
  grant('vault: path traversal', { vault: `../${VAULT}` }, 400, 'invalid-request'),
  grant('vault: statement', { vault: 'kv;DROP TABLE kvlease' }, 400, 'invalid-request'),
  grant('vault: wildcard', { vault: '*' }, 400, 'invalid-request'),
  grant('vault: homoglyph hyphen', { vault: 'kv\u2010hostile' }, 400, 'invalid-request'),
  grant('vault: trailing space', { vault: `${VAULT} ` }, 400, 'invalid-request'),
  grant('vault: lone surrogate', { vault: 'kv-\ud800x' }, 400, 'invalid-request'),
  grant('vault: an array', { vault: [VAULT] }, 400, 'invalid-request'),
  grant('vault: an operator object', { vault: { $ne: null } }, 400, 'invalid-request'),
  grant('vault: the state row key', { vault: 'V' }, 404, 'vault-not-found'),
  grant('vault: well-formed but not managed', { vault: 'kv-someone-else' }, 404, 'vault-not-found'),
  get('list: vault with a quote', `/api/leases?vault=${encodeURIComponent("kv' or ''='")}`, 400),
  get(
    'list: vault with an or',
    `/api/leases?vault=${encodeURIComponent(`${VAULT} or 1 eq 1`)}`,
    400,
  ),
  get(
    'list: $filter smuggled',
    `/api/leases?$filter=${encodeURIComponent("PartitionKey ne ''")}`,
    400,
  ),
  get('audit: vault with a quote', `/api/audit?vault=${encodeURIComponent("kv' or ''='")}`, 400),
  get('audit: principal too long', `/api/audit?principal=${'p'.repeat(129)}`, 400),

  // Injection-shaped and malformed lease ids, on every lease endpoint.
  ...onLease('with a quote tautology', encodeURIComponent(`${UNKNOWN_ID}' or '1'='1`)),
  ...onLease('with path traversal', '..%2F..%2Fetc%2Fpasswd'),
  ...onLease('in upper case', `${VAULT}.${'A'.repeat(24)}`),
  ...onLease('of an unmanaged vault', `kv-other.${'a'.repeat(24)}`),
  ...onLease('well-formed but unknown', UNKNOWN_ID),
  get('GET lease: 5000 characters', `/api/leases/${'a'.repeat(5000)}`, 404),
  get('GET lease: NUL byte', `/api/leases/${VAULT}.%00`, 404),
  get('GET lease: row key prefix', `/api/leases/A_${UNKNOWN_ID}`, 404),
  get('GET lease: vault state row', '/api/leases/V', 404),
  get('GET lease: asterisk', '/api/leases/%2A', 404),
  get('GET lease: spaces', `/api/leases/${encodeURIComponent(`${VAULT}. ${'a'.repeat(23)}`)}`, 404),

  // Every address class Key Vault or the contract refuses, named by an admin.
  adminIp('this network', '0.1.2.3'),
  adminIp('limited broadcast', '255.255.255.255'),
  adminIp('multicast', '224.0.0.251'),
  adminIp('link-local (IMDS)', '169.254.169.254'),
  adminIp('loopback', '127.0.0.53'),
  adminIp('shared address space', '100.127.255.1'),
  adminIp('private 10/8', '10.255.0.1'),
  adminIp('private 172.16/12', '172.31.255.254'),
  adminIp('private 192.168/16', '192.168.0.1'),
  adminIp('IETF protocol assignments', '192.0.0.9'),
  adminIp('TEST-NET-1', '192.0.2.1'),
  adminIp('6to4 relay anycast', '192.88.99.1'),
  adminIp('benchmarking', '198.19.0.1'),
  adminIp('TEST-NET-2', '198.51.100.1'),
  adminIp('TEST-NET-3', '203.0.113.200'),
  adminIp('reserved 240/4', '250.1.2.3'),
  adminIp('AS112', '192.175.48.6'),
  adminIp('AS112 delegation', '192.31.196.1'),
  adminIp('AMT relay', '192.52.193.1'),
  adminIp('CIDR covering a private range', '10.0.0.0/24'),
  adminIp('IPv6', '2001:4860:4860::8888'),
  adminIp('IPv6 loopback', '::1'),
  adminIp('IPv4-mapped IPv6', '::ffff:52.1.2.3'),
  adminIp('host bits set', '52.1.2.129/25'),
  adminIp('wider than LEASE_MIN_PREFIX', '52.0.0.0/8'),
  adminIp('prefix /33', '52.1.2.3/33'),
  adminIp('negative prefix', '52.1.2.3/-1'),
  adminIp('leading zeros', '52.001.2.3'),
  adminIp('hexadecimal', '0x34.1.2.3'),
  adminIp('one integer', '872415232'),
  adminIp('three parts', '52.1.2'),
  adminIp('five parts', '52.1.2.3.4'),
  adminIp('a host name', 'localhost'),
  adminIp('with a port', '52.1.2.3:443'),
  adminIp('two CIDRs', '52.1.2.0/24/24'),

  // The caller's address from X-Forwarded-For: only the rightmost entry counts.
  callerIp('private, behind a forged public entry', '52.1.1.1, 10.0.0.4:443'),
  callerIp('loopback', '127.0.0.1'),
  callerIp('bracketed IPv6 loopback with port', '[::1]:443'),
  callerIp('bare IPv6', '2001:db8::1'),
  callerIp('mapped private IPv4', '::ffff:192.168.1.1'),
  callerIp('shared address space', '100.64.0.1:1234'),
  callerIp('garbage', 'not-an-address', 'no-client-ip'),
  callerIp('empty', '', 'no-client-ip'),
  callerIp('a trailing comma', '52.1.1.1,', 'no-client-ip'),
  callerIp('a port out of range', '52.1.1.1:999999', 'no-client-ip'),
  callerIp('IPv6 with a zone id', 'fe80::1%eth0'),
  callerIp('obfuscated', '52.1.1.1@evil', 'no-client-ip'),
  callerIp(
    '1000 public entries, then a private one',
    `${Array.from({ length: 1000 }, (_, n) => `52.1.${n % 250}.${n % 200}`).join(', ')}, 192.168.7.7`,
  ),
  callerIp('10 KiB of garbage', 'x'.repeat(10 * 1024), 'no-client-ip'),
  grant(
    'caller: no X-Forwarded-For at all',
    { vault: VAULT },
    400,
    'no-client-ip',
    {
      'x-forwarded-for': undefined as unknown as string,
    },
    'pipeline',
  ),

  // Roles: a pipeline stretching its token.
  grant('pipeline names an ip', { vault: VAULT, ip: '52.9.9.9' }, 403, 'forbidden', {}, 'pipeline'),
  grant(
    'pipeline names a CIDR',
    { vault: VAULT, ip: '52.9.9.0/24' },
    403,
    'forbidden',
    {},
    'pipeline',
  ),
  get('pipeline reads the audit trail', '/api/audit', 403, 'forbidden', 'pipeline'),
  get('pipeline lists vaults', '/api/vaults', 403, 'forbidden', 'pipeline'),

  // Malformed, duplicated and huge headers.
  grant(
    'Authorization twice',
    { vault: VAULT },
    401,
    'unauthenticated',
    {
      authorization: `Bearer ${'e30'}.e30.sig, Bearer e30.e30.sig`,
    },
    'anonymous',
  ),
  grant(
    'Authorization of 9 KiB',
    { vault: VAULT },
    401,
    'unauthenticated',
    {
      authorization: `Bearer ${'a'.repeat(9 * 1024)}`,
    },
    'anonymous',
  ),
  grant(
    'Authorization with a CRLF-free injection',
    { vault: VAULT },
    401,
    'unauthenticated',
    {
      authorization: 'Bearer x.y.z; admin=true',
    },
    'anonymous',
  ),
  grant('Content-Type twice', `{"vault":"${VAULT}"}`, 415, 'unsupported-media-type', {
    'content-type': 'application/json, text/html',
  }),
  grant('Content-Type of 10 KiB', `{"vault":"${VAULT}"}`, 415, 'unsupported-media-type', {
    'content-type': `application/${'x'.repeat(10 * 1024)}`,
  }),
  grant('Idempotency-Key with a space', { vault: VAULT }, 400, 'invalid-request', {
    'idempotency-key': 'run 42',
  }),
  grant('Idempotency-Key twice', { vault: VAULT }, 400, 'invalid-request', {
    'idempotency-key': 'run-42, run-43',
  }),
  grant('Idempotency-Key empty', { vault: VAULT }, 400, 'invalid-request', {
    'idempotency-key': '',
  }),
  grant('Idempotency-Key with Latin-1', { vault: VAULT }, 400, 'invalid-request', {
    'idempotency-key': 'cl\u00e9-1',
  }),
  grant('Idempotency-Key of 4 KiB', { vault: VAULT }, 400, 'invalid-request', {
    'idempotency-key': 'k'.repeat(4096),
  }),
  grant('Content-Length of a gigabyte', `{"vault":"${VAULT}"}`, 413, 'body-too-large', {
    'content-length': String(1024 ** 3),
  }),

  // Oversized and malformed bodies.
  grant(
    'a 1 MiB body',
    JSON.stringify({ vault: VAULT, reason: 'x'.repeat(1024 ** 2) }),
    413,
    'body-too-large',
  ),
  // Refused before authentication: no token is looked at for a body this size.
  grant(
    'a 17 KiB body without a token',
    JSON.stringify({ vault: VAULT, reason: 'x'.repeat(17 * 1024) }),
    413,
    'body-too-large',
    {},
    'anonymous',
  ),
  grant(
    'a 17 KiB body with a forged token',
    JSON.stringify({ vault: VAULT, reason: 'x'.repeat(17 * 1024) }),
    413,
    'body-too-large',
    { authorization: 'Bearer x.y.z' },
    'anonymous',
  ),
  grant(
    '16 KiB + 1 byte of whitespace',
    `{"vault":"${VAULT}"}${' '.repeat(16 * 1024)}`,
    413,
    'body-too-large',
  ),
  grant('nested 5000 deep', `${'['.repeat(5000)}${']'.repeat(5000)}`, 400, 'invalid-request'),
  grant(
    '__proto__ pollution',
    `{"vault":"${VAULT}","__proto__":{"isAdmin":true}}`,
    400,
    'invalid-request',
  ),
  grant(
    'constructor pollution',
    { vault: VAULT, constructor: { prototype: { admin: true } } },
    400,
    'invalid-request',
  ),
  grant('a reversed BOM before the JSON', `\ufffe{"vault":"${VAULT}"}`, 400, 'invalid-request'),
  grant('JSON with a comment', `{"vault":"${VAULT}" /* admin */}`, 400, 'invalid-request'),
  grant('trailing garbage', `{"vault":"${VAULT}"} x`, 400, 'invalid-request'),
  grant(
    'ttl overflowing to Infinity',
    `{"vault":"${VAULT}","ttlSeconds":1e400}`,
    400,
    'invalid-request',
  ),
  grant(
    'ttl beyond safe integers',
    `{"vault":"${VAULT}","ttlSeconds":1e21}`,
    400,
    'ttl-out-of-range',
  ),
  grant('ttl negative zero', `{"vault":"${VAULT}","ttlSeconds":-0}`, 400, 'ttl-out-of-range'),
  grant('ttl a boolean', { vault: VAULT, ttlSeconds: true }, 400, 'invalid-request'),
  grant('ttl a day', { vault: VAULT, ttlSeconds: 86_400 }, 400, 'ttl-out-of-range'),
  grant(
    'reason of 10 000 characters',
    { vault: VAULT, reason: 'r'.repeat(10_000) },
    400,
    'invalid-request',
  ),
  grant('reason null', { vault: VAULT, reason: null }, 400, 'invalid-request'),
  grant('a JSON string', '"kv-hostile"', 400, 'invalid-request'),
  grant('a JSON number', '42', 400, 'invalid-request'),
  grant('an empty object', {}, 400, 'invalid-request'),
  grant('status smuggled in', { vault: VAULT, status: 'active' }, 400, 'invalid-request'),
  grant(
    'principal smuggled in',
    { vault: VAULT, principal: 'someone-else' },
    400,
    'invalid-request',
  ),
  {
    name: 'renew: a 17 KiB body',
    method: 'POST',
    path: `/api/leases/${UNKNOWN_ID}/renew`,
    body: JSON.stringify({ ttlSeconds: 600, pad: 'x'.repeat(17 * 1024) }),
    headers: json,
    as: 'admin',
    status: 413,
  },
  {
    name: 'renew: an unknown field',
    method: 'POST',
    path: `/api/leases/${UNKNOWN_ID}/renew`,
    body: { ttlSeconds: 600, vault: VAULT },
    as: 'admin',
    status: 400,
  },

  // Unusual Content-Types.
  grant('text/plain', `{"vault":"${VAULT}"}`, 415, 'unsupported-media-type', {
    'content-type': 'text/plain',
  }),
  grant('a form', `vault=${VAULT}`, 415, 'unsupported-media-type', {
    'content-type': 'application/x-www-form-urlencoded',
  }),
  grant('multipart', `--b\r\n\r\n{"vault":"${VAULT}"}\r\n--b--`, 415, 'unsupported-media-type', {
    'content-type': 'multipart/form-data; boundary=b',
  }),
  grant('XML', `<vault>${VAULT}</vault>`, 415, 'unsupported-media-type', {
    'content-type': 'application/xml',
  }),
  grant('JSON sequence', `{"vault":"${VAULT}"}`, 415, 'unsupported-media-type', {
    'content-type': 'application/json-seq',
  }),
  grant('a wildcard', `{"vault":"${VAULT}"}`, 415, 'unsupported-media-type', {
    'content-type': '*/*',
  }),
  grant('JavaScript', `{"vault":"${VAULT}"}`, 415, 'unsupported-media-type', {
    'content-type': 'application/javascript',
  }),

  // Unknown or malformed query parameters, on every authenticated endpoint.
  { ...grant('grant with ?admin=true', { vault: VAULT }, 400), path: '/api/leases?admin=true' },
  get('list with ?principal=', `/api/leases?principal=${pipeline.oid}`, 400),
  get('list with a status array', '/api/leases?status[]=all', 400),
  get('list with status in upper case', '/api/leases?status=ALL', 400),
  get('list with $top of 100 000', '/api/leases?$top=100000', 400),
  get(
    'list with a forged $skiptoken',
    `/api/leases?$skiptoken=${skipToken({ index: 0, continuation: 'garbage' })}`,
    400,
  ),
  get(
    'list with a $skiptoken pointing past the vaults',
    `/api/leases?$skiptoken=${skipToken({ index: 7 })}`,
    400,
  ),
  get('GET lease with ?expand=', `/api/leases/${UNKNOWN_ID}?expand=secrets`, 400),
  {
    name: 'DELETE lease with ?force=true',
    method: 'DELETE',
    path: `/api/leases/${UNKNOWN_ID}?force=true`,
    as: 'admin',
    status: 400,
  },
  {
    name: 'renew with ?ttlSeconds=',
    method: 'POST',
    path: `/api/leases/${UNKNOWN_ID}/renew?ttlSeconds=999999`,
    body: {},
    as: 'admin',
    status: 400,
  },
  get('vaults with ?expand=', '/api/vaults?expand=secrets', 400),
  get('audit with $filter', `/api/audit?$filter=${encodeURIComponent("action eq 'grant'")}`, 400),
  get('audit with an impossible date', '/api/audit?since=2026-13-45T00:00:00Z', 400),
  get('audit with a garbage $skiptoken', '/api/audit?$skiptoken=garbage', 400),
  get(
    'audit with a forged $skiptoken',
    `/api/audit?$skiptoken=${Buffer.from('{"nextPartitionKey":"\' or \'\'=\'"}').toString('base64')}`,
    400,
  ),
];

const answers = new Map<string, { response: CallResult; as: As }>();

describe('A corpus of hostile requests', () => {
  it('has at least 80 requests across every authenticated endpoint', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(80);
    expect(new Set(corpus.map((c) => c.name)).size).toBe(corpus.length);
    const endpoints = new Set(
      corpus.map(
        (c) => `${c.method} ${c.path.split('?')[0]?.replace(/leases\/[^/]+/, 'leases/{id}')}`,
      ),
    );
    expect([...endpoints].sort()).toEqual(
      [
        'DELETE /api/leases/{id}',
        'GET /api/audit',
        'GET /api/leases',
        'GET /api/leases/{id}',
        'GET /api/vaults',
        'POST /api/leases',
        'POST /api/leases/{id}/renew',
      ].sort(),
    );
  });

  it.each(corpus.map((c) => [c.name, c] as const))(
    '%s: then 4xx problem+json that reveals nothing',
    async (_name, c) => {
      const as = c.as ?? 'admin';
      const headers: Record<string, string> = {
        ...(as === 'anonymous' ? {} : bearer(tokens[as])),
        ...Object.fromEntries(
          Object.entries(c.headers ?? {}).filter(([, value]) => value !== undefined),
        ),
      };
      const response = await broker.call(c.method, c.path, { body: c.body, headers });
      answers.set(c.name, { response, as });
      expect(response.status, response.text).toBe(c.status);
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(isProblem(response), response.text).toBe(true);
      if (c.type) expect(response.body.type).toBe(`urn:kv-lease:problem:${c.type}`);
      if (response.status === 401) expect(response.headers.get('www-authenticate')).toBe('Bearer');
      for (const token of Object.values(tokens)) {
        expect(response.text).not.toContain(token.split('.')[1]);
        expect(response.text).not.toContain(token.split('.')[2]);
      }
      expect(response.text.length).toBeLessThan(4096);
    },
  );

  it('When the corpus has run, then nothing reached the firewall: not a write, not even a read', () => {
    const stats = emulator.stats().perVault[vaultId(VAULT).toLowerCase()];
    expect(stats?.writes ?? 0).toBe(0);
    expect(stats?.gets ?? 0).toBe(0);
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });

  it('When the corpus has run, then the lease table holds no row at all: no lease, no history, no key, no vault state', async () => {
    expect(await broker.store.liveLeases(VAULT)).toEqual([]);
    expect(
      (await broker.store.listLeases({ vault: VAULT, status: 'all', top: 1000 })).items,
    ).toEqual([]);
    const listed = await broker.call('GET', '/api/leases?status=all', {
      headers: bearer(tokens.admin),
    });
    expect(listed.body.value).toEqual([]);
    const table = TableClient.fromConnectionString(
      storageConnectionString(),
      broker.config.LEASE_TABLE_NAME,
      {
        allowInsecureConnection: true,
      },
    );
    const rows: unknown[] = [];
    for await (const entity of table.listEntities()) rows.push(entity);
    expect(rows).toEqual([]);
  });

  it('When the corpus has run, then every refusal is one audit entry: refused, who, the attempt and why', async () => {
    const trail = await broker.auditTrail();
    expect(answers.size).toBe(corpus.length);
    for (const [name, { response, as }] of answers) {
      const entries = trail.filter((entry) => entry.invocationId === response.invocationId);
      expect(entries, name).toHaveLength(1);
      const [entry] = entries;
      // A body over 16 KiB is refused before the token is read: the caller is unknown.
      const who = response.status === 413 ? 'anonymous' : as;
      expect(entry, name).toMatchObject({
        action: 'refused',
        outcome: 'refused',
        principal: who === 'admin' ? admin.oid : who === 'pipeline' ? pipeline.oid : 'anonymous',
        appId: who === 'admin' ? admin.appId : who === 'pipeline' ? pipeline.appId : undefined,
      });
      expect(entry?.detail, name).toMatch(
        /^(grant|renew|release|list-leases|get-lease|list-targets|read-audit): [A-Z]+\.[A-Z_]+: ./,
      );
      // The detail is the refusal the caller was given.
      expect(entry?.detail, name).toContain(String(response.body.detail).slice(0, 200));
      expect(Number.isFinite(entry?.at)).toBe(true);
    }
    // Only validated values reach the entry's fields.
    for (const entry of trail) {
      if (entry.vault !== undefined)
        expect(entry.vault).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
      if (entry.ip !== undefined) expect(entry.ip.length).toBeLessThanOrEqual(64);
      if (entry.leaseId !== undefined) expect(entry.leaseId).toMatch(/^[a-z0-9-]+\.[a-z0-9]{24}$/);
    }
  });

  it('When an OData-shaped principal is used as an audit filter, then it is a literal value that matches nothing', async () => {
    const response = await broker.call(
      'GET',
      `/api/audit?principal=${encodeURIComponent("x' or principal ne '")}`,
      { headers: bearer(tokens.admin) },
    );
    expect(response.status).toBe(200);
    expect(response.body.value).toEqual([]);
  });
});
