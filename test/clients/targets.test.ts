import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { uniqueAccountName } from '../emulator/helpers';
import { testEmulator } from '../support/harness';
import { type FakeBroker, fakeLease, HOSTILE_TEXT, RAW_CONTROL, startFakeBroker } from './hostile';
import { LEASED_IP } from './support';

/**
 * The CLI bundle with targets of other kinds (contract §4): a fake broker answers the v1.1 lease
 * fields (`target`, `kind`, `dataPlane`, `warnings`; the real broker gains them in parallel), and
 * the emulator serves the storage account's blob data plane, firewall and propagation delay
 * included, so `grant --wait` probes a real (emulated) Storage data plane over https.
 */

const run = promisify(execFile);
const BIN = join(resolve(__dirname, '..', '..'), 'clients', 'cli', 'dist', 'kv-lease.js');
const RG = 'rg-targets';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let emulator: RunningEmulator;
let broker: FakeBroker;

beforeAll(async () => {
  [emulator, broker] = await Promise.all([
    testEmulator({ dataPlane: { clientAddress: LEASED_IP } }),
    startFakeBroker(),
  ]);
}, 30_000);

afterAll(async () => {
  await Promise.all([emulator?.close(), broker?.close()]);
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
    KV_LEASE_VAULT_TOKEN: 'storage-data-plane-token',
    KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: '1',
    NODE_EXTRA_CA_CERTS: emulator.caPath,
    ...extra,
  });
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** A storage account that refuses everyone (defaultAction Deny, no rules), and the broker's lease on it. */
function lockedAccount(options: { dataRights?: boolean } = {}) {
  const name = uniqueAccountName();
  const id = emulator.storage.create({
    resourceGroup: RG,
    name,
    networkAcls: { defaultAction: 'Deny', ipRules: [] },
    ...options,
  });
  const lease = fakeLease({
    id: `${name}.${Math.random().toString(36).slice(2, 10)}`,
    vault: name,
    target: name,
    kind: 'storage',
    dataPlane: emulator.storage.blobEndpoint(name),
  });
  return { name, id, lease };
}

/** What the broker's write does: the leased address on the account's rules. */
function admit(id: string): void {
  emulator.storage.setNetworkAcls(id, { ipRules: [{ value: LEASED_IP, action: 'Allow' }] });
}

describe('kv-lease grant --wait on a storage account (the emulated blob data plane)', () => {
  it('When the account applies the rule 3 s after the write, then grant --target --wait probes the blob endpoint until it lets the address in, and the grant named the target', async () => {
    const account = lockedAccount();
    broker.lease = account.lease;
    emulator.configureDataPlane({ propagationDelayMs: 3000 });
    const before = emulator.storage.blobStats();
    try {
      admit(account.id);
      const result = await kvLease([
        'grant',
        '--target',
        account.name,
        '--wait',
        '--wait-timeout',
        '30s',
      ]);

      expect(result.code, result.stderr).toBe(0);
      const waited = /admits 52\.10\.20\.30\/32 after (\d+\.\d) s/.exec(result.stderr);
      expect(Number(waited?.[1])).toBeGreaterThanOrEqual(1.5);
      const after = emulator.storage.blobStats();
      expect(after.refused - before.refused).toBeGreaterThan(0);
      expect(after.allowed - before.allowed).toBe(1);
      expect(after.rejected - before.rejected).toBe(0);
      expect(broker.grants().pop()).toEqual({ target: account.name });
      expect(broker.deletes()).not.toContain(account.lease.id);
    } finally {
      emulator.configureDataPlane({ propagationDelayMs: 0 });
    }
  });

  it('When the token has no Storage Blob Data role, then AuthorizationPermissionMismatch counts as through (the firewall let it in)', async () => {
    const account = lockedAccount({ dataRights: false });
    broker.lease = account.lease;
    admit(account.id);
    const before = emulator.storage.blobStats();

    const result = await kvLease(['grant', '--vault', account.name, '--wait']);

    expect(result.code, result.stderr).toBe(0);
    expect(emulator.storage.blobStats().permissionMismatch - before.permissionMismatch).toBe(1);
    expect(broker.grants().pop()).toEqual({ vault: account.name });
  });

  it('When the account never lets the address in, then the wait ends at its timeout (exit 7) naming the storage account and AuthorizationFailure, and the lease is released', async () => {
    const account = lockedAccount();
    broker.lease = account.lease;

    const result = await kvLease([
      'grant',
      '--target',
      account.name,
      '--wait',
      '--wait-timeout',
      '2s',
    ]);

    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toMatch(
      /the storage account's data plane did not let 52\.10\.20\.30\/32 in within 2 s \(last answer: 403 AuthorizationFailure\)/,
    );
    expect(result.stderr).toContain("a runner in the account's own region");
    expect(broker.deletes()).toContain(account.lease.id);
  });

  it("When a waiting lease is waited for later (kv-lease wait), then the probe follows the lease's own kind and target", async () => {
    const account = lockedAccount();
    broker.lease = account.lease;
    admit(account.id);

    const result = await kvLease(['wait', account.lease.id]);

    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`${account.name} admits 52\\.10\\.20\\.30/32`));
  });
});

describe('kv-lease: targets, warnings and the target/vault names', () => {
  it('When a lease carries warnings, then grant prints each as `warning: ...` on stderr, escaped, and --json keeps them exact', async () => {
    const warnings = [
      `the leased address 52.10.20.30 lies in westeurope, the account's own region${HOSTILE_TEXT}`,
      'forged\n::error::pwned\n##vso[task.setvariable variable=x]y',
    ];
    broker.lease = fakeLease({ vault: 'stdemo', target: 'stdemo', kind: 'storage', warnings });

    const human = await kvLease(['grant', '--target', 'stdemo']);
    const json = await kvLease(['grant', '--target', 'stdemo', '--json']);

    expect(human.code, human.stderr).toBe(0);
    const lines = human.stderr.split('\n').filter((line) => line.startsWith('warning: '));
    expect(lines).toEqual([
      expect.stringMatching(
        /^warning: the leased address 52\.10\.20\.30 lies in westeurope, the account's own regionrun 42\\u001b\[2J/,
      ),
      'warning: forged\\u000a::error::pwned\\u000a##vso[task.setvariable variable=x]y',
    ]);
    expect(human.stderr).not.toMatch(RAW_CONTROL);
    expect(human.stderr.split('\n').some((line) => /^(::|##vso\[)/.test(line))).toBe(false);
    expect(human.stdout).toMatch(/^warning +the leased address/m);
    expect(JSON.parse(json.stdout).warnings).toEqual(warnings);
  });

  it('When --target and --vault name different targets, then the CLI exits 2 before anything is granted; when neither is given, it says what to give', async () => {
    const grants = broker.grants().length;

    const both = await kvLease(['grant', '--target', 'stdemo', '--vault', 'kv-demo']);
    const neither = await kvLease(['grant']);
    const same = await kvLease(['grant', '--target', 'KV-Demo', '--vault', 'kv-demo']);

    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--target 'stdemo' and --vault 'kv-demo' differ: give one of them/);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/no target: set --target \(or its older name --vault\)/);
    expect(same.code, same.stderr).toBe(0);
    expect(broker.grants().slice(grants)).toEqual([{ target: 'KV-Demo', vault: 'kv-demo' }]);
  });

  it('When --data-plane and --vault-uri differ, then the CLI exits 2 before anything is granted', async () => {
    const grants = broker.grants().length;

    const result = await kvLease([
      'grant',
      '--target',
      'stdemo',
      '--wait',
      '--data-plane',
      'https://stdemo.blob.core.windows.net/',
      '--vault-uri',
      'https://kv-demo.vault.azure.net/',
    ]);

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--data-plane '.*' and --vault-uri '.*' differ/);
    expect(broker.grants().length).toBe(grants);
  });

  it("When the targets are listed, then each shows its kind, rules against the kind's limit and health; --target filters leases as vault=", async () => {
    const targets = [
      {
        name: 'kv-demo',
        kind: 'keyvault',
        resourceId: '/sub/kv',
        activeLeases: 1,
        brokerRules: 1,
        totalRules: 3,
        maxRules: 1000,
        healthy: true,
        dataPlane: 'https://kv-demo.vault.azure.net/',
      },
      {
        name: 'stdemo',
        kind: 'storage',
        resourceId: '/sub/st',
        activeLeases: 0,
        brokerRules: 0,
        totalRules: 12,
        maxRules: 400,
        healthy: false,
        lastError: `throttled${HOSTILE_TEXT}`,
      },
      {
        name: 'sql-demo',
        kind: 'sql',
        resourceId: '/sub/sql',
        activeLeases: 2,
        brokerRules: 2,
        totalRules: 5,
        maxRules: 128,
        healthy: true,
        dataPlane: 'sql-demo.database.windows.net:1433',
      },
    ];
    broker.answers.set('GET /api/targets', { status: 200, body: { value: targets } });
    broker.answers.set('GET /api/leases', { status: 200, body: { value: [] } });

    const human = await kvLease(['targets']);
    const json = await kvLease(['targets', '--json']);
    const listed = await kvLease(['leases', 'list', '--target', 'sql-demo']);

    expect(human.code, human.stderr).toBe(0);
    const rows = human.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^NAME +KIND +ACTIVE LEASES +RULES +HEALTHY +DATA PLANE$/);
    expect(rows[1]).toMatch(
      /^kv-demo +keyvault +1 +3\/1000 +yes +https:\/\/kv-demo\.vault\.azure\.net\/$/,
    );
    expect(rows[2]).toMatch(/^stdemo +storage +0 +12\/400 +no: throttledrun 42\\u001b/);
    expect(rows[3]).toMatch(
      /^sql-demo +sql +2 +5\/128 +yes +sql-demo\.database\.windows\.net:1433$/,
    );
    expect(human.stdout).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(json.stdout)).toEqual(targets);
    expect(listed.code, listed.stderr).toBe(0);
    expect(broker.seen.filter((s) => s.path.startsWith('/api/leases?')).pop()?.path).toBe(
      '/api/leases?vault=sql-demo&status=active',
    );
  });

  it('When the broker is older than v1.1 (no /api/targets), then kv-lease targets exits 5 and points to kv-lease vaults', async () => {
    broker.answers.delete('GET /api/targets');

    const result = await kvLease(['targets']);

    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(
      /targets answered 404: the broker is older than v1\.1 \(`kv-lease vaults` lists its vaults\)/,
    );
  });
});
