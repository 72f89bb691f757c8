import type { StorageManagementClient } from '@azure/arm-storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import {
  BEARER,
  rawRequest,
  restErrorOf,
  storageClient,
  uniqueAccountName,
  until,
} from './helpers';

const RG = 'rg-storage';

describe('Emulator: storage accounts through @azure/arm-storage', () => {
  let emulator: RunningEmulator;
  let client: StorageManagementClient;

  beforeEach(async () => {
    emulator = await startEmulator();
    client = storageClient(emulator);
  });

  afterEach(async () => {
    await emulator.close();
  });

  function createAccount(overrides: { ipRules?: { value: string }[] } = {}): {
    id: string;
    name: string;
  } {
    const name = uniqueAccountName();
    const id = emulator.storage.create({
      resourceGroup: RG,
      name,
      location: 'northeurope',
      networkAcls: {
        bypass: 'AzureServices, Logging',
        defaultAction: 'Deny',
        ipRules: (overrides.ipRules ?? []).map((rule) => ({ ...rule, action: 'Allow' as const })),
        virtualNetworkRules: [
          {
            id: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/ci`,
            action: 'Allow',
          },
        ],
        resourceAccessRules: [
          {
            tenantId: '00000000-0000-0000-0000-000000000001',
            resourceId:
              '/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Security/datascanners/storageDataScanner',
          },
        ],
      },
    });
    return { id, name };
  }

  it('When an account is read, then the SDK sees its location, blob endpoint and networkAcls', async () => {
    const account = createAccount({ ipRules: [{ value: '52.10.20.30' }] });

    const read = await client.storageAccounts.getProperties(RG, account.name);

    expect(read.id).toBe(account.id);
    expect(read.location).toBe('northeurope');
    expect(read.primaryEndpoints?.blob).toBe(emulator.storage.blobEndpoint(account.name));
    expect(read.primaryEndpoints?.blob).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/blob\//);
    expect(read.networkRuleSet).toMatchObject({
      bypass: 'AzureServices, Logging',
      defaultAction: 'Deny',
      ipRules: [{ iPAddressOrRange: '52.10.20.30', action: 'Allow' }],
    });
    expect(read.networkRuleSet?.resourceAccessRules).toHaveLength(1);
  });

  it('When the rule set read is PATCHed back with one more rule, then only ipRules change and every other property is kept', async () => {
    const account = createAccount({ ipRules: [{ value: '52.10.20.30' }] });
    const before = await client.storageAccounts.getProperties(RG, account.name);
    const rules = before.networkRuleSet;
    if (!rules) throw new Error('expected networkAcls');

    const updated = await client.storageAccounts.update(RG, account.name, {
      networkRuleSet: {
        ...rules,
        ipRules: [...(rules.ipRules ?? []), { iPAddressOrRange: '20.1.2.0/24', action: 'Allow' }],
      },
    });

    expect(updated.networkRuleSet?.ipRules?.map((rule) => rule.iPAddressOrRange)).toEqual([
      '52.10.20.30',
      '20.1.2.0/24',
    ]);
    const after = await client.storageAccounts.getProperties(RG, account.name);
    expect({ ...after, networkRuleSet: { ...after.networkRuleSet, ipRules: [] } }).toEqual({
      ...before,
      networkRuleSet: { ...before.networkRuleSet, ipRules: [] },
    });
    expect(emulator.storage.getNetworkAcls(account.id).ipRules).toEqual([
      { value: '52.10.20.30', action: 'Allow' },
      { value: '20.1.2.0/24', action: 'Allow' },
    ]);
  });

  it('When a PATCH sends tags only, then the rules are untouched', async () => {
    const account = createAccount({ ipRules: [{ value: '52.10.20.30' }] });

    await client.storageAccounts.update(RG, account.name, { tags: { team: 'ci' } });

    const after = await client.storageAccounts.getProperties(RG, account.name);
    expect(after.tags).toEqual({ team: 'ci' });
    expect(after.networkRuleSet?.ipRules).toEqual([
      { iPAddressOrRange: '52.10.20.30', action: 'Allow' },
    ]);
  });

  it.each([
    ['a /32 range', '52.10.20.30/32'],
    ['a /31 range', '52.10.20.30/31'],
    ['a private address', '10.1.2.3'],
    ['a private range', '192.168.0.0/24'],
    ['a range with host bits set', '52.10.20.1/24'],
    ['an IPv6 address', '2001:db8::1'],
    ['a short form', '52.10.20'],
  ])(
    'When a PATCH adds %s, then it answers 400 InvalidValuesForRequestParameters and changes nothing',
    async (_label, value) => {
      const account = createAccount({ ipRules: [{ value: '52.10.20.30' }] });
      const before = emulator.storage.getNetworkAcls(account.id);

      const error = await restErrorOf(
        client.storageAccounts.update(RG, account.name, {
          networkRuleSet: {
            defaultAction: 'Deny',
            ipRules: [{ iPAddressOrRange: value, action: 'Allow' }],
          },
        }),
      );

      expect(error.statusCode).toBe(400);
      expect(error.code).toBe('InvalidValuesForRequestParameters');
      expect(error.message).toContain('networkAcls.ipRule[*].value');
      expect(emulator.storage.getNetworkAcls(account.id)).toEqual(before);
    },
  );

  it('When ranges from /0-free /8 to /30 are written, then they are accepted as sent', async () => {
    const account = createAccount();

    await client.storageAccounts.update(RG, account.name, {
      networkRuleSet: {
        defaultAction: 'Deny',
        ipRules: ['52.0.0.0/8', '20.1.2.0/30'].map((value) => ({
          iPAddressOrRange: value,
          action: 'Allow',
        })),
      },
    });

    expect(emulator.storage.getNetworkAcls(account.id).ipRules.map((rule) => rule.value)).toEqual([
      '52.0.0.0/8',
      '20.1.2.0/30',
    ]);
  });

  it('When 400 rules are written, then they are kept, and a 401st answers 400 naming networkAcls.ipRules[]', async () => {
    const account = createAccount();
    const addresses = Array.from(
      { length: 401 },
      (_, i) => `52.${Math.floor(i / 250)}.${i % 250}.1`,
    );

    await client.storageAccounts.update(RG, account.name, {
      networkRuleSet: {
        defaultAction: 'Deny',
        ipRules: addresses
          .slice(0, 400)
          .map((value) => ({ iPAddressOrRange: value, action: 'Allow' })),
      },
    });
    const error = await restErrorOf(
      client.storageAccounts.update(RG, account.name, {
        networkRuleSet: {
          defaultAction: 'Deny',
          ipRules: addresses.map((value) => ({ iPAddressOrRange: value, action: 'Allow' })),
        },
      }),
    );

    expect(error.statusCode).toBe(400);
    expect(error.code).toBe('InvalidValuesForRequestParameters');
    expect(error.message).toContain('networkAcls.ipRules[]');
    expect(emulator.storage.getNetworkAcls(account.id).ipRules).toHaveLength(400);
  });

  it('When two PATCHes of one account overlap, then the second answers 409 StorageAccountOperationInProgress and only the first applies', async () => {
    emulator.configure({ writeLatencyMs: 400 });
    const account = createAccount();
    const write = (value: string) =>
      client.storageAccounts.update(RG, account.name, {
        networkRuleSet: {
          defaultAction: 'Deny',
          ipRules: [{ iPAddressOrRange: value, action: 'Allow' }],
        },
      });

    const first = write('52.1.1.1');
    await until(() => emulator.storage.stats()[account.id.toLowerCase()]?.writesInFlight === 1);
    const second = await restErrorOf(write('52.2.2.2'));
    await first;

    expect(second.statusCode).toBe(409);
    expect(second.code).toBe('StorageAccountOperationInProgress');
    expect(emulator.storage.getNetworkAcls(account.id).ipRules).toEqual([
      { value: '52.1.1.1', action: 'Allow' },
    ]);
    expect(emulator.storage.stats()[account.id.toLowerCase()]).toMatchObject({
      patches: 2,
      writesApplied: 1,
      conflicts: 1,
      writesInFlight: 0,
      peakWritesInFlight: 2,
    });
  });

  it('When PATCHes of two different accounts overlap, then both apply', async () => {
    emulator.configure({ writeLatencyMs: 100 });
    const a = createAccount();
    const b = createAccount();
    const write = (name: string) =>
      client.storageAccounts.update(RG, name, {
        networkRuleSet: {
          defaultAction: 'Deny',
          ipRules: [{ iPAddressOrRange: '52.1.1.1', action: 'Allow' }],
        },
      });

    await Promise.all([write(a.name), write(b.name)]);

    expect(emulator.storage.getNetworkAcls(a.id).ipRules).toHaveLength(1);
    expect(emulator.storage.getNetworkAcls(b.id).ipRules).toHaveLength(1);
  });

  it('When the shared knobs refuse the account or inject a fault, then storage answers as a vault would and changes nothing', async () => {
    const refused = createAccount();
    const faulted = createAccount();
    emulator.configure({
      refusals: [{ vault: refused.name, status: 403 }],
      faults: { rate: 1, statuses: [503], methods: ['PATCH'], retryAfterSeconds: 2 },
    });
    const patch = {
      networkRuleSet: {
        defaultAction: 'Deny' as const,
        ipRules: [{ iPAddressOrRange: '52.1.1.1', action: 'Allow' as const }],
      },
    };

    const forbidden = await restErrorOf(client.storageAccounts.getProperties(RG, refused.name));
    const unavailable = await restErrorOf(client.storageAccounts.update(RG, faulted.name, patch));

    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.code).toBe('AuthorizationFailed');
    expect(forbidden.message).toContain('Microsoft.Storage/storageAccounts/read');
    expect(unavailable.statusCode).toBe(503);
    expect(unavailable.response?.headers.get('retry-after')).toBe('2');
    expect(emulator.storage.getNetworkAcls(faulted.id).ipRules).toEqual([]);
    expect(emulator.stats()).toMatchObject({ refused: 1, faultsInjected: 1 });
  });

  it('When late apply is on and the client gives up on a PATCH, then the write still lands afterwards', async () => {
    const account = createAccount();
    emulator.configure({ lateApply: { rate: 1, ms: 500 } });

    const error = await client.storageAccounts
      .update(
        RG,
        account.name,
        {
          networkRuleSet: {
            defaultAction: 'Deny',
            ipRules: [{ iPAddressOrRange: '52.3.3.3', action: 'Allow' }],
          },
        },
        { abortSignal: AbortSignal.timeout(100) },
      )
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    const before = emulator.storage.getNetworkAcls(account.id).ipRules;
    await until(() => emulator.stats().lateApplied === 1);

    expect(error).toBeInstanceOf(Error);
    expect(before).toEqual([]);
    expect(emulator.storage.getNetworkAcls(account.id).ipRules).toEqual([
      { value: '52.3.3.3', action: 'Allow' },
    ]);
  });

  it('When an unknown account is read or patched, then the answer is 404 ResourceNotFound', async () => {
    const read = await restErrorOf(client.storageAccounts.getProperties(RG, 'nosuchaccount'));
    const patched = await restErrorOf(
      client.storageAccounts.update(RG, 'nosuchaccount', { tags: {} }),
    );

    expect(read.statusCode).toBe(404);
    expect(read.code).toBe('ResourceNotFound');
    expect(patched.statusCode).toBe(404);
  });

  it('When the admin API creates an account and edits its rules, then the SDK sees them and the stats count requests', async () => {
    const name = uniqueAccountName();
    const created = await rawRequest(emulator, 'POST', '/_emulator/storage-accounts', {
      body: { resourceGroup: RG, name, networkAcls: { defaultAction: 'Deny' } },
    });
    const { id } = created.json() as { id: string };
    const edited = await rawRequest(
      emulator,
      'PUT',
      `/_emulator/storage-accounts/acls?id=${encodeURIComponent(id)}`,
      {
        body: { ipRules: [{ value: '20.30.40.50' }] },
      },
    );
    const refused = await rawRequest(
      emulator,
      'PUT',
      `/_emulator/storage-accounts/acls?id=${encodeURIComponent(id)}`,
      {
        body: { ipRules: [{ value: '10.0.0.1' }] },
      },
    );
    await client.storageAccounts.getProperties(RG, name);
    const stats = await rawRequest(emulator, 'GET', '/_emulator/storage-accounts/stats', {
      headers: BEARER,
    });

    expect(created.status).toBe(201);
    expect(edited.status).toBe(200);
    expect(refused.status).toBe(400);
    expect(emulator.storage.getNetworkAcls(id)).toMatchObject({
      defaultAction: 'Deny',
      ipRules: [{ value: '20.30.40.50', action: 'Allow' }],
    });
    expect(stats.json()).toMatchObject({
      accounts: { [id.toLowerCase()]: { gets: 1, patches: 0 } },
    });
  });
});
