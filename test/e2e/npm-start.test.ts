import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { freePort } from '../../dev/local/processes';
import { registerBroker } from '../support/conformance';
import {
  lockedVault,
  rulesOf,
  storageConnectionString,
  testEmulator,
  uniqueTable,
  vaultId,
} from '../support/harness';

const ROOT = join(__dirname, '..', '..');

function emulatorVaults(
  url: string,
  ca: string,
): Promise<{
  value: { name: string; properties: { networkAcls?: { ipRules: { value: string }[] } } }[];
}> {
  return new Promise((resolve, reject) => {
    request(`${url}/_emulator/vaults`, { ca }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => resolve(JSON.parse(text)));
    })
      .on('error', reject)
      .end();
  });
}

/**
 * What `npm start` runs (its entry point, built by the test setup), with
 * `env`; resolves once it printed its ready block (the Ctrl-C line) or 45 s passed.
 */
async function startNpmStart(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'dev', 'local', 'start.js')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', () => undefined);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const deadline = Date.now() + 45_000;
  while (!output.includes('Ctrl-C') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Its answers to this test's own fetches are checked against the OpenAPI document too.
  const listening = /listening on (http:\/\/\S+)/.exec(output)?.[1];
  if (listening) registerBroker(listening);
  return { child, output, exited };
}

/** Words of one POSIX shell line as the banner writes them (bare words and single quotes). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let current: string | undefined;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      current = (current ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '\\') {
      current = (current ?? '') + (line[i + 1] ?? '');
      i += 1;
    } else if (/\s/.test(c)) {
      if (current !== undefined) words.push(current);
      current = undefined;
    } else current = (current ?? '') + c;
  }
  if (current !== undefined) words.push(current);
  return words;
}

/** The CLI paste of the banner: its exported variables, the alias's command, and the other command lines. */
function cliPaste(output: string) {
  const lines = output.split('\n');
  const header = lines.findIndex((line) => line.startsWith('the CLI against this broker'));
  expect(header, output).toBeGreaterThanOrEqual(0);
  const paste: string[] = [];
  for (const line of lines.slice(header + 1)) {
    if (!line.startsWith('  ')) break;
    paste.push(line);
  }
  const env: Record<string, string> = {};
  let cli: string[] = [];
  const commands: string[][] = [];
  for (const line of paste) {
    const [first, ...rest] = shellWords(line);
    if (first === 'export') {
      for (const assignment of rest) {
        const at = assignment.indexOf('=');
        env[assignment.slice(0, at)] = assignment.slice(at + 1);
      }
    } else if (first === 'alias') {
      const [name, command] = (rest[0] as string).split(/=(.*)/s) as [string, string];
      expect(name).toBe('kv-lease');
      cli = shellWords(command);
    } else commands.push([first as string, ...rest]);
  }
  return { paste, env, cli, commands };
}

/** Runs a pasted `kv-lease ...` line: the alias's command with exactly the exported variables (and PATH). */
function runPasted(
  paste: ReturnType<typeof cliPaste>,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [program, ...programArgs] = paste.cli;
  expect(program).toBe('node');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...programArgs, ...args], {
      env: { PATH: process.env.PATH ?? '', ...paste.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** GET secrets on the emulated data plane, as the CLI's probe does, trusting the emulator's CA. */
function dataPlaneGet(
  vaultUri: string,
  ca: string,
): Promise<{ status: number; body: { error?: { message: string } } }> {
  return new Promise((resolve, reject) => {
    request(
      `${vaultUri}secrets?api-version=7.5&maxresults=1`,
      { ca, headers: { authorization: 'Bearer any' } },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }),
        );
      },
    )
      .on('error', reject)
      .end();
  });
}

describe('npm start on embedded defaults', () => {
  let started: Awaited<ReturnType<typeof startNpmStart>>;
  let port: number;
  let emulatorUrl: string;
  const ca = () => readFileSync(join(ROOT, '.emulator', 'ca.pem'), 'utf8');
  const rules = async () =>
    (
      (await emulatorVaults(emulatorUrl, ca())).value.find((v) => v.name === 'kv-demo')?.properties
        .networkAcls?.ipRules ?? []
    ).map((r) => r.value);

  beforeAll(async () => {
    port = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      SWEEP_SCHEDULE: '*/1 * * * * *',
      LEASE_MIN_TTL_SECONDS: '1',
    };
    for (const name of [
      'LEASE_STORAGE_CONNECTION_STRING',
      'LEASE_STORAGE__tableServiceUri',
      'AZURE_ARM_ENDPOINT',
      'BROKER_VAULTS',
      'BROKER_TARGETS',
      'AUTH_MODE',
      'NODE_EXTRA_CA_CERTS',
    ]) {
      delete env[name];
    }
    started = await startNpmStart(env);
    emulatorUrl = /ARM emulator on (https:\/\/\S+)/.exec(started.output)?.[1] as string;
    // .azurite/ outlives runs (a developer's own npm start, an earlier test): start from no active lease.
    const active = (await (
      await fetch(`http://127.0.0.1:${port}/api/leases?vault=kv-demo&status=active`)
    ).json()) as { value: { id: string }[] };
    for (const lease of active.value)
      await fetch(`http://127.0.0.1:${port}/api/leases/${lease.id}`, { method: 'DELETE' });
  });

  afterAll(() => {
    started.child.kill('SIGINT');
  });

  it('When started with nothing configured, then the printed curl line grants a lease on the demo vault, the timer expires it', async () => {
    const { output } = started;
    expect(output).toContain(`listening on http://127.0.0.1:${port}/api`);
    expect(output).toMatch(/started: azurite/);
    expect(emulatorUrl).toBeDefined();

    // Run the printed curl line's request as written.
    const curl = /curl -i -X POST (\S+) -H '([^']+)' -H '([^']+)' -d '([^']+)'/.exec(output);
    expect(curl).not.toBeNull();
    const [, url, h1, h2, body] = curl as unknown as string[];
    const headers = Object.fromEntries(
      [h1, h2].map((h) => (h as string).split(': ') as [string, string]),
    );
    const granted = await fetch(url as string, { method: 'POST', headers, body });
    expect(granted.status).toBe(201);
    const lease = (await granted.json()) as { id: string; ip: string; vault: string };
    expect(lease.vault).toBe('kv-demo');
    expect(await rules()).toContain(lease.ip);

    // A 2-second lease is gone within one sweep period after it expires.
    const short = await fetch(url as string, {
      method: 'POST',
      headers: { ...headers, 'X-Forwarded-For': '52.77.88.99' },
      body: JSON.stringify({ vault: 'kv-demo', ttlSeconds: 2 }),
    });
    expect(short.status).toBe(201);
    const shortLease = (await short.json()) as { id: string; expiresAt: string };
    expect(await rules()).toContain('52.77.88.99/32');
    const expiresAt = Date.parse(shortLease.expiresAt);
    while (Date.now() < expiresAt + 1000 + 1500)
      await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await rules()).not.toContain('52.77.88.99/32');
    const after = (await (
      await fetch(`http://127.0.0.1:${port}/api/leases/${shortLease.id}`)
    ).json()) as { status: string };
    expect(after.status).toBe('expired');

    await fetch(`http://127.0.0.1:${port}/api/leases/${lease.id}`, { method: 'DELETE' });
    expect(await rules()).not.toContain(lease.ip);
  });

  it('When no lease holds the demo address, then the emulated data plane refuses it naming that address; with one, it admits it', async () => {
    const vaultUri = `${emulatorUrl}/data-plane/kv-demo/`;
    const refused = await dataPlaneGet(vaultUri, ca());
    expect(refused.status).toBe(403);
    expect(refused.body.error?.message).toContain('Client address: 52.10.20.30');

    const granted = await fetch(`http://127.0.0.1:${port}/api/leases`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ vault: 'kv-demo', ip: '52.10.20.30' }),
    });
    expect(granted.status).toBe(201);
    const lease = (await granted.json()) as { id: string; vaultUri: string };
    expect(lease.vaultUri).toBe(vaultUri);
    expect((await dataPlaneGet(vaultUri, ca())).status).toBe(200);
    await fetch(`http://127.0.0.1:${port}/api/leases/${lease.id}`, { method: 'DELETE' });
    expect((await dataPlaneGet(vaultUri, ca())).status).toBe(403);
  });

  // NOTE: on a branch without the client's loopback opt-in the CLI ignores
  // KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE; with it, this proves the printed name is the one it reads.
  it('When the printed CLI lines are pasted, then the grant --wait line succeeds end to end and the same variables release the lease', async () => {
    const paste = cliPaste(started.output);
    expect(paste.env).toEqual({
      KV_LEASE_BROKER: `http://127.0.0.1:${port}`,
      KV_LEASE_AUTH: 'none',
      KV_LEASE_VAULT_TOKEN: expect.any(String),
      KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: '1',
      NODE_EXTRA_CA_CERTS: join(ROOT, '.emulator', 'ca.pem'),
    });
    expect(paste.commands).toEqual([
      ['kv-lease', 'grant', '--vault', 'kv-demo', '--ip', '52.10.20.30', '--wait'],
    ]);
    const grant = await runPasted(paste, paste.commands[0]?.slice(1) ?? []);
    expect(grant.code, grant.stderr).toBe(0);
    expect(grant.stderr).toMatch(/kv-demo admits 52\.10\.20\.30\/32 after/);
    const id = /^lease\s+(\S+)$/m.exec(grant.stdout)?.[1] as string;
    expect(id).toBeDefined();
    expect(await rules()).toContain('52.10.20.30/32');

    const release = await runPasted(paste, ['release', id]);
    expect(release.code, release.stderr).toBe(0);
    expect(await rules()).not.toContain('52.10.20.30/32');
  });

  it("When the other demo targets' lines are pasted in the same shell, then a storage account and a SQL server are leased and their data planes admit the address", async () => {
    const paste = cliPaste(started.output);
    const lines = started.output.split('\n');
    const header = lines.findIndex((line) => line.startsWith('the other demo targets'));
    expect(header, started.output).toBeGreaterThan(0);
    const more = lines
      .slice(header + 1)
      .filter((line, index, all) => all.slice(0, index + 1).every((l) => l.startsWith('  ')))
      .map((line) => shellWords(line));
    expect(more.map((words) => words.slice(0, 4))).toEqual([
      ['kv-lease', 'grant', '--target', 'stkvleasedemo'],
      ['kv-lease', 'grant', '--target', 'sql-kv-lease-demo'],
    ]);
    for (const [kind, words] of [
      ['storage account', more[0]],
      ['SQL server', more[1]],
    ] as const) {
      const grant = await runPasted(paste, words?.slice(1) ?? []);
      expect(grant.code, `${kind}: ${grant.stderr}`).toBe(0);
      const id = /^lease\s+(\S+)$/m.exec(grant.stdout)?.[1] as string;
      expect(id, kind).toBeDefined();
      const release = await runPasted(paste, ['release', id]);
      expect(release.code, `${kind}: ${release.stderr}`).toBe(0);
    }
  });

  it('When SIGINT arrives, then everything stops with exit 0', async () => {
    started.child.kill('SIGINT');
    expect(await started.exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/api/health`)).rejects.toThrow();
  });
});

describe('npm start with everything configured', () => {
  it('When storage, Resource Manager and vaults are configured, then it starts nothing in their place and uses them', async () => {
    const emulator = await testEmulator();
    emulator.createVault(lockedVault('kv-configured'));
    const port = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      LEASE_STORAGE_CONNECTION_STRING: storageConnectionString(),
      LEASE_TABLE_NAME: uniqueTable(),
      AZURE_ARM_ENDPOINT: emulator.url,
      AZURE_ARM_TOKEN: 'configured-token',
      BROKER_VAULTS: vaultId('kv-configured'),
      NODE_EXTRA_CA_CERTS: emulator.caPath,
      AUTH_MODE: 'disabled',
    };
    const { child, output, exited } = await startNpmStart(env);
    try {
      expect(output).toContain(`listening on http://127.0.0.1:${port}/api (AUTH_MODE=disabled`);
      expect(output).not.toMatch(/started:/);
      // No demo: the paste sets the broker and auth, and no data-plane opt-in, CA or grant line.
      const paste = cliPaste(output);
      expect(paste.env).toEqual({
        KV_LEASE_BROKER: `http://127.0.0.1:${port}`,
        KV_LEASE_AUTH: 'none',
      });
      expect(paste.commands).toEqual([['kv-lease', 'targets']]);
      expect(output).toContain(
        `operator console: http://127.0.0.1:${port}/api/console (no sign-in: AUTH_MODE=disabled)`,
      );
      expect(output).toContain('targets: kv-configured (keyvault)');
      const granted = await fetch(`http://127.0.0.1:${port}/api/leases`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': '52.66.77.88' },
        body: JSON.stringify({ vault: 'kv-configured' }),
      });
      expect(granted.status).toBe(201);
      expect(rulesOf(emulator, 'kv-configured')).toContain('52.66.77.88/32');
    } finally {
      child.kill('SIGINT');
      await exited;
      await emulator.close();
    }
  });
});
