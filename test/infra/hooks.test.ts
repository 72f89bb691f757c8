import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { freePort } from '../../dev/local/processes';
import { type RunningBroker, startRunner } from '../../dev/local/runner';
import {
  lockedVault,
  storageConnectionString,
  testEmulator,
  uniqueTable,
  vaultId,
} from '../support/harness';
import { exists, readText, readYaml, repoPath } from './helpers';

/**
 * The azd hooks (infra/hooks/*.mjs) run as azd runs them: `node <script>`
 * with the azd environment in the process environment. --dry-run prints what
 * would be called; the health check runs for real against the broker served
 * over HTTP by the local runner.
 */

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function hook(script: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [repoPath('infra/hooks', script), ...args], {
      cwd: repoPath(),
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const VAULT_A =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/kv-a';
const VAULT_B =
  '/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-b/providers/Microsoft.KeyVault/vaults/KV-B';

const provisioned = {
  KV_LEASE_BROKER_URL: 'https://func-kvlease-abc.azurewebsites.net/',
  KV_LEASE_APP_ID_URI: 'api://22222222-2222-2222-2222-222222222222/kv-lease-prod',
  KV_LEASE_SCOPE: 'api://22222222-2222-2222-2222-222222222222/kv-lease-prod/.default',
  KV_LEASE_CONSOLE_REDIRECT_URI: 'https://func-kvlease-abc.azurewebsites.net/api/console',
  KV_LEASE_VAULT_IDS: JSON.stringify([VAULT_A, VAULT_B]),
};

describe('postprovision hook', () => {
  it('When run in dry mode, Then it prints the broker URL, the App ID URI and the action and task snippets, and the request it would make', async () => {
    const run = await hook('postprovision.mjs', ['--dry-run'], provisioned);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Broker URL      https://func-kvlease-abc.azurewebsites.net');
    expect(run.stdout).toContain(`App ID URI      ${provisioned.KV_LEASE_APP_ID_URI}`);
    expect(run.stdout).toContain('Managed vaults  kv-a, kv-b');
    // The GitHub action and the Azure Pipelines task, with their input names.
    expect(run.stdout).toMatch(
      /- uses: <org>\/kv-lease\/clients\/github-action@v1\n {4}with:\n {6}broker-url: https:\/\/func-kvlease-abc\.azurewebsites\.net\n {6}scope: api:\/\/\S+\/\.default\n {6}vault: kv-a\n {6}ttl-seconds: 1200/,
    );
    expect(run.stdout).toMatch(
      /- task: KvLease@1\n {4}inputs:\n {6}brokerUrl: https:\/\/func-kvlease-abc\.azurewebsites\.net\n {6}scope: api:\/\/\S+\/\.default\n {6}vault: kv-a\n {6}ttlSeconds: 1200/,
    );
    expect(run.stdout).toContain(
      '[dry-run] GET https://func-kvlease-abc.azurewebsites.net/api/health',
    );
    expect(run.stderr).toBe('');
  });

  it('When the broker URL is missing, Then it fails with a message naming the output', async () => {
    const run = await hook('postprovision.mjs', ['--dry-run'], {});
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/KV_LEASE_BROKER_URL is not set/);
  });

  it('When the console redirect URI is on another host, Then it warns how to fix it', async () => {
    const run = await hook('postprovision.mjs', ['--dry-run'], {
      ...provisioned,
      KV_LEASE_CONSOLE_REDIRECT_URI: 'https://other.example/api/console',
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/redirect URI https:\/\/other\.example\/api\/console is not on/);
  });

  describe('health check against a running broker', () => {
    let emulator: RunningEmulator;
    let broker: RunningBroker;

    beforeAll(async () => {
      emulator = await testEmulator({ seed: 3 });
      emulator.createVault(lockedVault('kv-hook'));
      // startRunner serves the process-wide services, which read the environment.
      Object.assign(process.env, {
        BROKER_VAULTS: vaultId('kv-hook'),
        LEASE_STORAGE_CONNECTION_STRING: storageConnectionString(),
        LEASE_TABLE_NAME: uniqueTable(),
        AZURE_ARM_ENDPOINT: emulator.url,
        AZURE_ARM_TOKEN: 'test-token',
        AUTH_MODE: 'disabled',
        SWEEP_SCHEDULE: '0 0 0 1 1 *',
      });
      broker = await startRunner({ port: await freePort() });
    });
    afterAll(async () => {
      await broker.close();
      await emulator.close();
    });

    it('When the broker answers /api/health, Then --require-healthy passes', async () => {
      const run = await hook(
        'postprovision.mjs',
        ['--require-healthy', '--timeout-seconds', '10'],
        {
          ...provisioned,
          KV_LEASE_BROKER_URL: broker.url,
          KV_LEASE_CONSOLE_REDIRECT_URI: `${broker.url}/api/console`,
        },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`Health: ${broker.url}/api/health answers {"status":"ok"}.`);
    });

    it('When nothing answers, Then --require-healthy fails and the plain hook only warns', async () => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const env = {
        ...provisioned,
        KV_LEASE_BROKER_URL: closed,
        KV_LEASE_CONSOLE_REDIRECT_URI: '',
      };
      const strict = await hook(
        'postprovision.mjs',
        ['--require-healthy', '--timeout-seconds', '1'],
        env,
      );
      expect(strict.code).toBe(1);
      expect(strict.stderr).toMatch(/api\/health is not healthy/);
      const lenient = await hook('postprovision.mjs', ['--timeout-seconds', '1'], env);
      expect(lenient.code).toBe(0);
      expect(lenient.stderr).toMatch(/If the code is not deployed yet/);
    });
  });
});

describe('predown and postdown hooks', () => {
  it('When this deployment created the registration, Then predown deletes and purges it and removes the vault role assignments', async () => {
    const run = await hook('predown.mjs', ['--dry-run'], {
      KV_LEASE_APP_OBJECT_ID: '33333333-3333-3333-3333-333333333333',
      KV_LEASE_IDENTITY_PRINCIPAL_ID: '44444444-4444-4444-4444-444444444444',
      KV_LEASE_VAULT_IDS: JSON.stringify([VAULT_A, VAULT_B]),
    });
    expect(run.code).toBe(0);
    const commands = run.stdout.split('\n').filter((line) => line.startsWith('[dry-run] az '));
    expect(commands).toEqual([
      '[dry-run] az rest --method DELETE --url https://graph.microsoft.com/v1.0/applications/33333333-3333-3333-3333-333333333333',
      '[dry-run] az rest --method DELETE --url https://graph.microsoft.com/v1.0/directory/deletedItems/33333333-3333-3333-3333-333333333333',
      `[dry-run] az role assignment delete --assignee 44444444-4444-4444-4444-444444444444 --scope ${VAULT_A}`,
      `[dry-run] az role assignment delete --assignee 44444444-4444-4444-4444-444444444444 --scope ${VAULT_B}`,
    ]);
  });

  it('When the registration was brought (no object ID recorded), Then predown leaves it alone (negative)', async () => {
    const run = await hook('predown.mjs', ['--dry-run'], {
      KV_LEASE_APP_OBJECT_ID: '',
      KV_LEASE_IDENTITY_PRINCIPAL_ID: '44444444-4444-4444-4444-444444444444',
      KV_LEASE_VAULT_IDS: VAULT_A,
    });
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(/graph\.microsoft\.com/);
    expect(run.stdout).toMatch(/not created by this deployment/);
    expect(run.stdout).toContain(`--scope ${VAULT_A}`);
  });

  it('When the deleted registration is to be kept, Then predown does not purge it', async () => {
    const run = await hook('predown.mjs', ['--dry-run'], {
      KV_LEASE_APP_OBJECT_ID: '33333333-3333-3333-3333-333333333333',
      KV_LEASE_KEEP_DELETED_APP: 'true',
    });
    expect(run.stdout).toContain('/applications/33333333-3333-3333-3333-333333333333');
    expect(run.stdout).not.toContain('deletedItems');
  });

  it('When the group is gone, Then postdown removes the custom role definitions this deployment made', async () => {
    const run = await hook('postdown.mjs', ['--dry-run'], {
      AZURE_SUBSCRIPTION_ID: '55555555-5555-5555-5555-555555555555',
      KV_LEASE_VAULT_ROLE_ID: '66666666-6666-6666-6666-666666666666',
      KV_LEASE_AUDIT_ROLE_DEFINITION_ID:
        '/subscriptions/55555555-5555-5555-5555-555555555555/providers/Microsoft.Authorization/roleDefinitions/77777777-7777-7777-7777-777777777777',
    });
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n').filter((line) => line.startsWith('[dry-run] az '))).toEqual([
      '[dry-run] az role definition delete --name 77777777-7777-7777-7777-777777777777 --scope /subscriptions/55555555-5555-5555-5555-555555555555',
      '[dry-run] az role definition delete --name 66666666-6666-6666-6666-666666666666 --scope /subscriptions/55555555-5555-5555-5555-555555555555',
    ]);
  });

  it('When a hook reads the azd environment, Then every value it reads is an output of main.bicep or set by azd', () => {
    const outputs = [...readText('infra/main.bicep').matchAll(/^output (\w+) /gm)].map((m) => m[1]);
    const byAzd = ['AZURE_SUBSCRIPTION_ID', 'KV_LEASE_VAULT_IDS', 'KV_LEASE_KEEP_DELETED_APP'];
    for (const script of ['postprovision.mjs', 'predown.mjs', 'postdown.mjs', 'lib.mjs']) {
      const read = [...readText('infra/hooks', script).matchAll(/envValue\('(\w+)'/g)].map(
        (m) => m[1],
      );
      for (const name of read) expect([...outputs, ...byAzd], `${script}: ${name}`).toContain(name);
    }
  });
});

describe('client input names', () => {
  // The clients are built on another branch; once merged, their manifests must declare these inputs.
  const action = 'clients/github-action/action.yml';
  it.skipIf(!exists(action))(
    'When the GitHub action is present, Then it declares the inputs the snippet uses',
    () => {
      const inputs = Object.keys(
        (readYaml(action) as { inputs?: Record<string, unknown> }).inputs ?? {},
      );
      for (const name of ['broker-url', 'scope', 'vault', 'ttl-seconds'])
        expect(inputs).toContain(name);
    },
  );

  /** Every Azure Pipelines task manifest under clients/, once the clients are merged. */
  function taskManifests(dir = repoPath('clients')): string[] {
    if (!exists(relative(repoPath(), dir))) return [];
    return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : taskManifests(path);
      return entry.name === 'task.json' ? [relative(repoPath(), path)] : [];
    });
  }
  const kvLeaseTasks = taskManifests().filter(
    (file) => (JSON.parse(readText(file)) as { name?: string }).name === 'KvLease',
  );
  it.skipIf(kvLeaseTasks.length === 0)(
    'When the Azure Pipelines task is present, Then it declares the inputs the snippet uses',
    () => {
      for (const file of kvLeaseTasks) {
        const task = JSON.parse(readText(file)) as { inputs?: { name: string }[] };
        const inputs = (task.inputs ?? []).map((input) => input.name);
        for (const name of ['brokerUrl', 'scope', 'vault', 'ttlSeconds']) {
          expect(inputs, file).toContain(name);
        }
      }
    },
  );
});
