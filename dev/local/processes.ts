import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join, sep } from 'node:path';

/**
 * Child processes for `npm start`, the tests and the benchmark: started with
 * a readiness wait, stopped with SIGTERM and a grace period (SIGKILL only if
 * they ignore it).
 */

export const AZURITE_ACCOUNT = 'devstoreaccount1';
/** azurite's well-known development key (public, documented by Microsoft). */
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function azuriteConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};TableEndpoint=http://127.0.0.1:${port}/${AZURITE_ACCOUNT};`;
}

export interface Child {
  process: ChildProcess;
  name: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function waitForPort(
  port: number,
  timeoutMs: number,
  child?: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null)
      throw new Error(`process exited with code ${child.exitCode}`);
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
}

function stopper(
  child: ChildProcess,
  graceMs = 5000,
  signal: NodeJS.Signals = 'SIGTERM',
): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });
}

/** Start a node script that prints one JSON line with `"ready":true` on stdout when it is ready. */
export function startReadyLine<T extends { ready: true }>(
  name: string,
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<{ child: Child; ready: T }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    let errors = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} was not ready within ${timeoutMs} ms: ${errors.slice(-2000)}`));
    }, timeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => {
      errors = (errors + chunk.toString()).slice(-8000);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new Error(`${name} exited with code ${code} before it was ready: ${errors.slice(-2000)}`),
      );
    });
    let found = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      // After the ready line the output is still drained (a full pipe would
      // block the child), but no longer kept.
      if (found) return;
      buffer += chunk.toString();
      for (
        let newline = buffer.indexOf('\n');
        newline >= 0 && !found;
        newline = buffer.indexOf('\n')
      ) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        try {
          const ready = JSON.parse(line) as T;
          if (ready.ready) {
            found = true;
            buffer = '';
            clearTimeout(timer);
            child.removeAllListeners('exit');
            resolve({ child: { process: child, name, stop: stopper(child) }, ready });
          }
        } catch {
          // not the ready line; keep reading
        }
      }
    });
  });
}

/** Start azurite's Table service on `port`, persisting under `location` (or in memory). */
export async function startAzurite(options: { port: number; location?: string }): Promise<Child> {
  const script = join(
    require.resolve('azurite/package.json'),
    '..',
    'dist',
    'src',
    'table',
    'main.js',
  );
  const args = [
    '--tableHost',
    '127.0.0.1',
    '--tablePort',
    String(options.port),
    '--disableTelemetry',
    '--silent',
    '--skipApiVersionCheck',
  ];
  if (options.location) {
    mkdirSync(options.location, { recursive: true });
    args.push('--location', options.location);
  } else {
    args.push('--inMemoryPersistence');
  }
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    errors = (errors + chunk.toString()).slice(-4000);
  });
  try {
    await waitForPort(options.port, 30_000, child);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(
      `azurite did not start: ${error instanceof Error ? error.message : ''} ${errors}`,
    );
  }
  // NOTE: azurite saves its database only on SIGINT; SIGTERM would lose what it holds.
  return { process: child, name: 'azurite', stop: stopper(child, 10_000, 'SIGINT') };
}

/** The local runner script, whether this module runs compiled (dist/) or from source (tests). */
const RUNNER = __dirname.includes(`${sep}dist${sep}`)
  ? join(__dirname, 'runner.js')
  : join(__dirname, '..', '..', 'dist', 'dev', 'local', 'runner.js');

export interface BrokerProcess {
  url: string;
  pid: number;
  child: Child;
}

/**
 * Broker processes (the local runner) configured by `env`, started together:
 * the tests and the benchmark run several on one store to prove the writer
 * lock holds across processes.
 */
export function startBrokerProcesses(
  count: number,
  env: NodeJS.ProcessEnv,
): Promise<BrokerProcess[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const { child, ready } = await startReadyLine<{ ready: true; url: string; pid: number }>(
        `broker-${index}`,
        RUNNER,
        [],
        env,
      );
      return { url: ready.url, pid: ready.pid, child };
    }),
  );
}
