import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { STATE } from '../../clients/pipeline/lease-step';
import { startActionStep } from '../../dev/ci/runners';
import { publicIp } from '../support/harness';
import { http } from '../support/processes';
import { ciWorld, interruptedMidGrant } from './ci-support';
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
} from './hostile';

/**
 * The committed bundle of the GitHub action, run as the runner runs it (its
 * main and post entry points, INPUT_*, GITHUB_STATE / GITHUB_OUTPUT files,
 * STATE_* for the post step), against the real broker, azurite and the
 * emulator.
 */

const ACTION = join(__dirname, '..', '..', 'clients', 'github-action');
const world = ciWorld('kv-gha');

function inputs(extra: Record<string, string> = {}): Record<string, string> {
  return {
    'broker-url': world.frontEnd.url,
    vault: world.vault,
    'ttl-seconds': '600',
    wait: 'false',
    ...extra,
  };
}

async function main(ip: string, extra: Record<string, string> = {}) {
  world.frontEnd.clientAddress = ip;
  return startActionStep({
    actionDir: ACTION,
    entry: 'main',
    inputs: inputs(extra),
    env: world.env(),
  }).done;
}

async function post(state: Record<string, string>, extra: Record<string, string> = {}) {
  return startActionStep({
    actionDir: ACTION,
    entry: 'post',
    inputs: inputs(extra),
    state,
    env: world.env(),
  }).done;
}

describe('GitHub action (bundle, runner protocol, real broker)', () => {
  it('When the main step runs, then it grants, outputs lease-id and ip, and the post step removes the rule', async () => {
    const ip = publicIp(101);
    const granted = await main(ip);
    expect(granted.exitCode, granted.stdout).toBe(0);
    expect(granted.outputs['lease-id']).toMatch(/\S+/);
    expect(granted.outputs.ip).toBe(`${ip}/32`);
    expect(granted.outputs['expires-at']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(granted.state[STATE.leaseId]).toBe(granted.outputs['lease-id']);
    expect(world.rules()).toContain(`${ip}/32`);

    const released = await post(granted.state);
    expect(released.exitCode, released.stdout).toBe(0);
    expect(released.stdout).toContain(`lease ${granted.outputs['lease-id']} is released`);
    expect(world.rules()).not.toContain(`${ip}/32`);
    const lease = await http(
      'GET',
      `${world.broker.url}/api/leases/${granted.outputs['lease-id']}`,
    );
    expect(lease.body.status).toBe('released');
  });

  it('When the data plane of the vault takes 1.5 s to apply the rule, then the main step waits for it, not a fixed time, and outputs the vault URI', async () => {
    const ip = publicIp(107);
    world.emulator.configureDataPlane({ propagationDelayMs: 1500, clientAddress: ip });
    try {
      const granted = await main(ip, {
        wait: 'true',
        'wait-timeout-seconds': '30',
        'allow-loopback-data-plane': 'true',
      });
      expect(granted.exitCode, granted.stdout).toBe(0);
      expect(granted.outputs['vault-uri']).toBe(world.emulator.vaultUri(world.vault));
      const waited = /lets this address in after (\d+\.\d) s/.exec(granted.stdout);
      expect(Number(waited?.[1])).toBeGreaterThanOrEqual(1);
      expect(Number(waited?.[1])).toBeLessThan(30);
      const released = await post(granted.state);
      expect(released.exitCode).toBe(0);
    } finally {
      world.emulator.configureDataPlane({ propagationDelayMs: 0, clientAddress: null });
    }
    expect(world.rules()).not.toContain(`${ip}/32`);
  });

  it('When the vault sees another address than the leased one, then the main step fails naming both, and the post step still releases', async () => {
    const ip = publicIp(102);
    world.emulator.configureDataPlane({ clientAddress: '198.51.100.7' });
    try {
      const granted = await main(ip, {
        wait: 'true',
        'wait-timeout-seconds': '30',
        'allow-loopback-data-plane': 'true',
      });
      expect(granted.exitCode).toBe(1);
      const error = granted.commands.find((c) => c.command === 'error')?.message ?? '';
      expect(error).toMatch(/^kv-lease: /);
      expect(error).toContain('198.51.100.7');
      expect(error).toContain(ip);
      expect(world.rules()).toContain(`${ip}/32`);

      const released = await post(granted.state);
      expect(released.exitCode).toBe(0);
    } finally {
      world.emulator.configureDataPlane({ clientAddress: null });
    }
    expect(world.rules()).not.toContain(`${ip}/32`);
  });

  it('When the job is cancelled (SIGINT) while the grant request is in flight, then the post step finds the lease by its Idempotency-Key and no active lease is left', async () => {
    const ip = publicIp(103);
    world.frontEnd.clientAddress = ip;
    const interrupted = await interruptedMidGrant(world, () =>
      startActionStep({ actionDir: ACTION, entry: 'main', inputs: inputs(), env: world.env() }),
    );
    expect(interrupted.exitCode).not.toBe(0);
    expect(interrupted.outputs['lease-id']).toBeUndefined();
    expect(interrupted.state[STATE.phase]).toBe('granting');
    expect(interrupted.state[STATE.key]).toMatch(/\S/);

    const released = await post(interrupted.state);
    expect(released.exitCode, released.stdout).toBe(0);
    expect(released.stdout).toContain('Idempotency-Key');
    expect(released.stdout).toMatch(/lease \S+ is released/);
    expect(world.rules()).not.toContain(`${ip}/32`);
    expect((await world.activeLeases()).filter((lease) => lease.ip === `${ip}/32`)).toEqual([]);
    // The repeat found the interrupted grant's lease: one lease for the address, not two.
    const all = await http('GET', `${world.broker.url}/api/leases?vault=${world.vault}&status=all`);
    const mine = all.body.value.filter((lease: { ip: string }) => lease.ip === `${ip}/32`);
    expect(mine.map((lease: { status: string }) => lease.status)).toEqual(['released']);
  });

  it('When release is false, then the post step leaves the lease to its expiry', async () => {
    const ip = publicIp(104);
    const granted = await main(ip, { release: 'false' });
    expect(granted.exitCode, granted.stdout).toBe(0);
    const kept = await post(granted.state, { release: 'false' });
    expect(kept.exitCode).toBe(0);
    expect(kept.stdout).toContain('ends at its expiry');
    expect(world.rules()).toContain(`${ip}/32`);
    const active = await world.activeLeases();
    expect(active.map((lease) => lease.id)).toContain(granted.outputs['lease-id']);
    await http('DELETE', `${world.broker.url}/api/leases/${granted.outputs['lease-id']}`);
  });

  it('When the broker refuses the grant (unknown vault), then the step fails with its problem detail and the post step releases nothing', async () => {
    const ip = publicIp(105);
    const refused = await main(ip, { vault: 'kv-unknown' });
    expect(refused.exitCode).toBe(1);
    const error = refused.commands.find((c) => c.command === 'error')?.message ?? '';
    expect(error).toMatch(/kv-unknown/);
    expect(refused.state[STATE.phase]).toBe('refused');
    const after = await post(refused.state);
    expect(after.exitCode).toBe(0);
    expect(after.stdout).toContain('nothing to release');
    expect(world.rules()).not.toContain(`${ip}/32`);
  });

  it('When a token is given as an input, then the step masks it before anything else is logged', async () => {
    const ip = publicIp(106);
    const granted = await main(ip, { token: 'secret-broker-token-123' });
    expect(granted.exitCode, granted.stdout).toBe(0);
    const masks = granted.commands.filter((c) => c.command === 'add-mask').map((c) => c.message);
    expect(masks).toContain('secret-broker-token-123');
    expect(granted.stdout.indexOf('::add-mask::')).toBeLessThan(
      granted.stdout.indexOf('kv-lease:'),
    );
    await post(granted.state, { token: 'secret-broker-token-123' });
    expect(world.rules()).not.toContain(`${ip}/32`);
  });

  it('When no broker URL is given, then the step fails with a message that says what to set and saves no state', async () => {
    const failed = await startActionStep({
      actionDir: ACTION,
      entry: 'main',
      inputs: { vault: world.vault, 'broker-url': '' },
      env: world.env(),
    }).done;
    expect(failed.exitCode).toBe(1);
    expect(failed.commands.find((c) => c.command === 'error')?.message).toMatch(
      /broker-url is required/,
    );
    expect(failed.state).toEqual({});
  });

  it("When the allow-loopback-data-plane input is not set, then the main step refuses the emulator's data plane, naming the URI and the input, and the post step releases", async () => {
    const ip = publicIp(108);
    world.emulator.configureDataPlane({ clientAddress: ip });
    try {
      const granted = await main(ip, { wait: 'true', 'wait-timeout-seconds': '30' });
      expect(granted.exitCode).toBe(1);
      const error = granted.commands.find((c) => c.command === 'error')?.message ?? '';
      expect(error).toContain(
        `refusing to send a vault token to ${world.emulator.vaultUri(world.vault)}`,
      );
      expect(error).toContain('allow-loopback-data-plane');

      const released = await post(granted.state);
      expect(released.exitCode).toBe(0);
    } finally {
      world.emulator.configureDataPlane({ clientAddress: null });
    }
    expect(world.rules()).not.toContain(`${ip}/32`);
  });

  it('When a broker answers a look-alike vault URI, then the main step sends no token there and fails naming it, the post step releases, and a configured vault-uri wins', async () => {
    const lookAlike = 'kv-demo.vault.azure.net.evil.example';
    const tls = certificate([lookAlike]);
    const [broker, trap] = await Promise.all([startFakeBroker(), startTrap(tls)]);
    try {
      const hostile = `https://${lookAlike}:${trap.port}/`;
      broker.lease = fakeLease({ vaultUri: hostile });
      // Every host name resolves to the trap's address: a token sent there would be recorded.
      const env = world.env({
        NODE_EXTRA_CA_CERTS: caFile(tls.cert),
        NODE_OPTIONS: `--require ${DNS_TO_LOOPBACK}`,
      });
      const step = (
        entry: 'main' | 'post',
        extra: Record<string, string>,
        state?: Record<string, string>,
      ) =>
        startActionStep({
          actionDir: ACTION,
          entry,
          inputs: { 'broker-url': broker.url, vault: 'kv-demo', wait: 'true', ...extra },
          ...(state ? { state } : {}),
          env,
        }).done;

      const refused = await step('main', {});
      const error = refused.commands.find((c) => c.command === 'error')?.message ?? '';
      const released = await step('post', {}, refused.state);
      const configured = await step('main', { 'vault-uri': hostile });

      expect(refused.exitCode).toBe(1);
      expect(error).toContain(`refusing to send a vault token to ${hostile}`);
      expect(error).toMatch(/not kv-demo\.<suffix> for a known Key Vault DNS suffix/);
      expect(released.exitCode).toBe(0);
      expect(broker.deletes()).toEqual([broker.lease.id]);
      expect(configured.exitCode, configured.stdout).toBe(0);
      expect(trap.seen.map((s) => s.authorization)).toEqual(['Bearer local-data-plane-token']);
    } finally {
      await Promise.all([broker.close(), trap.close()]);
    }
  });

  it("When a broker's lease fields carry a newline and terminal escapes, then the step log shows them escaped and no forged workflow command runs", async () => {
    const broker = await startFakeBroker();
    try {
      broker.lease = fakeLease({
        vault: `kv-demo\n::warning::forged${HOSTILE_TEXT}`,
        expiresAt: `soon\n::set-output name=pwned::yes`,
      });

      const granted = await startActionStep({
        actionDir: ACTION,
        entry: 'main',
        inputs: { 'broker-url': broker.url, vault: 'kv-demo', wait: 'false' },
        env: world.env(),
      }).done;

      expect(granted.exitCode, granted.stdout).toBe(0);
      expect(granted.commands.filter((c) => c.command === 'warning')).toEqual([]);
      expect(granted.commands.filter((c) => c.command === 'set-output')).toEqual([]);
      expect(granted.stdout).toContain('kv-demo\\u000a::warning::forgedrun 42\\u001b[2J');
      expect(granted.stdout.replace(/\n/g, '')).not.toMatch(RAW_CONTROL);
    } finally {
      await broker.close();
    }
  });
});

describe('GitHub action with targets of other kinds (a fake broker answers the v1.1 lease fields)', () => {
  /** The main step against a fake broker, with every host's data plane trusted as the emulator's. */
  function fakeMain(broker: FakeBroker, extra: Record<string, string>) {
    return startActionStep({
      actionDir: ACTION,
      entry: 'main',
      inputs: { 'broker-url': broker.url, wait: 'false', ...extra },
      env: world.env(),
    }).done;
  }

  it('When the lease carries warnings, one trying to forge ::error:: and ::set-output, then each is one ::warning:: of the step with its text escaped, and nothing else is forged', async () => {
    const broker = await startFakeBroker();
    try {
      broker.lease = fakeLease({
        vault: 'stdemo',
        target: 'stdemo',
        kind: 'storage',
        dataPlane: 'https://stdemo.blob.core.windows.net/',
        warnings: [
          '::error::forged',
          `same region\n::error::forged again\n::set-output name=pwned::yes${HOSTILE_TEXT}`,
        ],
      });

      const granted = await fakeMain(broker, { target: 'stdemo' });

      expect(granted.exitCode, granted.stdout).toBe(0);
      expect(broker.grants()).toEqual([expect.objectContaining({ target: 'stdemo' })]);
      expect(broker.grants()[0]).not.toHaveProperty('vault');
      const warnings = granted.commands
        .filter((c) => c.command === 'warning')
        .map((c) => c.message);
      expect(warnings).toEqual([
        'kv-lease: ::error::forged',
        expect.stringMatching(
          /^kv-lease: same region\\u000a::error::forged again\\u000a::set-output name=pwned::yesrun 42\\u001b\[2J/,
        ),
      ]);
      expect(granted.commands.filter((c) => c.command === 'error')).toEqual([]);
      expect(granted.commands.filter((c) => c.command === 'set-output')).toEqual([]);
      expect(granted.stdout.replace(/\n/g, '')).not.toMatch(RAW_CONTROL);
      expect(granted.outputs).toMatchObject({
        target: 'stdemo',
        kind: 'storage',
        'data-plane': 'https://stdemo.blob.core.windows.net/',
      });
    } finally {
      await broker.close();
    }
  });

  it('When target and vault name different targets, then the step fails naming both before any grant and saves no state; vault alone still works (sent as vault)', async () => {
    const broker = await startFakeBroker();
    try {
      const both = await fakeMain(broker, { target: 'stdemo', vault: 'kv-demo' });
      const neither = await fakeMain(broker, {});
      const v1 = await fakeMain(broker, { vault: 'kv-demo' });

      expect(both.exitCode).toBe(1);
      expect(both.commands.find((c) => c.command === 'error')?.message).toMatch(
        /^kv-lease: target 'stdemo' and vault 'kv-demo' differ: give one of them/,
      );
      expect(both.state).toEqual({});
      expect(neither.exitCode).toBe(1);
      expect(neither.commands.find((c) => c.command === 'error')?.message).toMatch(
        /no target: set target \(or its older name vault\)/,
      );
      expect(v1.exitCode, v1.stdout).toBe(0);
      expect(broker.grants()).toHaveLength(1);
      expect(broker.grants()[0]).toMatchObject({ vault: 'kv-demo' });
      expect(broker.grants()[0]).not.toHaveProperty('target');
    } finally {
      await broker.close();
    }
  });

  it("When the lease is on a storage account whose blob data plane applies the rule late, then the main step waits on the account's blob endpoint", async () => {
    const ip = publicIp(109);
    const broker = await startFakeBroker();
    const name = `stgha${Date.now().toString(36)}`;
    const id = world.emulator.storage.create({
      resourceGroup: 'rg-gha',
      name,
      networkAcls: { defaultAction: 'Deny', ipRules: [] },
    });
    // Longer than the step takes to start, so that its first probes meet the firewall.
    world.emulator.configureDataPlane({ propagationDelayMs: 5000, clientAddress: ip });
    try {
      broker.lease = fakeLease({
        vault: name,
        target: name,
        kind: 'storage',
        ip: `${ip}/32`,
        dataPlane: world.emulator.storage.blobEndpoint(name),
      });
      const before = world.emulator.storage.blobStats();
      world.emulator.storage.setNetworkAcls(id, { ipRules: [{ value: ip, action: 'Allow' }] });

      const granted = await fakeMain(broker, {
        target: name,
        wait: 'true',
        'wait-timeout-seconds': '30',
        'allow-loopback-data-plane': 'true',
      });

      expect(granted.exitCode, granted.stdout).toBe(0);
      expect(granted.stdout).toMatch(
        new RegExp(`the data plane of ${name} lets this address in after \\d+\\.\\d s`),
      );
      const after = world.emulator.storage.blobStats();
      expect(after.refused - before.refused).toBeGreaterThan(0);
      expect(after.allowed - before.allowed).toBe(1);
    } finally {
      world.emulator.configureDataPlane({ propagationDelayMs: 0, clientAddress: null });
      await broker.close();
    }
  });
});
