import type { RunningEmulator } from '../../dev/emulator/types';
import {
  azuriteConnectionString,
  type Child,
  freePort,
  startAzurite,
} from '../../dev/local/processes';
import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import { publicIp, storageConnectionString, uniqueTable } from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';

/** Polls `check` until it holds; the time it took, or an error after `timeoutMs`. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 250,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

type Answer = Awaited<ReturnType<typeof http>> | { status: 0; body: undefined };

/**
 * Two brokers on one table and one vault, and a way to catch one of them in
 * the act: `burstUntilLocked` sends it grants until its writer holds the
 * vault's lock (polled in the store, since passes come and go).
 */
export async function twoBrokersOnOneVault(options: {
  emulator: RunningEmulator;
  vault: string;
  env?: Record<string, string>;
  /** First address block of the grants (keeps tests apart). */
  block: number;
}) {
  const table = uniqueTable();
  const brokers = await startBrokers({
    count: 2,
    emulator: options.emulator,
    vaults: [options.vault],
    table,
    ...(options.env ? { env: options.env } : {}),
  });
  const store = new TableLeaseStore({
    tableName: table,
    connectionString: storageConnectionString(),
  });
  let sent = 0;
  const grant = (broker: BrokerProcess): Promise<Answer> =>
    http(
      'POST',
      `${broker.url}/api/leases`,
      { vault: options.vault, ttlSeconds: 900 },
      { 'x-forwarded-for': publicIp(options.block + sent++) },
    ).catch(() => ({ status: 0 as const, body: undefined }));
  const burstUntilLocked = async (broker: BrokerProcess): Promise<Promise<Answer>[]> => {
    const sentTo = Array.from({ length: 30 }, () => grant(broker));
    await eventually(
      async () => {
        if (sentTo.length < 200) sentTo.push(grant(broker));
        const state = await store.getVaultState(options.vault);
        return state.lockHolder.startsWith(`${broker.pid}-`) && state.lockUntil > Date.now();
      },
      20_000,
      20,
    );
    return sentTo;
  };
  return { brokers: brokers as [BrokerProcess, BrokerProcess], store, grant, burstUntilLocked };
}

/** One broker on its own azurite (which the test may stop, restart or SIGSTOP). */
export async function brokerOnOwnStore(options: {
  emulator: RunningEmulator;
  vault: string;
  location?: string;
  env?: Record<string, string>;
}): Promise<{ azurite: Child; port: number; broker: BrokerProcess }> {
  const port = await freePort();
  const azurite = await startAzurite({
    port,
    ...(options.location ? { location: options.location } : {}),
  });
  const [broker] = await startBrokers({
    count: 1,
    emulator: options.emulator,
    vaults: [options.vault],
    env: {
      LEASE_STORAGE_CONNECTION_STRING: azuriteConnectionString(port),
      SWEEP_SCHEDULE: '*/1 * * * * *',
      ...options.env,
    },
  });
  return { azurite, port, broker: broker as BrokerProcess };
}

/** `POST /api/leases` for `ip` on `vault`, as the front end would forward it. */
export function grantFor(broker: BrokerProcess, vault: string, ip: string) {
  return http('POST', `${broker.url}/api/leases`, { vault }, { 'x-forwarded-for': ip });
}

/** Once the store is back: health turns 200 unaided, then a grant for `ip` is answered. */
export async function grantAfterRecovery(broker: BrokerProcess, vault: string, ip: string) {
  await eventually(
    async () => (await http('GET', `${broker.url}/api/health`)).status === 200,
    15_000,
  );
  return grantFor(broker, vault, ip);
}
