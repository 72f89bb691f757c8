import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { ConfigError, loadConfig } from '../../src/app/config';
import { bannerLines, type Demo } from './banner';
import {
  azuriteConnectionString,
  type Child,
  freePort,
  startAzurite,
  startReadyLine,
} from './processes';

/**
 * `npm start`: the broker on embedded defaults. With no storage setting it
 * starts azurite (data under .azurite/); with neither AZURE_ARM_ENDPOINT nor
 * BROKER_VAULTS nor BROKER_TARGETS it starts the bundled ARM emulator with a demo
 * vault, storage account and SQL server,
 * and then with no AUTH_MODE it uses `disabled` (the runner answers loopback
 * only). Against a configured endpoint or vaults, AUTH_MODE must be set: a
 * default that opens real vaults to every local caller is no default.
 * Whatever is configured is used, and nothing is started in its place.
 */

const ROOT = resolve(__dirname, '..', '..', '..');
const DEMO_VAULT =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-kv-lease-demo/providers/Microsoft.KeyVault/vaults/kv-demo';
const DEMO_STORAGE =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-kv-lease-demo/providers/Microsoft.Storage/storageAccounts/stkvleasedemo';
const DEMO_SQL =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-kv-lease-demo/providers/Microsoft.Sql/servers/sql-kv-lease-demo';
const DEMO_STATIC_RULE = '20.40.60.80';
/**
 * The public address the demo gives this machine: the emulated data plane sees
 * every caller there (as a real vault sees a pipeline agent's public IP), and
 * the printed curl line sends it as the front end's X-Forwarded-For.
 */
const DEMO_CLIENT_ADDRESS = '52.10.20.30';
const EMULATOR_TOKEN = 'kv-lease-local-emulator';
/** The emulated data plane takes any bearer token; the CLI's probe must send one. */
const DEMO_VAULT_TOKEN = 'kv-lease-local-data-plane';
const CLI_BUNDLE = join(ROOT, 'clients', 'cli', 'dist', 'kv-lease.js');

/**
 * Refused before anything starts: AUTH_MODE left to a default in front of
 * vaults npm start did not start. The message also names every other bad
 * setting, as the configuration's own message does (storage aside: npm start
 * would start azurite for it).
 */
function requireExplicitAuthMode(env: NodeJS.ProcessEnv): void {
  if ((env.AUTH_MODE ?? '') !== '') return;
  const configured = ['AZURE_ARM_ENDPOINT', 'BROKER_VAULTS', 'BROKER_TARGETS'].filter(
    (name) => env[name],
  );
  if (configured.length === 0) return;
  const lines = [
    `- AUTH_MODE: must be set when ${configured.join(' and ')} ${configured.length > 1 ? 'are' : 'is'} configured ` +
      '(npm start defaults to AUTH_MODE=disabled only with its bundled emulator): set AUTH_MODE=entra ' +
      'with AUTH_TENANT_ID and AUTH_AUDIENCE, or AUTH_MODE=disabled to give every caller on this machine every role on these vaults.',
  ];
  const storage =
    env.LEASE_STORAGE_CONNECTION_STRING || env.LEASE_STORAGE__tableServiceUri
      ? {}
      : { LEASE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true' };
  try {
    loadConfig({ ...env, ...storage, AUTH_MODE: 'disabled' });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    lines.push(...error.message.split('\n').slice(1));
  }
  throw new ConfigError(`Invalid kv-lease configuration:\n${lines.join('\n')}`);
}

const log = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const children: Child[] = [];
  const started: string[] = [];
  let stopping = false;

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const child of [...children].reverse()) await child.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    requireExplicitAuthMode(env);
    let demo: Demo | undefined;
    if (!env.LEASE_STORAGE_CONNECTION_STRING && !env.LEASE_STORAGE__tableServiceUri) {
      const port = await freePort();
      const location = join(ROOT, '.azurite');
      children.push(await startAzurite({ port, location }));
      env.LEASE_STORAGE_CONNECTION_STRING = azuriteConnectionString(port);
      started.push(`azurite (Table Storage) on http://127.0.0.1:${port}, data in .azurite/`);
    }
    if (!env.AZURE_ARM_ENDPOINT && !env.BROKER_VAULTS && !env.BROKER_TARGETS) {
      const emulator = await startReadyLine<{
        ready: true;
        url: string;
        caPath: string;
        sqlServers?: Record<string, string>;
      }>(
        'Key Vault ARM emulator',
        join(ROOT, 'dist', 'dev', 'emulator', 'cli.js'),
        [
          '--cert-dir',
          join(ROOT, '.emulator'),
          '--vault',
          DEMO_VAULT,
          '--static-ip',
          DEMO_STATIC_RULE,
          '--storage-account',
          DEMO_STORAGE,
          '--sql-server',
          DEMO_SQL,
          '--allow-azure-services',
          '--token',
          EMULATOR_TOKEN,
          '--client-address',
          DEMO_CLIENT_ADDRESS,
        ],
        env,
      );
      children.push(emulator.child);
      env.AZURE_ARM_ENDPOINT = emulator.ready.url;
      env.AZURE_ARM_TOKEN = EMULATOR_TOKEN;
      env.BROKER_VAULTS = DEMO_VAULT;
      env.BROKER_TARGETS = `${DEMO_STORAGE},${DEMO_SQL}`;
      // NOTE: trust for the bundled emulator only; a configured endpoint gets none from us.
      env.NODE_EXTRA_CA_CERTS = emulator.ready.caPath;
      started.push(
        `ARM emulator on ${emulator.ready.url} with vault kv-demo (static rule ${DEMO_STATIC_RULE}/32), ` +
          'storage account stkvleasedemo and SQL server sql-kv-lease-demo (AllowAllWindowsAzureIps), ' +
          `its data plane seeing callers as ${DEMO_CLIENT_ADDRESS}`,
      );
      demo = {
        vault: 'kv-demo',
        caPath: resolve(emulator.ready.caPath),
        clientAddress: DEMO_CLIENT_ADDRESS,
        vaultToken: DEMO_VAULT_TOKEN,
        storageAccount: 'stkvleasedemo',
        sqlServer: 'sql-kv-lease-demo',
        sqlDataPlane: emulator.ready.sqlServers?.[DEMO_SQL],
      };
    }
    // Only the bundled emulator gets here without AUTH_MODE (requireExplicitAuthMode).
    if (!env.AUTH_MODE) env.AUTH_MODE = 'disabled';
    const config = loadConfig(env);

    const broker = await startReadyLine<{ ready: true; url: string }>(
      'broker',
      join(ROOT, 'dist', 'dev', 'local', 'runner.js'),
      [],
      env,
    );
    children.push(broker.child);
    broker.child.process.stderr?.pipe(process.stderr);
    broker.child.process.once('exit', (code) => {
      // Ctrl-C in a terminal signals the whole group: a clean exit is not a crash.
      if (!stopping && code !== 0) {
        process.stderr.write(`The broker exited (code ${code}); stopping.\n`);
        void stopAll(1);
      }
    });

    for (const line of bannerLines({
      brokerUrl: broker.ready.url,
      config,
      started,
      demo,
      cliPath: existsSync(CLI_BUNDLE) ? CLI_BUNDLE : undefined,
    }))
      log(line);
  } catch (error) {
    process.stderr.write(
      `kv-lease could not start:\n${error instanceof Error ? error.message : String(error)}\n`,
    );
    await stopAll(1);
  }
}

void main();
