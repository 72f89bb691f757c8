/**
 * Runs the Key Vault ARM emulator as its own process, for the local runner, the benchmark and
 * tests in other processes. Protocol: once listening it writes exactly one JSON line to stdout,
 * `{"ready":true,"url":"https://127.0.0.1:NNNN","caPath":"..."}` (plus `"sqlServers":{"<resource
 * id>":"127.0.0.1:NNNN"}`, each SQL server's TDS endpoint, when there are any), and nothing else
 * ever goes to stdout; human logs go to stderr (only with --verbose). SIGTERM or SIGINT closes it with exit 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import {
  type RunningEmulator,
  type ServiceTagsConfig,
  type SqlServerSpec,
  startEmulator,
  type StartOptions,
  type StorageAccountSpec,
  type VaultSpec,
} from './server';
import { parseAccountResourceId } from './storage/account';
import { parseVaultResourceId } from './vault-store';

const USAGE = `Usage: node dist/dev/emulator/cli.js [options]

  --port <n>             port to listen on (default 0: an ephemeral port)
  --host <address>       address to bind (default 127.0.0.1)
  --cert-dir <dir>       where to write ca.pem (default: a new temporary directory)
  --vault <resourceId>   create this vault with defaultAction Deny, bypass AzureServices (repeatable)
  --static-ip <ip|cidr>  a pre-existing ipRule on every --vault (repeatable; default none)
  --storage-account <resourceId>  create this storage account with defaultAction Deny (repeatable)
  --sql-server <resourceId>  create this SQL server, public network access enabled (repeatable);
                         its TDS endpoint (an ephemeral port) is in the ready line's sqlServers
  --allow-azure-services  seed AllowAllWindowsAzureIps (0.0.0.0) on every --sql-server
  --location <region>    the region of every created resource (default westeurope)
  --service-tag <region>=<cidr>  serve this prefix in AzureCloud.<region> (repeatable; replaces
                         the default tags)
  --read-latency <ms>    delay of every GET (default 0)
  --write-latency <ms>   delay of every PATCH/PUT; overlapping writes on a vault get 409 (default 0)
  --no-conflict          let overlapping writes through instead of answering 409
  --propagation-delay <ms>  how long a firewall write takes to reach the data plane (default 0)
  --client-address <ip>  the address every vault's data plane sees for a caller (default: the TCP peer)
  --token <token>        require "Authorization: Bearer <token>" (default: any bearer token)
  --seed <n>             seed of the fault randomness
  --verbose              log every request to stderr
  --help                 show this text`;

class UsageError extends Error {}

function integer(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) {
    return fallback;
  }
  if (!/^\d+$/.test(text)) {
    throw new UsageError(`--${flag} expects a non-negative integer, got '${text}'`);
  }
  return Number(text);
}

const SQL_SERVER_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Sql\/servers\/([^/]+)\/?$/i;

/** `region=cidr` pairs, grouped by region (validated when the emulator starts). */
function serviceTags(pairs: string[]): ServiceTagsConfig {
  const regions: Record<string, string[]> = {};
  for (const pair of pairs) {
    const [region, prefix, extra] = pair.split('=');
    if (!region || !prefix || extra !== undefined) {
      throw new UsageError(`--service-tag expects <region>=<cidr>, got '${pair}'`);
    }
    (regions[region] ??= []).push(prefix);
  }
  return { changeNumber: 1, regions };
}

/** `host:port` of each SQL server's TDS endpoint, by resource id. */
async function tdsEndpoints(
  emulator: RunningEmulator,
  ids: readonly string[],
): Promise<Record<string, string>> {
  const entries = await Promise.all(
    ids.map(async (id) => [id, await emulator.sql.dataPlaneAddress(id)] as const),
  );
  return Object.fromEntries(entries);
}

interface CommandLine {
  options: StartOptions;
  help: boolean;
  sqlServerIds: string[];
}

function parseCommandLine(args: string[]): CommandLine {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'cert-dir': { type: 'string' },
      vault: { type: 'string', multiple: true },
      'static-ip': { type: 'string', multiple: true },
      'storage-account': { type: 'string', multiple: true },
      'sql-server': { type: 'string', multiple: true },
      'allow-azure-services': { type: 'boolean' },
      location: { type: 'string' },
      'service-tag': { type: 'string', multiple: true },
      'read-latency': { type: 'string' },
      'write-latency': { type: 'string' },
      'no-conflict': { type: 'boolean' },
      'propagation-delay': { type: 'string' },
      'client-address': { type: 'string' },
      token: { type: 'string' },
      seed: { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  const staticIps = values['static-ip'] ?? [];
  const vaults: VaultSpec[] = (values.vault ?? []).map((resourceId) => {
    const coordinates = parseVaultResourceId(resourceId);
    if (!coordinates) {
      throw new UsageError(
        `--vault expects /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>, got '${resourceId}'`,
      );
    }
    return {
      ...coordinates,
      ...(values.location === undefined ? {} : { location: values.location }),
      networkAcls: {
        bypass: 'AzureServices',
        defaultAction: 'Deny',
        ipRules: staticIps.map((value) => ({ value })),
        virtualNetworkRules: [],
      },
    };
  });
  if (staticIps.length > 0 && vaults.length === 0) {
    throw new UsageError('--static-ip needs at least one --vault');
  }
  const storageAccounts: StorageAccountSpec[] = (values['storage-account'] ?? []).map((id) => {
    const coordinates = parseAccountResourceId(id);
    if (!coordinates) {
      throw new UsageError(
        `--storage-account expects /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>, got '${id}'`,
      );
    }
    return {
      ...coordinates,
      ...(values.location === undefined ? {} : { location: values.location }),
      networkAcls: { bypass: 'AzureServices', defaultAction: 'Deny' },
    };
  });
  const sqlServers: SqlServerSpec[] = (values['sql-server'] ?? []).map((id) => {
    const match = SQL_SERVER_ID.exec(id);
    if (!match) {
      throw new UsageError(
        `--sql-server expects /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Sql/servers/<name>, got '${id}'`,
      );
    }
    const [, subscriptionId = '', resourceGroup = '', name = ''] = match;
    return {
      subscriptionId,
      resourceGroup,
      name,
      ...(values.location === undefined ? {} : { location: values.location }),
      allowAzureServices: values['allow-azure-services'] === true,
    };
  });
  const options: StartOptions = {
    host: values.host ?? '127.0.0.1',
    port: integer('port', values.port, 0),
    vaults,
    storageAccounts,
    sqlServers,
    readLatencyMs: integer('read-latency', values['read-latency'], 0),
    writeLatencyMs: integer('write-latency', values['write-latency'], 0),
    conflictOnOverlap: values['no-conflict'] !== true,
    dataPlane: {
      propagationDelayMs: integer('propagation-delay', values['propagation-delay'], 0),
      ...(values['client-address'] === undefined
        ? {}
        : { clientAddress: values['client-address'] }),
    },
  };
  if (values['cert-dir'] !== undefined) {
    options.certDir = values['cert-dir'];
  }
  if (values.token !== undefined) {
    options.requiredToken = values.token;
  }
  if (values['service-tag'] !== undefined) {
    options.serviceTags = serviceTags(values['service-tag']);
  }
  if (values.seed !== undefined) {
    options.seed = integer('seed', values.seed, 0);
  }
  if (values.verbose === true) {
    options.log = (line) => process.stderr.write(`[kv-emulator] ${line}\n`);
  }
  return { options, help: values.help === true, sqlServerIds: values['sql-server'] ?? [] };
}

async function main(): Promise<void> {
  let parsed: CommandLine;
  try {
    parsed = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(0);
  }

  // Without --cert-dir the CA goes to a temporary directory that lives as long as the process.
  const temporaryCertDir =
    parsed.options.certDir === undefined
      ? mkdtempSync(join(tmpdir(), 'kv-lease-emulator-'))
      : undefined;
  const removeTemporaryCertDir = (): void => {
    if (temporaryCertDir !== undefined) {
      rmSync(temporaryCertDir, { recursive: true, force: true });
    }
  };
  let emulator: RunningEmulator;
  try {
    emulator = await startEmulator({
      ...parsed.options,
      certDir: parsed.options.certDir ?? temporaryCertDir,
    });
  } catch (error) {
    removeTemporaryCertDir();
    throw error;
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    parsed.options.log?.(`${signal}: closing`);
    void emulator.close().then(() => {
      removeTemporaryCertDir();
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  const sqlServers = await tdsEndpoints(emulator, parsed.sqlServerIds);
  process.stdout.write(
    `${JSON.stringify({
      ready: true,
      url: emulator.url,
      caPath: emulator.caPath,
      ...(parsed.sqlServerIds.length === 0 ? {} : { sqlServers }),
    })}\n`,
  );
  parsed.options.log?.(`listening on ${emulator.url}, CA at ${emulator.caPath ?? '(none)'}`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `kv-lease emulator failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
