import { startBrokerProcesses } from '../../dev/local/processes';
import {
  type BenchContext,
  brokerEnv,
  type BrokerProcess,
  grant,
  type GrantOutcome,
  lockedVault,
  percentile,
  publicIp,
  release,
  round,
  type Row,
  rulesOf,
  type ScenarioResult,
  seeded,
  sleep,
  uniqueTable,
} from '../harness';
import { startStoreMeter } from '../store-meter';

/**
 * Scenario 15 (issue #16, point 4; opt-in: KV_LEASE_BENCH_ONLY=15 or
 * KV_LEASE_BENCH_CAPACITY=1): an organisation on one deployment. 500 Key
 * Vaults, 10,000 grants per simulated hour spread over them (skewed: a few
 * vaults are hot), three broker instances sharing one table, 3 % of
 * Resource Manager calls failing (500/503/429), ARM writes of 200 ms.
 *
 * Time is compressed by COMPRESSION (default 2: a simulated hour takes
 * thirty wall minutes): arrivals come twice as fast, and every duration is
 * half as long — jobs hold their lease 1–4 simulated minutes, a cancelled
 * job (15 %) never releases and its lease expires at its TTL (its hold
 * plus one simulated minute, what a job asks for), the sweep runs every simulated minute (its deployed default) on
 * one instance (the timer is a singleton in Azure). The run lasts WALL_S
 * (default 120 s = 4 simulated minutes, about 650 grants; a job whose hold
 * would end after the window keeps its lease), then waits for the last
 * answers and one more sweep period, whose store and ARM calls are
 * counted apart (what one sweep of every target costs). NOTE: the
 * compression multiplies the load on the one azurite process of this machine
 * by the same factor: at 6x and 3x, sweeps of 500 vaults back to back starved
 * it (grants answered 503 after the store's 10 s bound; docs/capacity.md). Per-minute figures are given per simulated
 * (real-time) minute, i.e. divided by the compression, and set against
 * Resource Manager's documented budget for one principal in one subscription
 * (token buckets: writes 200, refilled at 10/s; reads 250, refilled at 25/s).
 */

const SCENARIO = '13 capacity';
const TARGETS = Number(process.env.KV_LEASE_CAPACITY_TARGETS ?? 500);
const GRANTS_PER_HOUR = Number(process.env.KV_LEASE_CAPACITY_GRANTS_PER_HOUR ?? 10_000);
const COMPRESSION = Number(process.env.KV_LEASE_CAPACITY_COMPRESSION ?? 2);
const WALL_S = Number(process.env.KV_LEASE_CAPACITY_WALL_S ?? 120);
const INSTANCES = 3;
const FAULT_RATE = 0.03;
const WRITE_LATENCY_MS = 200;
const READ_LATENCY_MS = 50;
const CANCELLED = 0.15;
const HOLD_MIN_S = 60;
const HOLD_MAX_S = 240;
/** A job asks for its hold plus this slack (simulated seconds): a cancelled job's lease expires that long after it would have ended. */
const TTL_SLACK_S = 60;
/** The deployed sweep runs every minute ('0 *\/1 * * * *'). */
const SWEEP_PERIOD_S = 60;
/** Resource Manager, per subscription, per principal, per operation type (refill per second). */
const BUDGET = { writesPerMinute: 10 * 60, readsPerMinute: 25 * 60 };
const SEED = 20261208;

interface Job {
  at: number;
  vault: string;
  ip: string;
  broker: number;
  holdMs: number;
  cancelled: boolean;
}

function plan(): Job[] {
  const random = seeded(SEED);
  const perWallSecond = (GRANTS_PER_HOUR / 3600) * COMPRESSION;
  const jobs: Job[] = [];
  for (let at = 0, n = 0; ; n += 1) {
    at += (-Math.log(1 - random()) / perWallSecond) * 1000; // Poisson arrivals
    if (at >= WALL_S * 1000) break;
    // Skewed: the square of a uniform draw puts half the traffic on the first quarter of the vaults.
    const vault = `kv-cap-${String(Math.floor(random() ** 2 * TARGETS)).padStart(3, '0')}`;
    jobs.push({
      at,
      vault,
      ip: publicIp(100 + Math.floor(n / 60_000), n % 60_000),
      broker: n % INSTANCES,
      holdMs: ((HOLD_MIN_S + random() * (HOLD_MAX_S - HOLD_MIN_S)) * 1000) / COMPRESSION,
      cancelled: random() < CANCELLED,
    });
  }
  return jobs;
}

export function capacityWanted(): boolean {
  return process.env.KV_LEASE_BENCH_CAPACITY === '1';
}

export async function capacity(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.configure({
    writeLatencyMs: WRITE_LATENCY_MS,
    readLatencyMs: READ_LATENCY_MS,
    conflictOnOverlap: true,
    faults: { rate: FAULT_RATE, statuses: [500, 503, 429], retryAfterSeconds: 1 },
  });
  const vaults = Array.from({ length: TARGETS }, (_, n) => `kv-cap-${String(n).padStart(3, '0')}`);
  for (const vault of vaults) ctx.emulator.createVault(lockedVault(vault));
  const meter = await startStoreMeter(ctx.storage);
  const table = uniqueTable('cap');
  const env = (sweep: boolean) =>
    brokerEnv(ctx, {
      vaults,
      table,
      env: {
        LEASE_STORAGE_CONNECTION_STRING: meter.connectionString,
        LEASE_MIN_TTL_SECONDS: '1',
        LEASE_APPLY_TIMEOUT_SECONDS: '30',
        ...(sweep
          ? {
              SWEEP_SCHEDULE: `*/${Math.max(1, Math.round(SWEEP_PERIOD_S / COMPRESSION))} * * * * *`,
            }
          : {}),
      },
    });
  const brokers: BrokerProcess[] = [
    ...(await startBrokerProcesses(1, env(true))),
    ...(await startBrokerProcesses(INSTANCES - 1, env(false))),
  ];
  for (const broker of brokers) ctx.children.track(broker.child);
  try {
    const jobs = plan();
    ctx.log(
      `capacity: ${jobs.length} grants over ${WALL_S} s wall (${round((WALL_S * COMPRESSION) / 60, 1)} simulated minutes) on ${TARGETS} vaults`,
    );
    ctx.emulator.resetStats();
    meter.reset();
    const started = performance.now();
    const grants: GrantOutcome[] = [];
    const releases: { status: number; ms: number }[] = [];
    const abandoned: { job: Job; grantedAt: number }[] = [];
    await Promise.all(
      jobs.map(async (job) => {
        await sleep(job.at - (performance.now() - started));
        const url = (brokers[job.broker] as BrokerProcess).url;
        const outcome = await grant(
          ctx,
          url,
          job.vault,
          job.ip,
          Math.round(((job.holdMs * COMPRESSION) / 1000 + TTL_SLACK_S) / COMPRESSION),
        );
        grants.push(outcome);
        if (outcome.status !== 201 || outcome.id === undefined) return;
        if (job.cancelled) {
          abandoned.push({ job, grantedAt: performance.now() });
          return;
        }
        // A job still holding its lease when the window closes releases it after the run (not counted).
        const windowLeft = WALL_S * 1000 - (performance.now() - started);
        if (job.holdMs > windowLeft) return;
        await sleep(job.holdMs);
        releases.push(await release(url, outcome.id));
      }),
    );
    const loadMs = performance.now() - started;
    const armAtLoadEnd = ctx.emulator.stats();
    const storeAtLoadEnd = meter.counts();
    // One more sweep period lets the leases that expired meanwhile be swept.
    await sleep((SWEEP_PERIOD_S / COMPRESSION) * 1000 + 2000);
    const wallMs = performance.now() - started;
    const { perVault: _perVault, ...arm } = ctx.emulator.stats();
    const store = meter.counts();
    // The tail (no grants, at most a few releases): about one sweep of every target.
    const tail = {
      ms: round(wallMs - loadMs),
      storeOps: store.total - storeAtLoadEnd.total,
      armReads: arm.gets - armAtLoadEnd.gets,
      armWrites: arm.patches + arm.puts - armAtLoadEnd.patches - armAtLoadEnd.puts,
    };
    const expiredBy = started + wallMs - ((SWEEP_PERIOD_S / COMPRESSION) * 1000 + 2000);
    const pastTtl = abandoned.filter(
      ({ job, grantedAt }) =>
        grantedAt + job.holdMs + (TTL_SLACK_S / COMPRESSION) * 1000 < expiredBy,
    );
    const staleRules = pastTtl.filter(({ job }) =>
      rulesOf(ctx.emulator, job.vault).has(`${job.ip}/32`),
    ).length;

    const simulatedMinutes = (wallMs / 1000 / 60) * COMPRESSION;
    const writes = arm.patches + arm.puts;
    const granted = grants.filter((o) => o.status === 201).length;
    const latencies = grants.map((o) => o.ms);
    const statuses: Record<string, number> = {};
    for (const o of grants) {
      const key = o.problem ?? String(o.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    // The model: writes grow with grants (a grant, a release or an expiry
    // each cost about one write on a vault nobody else is writing at that
    // moment), reads with targets (each sweep reads every target once) plus
    // one per pass (a GET before each write: taken as one per write).
    const loadMinutes = (loadMs / 1000 / 60) * COMPRESSION;
    const loadWrites = armAtLoadEnd.patches + armAtLoadEnd.puts;
    // A lease costs two events (its grant, and its release or expiry); in the
    // window fewer leases end than start (holds outlast it), so the steady
    // state is taken per event: about one write each.
    const events = grants.length + releases.length + pastTtl.length;
    const writesPerEvent = loadWrites / Math.max(1, events);
    const writesPerGrant = 2 * writesPerEvent;
    const grantsPerMinute = GRANTS_PER_HOUR / 60;
    const sweepsPerMinute = 60 / SWEEP_PERIOD_S;
    const grantsPerHourByWrites = Math.floor(
      (BUDGET.writesPerMinute * 60) / Math.max(writesPerGrant, 1e-9),
    );
    const targetsByReads = Math.floor(
      (BUDGET.readsPerMinute - grantsPerMinute * writesPerGrant) / sweepsPerMinute,
    );
    const figures = {
      targets: TARGETS,
      grantsPerHour: GRANTS_PER_HOUR,
      compression: COMPRESSION,
      wallMs: round(wallMs),
      loadMs: round(loadMs),
      simulatedMinutes: round(simulatedMinutes, 1),
      grants: grants.length,
      granted,
      statuses,
      releases: releases.length,
      releasesOk: releases.filter((r) => r.status === 200).length,
      abandoned: abandoned.length,
      pastTtl: pastTtl.length,
      staleRules,
      grantP50: round(percentile(latencies, 50)),
      grantP99: round(percentile(latencies, 99)),
      releaseP50: round(
        percentile(
          releases.map((r) => r.ms),
          50,
        ),
      ),
      releaseP99: round(
        percentile(
          releases.map((r) => r.ms),
          99,
        ),
      ),
      arm,
      // Over the window the grants arrived in (the tail has none).
      armWritesPerMinute: round(loadWrites / loadMinutes, 1),
      armReadsPerMinute: round(armAtLoadEnd.gets / loadMinutes, 1),
      armWritesAll: writes,
      store,
      storeOpsPerGrant: round(store.total / Math.max(1, grants.length), 1),
      writesPerEvent: round(writesPerEvent, 2),
      writesPerGrant: round(writesPerGrant, 2),
      grantsPerHourByWrites,
      targetsByReads,
      budget: BUDGET,
      tail,
    };
    ctx.log(`capacity: ${JSON.stringify(figures)}`);
    const rows: Row[] = [
      {
        scenario: SCENARIO,
        metric: `grants answered 201 (of ${grants.length}; ${TARGETS} vaults, ${COMPRESSION}x compressed)`,
        value: `${granted} (${Object.entries(statuses)
          .map(([status, count]) => `${count}x ${status}`)
          .join(', ')})`,
      },
      {
        scenario: SCENARIO,
        metric: 'grant latency p50 / p99',
        value: `${figures.grantP50} / ${figures.grantP99}`,
        unit: 'ms',
      },
      {
        scenario: SCENARIO,
        metric: 'release latency p50 / p99',
        value: `${figures.releaseP50} / ${figures.releaseP99}`,
        unit: 'ms',
      },
      {
        scenario: SCENARIO,
        metric: `ARM writes per minute (budget ${BUDGET.writesPerMinute})`,
        value: `${figures.armWritesPerMinute} (${round((100 * figures.armWritesPerMinute) / BUDGET.writesPerMinute)} %)`,
        target: `< ${BUDGET.writesPerMinute}`,
        pass: figures.armWritesPerMinute < BUDGET.writesPerMinute,
      },
      {
        scenario: SCENARIO,
        metric: `ARM reads per minute (budget ${BUDGET.readsPerMinute})`,
        value: `${figures.armReadsPerMinute} (${round((100 * figures.armReadsPerMinute) / BUDGET.readsPerMinute)} %)`,
        target: `< ${BUDGET.readsPerMinute}`,
        pass: figures.armReadsPerMinute < BUDGET.readsPerMinute,
      },
      {
        scenario: SCENARIO,
        metric: 'ARM writes per lease event (grant, release, expiry); injected faults',
        value: `${figures.writesPerEvent}; ${arm.faultsInjected}`,
      },
      {
        scenario: SCENARIO,
        metric: 'store round trips per grant (grant, release, passes, sweeps)',
        value: figures.storeOpsPerGrant,
      },
      {
        scenario: SCENARIO,
        metric: `the last ${round(tail.ms / 1000)} s (about one sweep, no grants): store ops; ARM reads`,
        value: `${tail.storeOps}; ${tail.armReads}`,
      },
      {
        scenario: SCENARIO,
        metric: `saturates first: grants/h by writes; targets by reads at ${GRANTS_PER_HOUR} grants/h`,
        value: `${grantsPerHourByWrites}; ${targetsByReads}`,
      },
      {
        scenario: SCENARIO,
        metric: 'expired leases whose rule outlived a sweep',
        value: `${staleRules} of ${pastTtl.length}`,
        target: '0',
        pass: staleRules === 0,
      },
    ];
    return { rows, details: figures };
  } finally {
    ctx.emulator.configure({ faults: null });
    await Promise.all(brokers.map((broker) => ctx.children.stop(broker.child)));
    await meter.close();
  }
}
