import { join, resolve } from 'node:path';

import { loadConfig } from '../../src/app/config';
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
 * BROKER_VAULTS it starts the bundled Key Vault ARM emulator with a demo vault;
 * with no AUTH_MODE it uses `disabled` (the runner listens on loopback only).
 * Whatever is configured is used, and nothing is started in its place.
 */

const ROOT = resolve(__dirname, '..', '..', '..');
const DEMO_VAULT =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-kv-lease-demo/providers/Microsoft.KeyVault/vaults/kv-demo';
const DEMO_STATIC_RULE = '20.40.60.80';
const EMULATOR_TOKEN = 'kv-lease-local-emulator';

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
    if (!env.LEASE_STORAGE_CONNECTION_STRING && !env.LEASE_STORAGE__tableServiceUri) {
      const port = await freePort();
      const location = join(ROOT, '.azurite');
      children.push(await startAzurite({ port, location }));
      env.LEASE_STORAGE_CONNECTION_STRING = azuriteConnectionString(port);
      started.push(`azurite (Table Storage) on http://127.0.0.1:${port}, data in .azurite/`);
    }
    if (!env.AZURE_ARM_ENDPOINT && !env.BROKER_VAULTS) {
      const emulator = await startReadyLine<{ ready: true; url: string; caPath: string }>(
        'Key Vault ARM emulator',
        join(ROOT, 'dist', 'dev', 'emulator', 'cli.js'),
        [
          '--cert-dir',
          join(ROOT, '.emulator'),
          '--vault',
          DEMO_VAULT,
          '--static-ip',
          DEMO_STATIC_RULE,
          '--token',
          EMULATOR_TOKEN,
        ],
        env,
      );
      children.push(emulator.child);
      env.AZURE_ARM_ENDPOINT = emulator.ready.url;
      env.AZURE_ARM_TOKEN = EMULATOR_TOKEN;
      env.BROKER_VAULTS = DEMO_VAULT;
      // NOTE: trust for the bundled emulator only; a configured endpoint gets none from us.
      env.NODE_EXTRA_CA_CERTS = emulator.ready.caPath;
      started.push(
        `Key Vault ARM emulator on ${emulator.ready.url} with vault kv-demo (static rule ${DEMO_STATIC_RULE}/32)`,
      );
    }
    env.AUTH_MODE ??= 'disabled';
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

    const vault = config.BROKER_VAULTS[0]?.name ?? 'kv-demo';
    log(
      `kv-lease listening on ${broker.ready.url}/api (AUTH_MODE=${config.AUTH_MODE}, sweep "${config.SWEEP_SCHEDULE}")`,
    );
    log(
      `operator console: ${broker.ready.url}/api/console${config.AUTH_MODE === 'disabled' ? ' (no sign-in: AUTH_MODE=disabled)' : ''}`,
    );
    for (const line of started) log(`started: ${line}`);
    log(`vaults: ${config.BROKER_VAULTS.map((v) => v.name).join(', ')}`);
    log('grant a lease (the X-Forwarded-For header plays the Azure front end):');
    log(
      `  curl -i -X POST ${broker.ready.url}/api/leases -H 'Content-Type: application/json' -H 'X-Forwarded-For: 52.10.20.30' -d '{"vault":"${vault}","ttlSeconds":600}'`,
    );
    log('Ctrl-C stops everything started here.');
  } catch (error) {
    process.stderr.write(
      `kv-lease could not start:\n${error instanceof Error ? error.message : String(error)}\n`,
    );
    await stopAll(1);
  }
}

void main();
