import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { startFrontEnd } from '../../dev/ci/front-end';
import { startActionStep, startTaskStep } from '../../dev/ci/runners';
import {
  type BenchContext,
  lockedVault,
  median,
  publicIp,
  round,
  type Row,
  rulesOf,
  type ScenarioResult,
  startBrokers,
  uniqueTable,
} from '../harness';

/**
 * Scenario 7: a post-step release. The GitHub action's post step and the
 * Azure Pipelines task's post-job handler, run from their shipped bundles as
 * the runner / agent runs them, after a main step that granted: the time from
 * the post process's start (the end of the job's last step) until the rule
 * is gone from the vault. Includes node's start-up and the bundle's load,
 * not the runner's own scheduling.
 */

const SCENARIO = '10 post-step release';
const SAMPLES = 5;
const VAULT = 'kv-post-step';
const TARGET_MS = 2000;
const WRITE_LATENCY_MS = 300;
/** From dist/bench/scenarios to the repository. */
const ROOT = join(__dirname, '..', '..', '..');

async function ruleGone(ctx: BenchContext, rule: string, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (rulesOf(ctx.emulator, VAULT).has(rule)) {
    if (performance.now() > deadline) throw new Error(`${rule} was still on ${VAULT}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return performance.now();
}

export async function postStepRelease(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.createVault(lockedVault(VAULT));
  ctx.emulator.configure({ writeLatencyMs: WRITE_LATENCY_MS });
  const [broker] = await startBrokers(ctx, {
    count: 1,
    vaults: [VAULT],
    table: uniqueTable('post'),
  });
  if (!broker) throw new Error('no broker started');
  const frontEnd = await startFrontEnd({ upstream: broker.url, clientAddress: publicIp(7, 0) });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KV_LEASE_TOKEN: 'bench-token',
    NODE_EXTRA_CA_CERTS: ctx.emulator.caPath,
  };
  const actionDir = join(ROOT, 'clients', 'github-action');
  const packaging = (await import(
    pathToFileURL(join(ROOT, 'clients', 'azure-pipelines', 'package.mjs')).href
  )) as { stage(dir: string): Promise<string> };
  const taskDir = await packaging.stage(mkdtempSync(join(tmpdir(), 'kv-lease-bench-task-')));

  const clients = {
    'GitHub action post step': async (ip: string) => {
      const inputs = { 'broker-url': frontEnd.url, vault: VAULT, wait: 'false' };
      const main = await startActionStep({ actionDir, entry: 'main', inputs, env }).done;
      if (main.exitCode !== 0) throw new Error(`main step failed: ${main.stdout.slice(-500)}`);
      const started = performance.now();
      const post = startActionStep({ actionDir, entry: 'post', inputs, state: main.state, env });
      const gone = await ruleGone(ctx, `${ip}/32`, 30_000);
      await post.done;
      return gone - started;
    },
    'Azure Pipelines task post-job': async (ip: string) => {
      const inputs = { brokerUrl: frontEnd.url, vault: VAULT, wait: 'false' };
      const execution = await startTaskStep({ taskDir, handler: 'execution', inputs, env }).done;
      if (execution.result !== 'Succeeded') {
        throw new Error(`execution failed: ${execution.stdout.slice(-500)}`);
      }
      const started = performance.now();
      const post = startTaskStep({
        taskDir,
        handler: 'postjobexecution',
        inputs,
        taskVariables: execution.taskVariables,
        env,
      });
      const gone = await ruleGone(ctx, `${ip}/32`, 30_000);
      await post.done;
      return gone - started;
    },
  };

  const rows: Row[] = [];
  const details: Record<string, unknown> = { samples: SAMPLES, writeLatencyMs: WRITE_LATENCY_MS };
  try {
    let n = 1;
    for (const [name, once] of Object.entries(clients)) {
      const ms: number[] = [];
      for (let sample = 0; sample < SAMPLES; sample += 1) {
        const ip = publicIp(7, n++);
        frontEnd.clientAddress = ip;
        ms.push(round(await once(ip)));
      }
      details[name] = { ms };
      const worst = Math.max(...ms);
      rows.push(
        {
          scenario: SCENARIO,
          metric: `${name}: start to rule gone, median of ${SAMPLES}`,
          value: round(median(ms)),
          unit: 'ms',
          target: `<= ${TARGET_MS} ms`,
          pass: median(ms) <= TARGET_MS,
        },
        {
          scenario: SCENARIO,
          metric: `${name}: start to rule gone, worst of ${SAMPLES}`,
          value: worst,
          unit: 'ms',
          target: `<= ${TARGET_MS} ms`,
          pass: worst <= TARGET_MS,
        },
      );
    }
  } finally {
    ctx.emulator.configure({ writeLatencyMs: 0 });
    await frontEnd.close();
    await ctx.children.stop(broker.child);
  }
  return { rows, details };
}
