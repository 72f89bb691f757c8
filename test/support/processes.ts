import { createWriteStream } from 'node:fs';
import { join } from 'node:path';

import type { RunningEmulator } from '../../dev/emulator/types';
import { type BrokerProcess, startBrokerProcesses } from '../../dev/local/processes';
import { registerBroker } from './conformance';
import { storageConnectionString, uniqueTable, vaultId } from './harness';

export type { BrokerProcess };

/**
 * Start broker processes (the local runner, built by `pretest`) sharing one
 * table and one emulator, trusted the way a configured endpoint is: through
 * NODE_EXTRA_CA_CERTS.
 */
export async function startBrokers(options: {
  count: number;
  emulator: RunningEmulator;
  vaults: string[];
  env?: Record<string, string>;
  table?: string;
}): Promise<BrokerProcess[]> {
  const table = options.table ?? uniqueTable();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BROKER_VAULTS: options.vaults.map((name) => vaultId(name)).join(','),
    LEASE_STORAGE_CONNECTION_STRING: storageConnectionString(),
    LEASE_TABLE_NAME: table,
    AZURE_ARM_ENDPOINT: options.emulator.url,
    AZURE_ARM_TOKEN: 'e2e-token',
    NODE_EXTRA_CA_CERTS: options.emulator.caPath,
    AUTH_MODE: 'disabled',
    PORT: '0',
    ...options.env,
  };
  const brokers = await startBrokerProcesses(options.count, env);
  // Their answers are checked against the OpenAPI document (conformance-setup.ts).
  for (const broker of brokers) registerBroker(broker.url);
  // KV_LEASE_TEST_LOGS=<dir> keeps the brokers' logs there, for debugging a failing test.
  const logs = process.env.KV_LEASE_TEST_LOGS;
  if (logs) {
    for (const broker of brokers) {
      broker.child.process.stderr?.pipe(createWriteStream(join(logs, `broker-${broker.pid}.log`)));
    }
  }
  return brokers;
}

export async function http(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text ? JSON.parse(text) : undefined,
    headers: response.headers,
  };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}
