import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { SqlFirewallRule } from '../../dev/emulator/sql/firewall-rules';
import type { RunningEmulator } from '../../dev/emulator/types';
import {
  type CallResult,
  type TestBroker,
  testBroker,
  testEmulator,
  uniqueTable,
} from '../support/harness';

/**
 * Concurrency across instances for both firewall models: two brokers (in-process, one lease
 * table: what two Function instances share) take many grants and releases at once, of the same
 * and of different ranges, on one storage account (whole list, one PATCH per pass, 409 on
 * overlap) and on one SQL server (one rule per range, PUT and DELETE). Whatever the
 * interleaving: each 201 finds its rule on the resource when it is answered, each release's 200
 * finds its rule gone unless another active lease holds it, and at the end the resource holds
 * exactly the active leases' rules beside the operator's own, which are never touched.
 */

const RG = 'rg-conc';
/** Addresses: a small pool, so that many leases share a range and releases race grants. */
const POOL = 10;
const address = (n: number) => `52.40.0.${(n % POOL) + 1}`;

let emulator: RunningEmulator;
beforeAll(async () => {
  // Writes take a while and overlap: the writers' passes interleave, storage answers 409 on
  // overlap, the lock changes hands between the instances.
  emulator = await testEmulator({ writeLatencyMs: 40, readLatencyMs: 5 });
});
afterAll(async () => {
  await emulator.close();
});

/** A deterministic stream of numbers in [0, 1) (mulberry32): the same seed, the same run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Two brokers on one lease table, managing `targets`. */
function twoBrokers(targets: string[]): TestBroker[] {
  const env = { LEASE_TABLE_NAME: uniqueTable() };
  return [0, 1].map(() => testBroker({ emulator, vaults: [], targets, env }));
}

interface Kind {
  /** The broker's rules on the resource now, as canonical addresses (`a.b.c.d`), sorted, with duplicates. */
  brokerAddresses(): string[];
  /** The rules the broker must never touch, as they are now. */
  foreign(): unknown;
}

/**
 * Runs the workload against `target` through `brokers` (each call to one picked at random): a
 * burst of 30 grants on 10 addresses; releases of about half of them at once with 20 more
 * grants of the same addresses; every lease of half the addresses released at once with 10 more
 * grants (some of those addresses among them); then the leases of those addresses granted
 * meanwhile released too. Returns what went wrong at answer time and the leases left active.
 */
async function workload(brokers: TestBroker[], target: string, kind: Kind, seed: number) {
  const rand = random(seed);
  const pick = () => brokers[Math.floor(rand() * brokers.length)] as TestBroker;
  const late: string[] = [];
  const failed: string[] = [];
  const active = new Map<string, string>(); // lease id -> address

  const grantOne = async (n: number) => {
    const ip = address(n);
    const answer: CallResult = await pick().call('POST', '/api/leases', {
      body: { target, ttlSeconds: 900 },
      headers: { 'x-forwarded-for': ip },
    });
    if (answer.status !== 201) {
      failed.push(`grant ${ip}: ${answer.status} ${answer.text}`);
      return;
    }
    // The emulator runs in this process: the resource as it is when the answer arrives.
    if (!kind.brokerAddresses().includes(ip)) late.push(`201 for ${ip} before its rule`);
    active.set(answer.body.id as string, ip);
  };
  const releaseOne = async (id: string) => {
    const ip = active.get(id) as string;
    const answer = await pick().call('DELETE', `/api/leases/${id}`);
    active.delete(id);
    if (answer.status !== 200) {
      failed.push(`release ${ip}: ${answer.status} ${answer.text}`);
      return;
    }
    // Held by no other lease that may be active (granted, being granted, or being released
    // but not answered yet) at answer time: the rule is gone.
    const stillHeld = [...active.values()].includes(ip) || pendingGrants.has(ip);
    if (!stillHeld && kind.brokerAddresses().includes(ip))
      late.push(`200 for the release of ${ip} with its rule still there`);
  };
  const pendingGrants = new Map<string, number>();
  const tracked = async (n: number) => {
    const ip = address(n);
    pendingGrants.set(ip, (pendingGrants.get(ip) ?? 0) + 1);
    try {
      await grantOne(n);
    } finally {
      const left = (pendingGrants.get(ip) ?? 1) - 1;
      if (left === 0) pendingGrants.delete(ip);
      else pendingGrants.set(ip, left);
    }
  };

  const foreignBefore = kind.foreign();
  await Promise.all(Array.from({ length: 30 }, (_, n) => tracked(n)));
  const firstIds = [...active.keys()];
  const releasing = firstIds.filter(() => rand() < 0.6);
  // NOTE: `active` keeps a lease until its release is answered (it may still hold the rule).
  await Promise.all([
    ...releasing.map((id) => releaseOne(id)),
    ...Array.from({ length: 20 }, (_, n) => tracked(Math.floor(rand() * POOL) + n * POOL)),
  ]);
  // Every lease of half the addresses released at once (their rules must go), while the same
  // and other addresses are granted again (their rules must stay or come back).
  const emptied = new Set(
    Array.from({ length: POOL }, (_, n) => address(n)).filter(() => rand() < 0.5),
  );
  const rest = [...active.entries()].filter(([, ip]) => emptied.has(ip)).map(([id]) => id);
  await Promise.all([
    ...rest.map((id) => releaseOne(id)),
    ...Array.from({ length: 10 }, () => tracked(Math.floor(rand() * POOL))),
  ]);
  // And once more without grants: rules of addresses no lease holds any more are deleted.
  const last = [...active.entries()].filter(([, ip]) => emptied.has(ip)).map(([id]) => id);
  await Promise.all(last.map((id) => releaseOne(id)));

  const listed = await brokers[0]?.call('GET', `/api/leases?target=${target}&$top=1000`);
  const listedAddresses = new Set(
    (listed?.body.value as { ip: string }[]).map((lease) => lease.ip.replace('/32', '')),
  );
  return { late, failed, active, foreignBefore, listedAddresses };
}

describe('Two brokers on one lease table, many grants and releases at once', () => {
  it('When they race on one storage account, then every answer finds the account as promised and the end state is exactly the active leases plus the operator’s rules', async () => {
    const name = `stconc${Math.random().toString(36).slice(2, 10)}`;
    const id = emulator.storage.create({
      resourceGroup: RG,
      name,
      networkAcls: {
        defaultAction: 'Deny',
        bypass: 'AzureServices',
        ipRules: [
          { value: '20.40.60.80', action: 'Allow' },
          { value: '20.40.61.0/24', action: 'Allow' },
        ],
      },
    });
    const brokers = twoBrokers([id]);
    const kind: Kind = {
      brokerAddresses: () =>
        emulator.storage
          .getNetworkAcls(id)
          .ipRules.map((rule) => rule.value)
          .filter((value) => value.startsWith('52.40.'))
          .sort(),
      foreign: () =>
        emulator.storage
          .getNetworkAcls(id)
          .ipRules.filter((rule) => !rule.value.startsWith('52.40.')),
    };

    const run = await workload(brokers, name, kind, 11);

    expect(run.failed).toEqual([]);
    expect(run.late).toEqual([]);
    const expected = [...new Set(run.active.values())].sort();
    expect(kind.brokerAddresses()).toEqual(expected);
    expect([...run.listedAddresses].sort()).toEqual(expected);
    expect(kind.foreign()).toEqual(run.foreignBefore);
    expect(emulator.storage.getNetworkAcls(id).defaultAction).toBe('Deny');
    // The sweep of either instance finds nothing to do.
    const writes = emulator.storage.stats()[id.toLowerCase()]?.writesApplied;
    await brokers[1]?.services.sweep();
    expect(emulator.storage.stats()[id.toLowerCase()]?.writesApplied).toBe(writes);
  });

  it('When they race on one SQL server that interrupts some deletes, then no kvlease- rule is lost or left, and the operator’s rules stay as they were', async () => {
    const name = `sql-conc-${Math.random().toString(36).slice(2, 10)}`;
    const operator: SqlFirewallRule = {
      name: 'office',
      startIpAddress: '20.40.60.0',
      endIpAddress: '20.40.60.255',
    };
    const id = emulator.sql.create({
      resourceGroup: RG,
      name,
      allowAzureServices: true,
      firewallRules: [operator],
    });
    const brokers = twoBrokers([id]);
    const rules = () => emulator.sql.listFirewallRules(id);
    const kind: Kind = {
      brokerAddresses: () =>
        rules()
          .filter((rule) => /^kvlease-/i.test(rule.name))
          .map((rule) => {
            // One address per rule: start = end.
            expect(rule.endIpAddress).toBe(rule.startIpAddress);
            return rule.startIpAddress;
          })
          .sort(),
      foreign: () =>
        rules()
          .filter((rule) => !/^kvlease-/i.test(rule.name))
          .sort((a, b) => a.name.localeCompare(b.name)),
    };

    // Azure SQL may refuse a rule DELETE with 409 OperationInterrupted: retried, nothing left.
    emulator.configure({ interruptedDeletes: { rate: 0.3 } });
    const run = await workload(brokers, name, kind, 23).finally(() =>
      emulator.configure({ interruptedDeletes: null }),
    );

    expect(run.failed).toEqual([]);
    expect(run.late).toEqual([]);
    const expected = [...new Set(run.active.values())].sort();
    // Exactly one rule per active range: none missing, none left, no duplicates.
    expect(kind.brokerAddresses()).toEqual(expected);
    expect([...run.listedAddresses].sort()).toEqual(expected);
    expect(kind.foreign()).toEqual(run.foreignBefore);
    process.stdout.write(`[sql race] ${JSON.stringify(emulator.sql.stats()[id.toLowerCase()])}\n`);
    // The races did delete rules (how many were interrupted depends on the interleaving).
    expect(emulator.sql.stats()[id.toLowerCase()]?.deletes).toBeGreaterThan(3);
    const writes = emulator.sql.stats()[id.toLowerCase()]?.writesApplied;
    await brokers[0]?.services.sweep();
    expect(emulator.sql.stats()[id.toLowerCase()]?.writesApplied).toBe(writes);
  });
});
