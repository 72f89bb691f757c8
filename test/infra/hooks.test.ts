import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

  it('When targets are managed, Then it lists them, and names one in the snippets when there is no vault', async () => {
    const run = await hook('postprovision.mjs', ['--dry-run'], {
      ...provisioned,
      KV_LEASE_VAULT_IDS: '',
      KV_LEASE_TARGET_IDS: JSON.stringify([
        '/subscriptions/88888888-8888-8888-8888-888888888888/resourceGroups/rg-s/providers/Microsoft.Storage/storageAccounts/sttf',
      ]),
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Managed vaults  (none)');
    expect(run.stdout).toContain('Other targets   sttf');
    expect(run.stdout).toContain('      vault: sttf');
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
      ({ emulator, broker } = await localBroker('kv-hook', 3));
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

/**
 * A front end on loopback in front of the broker: it forwards every request
 * and rewrites X-Forwarded-For as `rewrite` says, recording what it received.
 */
interface FrontEnd {
  url: string;
  received: { authorization?: string; forwardedFor?: string }[];
  close(): Promise<void>;
}

async function frontEnd(
  target: string,
  rewrite: (incoming: string | undefined) => string | undefined,
): Promise<FrontEnd> {
  const { hostname, port } = new URL(target);
  const received: FrontEnd['received'] = [];
  const server: Server = createServer((request, response) => {
    const incoming = request.headers['x-forwarded-for'];
    const forwardedFor = Array.isArray(incoming) ? incoming.join(', ') : incoming;
    if (request.url?.startsWith('/api/whoami')) {
      received.push({ authorization: request.headers.authorization, forwardedFor });
    }
    const headers = { ...request.headers };
    delete headers['x-forwarded-for'];
    const rewritten = rewrite(forwardedFor);
    if (rewritten !== undefined) headers['x-forwarded-for'] = rewritten;
    const upstream = httpRequest(
      { hostname, port, path: request.url, method: request.method, headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.once('error', () => response.destroy());
    request.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** The public address the simulated Azure front end sees for this machine. */
const CALLER = '52.44.55.66';

describe('postdeploy hook', () => {
  it('When run in dry mode, Then it prints the health probe, how it gets a token and the forged whoami call', async () => {
    const run = await hook('postdeploy.mjs', ['--dry-run'], provisioned);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const base = 'https://func-kvlease-abc.azurewebsites.net';
    expect(run.stdout).toContain(`[dry-run] GET ${base}/api/health`);
    expect(run.stdout).toContain(
      `[dry-run] az account get-access-token --scope ${provisioned.KV_LEASE_SCOPE} --query accessToken --output tsv`,
    );
    expect(run.stdout).toMatch(
      /\[dry-run\] GET https:\/\/func-kvlease-abc\.azurewebsites\.net\/api\/whoami with X-Forwarded-For: 198\.51\.99\.\d{1,3} \(fails if the broker would lease 198\.51\.99\.\d{1,3}\/32\)/,
    );
  });

  it('When the broker URL is missing, Then it fails with a message naming the output', async () => {
    const run = await hook('postdeploy.mjs', ['--dry-run'], {});
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/KV_LEASE_BROKER_URL is not set/);
  });

  describe('against a running broker behind a front end', () => {
    let emulator: RunningEmulator;
    let broker: RunningBroker;
    const fronts: FrontEnd[] = [];

    beforeAll(async () => {
      // NOTE: the runner serves the process-wide services, built on first use: by the health
      // tests above when they ran first, else from this environment. whoami reads neither the
      // store nor a vault, so either serves these tests.
      ({ emulator, broker } = await localBroker('kv-hook-xff', 4));
    });
    afterAll(async () => {
      for (const front of fronts) await front.close();
      await broker.close();
      await emulator.close();
    });

    const envFor = (url: string, extra: Record<string, string> = {}) => ({
      ...provisioned,
      KV_LEASE_BROKER_URL: url,
      KV_LEASE_TOKEN: 'token-for-the-hook',
      ...extra,
    });

    it('When the front end appends the caller’s address (as Azure’s does), Then the hook passes and says what the broker would lease', async () => {
      const azure = await frontEnd(broker.url, (incoming) =>
        incoming ? `${incoming}, ${CALLER}` : CALLER,
      );
      fronts.push(azure);
      const run = await hook('postdeploy.mjs', ['--timeout-seconds', '10'], envFor(azure.url));
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`Health: ${azure.url}/api/health answers {"status":"ok"}.`);
      expect(run.stdout).toMatch(
        new RegExp(
          `ignored the forged leftmost X-Forwarded-For entry 198\\.51\\.99\\.\\d+; it would lease ${CALLER.replaceAll('.', '\\.')}/32 for this machine`,
        ),
      );
      // The hook sent its token and exactly one forged entry, which the broker then saw leftmost.
      expect(azure.received).toEqual([
        {
          authorization: 'Bearer token-for-the-hook',
          forwardedFor: expect.stringMatching(/^198\.51\.99\.\d{1,3}$/),
        },
      ]);
    });

    it('When a front end puts the forged entry last, Then the hook fails loudly naming the forged address', async () => {
      const careless = await frontEnd(broker.url, (incoming) =>
        incoming ? `${CALLER}, ${incoming}` : CALLER,
      );
      fronts.push(careless);
      const run = await hook('postdeploy.mjs', ['--timeout-seconds', '10'], envFor(careless.url));
      expect(run.code).toBe(1);
      const forged = careless.received[0]?.forwardedFor ?? 'none';
      expect(run.stderr).toContain(
        `SECURITY: the broker at ${careless.url} takes the caller's address from an X-Forwarded-For entry the caller wrote.`,
      );
      expect(run.stderr).toContain(`the broker would lease ${forged}/32`);
      expect(run.stdout).not.toMatch(/ignored the forged/);
    });

    it('When nothing in front appends an address (the header reaches the broker as the caller wrote it), Then the hook fails loudly', async () => {
      const run = await hook('postdeploy.mjs', ['--timeout-seconds', '10'], envFor(broker.url));
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/SECURITY: .* would lease 198\.51\.99\.\d+\/32/s);
    });

    it('When the front end replaces the header with a private address, Then the forged one is not leased: it passes, warning that grants from here need an address', async () => {
      const internal = await frontEnd(broker.url, () => '10.20.30.40');
      fronts.push(internal);
      const run = await hook('postdeploy.mjs', ['--timeout-seconds', '10'], envFor(internal.url));
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(
        /it sees no address it could lease for this machine: 10\.20\.30\.40 lies in a private/,
      );
      expect(run.stderr).toMatch(
        /grants without an explicit ip from this machine would be refused/,
      );
    });

    it('When no token can be had (no KV_LEASE_TOKEN, no Azure CLI), Then it fails saying the check did not run and how to give it one', async () => {
      const azure = await frontEnd(broker.url, (incoming) => `${incoming ?? ''}, ${CALLER}`);
      fronts.push(azure);
      const { KV_LEASE_TOKEN: _none, ...env } = envFor(azure.url);
      const run = await hook('postdeploy.mjs', ['--timeout-seconds', '10'], { ...env, PATH: '' });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        /No token for .*\/\.default from the Azure CLI \(az could not be started/,
      );
      expect(run.stderr).toMatch(/the X-Forwarded-For check did not run/);
      expect(run.stderr).toMatch(/KV_LEASE_SKIP_FORWARDED_FOR_CHECK/);
      expect(azure.received).toEqual([]);
    });

    it('When the check is skipped on purpose, Then it still requires health and says loudly that nothing was checked', async () => {
      const run = await hook(
        'postdeploy.mjs',
        ['--timeout-seconds', '10'],
        envFor(broker.url, { KV_LEASE_SKIP_FORWARDED_FOR_CHECK: 'true' }),
      );
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/the X-Forwarded-For check is skipped/);
    });

    it('When nothing answers, Then it fails on health before any token is asked for', async () => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const run = await hook('postdeploy.mjs', ['--timeout-seconds', '1'], {
        ...envFor(closed),
        PATH: '',
      });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/api\/health is not healthy/);
      expect(run.stderr).not.toMatch(/token/i);
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

  it('When targets of other kinds are managed, Then predown removes the assignment on each resource once and the service tag reader on each storage subscription', async () => {
    const storage =
      '/subscriptions/88888888-8888-8888-8888-888888888888/resourceGroups/rg-s/providers/microsoft.storage/storageAccounts/sttf';
    const sql =
      '/subscriptions/99999999-9999-9999-9999-999999999999/resourceGroups/rg-q/providers/Microsoft.Sql/servers/sql-q';
    const principal = '44444444-4444-4444-4444-444444444444';
    const run = await hook('predown.mjs', ['--dry-run'], {
      KV_LEASE_IDENTITY_PRINCIPAL_ID: principal,
      KV_LEASE_VAULT_IDS: JSON.stringify([VAULT_A]),
      // VAULT_A again, in other case: one assignment, removed once.
      KV_LEASE_TARGET_IDS: `${storage},${sql},${VAULT_A.toUpperCase()}`,
      KV_LEASE_SERVICE_TAG_ROLE_ID: '12121212-1212-1212-1212-121212121212',
    });
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n').filter((line) => line.startsWith('[dry-run] az '))).toEqual([
      `[dry-run] az role assignment delete --assignee ${principal} --scope ${VAULT_A.toUpperCase()}`,
      `[dry-run] az role assignment delete --assignee ${principal} --scope ${storage}`,
      `[dry-run] az role assignment delete --assignee ${principal} --scope ${sql}`,
      `[dry-run] az role assignment delete --assignee ${principal} --role 12121212-1212-1212-1212-121212121212 --scope /subscriptions/88888888-8888-8888-8888-888888888888`,
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

  it('When targets of other kinds were deployed, Then postdown also removes their role definitions', async () => {
    const run = await hook('postdown.mjs', ['--dry-run'], {
      AZURE_SUBSCRIPTION_ID: '55555555-5555-5555-5555-555555555555',
      KV_LEASE_STORAGE_ROLE_ID: '13131313-1313-1313-1313-131313131313',
      KV_LEASE_SQL_ROLE_ID: '14141414-1414-1414-1414-141414141414',
      KV_LEASE_SERVICE_TAG_ROLE_ID: '15151515-1515-1515-1515-151515151515',
    });
    expect(run.code).toBe(0);
    const scope = '--scope /subscriptions/55555555-5555-5555-5555-555555555555';
    expect(run.stdout.split('\n').filter((line) => line.startsWith('[dry-run] az '))).toEqual([
      `[dry-run] az role definition delete --name 13131313-1313-1313-1313-131313131313 ${scope}`,
      `[dry-run] az role definition delete --name 14141414-1414-1414-1414-141414141414 ${scope}`,
      `[dry-run] az role definition delete --name 15151515-1515-1515-1515-151515151515 ${scope}`,
    ]);
  });

  it('When a hook reads the azd environment, Then every value it reads is an output of main.bicep or set by azd', () => {
    const outputs = [...readText('infra/main.bicep').matchAll(/^output (\w+) /gm)].map((m) => m[1]);
    // Set by azd, or by the user (`azd env set`, the shell) for one hook: KV_LEASE_TOKEN and the skip.
    const byAzd = [
      'AZURE_SUBSCRIPTION_ID',
      'KV_LEASE_VAULT_IDS',
      'KV_LEASE_TARGET_IDS',
      'KV_LEASE_KEEP_DELETED_APP',
      'KV_LEASE_TOKEN',
      'KV_LEASE_SKIP_FORWARDED_FOR_CHECK',
    ];
    for (const script of [
      'postprovision.mjs',
      'postdeploy.mjs',
      'predown.mjs',
      'postdown.mjs',
      'lib.mjs',
    ]) {
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

/**
 * The emulator with one locked vault and the local runner in front of it. The runner serves the
 * process-wide services, which read the environment.
 */
async function localBroker(
  vault: string,
  seed: number,
): Promise<{ emulator: RunningEmulator; broker: RunningBroker }> {
  const emulator = await testEmulator({ seed });
  emulator.createVault(lockedVault(vault));
  Object.assign(process.env, {
    BROKER_VAULTS: vaultId(vault),
    LEASE_STORAGE_CONNECTION_STRING: storageConnectionString(),
    LEASE_TABLE_NAME: uniqueTable(),
    AZURE_ARM_ENDPOINT: emulator.url,
    AZURE_ARM_TOKEN: 'test-token',
    AUTH_MODE: 'disabled',
    SWEEP_SCHEDULE: '0 0 0 1 1 *',
  });
  return { emulator, broker: await startRunner({ port: await freePort() }) };
}
