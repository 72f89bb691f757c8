import { SQL_WRITES_IN_FLIGHT } from '../../src/targets/sql/firewall';
import {
  type BenchContext,
  type BrokerProcess,
  median,
  publicIp,
  RESOURCE_GROUP,
  round,
  type Row,
  type ScenarioResult,
  sqlArmClient,
  startBrokers,
  uniqueTable,
} from '../harness';
import { lockedServer, serverStats, sqlServerId, sqlTarget } from '../targets';
import { fireBurst, latencies, non201Cell, statusCounts } from './burst';
import { oneWriteBudget, SAMPLES, timedGrants, versus, WRITE_LATENCY_MS } from './single-grant';

/**
 * Scenario 13: the SQL kind next to today's Key Vault rows (issue #15, point 9), with the same
 * emulator settings (300 ms per rule write). One grant against the one raw call a pipeline
 * would make itself (`firewallRules.createOrUpdate` through `@azure/arm-sql`), then a burst of
 * 200 grants on one server, on one broker and spread over two brokers sharing the table: its
 * p99, and how many rule PUTs Resource Manager saw in flight at once (the emulator's count).
 *
 * NOTE: a SQL server holds at most 128 rules, so the 200 grants come from 100 addresses, two
 * grants each (two jobs behind one address); on two brokers the two grants of an address go to
 * different brokers. One rule per leased range means 100 PUTs at most.
 */

const SCENARIO = '13 sql';
const SINGLE_SERVER = 'sql-bench-single';
const RAW_SERVER = 'sql-bench-raw';
const BURST_SIZE = 200;
const GRANTS_PER_ADDRESS = 2;
const BURST_RANGES = BURST_SIZE / GRANTS_PER_ADDRESS;
/** Address blocks of `publicIp`, apart from every other scenario's. */
const BLOCK = { single: 60, raw: 61, burst: 62 } as const;

interface SqlBurst {
  label: string;
  brokers: number;
  server: string;
}

const BURSTS: SqlBurst[] = [
  { label: '200/1 broker', brokers: 1, server: 'sql-bench-burst1' },
  { label: '200/2 brokers', brokers: 2, server: 'sql-bench-burst2' },
];

/** SAMPLES raw rule PUTs through the SDK, each a new rule, timed. */
async function rawPuts(ctx: BenchContext): Promise<number[]> {
  const client = sqlArmClient(ctx.emulator);
  const put = async (n: number) => {
    const ip = publicIp(BLOCK.raw, n);
    const started = performance.now();
    await client.firewallRules.createOrUpdate(RESOURCE_GROUP, RAW_SERVER, `raw-${ip}`, {
      startIpAddress: ip,
      endIpAddress: ip,
    });
    return performance.now() - started;
  };
  await put(0); // warm-up
  const ms: number[] = [];
  for (let n = 1; n <= SAMPLES; n += 1) ms.push(await put(n));
  return ms;
}

async function singleRows(
  ctx: BenchContext,
  broker: BrokerProcess,
): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const grants = await timedGrants(
    ctx,
    broker,
    sqlTarget(ctx.emulator, SINGLE_SERVER),
    BLOCK.single,
  );
  const calls = serverStats(ctx.emulator, SINGLE_SERVER);
  const raw = await rawPuts(ctx);
  const grantMs = median(grants.ms);
  const putMs = median(raw);
  const budget = oneWriteBudget(putMs);
  const non201 = grants.statuses.filter((status) => status !== 201);
  const scenario = `${SCENARIO} single grant`;
  return {
    rows: [
      {
        scenario,
        metric: `grant median (n=${grants.ms.length})`,
        value: round(grantMs),
        unit: 'ms',
      },
      { scenario, metric: 'raw PUT of one rule median', value: round(putMs), unit: 'ms' },
      {
        scenario,
        metric: 'grant vs one PUT',
        value: versus(grantMs, putMs),
        // The Key Vault row's budget for a grant next to its one write.
        target: `<= 1.5x PUT + 50 ms (${round(budget)} ms)`,
        pass: grants.ms.length > 0 && grantMs <= budget,
      },
      {
        scenario,
        metric: 'ARM calls per grant (list / PUT)',
        value: `${round(calls.lists / SAMPLES, 1)} / ${round(calls.puts / SAMPLES, 1)}`,
      },
      {
        scenario,
        metric: 'non-201 grants',
        value: non201.length === 0 ? 0 : `${non201.length} (${non201.join(', ')})`,
        target: '0',
        pass: non201.length === 0,
      },
    ],
    details: {
      grantMs: grants.ms.map((ms) => round(ms, 1)),
      grantArmCalls: calls,
      statuses: grants.statuses,
      rawPutMs: raw.map((ms) => round(ms, 1)),
    },
  };
}

async function burstRows(
  ctx: BenchContext,
  burst: SqlBurst,
  brokers: BrokerProcess[],
  block: number,
): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const target = sqlTarget(ctx.emulator, burst.server);
  const { outcomes, wallMs } = await fireBurst(ctx, {
    target,
    size: BURST_SIZE,
    brokers: brokers.slice(0, burst.brokers),
    block,
    warm: true,
    address: (n) => publicIp(block, Math.floor(n / GRANTS_PER_ADDRESS)),
  });
  const stats = serverStats(ctx.emulator, burst.server);
  const granted = outcomes.filter((o) => o.status === 201);
  const lost = granted.filter((o) => !target.admits(o.ip)).length;
  const missingAtAnswer = granted.filter((o) => !o.ruleAtAnswer).length;
  const non201 = outcomes.length - granted.length;
  const statuses = statusCounts(outcomes);
  const figures = latencies(outcomes);
  // What bounded PUTs cost at least: the ranges, SQL_WRITES_IN_FLIGHT at a time, one write each.
  const floorMs = Math.ceil(BURST_RANGES / SQL_WRITES_IN_FLIGHT) * WRITE_LATENCY_MS;
  const scenario = `${SCENARIO} burst ${burst.label}`;
  return {
    rows: [
      {
        scenario,
        metric: 'latency p50 / p99 / max',
        value: `${figures.p50} / ${figures.p99} / ${figures.max}`,
        unit: 'ms',
      },
      {
        scenario,
        metric: `p99 vs ${BURST_RANGES} PUTs, ${SQL_WRITES_IN_FLIGHT} at a time (${floorMs} ms)`,
        value: `${round(figures.p99 / floorMs, 2)}x`,
      },
      {
        scenario,
        metric: 'rule PUTs in flight at once, most',
        value: stats.peakWritesInFlight,
        // The adapter's bound per write; one writer per server at a time across instances.
        target: `<= ${SQL_WRITES_IN_FLIGHT}`,
        pass: stats.peakWritesInFlight <= SQL_WRITES_IN_FLIGHT,
      },
      {
        scenario,
        metric: `rule PUTs sent (applied), ${BURST_RANGES} ranges`,
        value: `${stats.puts} (${stats.writesApplied})`,
        target: `<= ${BURST_RANGES}, one per range`,
        pass: stats.puts <= BURST_RANGES,
      },
      {
        scenario,
        metric: 'lost rules: afterwards / at the 201',
        value: `${lost} / ${missingAtAnswer}`,
        target: '0 / 0',
        pass: lost === 0 && missingAtAnswer === 0,
      },
      {
        scenario,
        metric: 'non-201 answers',
        value: non201Cell(non201, statuses),
        target: '0',
        pass: non201 === 0,
      },
    ],
    details: {
      label: burst.label,
      size: BURST_SIZE,
      ranges: BURST_RANGES,
      brokers: burst.brokers,
      ...figures,
      floorMs,
      puts: stats.puts,
      deletes: stats.deletes,
      lists: stats.lists,
      writesApplied: stats.writesApplied,
      peakWritesInFlight: stats.peakWritesInFlight,
      lostRules: lost,
      missingAtAnswer,
      statuses,
      wallMs: round(wallMs),
    },
  };
}

export async function sqlRows(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.configure({
    writeLatencyMs: WRITE_LATENCY_MS,
    readLatencyMs: 0,
    conflictOnOverlap: true,
  });
  const servers = [SINGLE_SERVER, RAW_SERVER, ...BURSTS.map((burst) => burst.server)];
  for (const server of servers) ctx.emulator.sql.create(lockedServer(server));
  // NOTE: one pair of brokers for the whole scenario, as in scenario 12.
  const brokers = await startBrokers(ctx, {
    count: 2,
    vaults: [],
    targets: servers.filter((server) => server !== RAW_SERVER).map(sqlServerId),
    table: uniqueTable('sql'),
  });
  try {
    const single = await singleRows(ctx, brokers[0] as BrokerProcess);
    const rows = [...single.rows];
    const bursts: Record<string, unknown>[] = [];
    for (const [index, burst] of BURSTS.entries()) {
      ctx.log(`SQL burst of ${BURST_SIZE} on ${burst.brokers} broker(s)`);
      const result = await burstRows(ctx, burst, brokers, BLOCK.burst + index);
      rows.push(...result.rows);
      bursts.push(result.details);
    }
    return {
      rows,
      details: {
        writeLatencyMs: WRITE_LATENCY_MS,
        samples: SAMPLES,
        writesInFlightBound: SQL_WRITES_IN_FLIGHT,
        single: single.details,
        bursts,
      },
    };
  } finally {
    await Promise.all(brokers.map((broker) => ctx.children.stop(broker.child)));
  }
}
