import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { freePort } from '../../dev/local/processes';
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
  return { child, output, exited };
}

describe('npm start on embedded defaults', () => {
  it('When started with nothing configured, then the printed curl line grants a lease on the demo vault, the timer expires it, and SIGINT stops everything', async () => {
    const port = await freePort();
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
      'AUTH_MODE',
      'NODE_EXTRA_CA_CERTS',
    ]) {
      delete env[name];
    }
    const { child, output, exited } = await startNpmStart(env);
    try {
      expect(output).toContain(`listening on http://127.0.0.1:${port}/api`);
      expect(output).toMatch(/started: azurite/);
      const emulatorUrl = /Key Vault ARM emulator on (https:\/\/\S+)/.exec(output)?.[1] as string;
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

      const ca = readFileSync(join(ROOT, '.emulator', 'ca.pem'), 'utf8');
      const rules = async () =>
        (
          (await emulatorVaults(emulatorUrl, ca)).value.find((v) => v.name === 'kv-demo')
            ?.properties.networkAcls?.ipRules ?? []
        ).map((r) => r.value);
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
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
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
    };
    delete env.AUTH_MODE;
    const { child, output, exited } = await startNpmStart(env);
    try {
      expect(output).toContain(`listening on http://127.0.0.1:${port}/api (AUTH_MODE=disabled`);
      expect(output).not.toMatch(/started:/);
      expect(output).toContain(
        `operator console: http://127.0.0.1:${port}/api/console (no sign-in: AUTH_MODE=disabled)`,
      );
      expect(output).toContain('vaults: kv-configured');
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
