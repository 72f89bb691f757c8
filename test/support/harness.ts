import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  HttpRequest,
  type HttpResponseInit,
  InvocationContext,
  type LogLevel,
} from '@azure/functions';
import { inject } from 'vitest';

import { startEmulator } from '../../dev/emulator/server';
import type { RunningEmulator, StartOptions, VaultSpec } from '../../dev/emulator/types';
import { TableAuditLog } from '../../src/adapters/tables/audit-log';
import { createTableClient, TableLeaseStore } from '../../src/adapters/tables/lease-store';
import type { Services } from '../../src/api/services';
import { createServices } from '../../src/app/composition';
import { type Config, loadConfig } from '../../src/app/config';
import { functionDefinitions, type HttpDefinition } from '../../src/app/definitions';
import type { Clock } from '../../src/domain/clock';
import { type Logger, silentLogger } from '../../src/domain/logger';
import type { Authenticator } from '../../src/domain/principal';
import { armFirewalls } from '../../src/targets/firewalls';
import { check } from './conformance';

export const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
export const STATIC_RULE = '20.40.60.80/32';

export function vaultId(name: string, resourceGroup = 'rg-test'): string {
  return `/subscriptions/${SUBSCRIPTION}/resourceGroups/${resourceGroup}/providers/Microsoft.KeyVault/vaults/${name}`;
}

/** A table name no other test uses. */
export function uniqueTable(): string {
  return `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

export function storageConnectionString(): string {
  return inject('storageConnectionString');
}

/** An in-process emulator whose certificate is written to a temp dir (for child processes). */
export function testEmulator(options: StartOptions = {}): Promise<RunningEmulator> {
  return startEmulator({ certDir: mkdtempSync(join(tmpdir(), 'kv-lease-ca-')), ...options });
}

/** A vault as operators typically lock one down: Deny, AzureServices, one static rule and a vnet rule. */
export function lockedVault(
  name: string,
  extra: Partial<VaultSpec['networkAcls']> = {},
): VaultSpec {
  return {
    subscriptionId: SUBSCRIPTION,
    resourceGroup: 'rg-test',
    name,
    networkAcls: {
      bypass: 'AzureServices',
      defaultAction: 'Deny',
      ipRules: [{ value: STATIC_RULE }],
      virtualNetworkRules: [
        {
          id: `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/build`,
        },
      ],
      ...extra,
    },
  };
}

export interface CallInit {
  body?: string | object;
  headers?: Record<string, string>;
  /** Defaults to a fresh UUID, so that audit entries can be matched to requests. */
  invocationId?: string;
}

export interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  body: any;
  invocationId: string;
}

export interface TestBroker {
  config: Config;
  services: Services;
  store: TableLeaseStore;
  /** The broker's audit table, read directly. */
  audit: TableAuditLog;
  call(method: string, path: string, init?: CallInit): Promise<CallResult>;
}

/**
 * The broker in-process: real services (azurite, the emulator over HTTPS
 * through @azure/arm-keyvault) behind the same handlers the host registers,
 * called the way the host calls them. `AUTH_MODE=disabled` unless `env` says
 * otherwise.
 */
export function testBroker(options: {
  emulator: RunningEmulator;
  vaults: string[];
  /** Resource IDs of other targets (any kind), as BROKER_TARGETS. */
  targets?: string[];
  env?: Record<string, string>;
  clock?: Clock;
  logger?: Logger;
  /** Replaces the configured authenticator (fault injection). */
  auth?: Authenticator;
  /** Receives what handlers log through their InvocationContext. */
  onContextLog?: (level: LogLevel, text: string) => void;
}): TestBroker {
  const config = loadConfig({
    BROKER_VAULTS: options.vaults.map((name) => vaultId(name)).join(','),
    BROKER_TARGETS: (options.targets ?? []).join(','),
    LEASE_STORAGE_CONNECTION_STRING: storageConnectionString(),
    LEASE_TABLE_NAME: uniqueTable(),
    AZURE_ARM_ENDPOINT: options.emulator.url,
    AZURE_ARM_TOKEN: 'test-token',
    AUTH_MODE: 'disabled',
    LEASE_APPLY_TIMEOUT_SECONDS: '10',
    ...options.env,
  });
  const store = new TableLeaseStore({
    tableName: config.LEASE_TABLE_NAME,
    connectionString: config.LEASE_STORAGE_CONNECTION_STRING,
  });
  const audit = new TableAuditLog(
    createTableClient({
      tableName: `${config.LEASE_TABLE_NAME}audit`,
      connectionString: config.LEASE_STORAGE_CONNECTION_STRING,
    }),
    silentLogger,
  );
  // Every kind's adapter, trusting the in-process emulator's CA.
  const firewall = armFirewalls({
    endpoint: options.emulator.url,
    credential: {
      getToken: async () => ({ token: 'test-token', expiresOnTimestamp: Date.now() + 3600_000 }),
    },
    tlsCa: options.emulator.caPem,
  });
  const services = createServices(config, {
    store,
    firewall,
    clock: options.clock,
    logger: options.logger ?? silentLogger,
    ...(options.auth ? { auth: options.auth } : {}),
  });
  const routes = functionDefinitions(() => services)
    .filter((d): d is HttpDefinition => d.kind === 'http')
    .map((definition) => ({
      definition,
      names: [...definition.route.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string),
      pattern: new RegExp(
        `^${definition.route.replace(/\{\w+\}/g, '([^/]+)').replace('.', '\\.')}$`,
      ),
    }));

  const call: TestBroker['call'] = async (method, path, init = {}) => {
    const url = new URL(path, 'http://127.0.0.1:7071');
    const route = url.pathname.replace(/^\/api\//, '');
    const hit = routes.find(
      (candidate) =>
        candidate.definition.methods.includes(method as never) && candidate.pattern.test(route),
    );
    if (!hit) throw new Error(`no function for ${method} ${path}`);
    const values = hit.pattern.exec(route) ?? [];
    const params = Object.fromEntries(
      hit.names.map((name, index) => [name, decodeURIComponent(values[index + 1] ?? '')]),
    );
    const body =
      init.body === undefined
        ? undefined
        : typeof init.body === 'string'
          ? init.body
          : JSON.stringify(init.body);
    const headers = {
      ...(body !== undefined && typeof init.body !== 'string'
        ? { 'content-type': 'application/json' }
        : {}),
      ...init.headers,
    };
    const request = new HttpRequest({
      method,
      url: url.toString(),
      headers,
      params,
      query: Object.fromEntries(url.searchParams.entries()),
      ...(body === undefined ? {} : { body: { string: body } }),
    });
    const invocationId = init.invocationId ?? randomUUID();
    const context = new InvocationContext({
      invocationId,
      functionName: hit.definition.name,
      logHandler: (level: LogLevel, ...args: unknown[]) =>
        options.onContextLog?.(level, args.map(String).join(' ')),
    });
    const response = (await hit.definition.handler(request, context)) as HttpResponseInit;
    const text = typeof response.body === 'string' ? response.body : '';
    const status = response.status ?? 200;
    const responseHeaders = new Headers(response.headers);
    check({ method, path: url.pathname, status, headers: responseHeaders, text });
    return {
      status,
      headers: responseHeaders,
      text,
      body: text ? JSON.parse(text) : undefined,
      invocationId,
    };
  };
  return { config, services, store, audit, call };
}

/** Each test gets its own locked vault (`<prefix>-1`, `-2`, ...), so tests never share firewall state. */
export function vaultFactory(emulator: () => RunningEmulator, prefix: string): () => string {
  let counter = 0;
  return () => {
    counter += 1;
    const name = `${prefix}-${counter}`;
    emulator().createVault(lockedVault(name));
    return name;
  };
}

/** Canonical ipRules of a vault in the emulator, sorted. */
export function rulesOf(emulator: RunningEmulator, name: string): string[] {
  return emulator
    .getNetworkAcls(vaultId(name))
    .ipRules.map((rule) => rule.value)
    .sort();
}

/** Distinct public test addresses: 52.x.y.z. */
export function publicIp(n: number): string {
  return `52.${10 + Math.floor(n / 65536)}.${Math.floor(n / 256) % 256}.${n % 256}`;
}
