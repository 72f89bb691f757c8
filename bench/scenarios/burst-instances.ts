import { join } from 'node:path';

import { type Child, startReadyLine } from '../../dev/local/processes';
import {
  ARM_TOKEN,
  type BenchContext,
  brokerEnv,
  grant,
  type GrantOutcome,
  lockedVault,
  percentile,
  publicIp,
  release,
  RESOURCE_GROUP,
  round,
  type Row,
  rulesOf,
  type ScenarioResult,
  SUBSCRIPTION,
  uniqueTable,
  vaultStats,
} from '../harness';
import { startStoreMeter, type StoreCounts } from '../store-meter';

/**
 * Scenario 12 (issue #16, point 2): 150 grants arriving at once on three
 * broker instances sharing one table (200 ms ARM writes, 409 on overlapping
 * writes), in alternating rounds against the minimal broker
 * (`bench/minimal-broker-child.ts`: batch, GET, PATCH, retry on 409; no store)
 * and, when KV_LEASE_BENCH_BASELINE names a built checkout, that build's
 * brokers. Each round of each implementation gets a vault of its own, served
 * once before (the steady state). Store round trips are counted by a proxy in
 * front of azurite (`bench/store-meter.ts`).
 */

const SCENARIO = '12 burst 150/3';
const GRANTS = 150;
const INSTANCES = 3;
const WRITE_LATENCY_MS = 200;
const ROUNDS = Number(process.env.KV_LEASE_BENCH_ROUNDS ?? 4);
const P99_TARGET_MS = 1100;
const MINIMAL_CHILD = join(__dirname, '..', 'minimal-broker-child.js');

interface Contender {
  name: 'kv-lease' | 'minimal' | 'baseline';
  /** The script each instance runs. */
  script: string;
  env: NodeJS.ProcessEnv;
  urls: string[];
  children: Child[];
}

interface RoundFigures {
  contender: Contender['name'];
  round: number;
  p50: number;
  p99: number;
  max: number;
  writesApplied: number;
  writeAttempts: number;
  conflicts: number;
  gets: number;
  lostRules: number;
  missingAtAnswer: number;
  non201: number;
  store: StoreCounts;
}

const vaultOf = (contender: string, roundNo: number) => `kv-b150-${contender}-${roundNo}`;

async function start(contender: Contender): Promise<void> {
  const started = await Promise.all(
    Array.from({ length: INSTANCES }, (_, index) =>
      startReadyLine<{ ready: true; url: string; pid: number }>(
        `${contender.name}-${index}`,
        contender.script,
        [],
        contender.env,
      ),
    ),
  );
  contender.urls = started.map((one) => one.ready.url);
  contender.children = started.map((one) => one.child);
}

async function burst(
  ctx: BenchContext,
  contender: Contender,
  roundNo: number,
  block: number,
  meter: Awaited<ReturnType<typeof startStoreMeter>>,
): Promise<RoundFigures> {
  const vault = vaultOf(contender.name, roundNo);
  const first = contender.urls[0] as string;
  const warm = await grant(ctx, first, vault, publicIp(block, 60_000));
  if (warm.status !== 201)
    throw new Error(`${contender.name}: warm-up grant answered ${warm.status}`);
  if (contender.name !== 'minimal' && warm.id !== undefined) await release(first, warm.id);
  ctx.emulator.resetStats();
  meter.reset();
  const outcomes: GrantOutcome[] = await Promise.all(
    Array.from({ length: GRANTS }, (_, n) =>
      grant(ctx, contender.urls[n % INSTANCES] as string, vault, publicIp(block, n)),
    ),
  );
  const store = meter.counts();
  const rules = rulesOf(ctx.emulator, vault);
  const granted = outcomes.filter((o) => o.status === 201);
  const latencies = outcomes.map((o) => o.ms);
  const stats = vaultStats(ctx.emulator, vault);
  return {
    contender: contender.name,
    round: roundNo,
    p50: round(percentile(latencies, 50)),
    p99: round(percentile(latencies, 99)),
    max: round(Math.max(...latencies)),
    writesApplied: stats.writesApplied,
    writeAttempts: stats.writes,
    conflicts: stats.conflicts,
    gets: stats.gets,
    lostRules: granted.filter((o) => !rules.has(`${o.ip}/32`)).length,
    missingAtAnswer: granted.filter((o) => !o.ruleAtAnswer).length,
    non201: outcomes.length - granted.length,
    store,
  };
}

const median = (values: number[]) => round(percentile(values, 50));

export async function burstAcrossInstances(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.configure({
    writeLatencyMs: WRITE_LATENCY_MS,
    readLatencyMs: 0,
    conflictOnOverlap: true,
  });
  const names: Contender['name'][] = ['kv-lease', 'minimal'];
  const base = process.env.KV_LEASE_BENCH_BASELINE;
  if (base) names.push('baseline');
  const vaults = names.flatMap((name) =>
    Array.from({ length: ROUNDS }, (_, roundNo) => vaultOf(name, roundNo)),
  );
  for (const vault of vaults) ctx.emulator.createVault(lockedVault(vault));
  const meter = await startStoreMeter(ctx.storage);
  const table = uniqueTable('b150');
  const env = brokerEnv(ctx, {
    vaults,
    table,
    env: { LEASE_STORAGE_CONNECTION_STRING: meter.connectionString },
  });
  const runner = (root: string) => join(root, 'dist', 'dev', 'local', 'runner.js');
  const contenders: Contender[] = names.map((name) => ({
    name,
    script:
      name === 'minimal'
        ? MINIMAL_CHILD
        : runner(name === 'baseline' ? (base as string) : join(__dirname, '..', '..', '..')),
    env:
      name === 'minimal'
        ? {
            ...process.env,
            ARM_ENDPOINT: ctx.emulator.url,
            ARM_CA: ctx.emulator.caPath,
            ARM_TOKEN,
            SUBSCRIPTION,
            RESOURCE_GROUP,
          }
        : env,
    urls: [],
    children: [],
  }));
  try {
    for (const contender of contenders) {
      await start(contender);
      for (const child of contender.children) ctx.children.track(child);
    }
    const figures: RoundFigures[] = [];
    for (let roundNo = 0; roundNo < ROUNDS; roundNo += 1) {
      // Alternate the order too, so neither side always runs on a machine just warmed by the other.
      const order = roundNo % 2 === 0 ? contenders : [...contenders].reverse();
      for (const contender of order) {
        const result = await burst(
          ctx,
          contender,
          roundNo,
          60 + roundNo * 4 + names.indexOf(contender.name),
          meter,
        );
        ctx.log(
          `${contender.name} round ${roundNo}: p99 ${result.p99} ms, ARM writes ${result.writesApplied} (${result.writeAttempts}), store ${result.store.total}`,
        );
        figures.push(result);
      }
    }
    const of = (name: Contender['name']) => figures.filter((f) => f.contender === name);
    const rows: Row[] = [];
    const minimalP99 = median(of('minimal').map((f) => f.p99));
    for (const name of names) {
      const mine = of(name);
      const p99s = mine.map((f) => f.p99);
      const scenario = `${SCENARIO} ${name}`;
      const worstWrites = Math.max(...mine.map((f) => f.writesApplied));
      const worstAttempts = Math.max(...mine.map((f) => f.writeAttempts));
      const targeted = name === 'kv-lease';
      rows.push(
        {
          scenario,
          metric: `p99 per round (median of ${ROUNDS})`,
          value: `${p99s.join(' / ')} (${median(p99s)})`,
          unit: 'ms',
          ...(targeted
            ? {
                target: `median <= ${P99_TARGET_MS} ms and <= minimal (${minimalP99})`,
                pass: median(p99s) <= P99_TARGET_MS && median(p99s) <= minimalP99,
              }
            : {}),
        },
        {
          scenario,
          metric: 'p50 (median of rounds)',
          value: median(mine.map((f) => f.p50)),
          unit: 'ms',
        },
        {
          scenario,
          metric: 'ARM writes applied per burst, worst (attempts, 409s)',
          value: `${worstWrites} (${worstAttempts}, ${Math.max(...mine.map((f) => f.conflicts))})`,
          ...(targeted ? { target: '<= 2', pass: worstWrites <= 2 } : {}),
        },
        {
          scenario,
          metric: 'lost rules: afterwards / at the 201 (all rounds)',
          value: `${mine.reduce((sum, f) => sum + f.lostRules, 0)} / ${mine.reduce((sum, f) => sum + f.missingAtAnswer, 0)}`,
          ...(name === 'minimal'
            ? {}
            : {
                target: '0 / 0',
                pass: mine.every((f) => f.lostRules === 0 && f.missingAtAnswer === 0),
              }),
        },
        {
          scenario,
          metric: 'non-201 answers (all rounds)',
          value: mine.reduce((sum, f) => sum + f.non201, 0),
          ...(name === 'minimal' ? {} : { target: '0', pass: mine.every((f) => f.non201 === 0) }),
        },
      );
      if (name !== 'minimal')
        rows.push({
          scenario,
          metric: 'store round trips per grant (median of rounds)',
          value: round(
            percentile(
              mine.map((f) => f.store.total / GRANTS),
              50,
            ),
            2,
          ),
        });
    }
    return {
      rows,
      details: {
        grants: GRANTS,
        instances: INSTANCES,
        writeLatencyMs: WRITE_LATENCY_MS,
        rounds: figures,
      },
    };
  } finally {
    for (const contender of contenders)
      await Promise.all(contender.children.map((child) => ctx.children.stop(child)));
    await meter.close();
  }
}
