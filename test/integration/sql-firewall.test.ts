import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { startEmulator } from '../../dev/emulator/server';
import type { SqlFirewallRule } from '../../dev/emulator/sql/firewall-rules';
import type { RunningEmulator } from '../../dev/emulator/types';
import type { ManagedTarget } from '../../src/domain/target';
import { FirewallError } from '../../src/ports/target-firewall';
import type { ArmFirewallOptions } from '../../src/targets/arm';
import { SQL_WRITES_IN_FLIGHT, SqlFirewall } from '../../src/targets/sql/firewall';
import { sqlKind } from '../../src/targets/sql/kind';
import { sqlClient, SUBSCRIPTION } from '../emulator/helpers';

/*
 * The SQL adapter against the ARM emulator, driven by the real @azure/arm-sql:
 * what it reads and writes on a server, what it never touches, and how it
 * reports refusals. (The port's shared contract is test/contracts/target-firewall.contract.ts.)
 */

const RG = 'rg-sql';
const ALLOW_AZURE: SqlFirewallRule = {
  name: 'AllowAllWindowsAzureIps',
  startIpAddress: '0.0.0.0',
  endIpAddress: '0.0.0.0',
};
const OFFICE: SqlFirewallRule = {
  name: 'office',
  startIpAddress: '20.40.60.0',
  endIpAddress: '20.40.60.255',
};

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});
afterEach(() => {
  emulator.configure({
    readLatencyMs: 0,
    writeLatencyMs: 0,
    faults: null,
    hang: null,
    refusals: [],
    interruptedDeletes: null,
  });
});

let counter = 0;

/** A fresh server (seeded with `rules`) and the target the broker would make of its ID. */
function server(
  rules: SqlFirewallRule[] = [],
  options: { publicNetworkAccess?: 'Enabled' | 'Disabled' } = {},
): ManagedTarget {
  counter += 1;
  const id = emulator.sql.create({
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RG,
    name: `sql-fw-${counter}`,
    firewallRules: rules,
    ...options,
  });
  const target = sqlKind.parseId(id);
  if (typeof target !== 'object') throw new Error(`not a SQL server ID: ${id}`);
  return target;
}

function firewall(options: Partial<ArmFirewallOptions> = {}, inFlight?: number): SqlFirewall {
  return new SqlFirewall(
    {
      endpoint: emulator.url,
      credential: {
        getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
      },
      tlsCa: emulator.caPem,
      maxRetries: 0,
      ...options,
    },
    inFlight,
  );
}

function rulesOn(target: ManagedTarget): SqlFirewallRule[] {
  return emulator.sql
    .listFirewallRules(target.resourceId)
    .sort((a, b) => a.name.localeCompare(b.name));
}

function statsOf(target: ManagedTarget) {
  const stats = emulator.sql.stats()[target.resourceId.toLowerCase()];
  if (!stats) throw new Error('no stats');
  return stats;
}

async function failureOf(promise: Promise<unknown>): Promise<FirewallError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof FirewallError) return error;
    throw error;
  }
  throw new Error('expected a FirewallError, but the call succeeded');
}

/** `count` foreign rules `other-<i>` on 40.0.x.y. */
function foreignRules(count: number): SqlFirewallRule[] {
  return Array.from({ length: count }, (_, i) => {
    const address = `40.0.${Math.floor(i / 256)}.${i % 256}`;
    return { name: `other-${i}`, startIpAddress: address, endIpAddress: address };
  });
}

/** `count` distinct /32 CIDRs on 52.1.x.y. */
function cidrs(count: number, from = 0): string[] {
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return `52.1.${Math.floor(n / 256)}.${n % 256}/32`;
  });
}

describe('SqlFirewall against the emulator', () => {
  it('When rules are written from a fresh read and read back, then the server holds one kvlease- rule per CIDR and the read reports them as the broker\u2019s', async () => {
    const target = server();
    const fw = firewall();

    const empty = await fw.read(target);
    const first = await fw.write(target, empty, ['52.10.20.30/32', '52.10.21.0/24']);
    const read = await fw.read(target);
    const second = await fw.write(target, read, ['52.10.21.0/24', '52.10.22.5/32']);
    const final = await fw.read(target);

    expect(empty).toMatchObject({ rules: [], owned: [], reserved: 0, dirty: false });
    expect(first.added).toEqual(['52.10.20.30/32', '52.10.21.0/24']);
    expect(read).toMatchObject({
      rules: ['52.10.20.30/32', '52.10.21.0/24'],
      owned: ['52.10.20.30/32', '52.10.21.0/24'],
      reserved: 0,
      dirty: false,
    });
    expect(second).toEqual({
      read: ['52.10.20.30/32', '52.10.21.0/24'],
      written: ['52.10.21.0/24', '52.10.22.5/32'],
      added: ['52.10.22.5/32'],
      removed: ['52.10.20.30/32'],
    });
    expect(final.rules).toEqual(['52.10.21.0/24', '52.10.22.5/32']);
    expect(rulesOn(target)).toEqual([
      { name: 'kvlease-52.10.21.0-24', startIpAddress: '52.10.21.0', endIpAddress: '52.10.21.255' },
      { name: 'kvlease-52.10.22.5-32', startIpAddress: '52.10.22.5', endIpAddress: '52.10.22.5' },
    ]);
  });

  it('When the written rules are those read, then nothing is sent', async () => {
    const target = server();
    const fw = firewall();
    await fw.write(target, await fw.read(target), ['52.10.20.30/32']);
    const before = statsOf(target);

    const result = await fw.write(target, await fw.read(target), ['52.10.20.30/32']);

    expect(result.added).toEqual([]);
    expect(result.removed).toEqual([]);
    expect(statsOf(target)).toMatchObject({ puts: before.puts, deletes: before.deletes });
  });

  it('When rules without the prefix are on the server, then they are counted as reserved, never reported, never touched, even when every broker rule goes', async () => {
    const target = server([ALLOW_AZURE, OFFICE, { ...OFFICE, name: 'lease-52.10.20.30-32' }]);
    const fw = firewall();

    const read = await fw.read(target);
    await fw.write(target, read, ['52.10.20.30/32', '20.40.60.0/24']);
    const withLeases = await fw.read(target);
    await fw.write(target, withLeases, []);
    const after = await fw.read(target);

    expect(read).toMatchObject({ rules: [], owned: [], reserved: 3, dirty: false });
    expect(withLeases).toMatchObject({
      rules: ['20.40.60.0/24', '52.10.20.30/32'],
      reserved: 3,
    });
    expect(after).toMatchObject({ rules: [], reserved: 3 });
    expect(rulesOn(target)).toEqual(
      [ALLOW_AZURE, { ...OFFICE, name: 'lease-52.10.20.30-32' }, OFFICE].sort((a, b) =>
        a.name.localeCompare(b.name),
      ),
    );
  });

  it('When kvlease- rules are malformed (range changed, unparsable name, a second rule on a range), then the read says dirty and the next write removes or repairs each', async () => {
    const target = server([
      ALLOW_AZURE,
      // Its range was widened by hand.
      { name: 'kvlease-52.1.1.1-32', startIpAddress: '52.1.1.1', endIpAddress: '52.1.1.2' },
      { name: 'kvlease-52.2.2.2-32', startIpAddress: '52.2.2.2', endIpAddress: '52.2.2.2' },
      // A second rule on 52.2.2.2, under a name the broker never writes.
      { name: 'kvlease-52.2.2.2-32-copy', startIpAddress: '52.2.2.2', endIpAddress: '52.2.2.2' },
      { name: 'kvlease-junk', startIpAddress: '52.3.3.3', endIpAddress: '52.3.3.3' },
      // The broker's name in another case: still the broker's.
      { name: 'KVLEASE-52.4.4.4-32', startIpAddress: '52.4.4.4', endIpAddress: '52.4.4.4' },
    ]);
    const fw = firewall();

    const read = await fw.read(target);
    const result = await fw.write(target, read, read.rules.concat('52.1.1.1/32'));
    const after = await fw.read(target);

    expect(read).toMatchObject({
      rules: ['52.2.2.2/32', '52.4.4.4/32'],
      owned: ['52.2.2.2/32', '52.4.4.4/32'],
      reserved: 1,
      dirty: true,
    });
    expect(result.removed.sort()).toEqual([
      'kvlease-52.2.2.2-32-copy (52.2.2.2-52.2.2.2)',
      'kvlease-junk (52.3.3.3-52.3.3.3)',
    ]);
    expect(result.added).toEqual(['52.1.1.1/32']);
    expect(result.written).toEqual(['52.1.1.1/32', '52.2.2.2/32', '52.4.4.4/32']);
    expect(after).toMatchObject({
      rules: ['52.1.1.1/32', '52.2.2.2/32', '52.4.4.4/32'],
      reserved: 1,
      dirty: false,
    });
    expect(rulesOn(target)).toEqual([
      ALLOW_AZURE,
      { name: 'kvlease-52.1.1.1-32', startIpAddress: '52.1.1.1', endIpAddress: '52.1.1.1' },
      { name: 'kvlease-52.2.2.2-32', startIpAddress: '52.2.2.2', endIpAddress: '52.2.2.2' },
      { name: 'KVLEASE-52.4.4.4-32', startIpAddress: '52.4.4.4', endIpAddress: '52.4.4.4' },
    ]);
  });

  it('When a range is in next but left out of current.rules, then its rule is PUT again although the server holds it', async () => {
    const target = server();
    const fw = firewall();
    await fw.write(target, await fw.read(target), ['52.10.20.30/32']);
    const read = await fw.read(target);
    const before = statsOf(target);

    const result = await fw.write(target, { ...read, rules: [] }, ['52.10.20.30/32']);

    expect(result.added).toEqual(['52.10.20.30/32']);
    expect(result.removed).toEqual([]);
    expect(statsOf(target).puts).toBe(before.puts + 1);
    expect(statsOf(target).deletes).toBe(before.deletes);
    expect(rulesOn(target)).toHaveLength(1);
  });

  it('When public network access is disabled on the server, then a write fails at once as a permanent refusal that says so, and reads still work', async () => {
    const target = server([ALLOW_AZURE], { publicNetworkAccess: 'Disabled' });
    const fw = firewall({ maxRetries: 3 });

    const read = await fw.read(target);
    const started = Date.now();
    const error = await failureOf(fw.write(target, read, ['52.10.20.30/32']));

    expect(error.kind).toBe('rejected');
    expect(error.permanent).toBe(true);
    expect(error.outcomeUnknown).toBe(false);
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/public network access is disabled on the SQL server/i);
    expect(error.message).toContain('DenyPublicEndpointEnabled');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(statsOf(target).puts).toBe(1);
    expect(rulesOn(target)).toEqual([ALLOW_AZURE]);
  });

  it('When a write asks for more rules than the server may hold beside the others, then it is refused before any call, as rejected naming the limit', async () => {
    const target = server(foreignRules(sqlKind.maxRules - 1));
    const fw = firewall();

    const read = await fw.read(target);
    const error = await failureOf(fw.write(target, read, ['52.10.20.30/32', '52.10.20.31/32']));

    expect(read.reserved).toBe(127);
    expect(error).toMatchObject({ kind: 'rejected', permanent: true, outcomeUnknown: false });
    expect(error.message).toMatch(/more than its maximum of 128 firewall rules/);
    expect(error.message).toContain("127 rules not the broker's and 2 leased ranges");
    expect(statsOf(target).puts).toBe(0);
    expect(rulesOn(target)).toHaveLength(127);
  });

  it('When the server fills up after the read, then the PUT that finds it full is refused (40611) as a conflict (retried with a fresh read) naming the limit, and the rule that fitted stays', async () => {
    const target = server(foreignRules(sqlKind.maxRules - 3));
    const fw = firewall();
    const read = await fw.read(target);
    for (const rule of foreignRules(sqlKind.maxRules - 1).slice(sqlKind.maxRules - 3))
      emulator.sql.setFirewallRule(target.resourceId, rule);

    const error = await failureOf(fw.write(target, read, ['52.10.20.30/32', '52.10.20.31/32']));
    const after = await fw.read(target);

    expect(error).toMatchObject({ kind: 'conflict', permanent: false, outcomeUnknown: false });
    expect(error.message).toMatch(/maximum of 128 firewall rules.*\(error 40611\)/);
    expect(error.message).toContain('1 of 2 firewall rule writes failed');
    expect(after.rules).toHaveLength(1);
    expect(rulesOn(target)).toHaveLength(128);
  });

  it('When a value that is not IPv4 is written, then the write is refused before any call, as rejected', async () => {
    const target = server([ALLOW_AZURE]);
    const fw = firewall();

    const error = await failureOf(
      fw.write(target, await fw.read(target), ['52.10.20.30/32', '2001:db8::/64']),
    );

    expect(error).toMatchObject({ kind: 'rejected', permanent: true, outcomeUnknown: false });
    expect(error.message).toContain('IPv4');
    expect(statsOf(target).puts).toBe(0);
  });

  it('When the server is at its limit and a write swaps one broker rule for another, then the DELETE goes before the PUT and the swap succeeds', async () => {
    const target = server(foreignRules(sqlKind.maxRules - 2));
    const fw = firewall();
    await fw.write(target, await fw.read(target), ['52.10.20.30/32', '52.10.20.31/32']);
    emulator.configure({ writeLatencyMs: 30 });

    const read = await fw.read(target);
    await fw.write(target, read, ['52.10.20.30/32', '52.10.20.32/32']);

    expect((await fw.read(target)).rules).toEqual(['52.10.20.30/32', '52.10.20.32/32']);
    expect(statsOf(target).peakWritesInFlight).toBe(1);
  });

  it('When a delete is interrupted (409 OperationInterrupted), then the write fails as a conflict the writer retries', async () => {
    const target = server();
    const fw = firewall();
    await fw.write(target, await fw.read(target), ['52.10.20.30/32']);
    emulator.configure({ interruptedDeletes: { rate: 1 } });

    const error = await failureOf(fw.write(target, await fw.read(target), []));

    expect(error.kind).toBe('conflict');
    expect(error.permanent).toBe(false);
    expect(error.outcomeUnknown).toBe(false);
    expect(rulesOn(target)).toHaveLength(1);
  });

  it('When one call is refused and another fails with an unknown outcome, then the refusal is reported and the outcome is still unknown', async () => {
    const target = server();
    const fw = firewall();
    await fw.write(target, await fw.read(target), ['52.10.20.30/32']);
    emulator.configure({
      refusals: [{ vault: target.name, status: 403, methods: ['PUT'] }],
      faults: { rate: 1, statuses: [503], methods: ['DELETE'] },
    });

    const error = await failureOf(fw.write(target, await fw.read(target), ['52.10.20.31/32']));

    expect(error.kind).toBe('rejected');
    expect(error.permanent).toBe(true);
    expect(error.outcomeUnknown).toBe(true);
    expect(error.status).toBe(403);
    expect(error.message).toContain('2 of 2 firewall rule writes failed');
  });

  it('When Resource Manager hangs and the caller gives up, then the write fails at once as a timeout whose outcome is unknown', async () => {
    const target = server();
    const fw = firewall();
    const read = await fw.read(target);
    emulator.configure({ hang: { rate: 1, ms: 1500 } });

    const started = Date.now();
    const error = await failureOf(
      fw.write(target, read, ['52.10.20.30/32', '52.10.20.31/32'], AbortSignal.timeout(200)),
    );

    expect(error.kind).toBe('timeout');
    expect(error.permanent).toBe(false);
    expect(error.outcomeUnknown).toBe(true);
    expect(error.message).toContain('2 of 2 firewall rule writes failed');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('When many rules are written, then at most the bound are in flight at once, and the bound shortens the write', async () => {
    // NOTE: long enough that 8 calls overlap even on a busy machine.
    const latency = 100;
    const count = 16;
    emulator.configure({ writeLatencyMs: latency });
    const timings: Record<string, { ms: number; peak: number }> = {};
    for (const inFlight of [1, SQL_WRITES_IN_FLIGHT]) {
      const target = server([ALLOW_AZURE]);
      const fw = firewall({}, inFlight);
      const read = await fw.read(target);
      const started = performance.now();
      await fw.write(target, read, cidrs(count));
      timings[inFlight] = {
        ms: Math.round(performance.now() - started),
        peak: statsOf(target).peakWritesInFlight,
      };
      expect((await fw.read(target)).rules).toHaveLength(count);
    }
    console.info(`SQL write of ${count} rules at ${latency} ms each: ${JSON.stringify(timings)}`);

    expect(timings[1]?.peak).toBe(1);
    expect(timings[SQL_WRITES_IN_FLIGHT]?.peak).toBe(SQL_WRITES_IN_FLIGHT);
    expect(timings[1]?.ms).toBeGreaterThanOrEqual(count * latency);
    expect(timings[SQL_WRITES_IN_FLIGHT]?.ms).toBeGreaterThanOrEqual(
      (count / SQL_WRITES_IN_FLIGHT) * latency,
    );
    // NOTE: 1/8 of the time in theory; only "shorter" is asserted, as the machine may be busy.
    expect(timings[SQL_WRITES_IN_FLIGHT]?.ms).toBeLessThan(timings[1]?.ms ?? 0);
  });

  it('When the data plane is asked for, then it is the server\u2019s FQDN and port 1433, read once', async () => {
    const target = server();
    const fw = firewall();

    const first = await fw.dataPlane(target);
    const second = await fw.dataPlane(target);
    const gets = statsOf(target).gets;
    // The emulator names its own TDS listener as the host when it runs one: ask it as the SDK does.
    const host = (await sqlClient(emulator).servers.get(RG, target.name)).fullyQualifiedDomainName;

    expect(host).toBeTruthy();
    expect(first).toBe(`${host}:1433`);
    expect(second).toBe(first);
    expect(gets).toBe(1);
  });

  it('When the server does not exist, then the read fails as not-found', async () => {
    const target = server();
    const fw = firewall();
    const gone: ManagedTarget = {
      ...target,
      name: 'sql-fw-missing',
      resourceId: target.resourceId.replace(target.name, 'sql-fw-missing'),
    };

    const error = await failureOf(fw.read(gone));

    expect(error.kind).toBe('not-found');
    expect(error.permanent).toBe(true);
  });
});
