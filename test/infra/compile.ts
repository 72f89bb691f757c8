import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Template } from './arm';
import { readText, repoPath } from './helpers';

/**
 * Compiles and lints every infra/*.bicep with the Bicep CLI that
 * infra/bicep-cli/restore.sh restores from NuGet, once per test run: the first
 * test file that asks compiles into a folder named after the run (the vitest
 * process) and the content, the others wait for it and read the result.
 *
 * The one thing that cannot be restored offline is the Microsoft Graph
 * extension, a registry artifact. Its published types are in the repository
 * (test/fixtures/graph-bicep); they are packed here into a local extension of
 * the same name and version, and the copy of bicepconfig.json the compiler
 * reads points at it. So app-registration.bicep is type-checked against the
 * real Graph types, and main.bicep compiles whole.
 */

/** The extension reference infra/bicepconfig.json must pin: the version whose types the repository holds. */
export const GRAPH_EXTENSION = 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0';
const GRAPH_TYPES = 'test/fixtures/graph-bicep/microsoftgraph-v1.0-1.0.0.types.json';

export interface Diagnostic {
  /** infra/<file>.bicep */
  file: string;
  line: number;
  level: 'Error' | 'Warning' | 'Info';
  code: string;
  message: string;
}

export interface CommandResult {
  exitCode: number;
  diagnostics: Diagnostic[];
  /** Lines of stderr that are not diagnostics (a crash, a restore failure). */
  other: string[];
}

export interface Compiled {
  bicep: string;
  /** The folder of this run's compile: src/ holds what the compiler read, src/out/ the ARM JSON. */
  dir: string;
  version: string;
  build: CommandResult;
  lint: CommandResult;
  /** Compiled ARM JSON by file name without extension: `main`, `rbac`, ... */
  templates: Record<string, Template>;
}

/**
 * Why the compile tests cannot run here, or undefined when they can. In CI
 * (CI=true) a missing dotnet is a failure, not a skip.
 */
export function bicepUnavailable(): string | undefined {
  const probe = spawnSync('dotnet', ['--version'], { encoding: 'utf8' });
  if (!probe.error && probe.status === 0) return undefined;
  const why = 'the Bicep CLI is restored from NuGet through it (infra/bicep-cli/restore.sh)';
  if (process.env.CI === 'true') {
    throw new Error(
      `dotnet is not installed: ${why}, and with CI=true the Bicep compile tests must run`,
    );
  }
  return `dotnet is not installed: ${why}, so the Bicep compile tests are skipped`;
}

function run(
  command: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const DIAGNOSTIC = /^(.*\.bicep)\((\d+),(\d+)\) : (Error|Warning|Info) ([\w-]+): (.*)$/;

function result(
  output: { code: number; stdout: string; stderr: string },
  root: string,
): CommandResult {
  const found: Diagnostic[] = [];
  const other: string[] = [];
  for (const line of `${output.stdout}\n${output.stderr}`.split('\n').map((l) => l.trim())) {
    if (line === '') continue;
    const match = DIAGNOSTIC.exec(line);
    if (!match) {
      other.push(line);
      continue;
    }
    found.push({
      file: (match[1] ?? '').replace(`${root}/`, ''),
      line: Number(match[2]),
      level: match[4] as Diagnostic['level'],
      code: match[5] ?? '',
      message: match[6] ?? '',
    });
  }
  return { exitCode: output.code, diagnostics: found, other };
}

/**
 * The extension index the Graph extension is published with, rebuilt from its
 * types: every resource type by name, and the extension's name, version and
 * configuration type (the same refs as the published index.json).
 */
function graphIndex(types: { $type: string; name?: string }[]): unknown {
  const resources: Record<string, { $ref: string }> = {};
  types.forEach((entry, index) => {
    if (entry.$type === 'ResourceType' && entry.name)
      resources[entry.name] = { $ref: `types.json#/${index}` };
  });
  const config = types.findIndex((entry) => entry.name === 'MicrosoftGraphBicepExtensionConfig');
  if (config === -1) throw new Error(`${GRAPH_TYPES} has no MicrosoftGraphBicepExtensionConfig`);
  return {
    resources,
    resourceFunctions: {},
    settings: {
      name: 'MicrosoftGraph',
      version: '1.0.0',
      isSingleton: false,
      configurationType: { $ref: `types.json#/${config}` },
    },
  };
}

/** bicepconfig.json is JSON with comments. */
function readBicepConfig(): Record<string, unknown> {
  return JSON.parse(readText('infra/bicepconfig.json').replace(/^\s*\/\/.*$/gm, '')) as Record<
    string,
    unknown
  >;
}

async function compileInto(dir: string, bicep: string): Promise<Compiled> {
  const src = join(dir, 'src');
  const infra = join(src, 'infra');
  mkdirSync(infra, { recursive: true });
  const files = readdirSync(repoPath('infra')).filter((name) => name.endsWith('.bicep'));
  for (const name of files) cpSync(repoPath('infra', name), join(infra, name));

  const graph = join(src, 'graph');
  mkdirSync(graph);
  const types = readText(GRAPH_TYPES);
  writeFileSync(join(graph, 'types.json'), types);
  writeFileSync(join(graph, 'index.json'), JSON.stringify(graphIndex(JSON.parse(types) as [])));
  const packed = await run(
    bicep,
    ['publish-extension', 'graph/index.json', '--target', 'graph/microsoftgraph.tgz'],
    src,
  );
  if (packed.code !== 0) throw new Error(`packing the Graph extension failed: ${packed.stderr}`);

  const config = readBicepConfig();
  const extensions = (config.extensions ?? {}) as Record<string, string>;
  if (extensions.microsoftGraphV1 !== GRAPH_EXTENSION) {
    throw new Error(
      `infra/bicepconfig.json pins ${extensions.microsoftGraphV1 ?? 'no microsoftGraphV1'}; the repository has the types of ${GRAPH_EXTENSION} (${GRAPH_TYPES})`,
    );
  }
  writeFileSync(
    join(infra, 'bicepconfig.json'),
    JSON.stringify({
      ...config,
      extensions: { ...extensions, microsoftGraphV1: '../graph/microsoftgraph.tgz' },
    }),
  );

  const version = (await run(bicep, ['--version'], src)).stdout.trim();
  const build = await run(bicep, ['build', '--pattern', 'infra/*.bicep', '--outdir', 'out'], src);
  const lint = await run(bicep, ['lint', '--pattern', 'infra/*.bicep'], src);
  const templates: Record<string, Template> = {};
  for (const name of files) {
    const path = join(src, 'out', name.replace(/\.bicep$/, '.json'));
    if (existsSync(path)) {
      templates[name.replace(/\.bicep$/, '')] = JSON.parse(readFileSync(path, 'utf8')) as Template;
    }
  }
  return { bicep, dir, version, build: result(build, src), lint: result(lint, src), templates };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const PREFIX = 'kv-lease-bicep-';

/** Folders of earlier runs whose vitest process is gone. */
function removeStale(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(name.slice(PREFIX.length).split('-')[0]);
    if (name.startsWith(PREFIX) && pid > 0 && pid !== process.ppid && !alive(pid)) {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

let compiled: Promise<Compiled> | undefined;

/** The compile of this run (see the module comment); call bicepUnavailable() first. */
export function compileInfra(): Promise<Compiled> {
  compiled ??= (async () => {
    const restored = await run('bash', [repoPath('infra/bicep-cli/restore.sh')], repoPath());
    const bicep = restored.stdout.trim().split('\n').at(-1) ?? '';
    if (restored.code !== 0 || !existsSync(bicep)) {
      throw new Error(`infra/bicep-cli/restore.sh failed (${restored.code}): ${restored.stderr}`);
    }
    const key = createHash('sha256').update(bicep);
    for (const name of readdirSync(repoPath('infra')).sort()) {
      if (name.endsWith('.bicep') || name === 'bicepconfig.json') {
        key.update(name).update(readText('infra', name));
      }
    }
    key.update(readText(GRAPH_TYPES));
    const dir = join(tmpdir(), `${PREFIX}${process.ppid}-${key.digest('hex').slice(0, 16)}`);
    const done = join(dir, 'compiled.json');
    const failed = join(dir, 'failed.txt');
    removeStale();
    try {
      mkdirSync(dir); // the lock: the one test file that creates it compiles
    } catch {
      const deadline = Date.now() + 120_000;
      while (!existsSync(done)) {
        if (existsSync(failed)) {
          throw new Error(`the compile of this run failed: ${readFileSync(failed, 'utf8')}`);
        }
        if (Date.now() > deadline) throw new Error(`no compile result in ${dir} after 120 s`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return JSON.parse(readFileSync(done, 'utf8')) as Compiled;
    }
    let output: Compiled;
    try {
      output = await compileInto(dir, bicep);
    } catch (error) {
      writeFileSync(failed, error instanceof Error ? error.message : String(error));
      throw error;
    }
    writeFileSync(`${done}.tmp`, JSON.stringify(output));
    renameSync(`${done}.tmp`, done); // appears whole to the waiting files
    return output;
  })();
  return compiled;
}

/** Compiles one Bicep source on its own (a negative control), next to the run's compile. */
export async function compileSource(file: string, source: string): Promise<CommandResult> {
  const { bicep, dir: runDir } = await compileInfra();
  const dir = join(tmpdir(), `${PREFIX}${process.ppid}-probe-${process.pid}-${Date.now()}`);
  const infra = join(dir, 'infra');
  mkdirSync(infra, { recursive: true });
  try {
    cpSync(join(runDir, 'src', 'graph'), join(dir, 'graph'), { recursive: true });
    cpSync(join(runDir, 'src', 'infra', 'bicepconfig.json'), join(infra, 'bicepconfig.json'));
    writeFileSync(join(infra, file), source);
    return result(await run(bicep, ['lint', `infra/${file}`], dir), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
