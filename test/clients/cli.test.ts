import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { rulesOf } from '../support/harness';
import { type ClientWorld, LEASED_IP, startWorld } from './support';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '..', '..');
/** The bundle `npm run build` makes (pretest), as the package's bin runs it. */
const BIN = join(ROOT, 'clients', 'cli', 'dist', 'kv-lease.js');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of a pipeline that has none of ours: no token, no broker, no Azure login. */
function cleanEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(KV_LEASE_|AZURE_|IDENTITY_|MSI_)/.test(name)) env[name] = value;
  }
  return { ...env, HOME: mkdtempSync(join(tmpdir(), 'kv-lease-home-')), ...extra };
}

describe('kv-lease CLI against the local broker, azurite and the emulator', () => {
  let world: ClientWorld;

  const kvLease = async (
    args: string[],
    extra: Record<string, string | undefined> = {},
  ): Promise<Result> => {
    const env = cleanEnv({
      KV_LEASE_BROKER: world.broker.url,
      KV_LEASE_AUTH: 'none',
      KV_LEASE_VAULT_TOKEN: 'data-plane-token',
      // The emulator's data plane is on loopback: the documented opt-in, as npm start prints it.
      KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: '1',
      NODE_EXTRA_CA_CERTS: world.emulator.caPath,
      ...extra,
    });
    try {
      const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  /**
   * A one-line message that says what to do (then the broker's field errors, one indented line
   * each), as the last thing on stderr: no stack trace, nothing on stdout.
   */
  const expectOneLineError = (result: Result, pattern: RegExp) => {
    expect(result.stdout).toBe('');
    const lines = result.stderr.trimEnd().split('\n');
    const start = lines.map((line) => line.startsWith('kv-lease: ')).lastIndexOf(true);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(lines.slice(start + 1).every((line) => /^ {2}\S/.test(line))).toBe(true);
    expect(lines[start]).toMatch(pattern);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  };

  beforeAll(async () => {
    world = await startWorld('kv-cli', { vaults: 5 });
  });

  afterAll(async () => {
    await world?.close();
  });

  it('When grant --wait meets a propagation delay, then it returns once the vault answers, and release removes the rule', async () => {
    const vault = world.vaults[0]!;
    world.emulator.configureDataPlane({ vaults: { [vault]: { propagationDelayMs: 2000 } } });

    const granted = await kvLease([
      'grant',
      '--vault',
      vault,
      '--ip',
      LEASED_IP,
      '--ttl',
      '10m',
      '--wait',
      '--json',
    ]);
    const lease = JSON.parse(granted.stdout);
    const released = await kvLease(['release', lease.id, '--json']);

    expect(granted.code).toBe(0);
    expect(Object.keys(lease).sort()).toEqual(
      [
        'createdAt',
        'dataPlane',
        'expiresAt',
        'id',
        'ip',
        'kind',
        'principal',
        'status',
        'target',
        'vault',
        'vaultUri',
      ].sort(),
    );
    expect(lease).toMatchObject({ vault, ip: `${LEASED_IP}/32`, status: 'active' });
    expect(Date.parse(lease.expiresAt) - Date.parse(lease.createdAt)).toBe(600_000);
    expect(granted.stderr).toMatch(
      /waiting for .* 403 ForbiddenByFirewall, vault sees 52\.10\.20\.30/,
    );
    expect(granted.stderr).toMatch(/admits 52\.10\.20\.30\/32 after \d+\.\d s/);
    expect(released.code).toBe(0);
    expect(JSON.parse(released.stdout).status).toBe('released');
    expect(rulesOf(world.emulator, vault)).not.toContain(`${LEASED_IP}/32`);
  });

  it('When the vault sees another address than the leased one, then grant --wait exits 8 naming both and releases the lease', async () => {
    const vault = world.vaults[1]!;
    world.emulator.configureDataPlane({ vaults: { [vault]: { clientAddress: '20.30.40.50' } } });

    const result = await kvLease(['grant', '--vault', vault, '--ip', '52.10.20.70', '--wait']);
    const active = JSON.parse(
      (await kvLease(['leases', 'list', '--vault', vault, '--json'])).stdout,
    );

    expect(result.code).toBe(8);
    expectOneLineError(
      result,
      /sees this client as 20\.30\.40\.50, but the lease is for 52\.10\.20\.70\/32/,
    );
    expect(result.stderr).toMatch(/released /);
    expect(active).toEqual([]);
    expect(rulesOf(world.emulator, vault)).not.toContain('52.10.20.70/32');
  });

  it("When the loopback opt-in is not given, then grant --wait refuses the emulator's data plane, names the URI and the opt-in, and releases the lease", async () => {
    const vault = world.vaults[2]!;
    const probes = () => {
      const stats = world.emulator.dataPlaneStats();
      return stats.allowed + stats.refused + stats.unauthenticated;
    };
    const before = probes();

    const refused = await kvLease(['grant', '--vault', vault, '--ip', '52.10.20.71', '--wait'], {
      KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: undefined,
    });
    const afterRefused = probes();
    const allowed = await kvLease(
      [
        'grant',
        '--vault',
        vault,
        '--ip',
        LEASED_IP,
        '--wait',
        '--allow-loopback-data-plane',
        '--json',
      ],
      { KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: undefined },
    );

    expect(refused.code).toBe(4);
    expectOneLineError(
      refused,
      /refusing to send a vault token to https:\/\/127\.0\.0\.1:\d+\/data-plane\/kv-cli-3\/: .*--allow-loopback-data-plane/,
    );
    expect(refused.stderr).toMatch(/released /);
    expect(rulesOf(world.emulator, vault)).not.toContain('52.10.20.71/32');
    expect(afterRefused).toBe(before);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(probes()).toBeGreaterThan(before);
    await kvLease(['release', JSON.parse(allowed.stdout).id]);
  });

  it('When wait is run for a lease granted earlier, then it returns once the vault admits the address', async () => {
    const vault = world.vaults[2]!;
    const lease = JSON.parse(
      (await kvLease(['grant', '--vault', vault, '--ip', LEASED_IP, '--json'])).stdout,
    );

    const waited = await kvLease(['wait', lease.id, '--json']);

    expect(waited.code).toBe(0);
    expect(JSON.parse(waited.stdout).id).toBe(lease.id);
  });

  it('When a grant --wait is interrupted while waiting, then it releases the lease and exits 130', async () => {
    const vault = world.vaults[3]!;
    world.emulator.configureDataPlane({ vaults: { [vault]: { propagationDelayMs: 60_000 } } });
    const child = spawn(
      process.execPath,
      [BIN, 'grant', '--vault', vault, '--ip', '52.10.20.80', '--wait'],
      {
        env: cleanEnv({
          KV_LEASE_BROKER: world.broker.url,
          KV_LEASE_AUTH: 'none',
          KV_LEASE_VAULT_TOKEN: 't',
          KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: '1',
          NODE_EXTRA_CA_CERTS: world.emulator.caPath,
        }),
      },
    );
    let stderr = '';
    let interrupted = false;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // One Ctrl-C: a second one would end the process before it has released the lease.
      if (!interrupted && /waiting for/.test(stderr)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });

    const code = await new Promise<number | null>((done) => child.on('exit', done));

    expect(code).toBe(130);
    expect(stderr).toMatch(/released .*\n.*interrupted/);
    expect(rulesOf(world.emulator, vault)).not.toContain('52.10.20.80/32');
  });

  it('When operators list leases, vaults and the audit trail, then tables are readable and --json gives arrays of resources', async () => {
    const vault = world.vaults[4]!;
    const lease = JSON.parse(
      (
        await kvLease([
          'grant',
          '--vault',
          vault,
          '--ip',
          '52.10.20.90',
          '--reason',
          'run 42',
          '--json',
        ])
      ).stdout,
    );

    const table = await kvLease(['leases', 'list', '--vault', vault]);
    const show = await kvLease(['leases', 'show', lease.id]);
    const vaults = await kvLease(['vaults']);
    const vaultsJson = JSON.parse((await kvLease(['vaults', '--json'])).stdout);
    const audit = await kvLease(['audit', '--since', '1h', '--vault', vault]);
    const auditJson = JSON.parse(
      (await kvLease(['audit', '--since', '1h', '--vault', vault, '--json'])).stdout,
    );

    expect(table.stdout.split('\n')[0]).toMatch(
      /^ID\s+VAULT\s+IP\s+STATUS\s+EXPIRES\s+PRINCIPAL\s+REASON$/,
    );
    expect(table.stdout).toContain(lease.id);
    expect(table.stdout).toMatch(/52\.10\.20\.90\/32\s+active\s+in 20m\s+local-dev\s+run 42/);
    expect(show.stdout).toMatch(/^lease\s+\S+\nvault\s+kv-cli-5\n/);
    expect(vaults.stdout.split('\n')[0]).toMatch(
      /^NAME\s+ACTIVE LEASES\s+BROKER RULES\s+RULES\s+VAULT URI$/,
    );
    expect(vaultsJson.map((v: any) => v.name).sort()).toEqual([...world.vaults].sort());
    expect(Object.keys(vaultsJson[0])).toEqual(
      expect.arrayContaining([
        'activeLeases',
        'brokerRules',
        'healthy',
        'maxRules',
        'name',
        'resourceId',
        'totalRules',
        'vaultUri',
      ]),
    );
    expect(audit.stdout.split('\n')[0]).toMatch(
      /^AT\s+ACTION\s+OUTCOME\s+VAULT\s+IP\s+PRINCIPAL\s+LEASE\s+DETAIL$/,
    );
    expect(auditJson.find((entry: any) => entry.action === 'grant')).toMatchObject({
      vault,
      leaseId: lease.id,
      outcome: 'success',
    });
  });

  it('When the vault is unknown, then grant exits 5 and says how to list the vaults', async () => {
    const result = await kvLease(['grant', '--vault', 'kv-nowhere']);

    expect(result.code).toBe(5);
    expectOneLineError(result, /kv-nowhere.*kv-lease vaults/);
  });

  it('When the TTL is malformed, then grant exits 2 before calling the broker', async () => {
    const result = await kvLease(['grant', '--vault', world.vaults[0]!, '--ttl', '20 minutes'], {
      KV_LEASE_BROKER: 'http://127.0.0.1:9',
    });

    expect(result.code).toBe(2);
    expectOneLineError(
      result,
      /--ttl '20 minutes' is not a duration: give seconds \(1200\) or a duration like 20m/,
    );
  });

  it('When the TTL is outside what the broker allows, then grant exits 4 with the broker reason', async () => {
    const result = await kvLease([
      'grant',
      '--vault',
      world.vaults[0]!,
      '--ip',
      LEASED_IP,
      '--ttl',
      '10s',
    ]);

    expect(result.code).toBe(4);
    expectOneLineError(result, /^kv-lease: .*\bttl/i);
    expect(result.stderr).toMatch(/\n {2}ttlSeconds: .*between 60 and 7200/);
  });

  it('When no broker URL is given, then the CLI exits 2 and names --broker and KV_LEASE_BROKER', async () => {
    const result = await kvLease(['vaults'], { KV_LEASE_BROKER: undefined });

    expect(result.code).toBe(2);
    expectOneLineError(result, /no broker URL: pass --broker .* or set KV_LEASE_BROKER/);
  });

  it('When there is no credential, then the CLI exits 3 and says how to provide one', async () => {
    const result = await kvLease(['vaults'], { KV_LEASE_AUTH: undefined });

    expect(result.code).toBe(3);
    expectOneLineError(result, /no credential for api:\/\/kv-lease\/\.default: set KV_LEASE_TOKEN/);
  });

  it('When an option is unknown, then the CLI exits 2 with a one-line message', async () => {
    const result = await kvLease(['leases', 'list', '--colour']);

    expect(result.code).toBe(2);
    expectOneLineError(result, /unknown option '--colour'/);
  });

  it('When the lease is unknown, then release exits 5', async () => {
    const result = await kvLease(['release', `kv-cli-1.${'a'.repeat(24)}`]);

    expect(result.code).toBe(5);
    expectOneLineError(result, /leases list/);
  });
});

describe('kv-lease-cli package', () => {
  it('When the package is packed and installed offline, then its kv-lease bin runs', async () => {
    const work = mkdtempSync(join(tmpdir(), 'kv-lease-pack-'));
    await run('npm', ['pack', '--pack-destination', work, '--silent'], {
      cwd: join(ROOT, 'clients', 'cli'),
    });
    const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'))!;
    const app = join(work, 'app');

    await run('npm', ['init', '-y', '--silent'], {
      cwd: work,
      env: { ...process.env, npm_config_init_module: '' },
    }).catch(() => undefined);
    await run(
      'npm',
      ['install', '--offline', '--no-audit', '--no-fund', '--prefix', app, join(work, tarball)],
      { cwd: work },
    );
    const bin = join(app, 'node_modules', '.bin', 'kv-lease');
    const { stdout } = await run(bin, ['--version']);
    const { stdout: help } = await run(bin, ['--help']);
    // No token in the environment: DefaultAzureCredential, from the file shipped beside the bin.
    const noCredential = await run(bin, ['--broker', 'https://kv-lease.invalid', 'vaults'], {
      env: cleanEnv({}),
    }).catch((error: { code: number; stderr: string }) => error);

    expect(tarball).toMatch(/^kv-lease-cli-\d+\.\d+\.\d+\.tgz$/);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(help).toMatch(/Exit codes:/);
    expect(noCredential).toMatchObject({ code: 3 });
    expect((noCredential as { stderr: string }).stderr).toMatch(/DefaultAzureCredential said: /);
    expect(readdirSync(join(app, 'node_modules'))).toEqual([
      '.bin',
      '.package-lock.json',
      'kv-lease-cli',
    ]);
  });
});
