import { TableClient } from '@azure/data-tables';

import { startReadyLine } from '../../dev/local/processes';
import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import { mapWithLimit } from '../../src/domain/concurrency';
import type { SweepResult } from '../../src/sweep/sweep';
import {
  type BenchContext,
  brokerEnv,
  peakRssMb,
  round,
  rulesOf,
  type ScenarioResult,
  seedLeasedVaults,
  sleep,
  STATIC_RULE,
  SWEEP_CHILD,
  uniqueTable,
  vaultStats,
} from '../harness';

/**
 * Scenario 3: one sweep of 10,000 expired leases over 100 vaults. The state a
 * long outage would leave is seeded directly (vault rules in the emulator,
 * active leases past their expiry and the broker's ownership in the store),
 * then one sweep runs in its own process, configured like a broker.
 */

const SCENARIO = '3 sweep 10k';
const VAULTS = 100;
const LEASES_PER_VAULT = 100;
const WRITE_LATENCY_MS = 300;
const SEED_IN_FLIGHT = 16;
const SWEEP_TIMEOUT_MS = 180_000;
/**
 * The V8 heap of the platform's worker. Node sizes its heap from the memory it
 * may use (a quarter of it, cgroup limits included): 512 MB on a 2,048 MB Flex
 * Consumption instance (`instanceMemoryMB`, the default). On a development
 * machine with 24 GB it would take 4 GB, and V8 then lets the heap grow to
 * four times what survives a full collection before collecting again (up to
 * 1.4 times with a 512 MB heap): the sweep's peak RSS would measure this
 * machine's memory, not the sweep (README, scenario 3).
 */
const WORKER_HEAP_MB = 512;

export interface SweepScenarioResult extends ScenarioResult {
  sweepPeakRssMb: number;
}

function vaultName(index: number): string {
  return `kv-sweep-${String(index).padStart(3, '0')}`;
}

async function seed(ctx: BenchContext, table: string): Promise<{ ms: number }> {
  const started = performance.now();
  await seedLeasedVaults(ctx, {
    table,
    vaults: Array.from({ length: VAULTS }, (_, v) => vaultName(v)),
    leasesPerVault: LEASES_PER_VAULT,
    ipBlock: 100,
    inFlight: SEED_IN_FLIGHT,
    lease: (_n, now) => ({
      principal: 'bench',
      reason: 'bench: seeded expired lease',
      createdAt: now - 2 * 3600_000,
      expiresAt: now - 3600_000,
    }),
  });
  return { ms: performance.now() - started };
}

/** Counts of the table's lease rows after the sweep, read directly (no side effects). */
async function leaseCounts(
  ctx: BenchContext,
  table: string,
): Promise<{ live: number; expired: number; other: number }> {
  const client = TableClient.fromConnectionString(ctx.storage, table, {
    allowInsecureConnection: true,
  });
  const counts = { live: 0, expired: 0, other: 0 };
  for await (const entity of client.listEntities<{ status?: string }>({
    queryOptions: { select: ['RowKey', 'status'] },
  })) {
    const row = entity.rowKey ?? '';
    if (row.startsWith('A_')) counts.live += 1;
    else if (row.startsWith('L_') && entity.status === 'expired') counts.expired += 1;
    else if (row.startsWith('L_')) counts.other += 1;
  }
  return counts;
}

export async function sweepTenThousand(ctx: BenchContext): Promise<SweepScenarioResult> {
  ctx.emulator.configure({
    writeLatencyMs: WRITE_LATENCY_MS,
    readLatencyMs: 0,
    conflictOnOverlap: true,
  });
  const table = uniqueTable('sweep');
  const vaults = Array.from({ length: VAULTS }, (_, v) => vaultName(v));
  ctx.log(
    `seeding ${VAULTS} vaults x ${LEASES_PER_VAULT} expired leases (${SEED_IN_FLIGHT} in flight)`,
  );
  const seeded = await seed(ctx, table);
  ctx.log(`seeded in ${round(seeded.ms / 1000, 1)} s; sweeping in a child process`);

  ctx.emulator.resetStats();
  const spawned = performance.now();
  const { child, ready } = await startReadyLine<{
    ready: true;
    pid: number;
    sweepMs: number;
    result: SweepResult;
    peakRssMb?: number;
    heapMb: { peakUsed: number; peakTotal: number; liveAfterFullGc: number; fullGcs: number };
  }>(
    'sweep',
    SWEEP_CHILD,
    [],
    brokerEnv(ctx, {
      vaults,
      table,
      env: { NODE_OPTIONS: `--max-old-space-size=${WORKER_HEAP_MB}` },
    }),
    SWEEP_TIMEOUT_MS,
  );
  ctx.children.track(child);
  const processMs = performance.now() - spawned;
  let sweepPeakRssMb: number;
  try {
    // Audit lines are written after the sweep returns; let them land before reading the peak.
    await sleep(1500);
    sweepPeakRssMb = peakRssMb(ready.pid) ?? ready.peakRssMb ?? NaN;
  } finally {
    await ctx.children.stop(child);
  }

  const perVault = vaults.map((vault) => vaultStats(ctx.emulator, vault));
  const writesApplied = perVault.reduce((sum, s) => sum + s.writesApplied, 0);
  const writeAttempts = perVault.reduce((sum, s) => sum + s.writes, 0);
  const conflicts = perVault.reduce((sum, s) => sum + s.conflicts, 0);
  const exactlyOne = perVault.filter((s) => s.writesApplied === 1 && s.writes === 1).length;
  const leftovers = vaults.map((vault) => [...rulesOf(ctx.emulator, vault)]);
  const staticOnly = leftovers.filter(
    (rules) => rules.length === 1 && rules[0] === STATIC_RULE,
  ).length;
  const remainingLeased = leftovers.reduce(
    (sum, rules) => sum + rules.filter((rule) => rule !== STATIC_RULE).length,
    0,
  );
  const staticKept = leftovers.filter((rules) => rules.includes(STATIC_RULE)).length;
  const counts = await leaseCounts(ctx, table);
  const store = new TableLeaseStore({ tableName: table, connectionString: ctx.storage });
  const ownedLeft = (
    await mapWithLimit(vaults, 16, async (vault) => (await store.getVaultState(vault)).owned.length)
  ).reduce((sum, n) => sum + n, 0);
  const total = VAULTS * LEASES_PER_VAULT;

  return {
    rows: [
      {
        scenario: SCENARIO,
        metric: 'seeding (not measured)',
        value: round(seeded.ms / 1000, 1),
        unit: 's',
      },
      {
        scenario: SCENARIO,
        metric: 'sweep time',
        value: round(ready.sweepMs / 1000, 2),
        unit: 's',
        target: '< 60 s',
        pass: ready.sweepMs < 60_000 && ready.result.failed.length === 0,
      },
      {
        scenario: SCENARIO,
        metric: 'process start + sweep',
        value: round(processMs / 1000, 2),
        unit: 's',
      },
      {
        scenario: SCENARIO,
        metric: `sweep heap: live after full GCs / peak in use (${WORKER_HEAP_MB} MB heap)`,
        value: `${ready.heapMb.liveAfterFullGc} / ${ready.heapMb.peakUsed}`,
        unit: 'MB',
      },
      {
        scenario: SCENARIO,
        metric: 'firewall writes (attempts, 409s)',
        value: `${writesApplied} (${writeAttempts}, ${conflicts})`,
        target: `${VAULTS}, one per vault`,
        pass: exactlyOne === VAULTS,
      },
      {
        scenario: SCENARIO,
        metric: 'vaults with exactly one write',
        value: `${exactlyOne}/${VAULTS}`,
      },
      {
        scenario: SCENARIO,
        metric: 'vaults left with the static rule only',
        value: `${staticOnly}/${VAULTS}`,
        target: `${VAULTS}/${VAULTS}`,
        pass: staticOnly === VAULTS,
      },
      {
        scenario: SCENARIO,
        metric: 'leased rules remaining',
        value: remainingLeased,
        target: '0',
        pass: remainingLeased === 0,
      },
      {
        scenario: SCENARIO,
        metric: 'leases now expired (live left)',
        value: `${counts.expired} (${counts.live})`,
        target: `${total} (0)`,
        pass: counts.expired === total && counts.live === 0,
      },
      {
        scenario: SCENARIO,
        metric: 'owned rules left in the store',
        value: ownedLeft,
        target: '0',
        pass: ownedLeft === 0,
      },
    ],
    details: {
      vaults: VAULTS,
      leasesPerVault: LEASES_PER_VAULT,
      writeLatencyMs: WRITE_LATENCY_MS,
      seedMs: round(seeded.ms),
      sweepMs: round(ready.sweepMs),
      processMs: round(processMs),
      sweepResult: ready.result,
      writesApplied,
      writeAttempts,
      conflicts,
      vaultsWithExactlyOneWrite: exactlyOne,
      vaultsStaticOnly: staticOnly,
      vaultsKeepingStatic: staticKept,
      remainingLeased,
      leaseRows: counts,
      ownedLeft,
      sweepPeakRssMb,
      workerHeapMb: WORKER_HEAP_MB,
      sweepHeapMb: ready.heapMb,
    },
    sweepPeakRssMb,
  };
}
