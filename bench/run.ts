import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

import { startEmulator } from '../dev/emulator/server';
import { azuriteConnectionString, freePort, startAzurite } from '../dev/local/processes';
import { type BenchContext, Children, round, type Row, type ScenarioResult } from './harness';
import { bursts } from './scenarios/burst';
import { burstAcrossInstances } from './scenarios/burst-instances';
import { capacity, capacityWanted } from './scenarios/capacity';
import { clientsScenario } from './scenarios/clients';
import { coldStart } from './scenarios/cold-start';
import { consoleFirstRender } from './scenarios/console';
import { documentedVsLease } from './scenarios/documented-method';
import { failover, permanentRefusal } from './scenarios/faults';
import { postStepRelease } from './scenarios/post-step';
import { singleGrant } from './scenarios/single-grant';
import { sqlRows } from './scenarios/sql';
import { storageRows } from './scenarios/storage';
import { sweepTenThousand } from './scenarios/sweep';

/**
 * `npm run bench`: starts azurite (in memory) and the ARM emulator (Key Vaults, storage
 * accounts and SQL servers, in this process), runs the scenarios one after the other, prints
 * a table and writes bench/results/bench-<timestamp>.json and latest.json. A missed
 * target is printed as MISSED; the exit code is 0 unless the bench itself broke.
 */

const RESULTS = join(__dirname, '..', '..', 'bench', 'results');
const RSS_TARGET_MB = 300;

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function table(rows: Row[]): string {
  const cells = rows.map((row) => [
    row.scenario,
    row.metric,
    `${row.value}${row.unit ? ` ${row.unit}` : ''}`,
    row.target ?? '',
    row.pass === undefined ? '' : row.pass ? 'pass' : 'MISSED',
  ]);
  const header = ['scenario', 'metric', 'value', 'target', 'result'];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((cell) => (cell[column] as string).length)),
  );
  const line = (cell: string[]) =>
    cell
      .map((text, column) => text.padEnd(widths[column] as number))
      .join(' | ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('-|-');
  return [line(header), rule, ...cells.map(line)].join('\n');
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const children = new Children();
  const certDir = mkdtempSync(join(tmpdir(), 'kv-lease-bench-'));
  let stopping = false;
  const stopEverything = async () => {
    if (stopping) return;
    stopping = true;
    await children.stopAll();
    rmSync(certDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      void stopEverything().then(() => process.exit(130));
    });
  }

  const azuritePort = await freePort();
  log(`starting azurite (in memory) on ${azuritePort} and the ARM emulator`);
  const azurite = children.track(await startAzurite({ port: azuritePort }));
  const emulator = await startEmulator({ certDir });
  const ctx: BenchContext = {
    storage: azuriteConnectionString(azuritePort),
    emulator,
    children,
    log,
  };

  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  // KV_LEASE_BENCH_ONLY=2,9 runs only those scenarios (by number), e.g. to compare two builds.
  const only = new Set(
    (process.env.KV_LEASE_BENCH_ONLY ?? '')
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean),
  );
  const wanted = (name: string) => only.size === 0 || only.has(name.split('-')[0] ?? '');
  const scenario = async <T extends ScenarioResult>(
    name: string,
    run: () => Promise<T>,
  ): Promise<T | undefined> => {
    if (!wanted(name)) return undefined;
    log(`scenario ${name}`);
    const started = performance.now();
    const result = await run();
    rows.push(...result.rows);
    details[name] = { ...result.details, scenarioMs: round(performance.now() - started) };
    return result;
  };

  let failure: unknown;
  try {
    await scenario('1-single-grant', () => singleGrant(ctx));
    const burst = await scenario('2-burst', () => bursts(ctx));
    const sweep = await scenario('3-sweep', () => sweepTenThousand(ctx));
    await scenario('4-documented-method', () => documentedVsLease(ctx));

    const peaks = [
      ...(burst?.brokerPeakRssMb ?? []).map((mb, index) => ({
        what: `broker ${index} after the bursts`,
        mb,
      })),
      ...(sweep ? [{ what: 'sweep process after 10k leases', mb: sweep.sweepPeakRssMb }] : []),
    ];
    for (const peak of peaks) {
      rows.push({
        scenario: '5 peak RSS',
        metric: `${peak.what} (VmHWM)`,
        value: peak.mb,
        unit: 'MB',
        target: `< ${RSS_TARGET_MB} MB`,
        pass: peak.mb < RSS_TARGET_MB,
      });
    }
    if (peaks.length > 0) details['5-peak-rss'] = { peaks, targetMb: RSS_TARGET_MB };
    await scenario('6-failover', () => failover(ctx));
    await scenario('7-permanent-refusal', () => permanentRefusal(ctx));
    await scenario('8-clients', () => clientsScenario(ctx));
    await scenario('9-console', () => consoleFirstRender(ctx));
    await scenario('10-post-step-release', () => postStepRelease(ctx));
    await scenario('11-cold-start', () => coldStart(ctx));
    await scenario('12-storage', () => storageRows(ctx));
    await scenario('13-sql', () => sqlRows(ctx));
    await scenario('14-burst-150-over-3', () => burstAcrossInstances(ctx));
    // Over two minutes of wall time: only when asked for (by number, or KV_LEASE_BENCH_CAPACITY=1).
    if (only.has('15') || capacityWanted()) await scenario('15-capacity', () => capacity(ctx));
  } catch (error) {
    failure = error;
    log(
      `the bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  } finally {
    await emulator.close();
    await children.stop(azurite);
    await stopEverything();
  }

  const totalMs = Date.now() - startedAt.getTime();
  // Latencies on a shared 2-core machine depend on what else runs: say so next to the figures.
  const load = { start: round(loadAtStart, 2), end: round(loadavg()[0] ?? 0, 2) };
  const busy = Math.max(load.start, load.end) > cpus().length;
  const missed = rows.filter((row) => row.pass === false);
  process.stdout.write(`\n${table(rows)}\n\n`);
  process.stdout.write(
    `${rows.filter((row) => row.pass === true).length} targets met, ${missed.length} MISSED` +
      `${failure ? ', bench INCOMPLETE (see the error above)' : ''}; total ${round(totalMs / 1000, 1)} s\n`,
  );
  process.stdout.write(
    `machine: ${cpus().length} cpus, 1-min load average ${load.start} at start, ${load.end} at end` +
      `${busy ? ' (BUSY: other processes competed for the cpus; timings are pessimistic)' : ''}\n`,
  );
  for (const row of missed)
    process.stdout.write(
      `MISSED: ${row.scenario}: ${row.metric} = ${row.value} (target ${row.target})\n`,
    );

  const report = {
    startedAt: startedAt.toISOString(),
    totalMs,
    machine: {
      cpus: cpus().length,
      memoryMb: Math.round(totalmem() / 2 ** 20),
      node: process.version,
    },
    complete: failure === undefined,
    error:
      failure === undefined
        ? undefined
        : failure instanceof Error
          ? failure.message
          : JSON.stringify(failure),
    rows,
    details,
  };
  mkdirSync(RESULTS, { recursive: true });
  const stamp = startedAt.toISOString().replace(/:/g, '-');
  const file = join(RESULTS, `bench-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
  return failure === undefined ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
