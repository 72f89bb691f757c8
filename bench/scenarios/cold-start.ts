import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { entryPoint } from '../../dev/local/app-loader';
import { startReadyLine } from '../../dev/local/processes';
import {
  type BenchContext,
  brokerEnv,
  grant,
  lockedVault,
  median,
  publicIp,
  round,
  type Row,
  type ScenarioResult,
  uniqueTable,
} from '../harness';

/**
 * Scenario 11: the cold start of the Function App (issue #16.1). For the
 * layout that ships (package.json "main", the esbuild bundle) and, when
 * KV_LEASE_BENCH_BASELINE names a built checkout of an earlier release, for
 * that one too, alternately on the same machine:
 * - loading the entry the host loads, in a fresh process, with
 *   `@azure/functions-core` answered as the worker does (bench/load-child.ts):
 *   the time and the files read;
 * - process start to first grant answered: a local runner process from spawn
 *   to its first 201 (its own modules, azurite, the emulator's 300 ms write);
 * - the package: the files the deployment would hold on the app's share.
 * Without a baseline the rows carry the figures last measured for release
 * 0.1 (tsc output + node_modules, remote build) on the bench machine.
 */

const SCENARIO = '11 cold start';
const LOADS = 7;
const STARTS = 5;
const LOAD_TARGET_MS = 60;
const FILES_TARGET = 10;
const VAULT = 'kv-cold';
const ROOT = join(__dirname, '..', '..', '..');
const LOAD_CHILD = join(__dirname, '..', 'load-child.js');

/**
 * Release 0.1 (tsc output + node_modules, remote build), measured by this
 * scenario with KV_LEASE_BENCH_BASELINE on the 2-cpu bench machine on
 * 2026-12-08, 1-minute load average 5 (busy: the bundle measured 190.8 ms,
 * 1 file, 558 ms in the same run).
 */
const RECORDED_BASELINE = {
  loadMs: 554.8,
  loadCpuMs: 0,
  files: 403,
  startToGrantMs: 1115,
  packageFiles: 6424,
  packageMb: 29.58,
};

interface Layout {
  name: string;
  root: string;
  entry: string;
  runner: string;
}

interface LoadSample {
  ms: number;
  cpuMs: number;
  files: number;
  scripts: number;
  functions: number;
  /** The first request's answer time in that process, after the load (see load-child.ts). */
  firstMs: number;
  firstStatus: number;
}

function loadOnce(entry: string, env: NodeJS.ProcessEnv): Promise<LoadSample> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LOAD_CHILD, entry], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`loading ${entry} exited ${code}: ${err.slice(-2000)}`));
        return;
      }
      const sample = JSON.parse(out.trim().split('\n').pop() ?? '{}') as LoadSample;
      if (sample.firstStatus !== 200)
        reject(new Error(`the first request to ${entry} answered ${sample.firstStatus}`));
      else resolve(sample);
    });
  });
}

/** Spawn to the first 201 of a runner process; it is stopped afterwards. */
async function startToGrant(
  ctx: BenchContext,
  layout: Layout,
  env: NodeJS.ProcessEnv,
  ip: string,
): Promise<{ readyMs: number; grantMs: number }> {
  const started = performance.now();
  const { child, ready } = await startReadyLine<{ ready: true; url: string }>(
    `cold-${layout.name}`,
    layout.runner,
    [],
    env,
  );
  ctx.children.track(child);
  try {
    const readyMs = performance.now() - started;
    const outcome = await grant(ctx, ready.url, VAULT, ip);
    if (outcome.status !== 201)
      throw new Error(`the first grant answered ${outcome.problem ?? outcome.status}`);
    return { readyMs, grantMs: performance.now() - started };
  } finally {
    await ctx.children.stop(child);
  }
}

function walk(path: string, into: string[]): void {
  if (!existsSync(path)) return;
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path)) {
      if (name === 'node_modules') continue; // a package's own: counted when it is a dependency
      walk(join(path, name), into);
    }
  } else if (!path.endsWith('.map')) into.push(path);
}

/** Where Node would find `name` from `from` (a package directory): the nearest node_modules up. */
function packageDir(name: string, from: string, root: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root || dirname(dir) === dir) return undefined;
  }
}

/**
 * The files a deployment of `layout` holds: the bundle layout ships host.json,
 * package.json, dist/app and dist/console (.funcignore); a remote-built one
 * also holds dist/ and every production dependency, installed by Oryx.
 */
function packageFiles(layout: Layout): string[] {
  const files: string[] = [];
  for (const name of ['host.json', 'package.json']) walk(join(layout.root, name), files);
  if (layout.entry.includes(join('dist', 'app'))) {
    walk(join(layout.root, 'dist', 'app'), files);
    walk(join(layout.root, 'dist', 'console'), files);
    return files;
  }
  walk(join(layout.root, 'dist', 'src'), files);
  walk(join(layout.root, 'dist', 'console'), files);
  const seen = new Set<string>();
  const visit = (dir: string) => {
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const name of Object.keys({
      ...manifest.dependencies,
      ...manifest.optionalDependencies,
    })) {
      const found = packageDir(name, dir, layout.root);
      if (!found || seen.has(found)) continue;
      seen.add(found);
      walk(found, files);
      visit(found);
    }
  };
  visit(layout.root);
  return files;
}

/**
 * The entry a baseline's host loads: its package.json "main" when that names
 * one file (a bundled release), else the tsc output of release 0.1 (whose
 * "main" was a glob).
 */
function baselineEntry(base: string): string {
  try {
    return entryPoint(base);
  } catch {
    return join(base, 'dist', 'src', 'functions', 'index.js');
  }
}

function layouts(): Layout[] {
  const current: Layout = {
    name: 'bundle',
    root: ROOT,
    entry: entryPoint(ROOT),
    runner: join(ROOT, 'dist', 'dev', 'local', 'runner.js'),
  };
  const base = process.env.KV_LEASE_BENCH_BASELINE;
  if (!base) return [current];
  return [
    current,
    {
      name: 'baseline',
      root: base,
      entry: baselineEntry(base),
      runner: join(base, 'dist', 'dev', 'local', 'runner.js'),
    },
  ];
}

export async function coldStart(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.createVault(lockedVault(VAULT));
  const table = uniqueTable('benchcold');
  const env = brokerEnv(ctx, { vaults: [VAULT], table });
  // The load as in Azure: the configuration is checked when the host loads the app.
  const azureEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    WEBSITE_INSTANCE_ID: 'bench',
    BROKER_VAULTS: env.BROKER_VAULTS,
    LEASE_STORAGE_CONNECTION_STRING: ctx.storage,
    AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
    AUTH_AUDIENCE: 'api://kv-lease',
  };
  const all = layouts();
  const loads = new Map<string, LoadSample[]>(all.map((layout) => [layout.name, []]));
  const starts = new Map<string, { readyMs: number; grantMs: number }[]>(
    all.map((layout) => [layout.name, []]),
  );
  // Alternate the layouts, so a busy moment of the machine hits both alike.
  for (let n = 0; n < LOADS; n += 1) {
    for (const layout of all) loads.get(layout.name)?.push(await loadOnce(layout.entry, azureEnv));
  }
  for (let n = 0; n < STARTS; n += 1) {
    for (const [index, layout] of all.entries()) {
      starts
        .get(layout.name)
        ?.push(await startToGrant(ctx, layout, env, publicIp(11, n * 2 + index)));
    }
  }

  const figures = all.map((layout) => {
    const samples = loads.get(layout.name) ?? [];
    const files = packageFiles(layout);
    return {
      layout: layout.name,
      entry: layout.entry,
      loadMs: round(median(samples.map((s) => s.ms)), 1),
      loadCpuMs: round(median(samples.map((s) => s.cpuMs)), 1),
      loadAndFirstMs: round(median(samples.map((s) => s.ms + s.firstMs)), 1),
      files: Math.max(...samples.map((s) => s.files)),
      scripts: Math.max(...samples.map((s) => s.scripts)),
      functions: samples[0]?.functions ?? 0,
      readyMs: round(median((starts.get(layout.name) ?? []).map((s) => s.readyMs))),
      startToGrantMs: round(median((starts.get(layout.name) ?? []).map((s) => s.grantMs))),
      packageFiles: files.length,
      packageMb: round(files.reduce((sum, file) => sum + statSync(file).size, 0) / 2 ** 20, 2),
    };
  });
  const [now] = figures;
  if (!now) throw new Error('no layout measured');
  const base = figures[1] ?? { ...RECORDED_BASELINE, layout: 'recorded' };
  const was = (value: number, unit: string) =>
    `was ${value} ${unit}${base.layout === 'recorded' ? ' (recorded)' : ''}`;
  const rows: Row[] = [
    {
      scenario: SCENARIO,
      metric: `load of the entry the host loads, median of ${LOADS} processes`,
      value: now.loadMs,
      unit: 'ms',
      target: `≤ ${LOAD_TARGET_MS} ms; ${was(base.loadMs, 'ms')}`,
      pass: now.loadMs <= LOAD_TARGET_MS,
    },
    {
      scenario: SCENARIO,
      metric: 'CPU time of that load (less sensitive to a busy machine)',
      value: now.loadCpuMs,
      unit: 'ms',
      target: base.loadCpuMs ? was(base.loadCpuMs, 'ms') : undefined,
    },
    {
      scenario: SCENARIO,
      metric: `that load plus the first request answered (GET openapi.json) in the same process, median of ${LOADS}`,
      value: now.loadAndFirstMs,
      unit: 'ms',
      target: 'loadAndFirstMs' in base ? was(base.loadAndFirstMs, 'ms') : undefined,
    },
    {
      scenario: SCENARIO,
      metric: 'files read by that load',
      value: now.files,
      target: `≤ ${FILES_TARGET}; ${was(base.files, 'files')}`,
      pass: now.files <= FILES_TARGET,
    },
    {
      scenario: SCENARIO,
      metric: `process start to first grant answered (runner, cold), median of ${STARTS}`,
      value: now.startToGrantMs,
      unit: 'ms',
      target: was(base.startToGrantMs, 'ms'),
    },
    {
      scenario: SCENARIO,
      metric: 'package: files the deployment holds',
      value: now.packageFiles,
      target: was(base.packageFiles, 'files'),
    },
    {
      scenario: SCENARIO,
      metric: 'package: size',
      value: now.packageMb,
      unit: 'MB',
      target: was(base.packageMb, 'MB'),
    },
  ];
  return { rows, details: { figures, recordedBaseline: RECORDED_BASELINE } };
}
