import { randomUUID } from 'node:crypto';

import { HttpRequest, type HttpResponseInit, InvocationContext } from '@azure/functions';

import { routes } from '../../src/api/routes';
import type { Services } from '../../src/api/services';
import { createServices } from '../../src/app/composition';
import { loadConfig } from '../../src/app/config';
import { functionDefinitions, type HttpDefinition } from '../../src/app/definitions';
import type { Clock } from '../../src/domain/clock';
import type { Logger } from '../../src/domain/logger';
import { silentLogger } from '../../src/domain/logger';
import type { Principal, Role } from '../../src/domain/principal';
import type { LeaseStore } from '../../src/ports/lease-store';
import { InMemoryAuditLog } from '../fakes/audit-log';
import { InMemoryLeaseStore } from '../fakes/lease-store';
import { InMemoryVaultFirewall } from '../fakes/vault-firewall';
import { check } from './conformance';

export const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
export const STATIC_RULE = '20.40.60.80/32';

export interface UnitCall {
  status: number;
  headers: Headers;
  body: any;
}

/**
 * The whole broker in memory, for the fast tier: the real route table, use
 * cases, policy and writer over fakes that pass the adapters' contract
 * suites. The caller is named by the `x-test-caller` header (`oid:Role,Role`),
 * so tests act as any principal without a token service.
 */
export function unitBroker(options: {
  vaults: string[];
  env?: Record<string, string>;
  store?: LeaseStore;
  clock?: Clock;
  logger?: Logger;
}) {
  const resourceId = (name: string) =>
    `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-unit/providers/Microsoft.KeyVault/vaults/${name}`;
  const config = loadConfig({
    BROKER_VAULTS: options.vaults.map(resourceId).join(','),
    LEASE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
    AZURE_ARM_TOKEN: 'unused',
    AUTH_MODE: 'disabled',
    LEASE_APPLY_TIMEOUT_SECONDS: '2',
    ...options.env,
  });
  const store = options.store ?? new InMemoryLeaseStore();
  const firewall = new InMemoryVaultFirewall();
  for (const vault of config.BROKER_VAULTS ?? []) {
    firewall.addVault(vault, {
      bypass: 'AzureServices',
      defaultAction: 'Deny',
      ipRules: [{ value: STATIC_RULE }],
    });
  }
  const audit = new InMemoryAuditLog();
  const services: Services = createServices(config, {
    store,
    firewall,
    audit,
    clock: options.clock,
    logger: options.logger ?? silentLogger,
    auth: {
      authenticate: (headers) => {
        const caller = headers.get('x-test-caller') ?? 'local-dev:Lease.Admin';
        const [id = '', roles = ''] = caller.split(':');
        const principal: Principal = {
          id,
          roles: new Set(roles.split(',').filter(Boolean) as Role[]),
        };
        return Promise.resolve(principal);
      },
    },
  });
  const handlers = new Map(
    functionDefinitions(() => services)
      .filter((d): d is HttpDefinition => d.kind === 'http')
      .map((d) => [d.name, d.handler]),
  );
  const call = async (
    name: string,
    init: {
      caller?: string;
      body?: unknown;
      params?: Record<string, string>;
      headers?: Record<string, string>;
    } = {},
  ): Promise<UnitCall> => {
    const handler = handlers.get(name);
    if (!handler) throw new Error(`no function ${name}`);
    const response = (await handler(
      new HttpRequest({
        method: 'POST',
        url: 'http://127.0.0.1/api/x',
        headers: {
          'content-type': 'application/json',
          ...(init.caller ? { 'x-test-caller': init.caller } : {}),
          ...init.headers,
        },
        params: init.params,
        ...(init.body === undefined ? {} : { body: { string: JSON.stringify(init.body) } }),
      }),
      new InvocationContext({ invocationId: randomUUID(), functionName: name }),
    )) as HttpResponseInit;
    const text = typeof response.body === 'string' ? response.body : '';
    const status = response.status ?? 200;
    const headers = new Headers(response.headers);
    // Functions of the API are its operations, by name (the console's are not).
    if (routes.some((route) => route.name === name)) {
      check({ operationId: name, status, headers, text });
    }
    return { status, headers, body: text ? JSON.parse(text) : undefined };
  };
  const vault = (name: string) => config.BROKER_VAULTS.find((v) => v.name === name)!;
  return { config, services, store, firewall, audit, call, vault };
}
