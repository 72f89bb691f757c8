import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';

import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { NetworkManagementClient } from '@azure/arm-network';
import { SqlManagementClient } from '@azure/arm-sql';
import { StorageManagementClient } from '@azure/arm-storage';
import { isRestError, type RestError } from '@azure/core-rest-pipeline';

import type { RunningEmulator, VaultSpec } from '../../dev/emulator/server';

export const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
export const API_VERSION = '2026-02-01';

type Credential = ConstructorParameters<typeof KeyVaultManagementClient>[0];

export function staticCredential(token = 't'): Credential {
  return {
    getToken: () => Promise.resolve({ token, expiresOnTimestamp: Date.now() + 3600e3 }),
  };
}

/** The real SDK, as the broker builds it, trusting the emulator's certificate. */
export function armClient(
  emulator: Pick<RunningEmulator, 'url' | 'caPem'>,
  options: { maxRetries?: number; token?: string; subscriptionId?: string } = {},
): KeyVaultManagementClient {
  return new KeyVaultManagementClient(
    staticCredential(options.token),
    options.subscriptionId ?? SUBSCRIPTION,
    {
      endpoint: emulator.url,
      credentials: { scopes: ['https://management.azure.com/.default'] },
      tlsOptions: { ca: emulator.caPem },
      retryOptions: { maxRetries: options.maxRetries ?? 0 },
    },
  );
}

type ClientOptions = { maxRetries?: number; token?: string; subscriptionId?: string };

/** The options every Azure SDK client gets: the emulator's endpoint and CA, no retries. */
function sdkOptions(emulator: Pick<RunningEmulator, 'url' | 'caPem'>, options: ClientOptions) {
  return {
    endpoint: emulator.url,
    credentials: { scopes: ['https://management.azure.com/.default'] },
    tlsOptions: { ca: emulator.caPem },
    retryOptions: { maxRetries: options.maxRetries ?? 0 },
  };
}

/** `@azure/arm-storage`, as the broker will build it. */
export function storageClient(
  emulator: Pick<RunningEmulator, 'url' | 'caPem'>,
  options: ClientOptions = {},
): StorageManagementClient {
  return new StorageManagementClient(
    staticCredential(options.token),
    options.subscriptionId ?? SUBSCRIPTION,
    sdkOptions(emulator, options),
  );
}

/** `@azure/arm-sql`, as the broker will build it. */
export function sqlClient(
  emulator: Pick<RunningEmulator, 'url' | 'caPem'>,
  options: ClientOptions = {},
): SqlManagementClient {
  return new SqlManagementClient(
    staticCredential(options.token),
    options.subscriptionId ?? SUBSCRIPTION,
    sdkOptions(emulator, options),
  );
}

/** `@azure/arm-network` (the Service Tag Discovery API), as the broker will build it. */
export function networkClient(
  emulator: Pick<RunningEmulator, 'url' | 'caPem'>,
  options: ClientOptions = {},
): NetworkManagementClient {
  return new NetworkManagementClient(
    staticCredential(options.token),
    options.subscriptionId ?? SUBSCRIPTION,
    sdkOptions(emulator, options),
  );
}

let counter = 0;

/** A fresh vault name per test (3-24 characters, as Azure requires). */
export function uniqueName(prefix = 'kv'): string {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A fresh storage account name: 3-24 lower-case letters and digits. */
export function uniqueAccountName(): string {
  counter += 1;
  return `sa${counter}${Math.random().toString(36).slice(2, 10)}`.replace(/[^a-z0-9]/g, '');
}

/** Creates a Deny-by-default vault with a unique name in resource group `rg-test`. */
export function createTestVault(
  emulator: RunningEmulator,
  overrides: Partial<VaultSpec> = {},
): { id: string; resourceGroup: string; name: string } {
  const spec: VaultSpec = {
    resourceGroup: 'rg-test',
    name: uniqueName(),
    networkAcls: {
      bypass: 'AzureServices',
      defaultAction: 'Deny',
      ipRules: [],
      virtualNetworkRules: [],
    },
    ...overrides,
  };
  return { id: emulator.createVault(spec), resourceGroup: spec.resourceGroup, name: spec.name };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: () => unknown;
}

/** A plain https request, for what the SDK cannot express (no auth header, bad api-version...). */
export function rawRequest(
  emulator: Pick<RunningEmulator, 'url' | 'caPem'>,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<RawResponse> {
  const payload =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, emulator.url),
      {
        method,
        ca: emulator.caPem,
        headers: {
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text) as unknown,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export const BEARER = { authorization: 'Bearer t' };

/** Awaits a promise that must reject with a `RestError` and returns the error. */
export async function restErrorOf(promise: Promise<unknown>): Promise<RestError> {
  try {
    await promise;
  } catch (error) {
    if (isRestError(error)) {
      return error;
    }
    throw error;
  }
  throw new Error('expected the call to fail with a RestError, but it succeeded');
}

/** Polls a condition every 5 ms; fails after `ms`. */
export async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
