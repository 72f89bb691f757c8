import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import {
  type BenchContext,
  grant,
  lockedVault,
  median,
  publicIp,
  round,
  type Row,
  type ScenarioResult,
  startBrokers,
  uniqueTable,
} from '../harness';

/**
 * Scenario 6: the kv-lease CLI. The time from `kv-lease grant --wait` to a vault whose data plane
 * answers, when the emulated data plane applies a firewall write only after D seconds; the goal
 * is D + one grant + 2 s, where the old pipeline template slept a fixed 60 s. And the CLI's
 * start-up (`kv-lease --version`), which every pipeline step pays.
 */

const SCENARIO = '8 clients';
const VAULT = 'kv-cli-bench';
const WRITE_LATENCY_MS = 300;
const DELAYS_S = [5, 20];
const TEMPLATE_WAIT_S = 60;
const STARTUP_RUNS = 15;
const STARTUP_TARGET_MS = 300;
const SLACK_MS = 2000;

const run = promisify(execFile);
/** The bundle `npm run build` makes, as the package's bin runs it. */
const BIN = join(__dirname, '..', '..', '..', 'clients', 'cli', 'dist', 'kv-lease.js');

async function timed(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  const { stdout } = await run(process.execPath, [BIN, ...args], { env });
  return { ms: performance.now() - started, stdout };
}

export async function clientsScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  const previous = { writeLatencyMs: 0 };
  ctx.emulator.createVault(lockedVault(VAULT));
  ctx.emulator.configure({ writeLatencyMs: WRITE_LATENCY_MS });
  try {
    const [broker] = await startBrokers(ctx, {
      count: 1,
      vaults: [VAULT],
      table: uniqueTable('cli'),
    });
    if (!broker) throw new Error('no broker started');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KV_LEASE_BROKER: broker.url,
      KV_LEASE_AUTH: 'none',
      KV_LEASE_VAULT_TOKEN: 'bench-data-plane-token',
      // The emulator's data plane is on loopback: the CLI's documented opt-in.
      KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: '1',
      NODE_EXTRA_CA_CERTS: ctx.emulator.caPath,
    };

    // One grant, as the broker answers it (HTTP, no CLI): the "+ one grant" of the goal.
    await grant(ctx, broker.url, VAULT, publicIp(6, 0));
    const grants: number[] = [];
    for (let n = 1; n <= 5; n += 1)
      grants.push((await grant(ctx, broker.url, VAULT, publicIp(6, n))).ms);
    const oneGrantMs = median(grants);
    rows.push({
      scenario: SCENARIO,
      metric: 'one grant (median of 5, HTTP, 300 ms ARM writes)',
      value: round(oneGrantMs),
      unit: 'ms',
    });

    const waits: Record<string, unknown> = {};
    for (const [index, delayS] of DELAYS_S.entries()) {
      const ip = publicIp(6, 100 + index);
      ctx.emulator.configureDataPlane({
        vaults: { [VAULT]: { propagationDelayMs: delayS * 1000, clientAddress: ip } },
      });
      ctx.log(`grant --wait with a ${delayS} s propagation delay`);
      const { ms, stdout } = await timed(
        ['grant', '--vault', VAULT, '--ip', ip, '--wait', '--wait-timeout', '120s', '--json'],
        env,
      );
      const lease = JSON.parse(stdout) as { id: string };
      await timed(['release', lease.id], env);
      const targetMs = delayS * 1000 + oneGrantMs + SLACK_MS;
      waits[`${delayS}s`] = {
        ms: round(ms),
        targetMs: round(targetMs),
        overDelayMs: round(ms - delayS * 1000),
      };
      rows.push({
        scenario: SCENARIO,
        metric: `kv-lease grant --wait, propagation D = ${delayS} s: until the vault answers`,
        value: round(ms),
        unit: 'ms',
        target: `<= D + grant + 2 s = ${round(targetMs)} ms`,
        pass: ms <= targetMs,
      });
      rows.push({
        scenario: SCENARIO,
        metric: `old template, D = ${delayS} s: grant + fixed ${TEMPLATE_WAIT_S} s sleep`,
        value: round(TEMPLATE_WAIT_S * 1000 + oneGrantMs),
        unit: 'ms',
      });
    }
    ctx.emulator.configureDataPlane({ vaults: { [VAULT]: null } });

    const startups: number[] = [];
    await timed(['--version'], env); // warm the file cache: not counted
    for (let n = 0; n < STARTUP_RUNS; n += 1) startups.push((await timed(['--version'], env)).ms);
    const startup = median(startups);
    rows.push({
      scenario: SCENARIO,
      metric: `kv-lease --version start-up (median of ${STARTUP_RUNS})`,
      value: round(startup),
      unit: 'ms',
      target: `<= ${STARTUP_TARGET_MS} ms`,
      pass: startup <= STARTUP_TARGET_MS,
    });
    const baseline: number[] = [];
    for (let n = 0; n < 5; n += 1) {
      const started = performance.now();
      await run(process.execPath, ['-e', '0']);
      baseline.push(performance.now() - started);
    }
    rows.push({
      scenario: SCENARIO,
      metric: 'node -e 0 on this machine now (median of 5), for comparison',
      value: round(median(baseline)),
      unit: 'ms',
    });
    details['grants'] = grants.map((ms) => round(ms));
    details['waits'] = waits;
    details['startupMs'] = startups.map((ms) => round(ms));
    details['nodeBaselineMs'] = baseline.map((ms) => round(ms));
    await broker.child.stop();
  } finally {
    ctx.emulator.configure(previous);
  }
  return { rows, details };
}
