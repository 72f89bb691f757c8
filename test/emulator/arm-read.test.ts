import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import {
  API_VERSION,
  armClient,
  BEARER,
  createTestVault,
  rawRequest,
  restErrorOf,
  SUBSCRIPTION,
} from './helpers';

describe('Key Vault ARM emulator: reading vaults and the front door', () => {
  let emulator: RunningEmulator;

  beforeEach(async () => {
    emulator = await startEmulator();
  });

  afterEach(async () => {
    await emulator.close();
  });

  it('When a vault is read through the SDK, then it has the shape of the official example', async () => {
    const { id, resourceGroup, name } = createTestVault(emulator, {
      location: 'West US',
      networkAcls: {
        bypass: 'AzureServices',
        defaultAction: 'Deny',
        ipRules: [{ value: '124.56.78.91' }],
        virtualNetworkRules: [
          {
            id: '/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/test-vnet/subnets/subnet1',
          },
        ],
      },
    });

    const vault = await armClient(emulator).vaults.get(resourceGroup, name);

    expect(vault).toMatchObject({
      id,
      name,
      type: 'Microsoft.KeyVault/vaults',
      location: 'westus',
      tags: {},
      properties: {
        sku: { family: 'A', name: 'standard' },
        tenantId: '00000000-0000-0000-0000-000000000000',
        vaultUri: emulator.vaultUri(name),
        publicNetworkAccess: 'Enabled',
        provisioningState: 'Succeeded',
        networkAcls: {
          bypass: 'AzureServices',
          defaultAction: 'Deny',
          ipRules: [{ value: '124.56.78.91/32' }],
          virtualNetworkRules: [
            {
              id: '/subscriptions/subid/resourcegroups/rg1/providers/microsoft.network/virtualnetworks/test-vnet/subnets/subnet1',
            },
          ],
        },
      },
    });
    expect(id).toBe(
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/${resourceGroup}/providers/Microsoft.KeyVault/vaults/${name}`,
    );
    expect(vault.systemData?.createdAt).toBeInstanceOf(Date);
    expect(vault.systemData?.lastModifiedAt).toBeInstanceOf(Date);
  });

  it('When the resource group and name are given in another case, then the same vault is returned', async () => {
    const { id, resourceGroup, name } = createTestVault(emulator);

    const vault = await armClient(emulator).vaults.get(
      resourceGroup.toUpperCase(),
      name.toUpperCase(),
    );

    expect(vault.id).toBe(id);
    expect(emulator.getNetworkAcls(id.toLowerCase()).defaultAction).toBe('Deny');
  });

  it('When the vault does not exist, then the SDK gets 404 ResourceNotFound', async () => {
    const error = await restErrorOf(armClient(emulator).vaults.get('rg-test', 'kv-missing'));

    expect(error.statusCode).toBe(404);
    expect(error.code).toBe('ResourceNotFound');
    expect(error.message).toContain('kv-missing');
  });

  it('When a vault was never given network rules, then GET omits networkAcls and the effective rules are the Azure defaults', async () => {
    const { id, resourceGroup, name } = createTestVault(emulator, { networkAcls: undefined });

    const vault = await armClient(emulator).vaults.get(resourceGroup, name);

    expect(vault.properties.networkAcls).toBeUndefined();
    expect(emulator.getNetworkAcls(id)).toEqual({
      bypass: 'AzureServices',
      defaultAction: 'Allow',
      ipRules: [],
      virtualNetworkRules: [],
    });
  });

  it('When a read answers, then it carries JSON and the ARM request and correlation ids', async () => {
    const { id } = createTestVault(emulator);

    const response = await rawRequest(emulator, 'GET', `${id}?api-version=${API_VERSION}`, {
      headers: { ...BEARER, 'x-ms-correlation-request-id': 'corr-123' },
    });

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers['x-ms-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers['x-ms-correlation-request-id']).toBe('corr-123');
  });

  it('When api-version is missing, then the answer is 400 MissingApiVersionParameter in the ARM error shape', async () => {
    const { id } = createTestVault(emulator);

    const response = await rawRequest(emulator, 'GET', id, { headers: BEARER });

    expect(response.status).toBe(400);
    expect(response.json()).toEqual({
      error: { code: 'MissingApiVersionParameter', message: expect.any(String) as unknown },
    });
  });

  it('When the Authorization header is missing, then the answer is 401 AuthenticationFailed', async () => {
    const { id } = createTestVault(emulator);

    const response = await rawRequest(emulator, 'GET', `${id}?api-version=${API_VERSION}`);

    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(response.json()).toMatchObject({ error: { code: 'AuthenticationFailed' } });
  });

  it('When the Authorization header is not a bearer token, then the answer is 401', async () => {
    const { id } = createTestVault(emulator);

    const response = await rawRequest(emulator, 'GET', `${id}?api-version=${API_VERSION}`, {
      headers: { authorization: 'Basic dXNlcjpwYXNz' },
    });

    expect(response.status).toBe(401);
    expect(response.json()).toMatchObject({ error: { code: 'AuthenticationFailed' } });
  });

  it('When a token is required, then only that token is accepted', async () => {
    const strict = await startEmulator({ requiredToken: 'right-token' });
    try {
      const { resourceGroup, name } = createTestVault(strict);

      const refused = await restErrorOf(
        armClient(strict, { token: 'wrong-token' }).vaults.get(resourceGroup, name),
      );
      const vault = await armClient(strict, { token: 'right-token' }).vaults.get(
        resourceGroup,
        name,
      );

      expect(refused.statusCode).toBe(401);
      expect(refused.code).toBe('InvalidAuthenticationToken');
      expect(vault.name).toBe(name);
    } finally {
      await strict.close();
    }
  });

  it('When a route is unknown, then the answer is 404 in the ARM error shape', async () => {
    const response = await rawRequest(
      emulator,
      'GET',
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-test/providers/Microsoft.ContainerRegistry/registries/acr1?api-version=${API_VERSION}`,
      { headers: BEARER },
    );

    expect(response.status).toBe(404);
    expect(response.json()).toMatchObject({
      error: { code: 'NotFound', message: expect.any(String) as unknown },
    });
  });

  it('When a vault is sent a method the emulator does not serve, then the answer is 405', async () => {
    const { id } = createTestVault(emulator);

    const response = await rawRequest(emulator, 'DELETE', `${id}?api-version=${API_VERSION}`, {
      headers: BEARER,
    });

    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe('GET, PATCH, PUT');
    expect(response.json()).toMatchObject({ error: { code: 'MethodNotAllowed' } });
    expect(emulator.stats().perVault[id.toLowerCase()]?.writes).toBe(0);
  });

  it('When the subscription id is not a GUID, then the answer is 400 InvalidSubscriptionId', async () => {
    const error = await restErrorOf(
      armClient(emulator, { subscriptionId: 'not-a-guid' }).vaults.get('rg-test', 'kv-any'),
    );

    expect(error.statusCode).toBe(400);
    expect(error.code).toBe('InvalidSubscriptionId');
  });

  it('When a read latency is configured, then a GET takes at least that long', async () => {
    const { resourceGroup, name } = createTestVault(emulator);
    emulator.configure({ readLatencyMs: 120 });

    const started = performance.now();
    await armClient(emulator).vaults.get(resourceGroup, name);

    expect(performance.now() - started).toBeGreaterThanOrEqual(115);
    expect(emulator.stats().gets).toBe(1);
  });
});
