import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  caFile,
  certificate,
  DNS_TO_LOOPBACK,
  type FakeBroker,
  fakeLease,
  HOSTILE_TEXT,
  RAW_CONTROL,
  startFakeBroker,
  startTrap,
  type Trap,
} from './hostile';

/**
 * The CLI bundle (as `npm run build` makes it) against a fake broker that answers what a hostile
 * or broken deployment could: vault URIs a vault token must never reach, fields full of terminal
 * escapes, a whoami. Every host name resolves to 127.0.0.1 in the CLI process (DNS_TO_LOOPBACK),
 * so a request to any host lands on a trap that records it.
 */

const run = promisify(execFile);
const BIN = join(resolve(__dirname, '..', '..'), 'clients', 'cli', 'dist', 'kv-lease.js');
const VAULT_TOKEN = 'secret-data-plane-token';
const LOOK_ALIKE = 'kv-demo.vault.azure.net.evil.example';
const STORAGE_LOOK_ALIKE = 'stdemo.blob.core.windows.net.evil.example';
const SQL_LOOK_ALIKE = 'sql-demo.database.windows.net.evil.example';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

let broker: FakeBroker;
/** https, with a certificate the CLI trusts for every hostile name and 127.0.0.1 (not localhost). */
let trap: Trap;
/** plain http. */
let plain: Trap;
/** https, with a self-signed certificate nobody trusts. */
let untrusted: Trap;
let ca: string;

beforeAll(async () => {
  const trusted = certificate([
    LOOK_ALIKE,
    'evil.example',
    'kv-other.vault.azure.net',
    'kv-demo.vault.azure.net',
    STORAGE_LOOK_ALIKE,
    'stother.blob.core.windows.net',
    'stdemo.blob.core.windows.net',
    'stdemo.vault.azure.net',
    SQL_LOOK_ALIKE,
    'sql-other.database.windows.net',
    'sql-demo.database.windows.net',
    '127.0.0.1',
  ]);
  ca = caFile(trusted.cert);
  [broker, trap, plain, untrusted] = await Promise.all([
    startFakeBroker(),
    startTrap(trusted),
    startTrap(),
    startTrap(certificate(['127.0.0.1', 'localhost'])),
  ]);
}, 30_000);

afterAll(async () => {
  await Promise.all([broker, trap, plain, untrusted].map((server) => server?.close()));
});

async function kvLease(args: string[], extra: Record<string, string> = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(KV_LEASE_|AZURE_|IDENTITY_|MSI_|NODE_OPTIONS$)/.test(name)) env[name] = value;
  }
  Object.assign(env, {
    HOME: mkdtempSync(join(tmpdir(), 'kv-lease-home-')),
    KV_LEASE_BROKER: broker.url,
    KV_LEASE_AUTH: 'none',
    KV_LEASE_VAULT_TOKEN: VAULT_TOKEN,
    NODE_EXTRA_CA_CERTS: ca,
    NODE_OPTIONS: `--require ${DNS_TO_LOOPBACK}`,
    ...extra,
  });
  const started = Date.now();
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env });
    return { code: 0, stdout, stderr, ms: Date.now() - started };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { ...failed, ms: Date.now() - started };
  }
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').pop() ?? '';
}

const tokensSeen = () =>
  [...trap.seen, ...plain.seen, ...untrusted.seen].filter((s) => s.authorization !== undefined);

describe('kv-lease CLI: a vault token goes only to the vault', () => {
  it.each([
    ['plain http', () => `http://127.0.0.1:${plain.port}/`, /only sent over https, not http/],
    [
      'a foreign host',
      () => `https://evil.example:${trap.port}/`,
      /not kv-demo\.<suffix> for a known Key Vault DNS suffix \(vault\.azure\.net, vault\.azure\.cn, vault\.usgovcloudapi\.net\)/,
    ],
    ['a look-alike host', () => `https://${LOOK_ALIKE}:${trap.port}/`, /not kv-demo\.<suffix>/],
    [
      "another vault's host",
      () => `https://kv-other.vault.azure.net:${trap.port}/`,
      /names vault 'kv-other', not the lease's vault 'kv-demo'/,
    ],
    [
      'user info before a foreign host',
      () => `https://kv-demo.vault.azure.net@evil.example:${trap.port}/`,
      /user name or password/,
    ],
    [
      'the vault host on another port',
      () => `https://kv-demo.vault.azure.net:${trap.port}/`,
      /port 443/,
    ],
    [
      'a loopback address without the opt-in',
      () => `https://127.0.0.1:${trap.port}/data-plane/kv-demo/`,
      /loopback address .*--allow-loopback-data-plane or KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE=1/,
    ],
  ])(
    'When the broker answers %s as the vault URI, then grant --wait sends no token, names the URI and why, exits 4 and releases the lease',
    async (_what, uri, reason) => {
      const vaultUri = uri();
      broker.lease = fakeLease({ vaultUri });
      const before = trap.seen.length + plain.seen.length;

      const result = await kvLease(['grant', '--vault', 'kv-demo', '--wait']);

      expect(result.code, result.stderr).toBe(4);
      expect(lastLine(result.stderr)).toContain(`refusing to send a vault token to ${vaultUri}`);
      expect(lastLine(result.stderr)).toMatch(reason);
      expect(result.stderr).toContain(`released ${broker.lease.id}`);
      expect(broker.deletes()).toContain(broker.lease.id);
      expect(trap.seen.length + plain.seen.length).toBe(before);
      expect(tokensSeen()).toEqual([]);
      expect(result.stdout).toBe('');
    },
  );

  it('When --vault-uri is configured, then it wins over the broker and the token goes there (the traps do catch a token that is sent)', async () => {
    broker.lease = fakeLease({ vaultUri: `http://127.0.0.1:${plain.port}/` });
    const configured = `https://${LOOK_ALIKE}:${trap.port}/`;
    const before = trap.seen.length;

    const result = await kvLease([
      'grant',
      '--vault',
      'kv-demo',
      '--wait',
      '--vault-uri',
      configured,
    ]);

    expect(result.code, result.stderr).toBe(0);
    const probes = trap.seen.slice(before);
    expect(probes.length).toBeGreaterThan(0);
    expect(probes[0]).toMatchObject({
      host: `${LOOK_ALIKE}:${trap.port}`,
      authorization: `Bearer ${VAULT_TOKEN}`,
    });
    expect(plain.seen).toEqual([]);
  });

  it('When --vault-uri is plain http, then the CLI exits 2 before anything is granted', async () => {
    const grants = broker.seen.filter((s) => s.method === 'POST').length;

    const result = await kvLease([
      'grant',
      '--vault',
      'kv-demo',
      '--wait',
      '--vault-uri',
      `http://127.0.0.1:${plain.port}/`,
    ]);

    expect(result.code).toBe(2);
    expect(lastLine(result.stderr)).toMatch(
      /--vault-uri 'http:.*' is refused: .*only sent over https/,
    );
    expect(broker.seen.filter((s) => s.method === 'POST').length).toBe(grants);
  });

  it('When the loopback opt-in is set by the environment variable, then the loopback data plane is probed', async () => {
    broker.lease = fakeLease({ vaultUri: `https://127.0.0.1:${trap.port}/data-plane/kv-demo/` });
    const before = trap.seen.length;

    const result = await kvLease(['wait', broker.lease.id], {
      KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: '1',
    });

    expect(result.code, result.stderr).toBe(0);
    expect(trap.seen.slice(before)[0]?.path).toMatch(/^\/data-plane\/kv-demo\/secrets\?/);
  });

  it('When the data plane presents an untrusted certificate, then the wait stops at once, says to trust its CA with NODE_EXTRA_CA_CERTS, and releases the lease', async () => {
    broker.lease = fakeLease({
      vaultUri: `https://127.0.0.1:${untrusted.port}/data-plane/kv-demo/`,
    });

    const result = await kvLease([
      'grant',
      '--vault',
      'kv-demo',
      '--wait',
      '--allow-loopback-data-plane',
    ]);

    expect(result.code, result.stderr).toBe(4);
    expect(result.ms).toBeLessThan(10_000);
    expect(lastLine(result.stderr)).toMatch(
      /the TLS connection to https:\/\/127\.0\.0\.1:\d+\/data-plane\/kv-demo\/ failed, so no vault token was sent: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE): .*NODE_EXTRA_CA_CERTS/,
    );
    expect(result.stderr).not.toMatch(/waiting for/);
    expect(broker.deletes()).toContain(broker.lease.id);
    expect(untrusted.seen).toEqual([]);
  });

  it("When the data plane's certificate does not name its host, then the wait stops at once naming the mismatch", async () => {
    broker.lease = fakeLease({ vaultUri: 'https://kv-demo.vault.azure.net/' });

    const result = await kvLease([
      'grant',
      '--vault',
      'kv-demo',
      '--wait',
      '--vault-uri',
      `https://localhost:${trap.port}/`,
    ]);

    expect(result.code, result.stderr).toBe(4);
    expect(result.ms).toBeLessThan(10_000);
    expect(lastLine(result.stderr)).toMatch(
      /ERR_TLS_CERT_ALTNAME_INVALID: the server's certificate does not name this host/,
    );
    expect(broker.deletes()).toContain(broker.lease.id);
  });
});

describe('kv-lease CLI: a storage or SQL token goes only to its target', () => {
  const connections = () => trap.connections() + plain.connections() + untrusted.connections();
  const requests = () => trap.seen.length + plain.seen.length + untrusted.seen.length;

  it.each([
    [
      'plain http',
      () => `http://127.0.0.1:${plain.port}/blob/stdemo/`,
      /only sent over https, not http/,
    ],
    [
      'a foreign host',
      () => `https://evil.example:${trap.port}/`,
      /not stdemo\.<suffix> for a known Storage blob DNS suffix \(blob\.core\.windows\.net, blob\.core\.chinacloudapi\.cn, blob\.core\.usgovcloudapi\.net\)/,
    ],
    [
      'a look-alike host',
      () => `https://${STORAGE_LOOK_ALIKE}:${trap.port}/`,
      /not stdemo\.<suffix>/,
    ],
    [
      "another account's host",
      () => `https://stother.blob.core.windows.net:${trap.port}/`,
      /names storage account 'stother', not the lease's storage account 'stdemo'/,
    ],
    [
      'the account host on another port',
      () => `https://stdemo.blob.core.windows.net:${trap.port}/`,
      /port 443/,
    ],
    [
      "the account's vault-suffix twin (another kind's host)",
      () => `https://stdemo.vault.azure.net:${trap.port}/`,
      /not stdemo\.<suffix>/,
    ],
    [
      'user info before a foreign host',
      () => `https://stdemo.blob.core.windows.net@evil.example:${trap.port}/`,
      /user name or password/,
    ],
    [
      'a loopback address without the opt-in',
      () => `https://127.0.0.1:${trap.port}/blob/stdemo/`,
      /loopback address .*--allow-loopback-data-plane/,
    ],
  ])(
    "When the broker answers %s as a storage lease's data plane, then grant --wait sends no token, names it and why, exits 4 and releases the lease",
    async (_what, address, reason) => {
      const dataPlane = address();
      broker.lease = fakeLease({ vault: 'stdemo', target: 'stdemo', kind: 'storage', dataPlane });
      const before = connections();
      const sent = requests();

      const result = await kvLease(['grant', '--target', 'stdemo', '--wait']);

      expect(result.code, result.stderr).toBe(4);
      expect(lastLine(result.stderr)).toContain(`refusing to send a storage token to ${dataPlane}`);
      expect(lastLine(result.stderr)).toMatch(reason);
      expect(broker.deletes()).toContain(broker.lease.id);
      expect(connections()).toBe(before);
      expect(requests()).toBe(sent);
      expect(result.stdout).toBe('');
    },
  );

  it.each([
    [
      'a foreign host',
      () => `evil.example:${trap.port}`,
      /not sql-demo\.<suffix> for a known Azure SQL DNS suffix \(database\.windows\.net, database\.chinacloudapi\.cn, database\.usgovcloudapi\.net\)/,
    ],
    ['a look-alike host', () => `${SQL_LOOK_ALIKE}:1433`, /not sql-demo\.<suffix>/],
    [
      "another server's host",
      () => `sql-other.database.windows.net:1433`,
      /names SQL server 'sql-other', not the lease's SQL server 'sql-demo'/,
    ],
    [
      'the server host on another port',
      () => `sql-demo.database.windows.net:${trap.port}`,
      /port 1433, not \d+/,
    ],
    [
      'an https URL',
      () => `https://sql-demo.database.windows.net:${trap.port}/`,
      /not a SQL server address/,
    ],
    ['user info', () => `x@sql-demo.database.windows.net:1433`, /not a SQL server address/],
    [
      'a loopback address without the opt-in',
      () => `127.0.0.1:${trap.port}`,
      /loopback address .*--allow-loopback-data-plane/,
    ],
  ])(
    "When the broker answers %s as a SQL lease's data plane, then grant --wait opens no connection, names it and why, exits 4 and releases the lease",
    async (_what, address, reason) => {
      const dataPlane = address();
      broker.lease = fakeLease({ vault: 'sql-demo', target: 'sql-demo', kind: 'sql', dataPlane });
      const before = connections();

      const result = await kvLease(['grant', '--target', 'sql-demo', '--wait']);

      expect(result.code, result.stderr).toBe(4);
      expect(lastLine(result.stderr)).toContain(`refusing to send a SQL token to ${dataPlane}`);
      expect(lastLine(result.stderr)).toMatch(reason);
      expect(broker.deletes()).toContain(broker.lease.id);
      expect(connections()).toBe(before);
      expect(result.stdout).toBe('');
    },
  );

  it("When a storage lease's data plane is configured (--data-plane), then it wins over the broker and the storage token goes there", async () => {
    broker.lease = fakeLease({
      vault: 'stdemo',
      target: 'stdemo',
      kind: 'storage',
      dataPlane: `http://127.0.0.1:${plain.port}/`,
    });
    const configured = `https://${STORAGE_LOOK_ALIKE}:${trap.port}/`;
    const before = trap.seen.length;

    const result = await kvLease([
      'grant',
      '--target',
      'stdemo',
      '--wait',
      '--data-plane',
      configured,
    ]);

    expect(result.code, result.stderr).toBe(0);
    expect(trap.seen.slice(before)[0]).toMatchObject({
      host: `${STORAGE_LOOK_ALIKE}:${trap.port}`,
      path: '/?comp=list&maxresults=1',
      authorization: `Bearer ${VAULT_TOKEN}`,
    });
    expect(plain.seen).toEqual([]);
  });

  it('When a lease names a kind this client does not know, then grant --wait probes nothing, exits 4 and releases the lease', async () => {
    broker.lease = {
      ...fakeLease({ vault: 'cosmos-demo', dataPlane: `https://evil.example:${trap.port}/` }),
      kind: 'cosmos',
    } as never;
    const before = connections();

    const result = await kvLease(['grant', '--target', 'cosmos-demo', '--wait']);

    expect(result.code, result.stderr).toBe(4);
    expect(lastLine(result.stderr)).toMatch(
      /the target kind 'cosmos', which this client does not know how to probe/,
    );
    expect(broker.deletes()).toContain(broker.lease.id);
    expect(connections()).toBe(before);
  });
});

describe('kv-lease whoami', () => {
  it('When the broker answers whoami, then the CLI prints the principal, roles and address, escaped, and --json gives the answer as is', async () => {
    const answer = {
      principal: `app ${HOSTILE_TEXT}`,
      roles: ['Lease.Request', 'Lease.Read'],
      ip: '52.1.2.3/32',
    };
    broker.answers.set('GET /api/whoami', { status: 200, body: answer });

    const human = await kvLease(['whoami']);
    const json = await kvLease(['whoami', '--json']);

    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^principal +app run 42\\u001b\[2J\\u001b\]52;c;/m);
    expect(human.stdout).toMatch(/^roles +Lease\.Request, Lease\.Read$/m);
    expect(human.stdout).toMatch(/^ip +52\.1\.2\.3\/32$/m);
    expect(human.stdout).not.toMatch(RAW_CONTROL);
    expect(json.stdout).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(json.stdout)).toEqual(answer);
  });

  it('When the broker can take no address, then whoami says why', async () => {
    broker.answers.set('GET /api/whoami', {
      status: 200,
      body: { principal: 'p', roles: [], ipProblem: 'The caller address is unknown' },
    });

    const result = await kvLease(['whoami']);

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^roles +\(none\)$/m);
    expect(result.stdout).toMatch(/^ip +none: The caller address is unknown$/m);
  });

  it('When the broker has no whoami route (older than v1.1), then the CLI exits 5 and says so', async () => {
    broker.answers.delete('GET /api/whoami');

    const result = await kvLease(['whoami']);

    expect(result.code).toBe(5);
    expect(lastLine(result.stderr)).toMatch(/whoami answered 404: the broker is older than v1\.1/);
  });
});

describe('kv-lease output of hostile fields', () => {
  it('When every field the broker answers carries terminal escapes, then no command writes a raw control or bidi character, and --json reads back the same data', async () => {
    const lease = fakeLease({
      id: `kv-demo.id${HOSTILE_TEXT}`,
      vault: `kv-demo${HOSTILE_TEXT}`,
      principal: `oid${HOSTILE_TEXT}`,
      reason: HOSTILE_TEXT,
      vaultUri: `https://x${HOSTILE_TEXT}`,
    });
    broker.lease = lease;
    const audit = [
      {
        at: lease.createdAt,
        action: `grant${HOSTILE_TEXT}`,
        principal: lease.principal,
        vault: lease.vault,
        ip: lease.ip,
        leaseId: lease.id,
        outcome: 'success',
        detail: `detail${HOSTILE_TEXT}`,
      },
    ];
    const vaults = [
      {
        name: lease.vault,
        resourceId: `/sub${HOSTILE_TEXT}`,
        activeLeases: 1,
        brokerRules: 1,
        totalRules: 2,
        maxRules: 1000,
        vaultUri: lease.vaultUri,
      },
    ];
    broker.answers.set('GET /api/leases', { status: 200, body: { value: [lease] } });
    broker.answers.set('GET /api/audit', { status: 200, body: { value: audit } });
    broker.answers.set('GET /api/vaults', { status: 200, body: { value: vaults } });

    const results = await Promise.all([
      kvLease(['leases', 'list', '--status', 'all']),
      kvLease(['leases', 'show', lease.id]),
      kvLease(['audit']),
      kvLease(['vaults']),
      kvLease(['grant', '--vault', 'kv-demo']),
    ]);
    const json = await Promise.all([
      kvLease(['leases', 'list', '--json']),
      kvLease(['audit', '--json']),
      kvLease(['vaults', '--json']),
    ]);

    for (const result of [...results, ...json]) {
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).not.toMatch(RAW_CONTROL);
      expect(result.stderr).not.toMatch(RAW_CONTROL);
    }
    expect(results[1].stdout).toContain(
      'run 42\\u001b[2J\\u001b]52;c;ZWNobyBwd25lZA==\\u0007\\u000doverwritten\\u009b31m\\u202etxt.exe',
    );
    expect(results[2].stdout).toContain('detailrun 42\\u001b[2J');
    expect(JSON.parse(json[0].stdout)).toEqual([lease]);
    expect(JSON.parse(json[1].stdout)).toEqual(audit);
    expect(JSON.parse(json[2].stdout)).toEqual(vaults);
  });

  it('When a problem answer carries terminal escapes, then the error line shows them escaped', async () => {
    broker.answers.set('GET /api/vaults', {
      status: 400,
      body: {
        type: 'urn:kv-lease:problem:invalid-request',
        title: `Bad${HOSTILE_TEXT}`,
        status: 400,
        detail: HOSTILE_TEXT,
        errors: [{ path: `vault${HOSTILE_TEXT}`, message: HOSTILE_TEXT }],
      },
    });

    const result = await kvLease(['vaults']);

    expect(result.code).toBe(4);
    expect(result.stderr).not.toMatch(RAW_CONTROL);
    expect(result.stderr).toMatch(/^kv-lease: Badrun 42\\u001b\[2J.*\n {2}vaultrun 42\\u001b/m);
  });
});
