import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { entryPoint } from '../../dev/local/app-loader';
import { ConfigError, loadConfig, runsInAzure } from '../../src/app/config';
import { storageConnectionString, vaultId } from '../support/harness';

/**
 * AUTH_MODE=disabled gives every caller every role. It must be impossible to
 * leave on in Azure: the configuration refuses it when the Functions host's
 * environment says the process runs there, and the broker does not start.
 */

const DIST = join(__dirname, '..', '..', 'dist', 'src');
/** The file the Functions host loads: package.json "main" (the esbuild bundle). */
const ENTRY = entryPoint();

/**
 * Node arguments that load `entry` as the host's worker does: with
 * `@azure/functions-core` answered, so the app registers its functions.
 */
function hostLoads(entry: string): string[] {
  const loader = join(DIST, '..', 'dev', 'local', 'app-loader.js');
  return ['-e', `require(${JSON.stringify(loader)}).loadApp(${JSON.stringify(entry)})`];
}

function baseEnv(): Record<string, string> {
  return {
    BROKER_VAULTS: vaultId('kv-startup'),
    LEASE_STORAGE_CONNECTION_STRING: storageConnectionString(),
    AZURE_ARM_ENDPOINT: 'https://127.0.0.1:9',
    AZURE_ARM_TOKEN: 'test-token',
    PORT: '0',
  };
}

const AZURE = { WEBSITE_INSTANCE_ID: 'a1b2c3d4e5f6', WEBSITE_SITE_NAME: 'func-kv-lease' };

/** baseEnv as a deployment has it: no static Resource Manager token (refused in Azure). */
function deployedEnv(): Record<string, string> {
  const { AZURE_ARM_TOKEN: _token, ...env } = baseEnv();
  return env;
}

/** Runs node with `args` and an environment made of PATH plus `env` only. */
function run(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // A runner that started: stop it, the test has its answer.
      if (stdout.includes('"ready":true')) child.kill('SIGTERM');
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${args.join(' ')} did not exit within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('When AUTH_MODE=disabled meets an Azure environment', () => {
  it.each([
    ['WEBSITE_INSTANCE_ID', { WEBSITE_INSTANCE_ID: AZURE.WEBSITE_INSTANCE_ID }],
    ['WEBSITE_SITE_NAME', { WEBSITE_SITE_NAME: AZURE.WEBSITE_SITE_NAME }],
  ])('with %s set: then loadConfig refuses it and says why', (_name, marker) => {
    const env = { ...baseEnv(), AUTH_MODE: 'disabled', ...marker };
    expect(runsInAzure(env)).toBe(true);
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(
      /AUTH_MODE: "disabled" is refused when running in Azure \(WEBSITE_INSTANCE_ID\/WEBSITE_SITE_NAME is set\): every caller would get every role/,
    );
  });

  it('then outside Azure (markers unset or empty) disabled is accepted, and entra is accepted in Azure', () => {
    expect(loadConfig({ ...baseEnv(), AUTH_MODE: 'disabled' }).AUTH_MODE).toBe('disabled');
    expect(
      loadConfig({ ...baseEnv(), AUTH_MODE: 'disabled', WEBSITE_INSTANCE_ID: '' }).AUTH_MODE,
    ).toBe('disabled');
    const entra = {
      ...deployedEnv(),
      ...AZURE,
      AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
      AUTH_AUDIENCE: 'api://kv-lease',
    };
    // No AUTH_MODE at all: entra, the default.
    expect(loadConfig(entra).AUTH_MODE).toBe('entra');
  });

  it('then the broker process exits non-zero before listening, with the reason on stderr', async () => {
    const result = await run([join(DIST, '..', 'dev', 'local', 'runner.js')], {
      ...baseEnv(),
      AUTH_MODE: 'disabled',
      WEBSITE_INSTANCE_ID: AZURE.WEBSITE_INSTANCE_ID,
    });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stdout).not.toContain('"ready":true');
    expect(result.stderr).toContain('AUTH_MODE: "disabled" is refused when running in Azure');
  });

  it('then loading the Functions entry point (as the host does) fails with the reason', async () => {
    const entry = ENTRY;
    const refused = await run(hostLoads(entry), {
      ...baseEnv(),
      ...AZURE,
      AUTH_MODE: 'disabled',
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('AUTH_MODE: "disabled" is refused when running in Azure');

    // The same entry point with AUTH_MODE=entra loads (and registers) without complaint.
    const accepted = await run(hostLoads(entry), {
      ...deployedEnv(),
      ...AZURE,
      AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
      AUTH_AUDIENCE: 'api://kv-lease',
    });
    expect(accepted.code, accepted.stderr).toBe(0);
  });

  it('then in Azure any bad setting stops the app at load, naming it, instead of failing each request', async () => {
    const entry = ENTRY;
    const result = await run(hostLoads(entry), {
      ...deployedEnv(),
      ...AZURE,
      AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
      AUTH_AUDIENCE: 'api://kv-lease',
      LEASE_POLICY: '[{"vaults":["kv-unknown"],"oids":["*"]}]',
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      'LEASE_POLICY[0].vaults: rule #1 names "kv-unknown", which is not in BROKER_TARGETS or BROKER_VAULTS',
    );
  });
});

describe('When settings for a developer machine meet an Azure environment', () => {
  it('then loading the Functions entry point fails with one message naming AZURE_ARM_TOKEN and each plain-http URL', async () => {
    const entry = ENTRY;
    const result = await run(hostLoads(entry), {
      ...baseEnv(),
      ...AZURE,
      AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
      AUTH_AUDIENCE: 'api://kv-lease',
      AUTH_JWKS_URI: 'http://127.0.0.1:9/keys',
      AZURE_ARM_ENDPOINT: 'http://127.0.0.1:9',
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /Invalid kv-lease configuration:\n- AZURE_ARM_TOKEN: is refused when running in Azure[^\n]*\n- AUTH_JWKS_URI: must be an https:\/\/ URL[^\n]*\n- AZURE_ARM_ENDPOINT: must be an https:\/\/ URL/,
    );
  });

  it('then the broker process refuses them too, before listening', async () => {
    const result = await run([join(DIST, '..', 'dev', 'local', 'runner.js')], {
      ...baseEnv(),
      WEBSITE_SITE_NAME: AZURE.WEBSITE_SITE_NAME,
      AUTH_MODE: 'entra',
      AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
      AUTH_AUDIENCE: 'api://kv-lease',
    });
    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain('"ready":true');
    expect(result.stderr).toContain('AZURE_ARM_TOKEN: is refused when running in Azure');
  });
});

describe('When npm start meets vaults it did not start and no AUTH_MODE', () => {
  const start = join(DIST, '..', 'dev', 'local', 'start.js');

  it.each([
    ['AZURE_ARM_ENDPOINT', { AZURE_ARM_ENDPOINT: 'https://management.azure.com' }],
    ['BROKER_VAULTS', { BROKER_VAULTS: vaultId('kv-real') }],
    [
      'AZURE_ARM_ENDPOINT and BROKER_VAULTS',
      { AZURE_ARM_ENDPOINT: 'https://127.0.0.1:9', BROKER_VAULTS: vaultId('kv-real') },
    ],
  ])(
    'with %s configured: then it refuses to start, naming AUTH_MODE, and starts nothing',
    async (names, configured) => {
      const result = await run([start], {
        LEASE_STORAGE_CONNECTION_STRING: storageConnectionString(),
        PORT: '0',
        ...configured,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `- AUTH_MODE: must be set when ${names} ${names.includes(' and ') ? 'are' : 'is'} configured (npm start defaults to AUTH_MODE=disabled only with its bundled emulator)`,
      );
      expect(result.stdout).not.toContain('started:');
      expect(result.stdout).not.toContain('listening');
    },
  );
  it('then the same message names every other bad setting too', async () => {
    const result = await run([start], {
      PORT: '0',
      BROKER_VAULTS: 'not-a-resource-id',
      LEASE_MIN_PREFIX: '4',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /Invalid kv-lease configuration:\n- AUTH_MODE: must be set when BROKER_VAULTS is configured[^\n]*\n- BROKER_VAULTS: [^\n]*not a Key Vault resource ID[\s\S]*- LEASE_MIN_PREFIX:/,
    );
    expect(result.stderr).not.toContain('LEASE_STORAGE_CONNECTION_STRING');
  });

  // An explicit AUTH_MODE=disabled against configured vaults is accepted: test/e2e/npm-start.test.ts.
});
