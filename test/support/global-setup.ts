import {
  azuriteConnectionString,
  type Child,
  freePort,
  startAzurite,
} from '../../dev/local/processes';

declare module 'vitest' {
  export interface ProvidedContext {
    storageConnectionString: string;
  }
}

/**
 * Starts azurite (in memory) for the whole run, unless a store is given in
 * KV_LEASE_TEST_STORAGE (a connection string): then that one is used as is.
 * Each test uses its own table, so files never see each other's data.
 */
let azurite: Child | undefined;

export async function setup(project: {
  provide(key: 'storageConnectionString', value: string): void;
}): Promise<void> {
  let connectionString = process.env.KV_LEASE_TEST_STORAGE;
  if (!connectionString) {
    const port = await freePort();
    azurite = await startAzurite({ port });
    connectionString = azuriteConnectionString(port);
  }
  project.provide('storageConnectionString', connectionString);
}

export async function teardown(): Promise<void> {
  await azurite?.stop();
}
