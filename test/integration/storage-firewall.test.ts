import { StorageManagementClient } from '@azure/arm-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startEmulator } from '../../dev/emulator/server';
import type { StorageNetworkAcls } from '../../dev/emulator/storage/network-rule-set';
import type { RunningEmulator } from '../../dev/emulator/types';
import type { ManagedTarget } from '../../src/domain/target';
import { FirewallError } from '../../src/ports/target-firewall';
import type { ArmFirewallOptions } from '../../src/targets/arm';
import { armFirewalls } from '../../src/targets/firewalls';
import { StorageFirewall } from '../../src/targets/storage/firewall';
import { storageKind } from '../../src/targets/storage/kind';
import { targetFirewallContract } from '../contracts/target-firewall.contract';

const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
const RG = 'rg-storage';
const STATIC_RULE = '20.40.60.80';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});

function options(): ArmFirewallOptions {
  return {
    endpoint: emulator.url,
    credential: {
      getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
    },
    tlsCa: emulator.caPem,
    maxRetries: 0,
  };
}

/** As operators lock one down: Deny, two bypasses, one static rule, a subnet and a resource instance. */
function lockedAcls(): Partial<StorageNetworkAcls> {
  return {
    bypass: 'AzureServices, Logging',
    defaultAction: 'Deny',
    ipRules: [{ value: STATIC_RULE, action: 'Allow' }],
    virtualNetworkRules: [
      {
        id: `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/build`,
        action: 'Allow',
        state: 'Succeeded',
      },
    ],
    resourceAccessRules: [
      {
        tenantId: '00000000-0000-0000-0000-000000000001',
        resourceId: `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.Security/datascanners/storageDataScanner`,
      },
    ],
  };
}

let counter = 0;
function accountName(): string {
  counter += 1;
  return `sfw${counter}${Math.random().toString(36).slice(2, 10)}`.replace(/[^a-z0-9]/g, '');
}

function target(name: string): ManagedTarget {
  const parsed = storageKind.parseId(
    `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${name}`,
  );
  if (typeof parsed !== 'object') throw new Error(`not a storage account id: ${String(parsed)}`);
  return parsed;
}

/** A fresh locked-down account in `location`. */
function createAccount(location = 'northeurope'): ManagedTarget {
  const name = accountName();
  emulator.storage.create({ resourceGroup: RG, name, location, networkAcls: lockedAcls() });
  return target(name);
}

function held(account: ManagedTarget): string[] {
  return emulator.storage.getNetworkAcls(account.resourceId).ipRules.map((rule) => rule.value);
}

function withoutIpRules(account: ManagedTarget): unknown {
  return { ...emulator.storage.getNetworkAcls(account.resourceId), ipRules: undefined };
}

targetFirewallContract('StorageFirewall against the emulator', () => {
  const account = createAccount();
  return {
    kind: storageKind,
    firewall: new StorageFirewall(options()),
    target: account,
    existing: [`${STATIC_RULE}/32`],
    missing: target(accountName()),
    others: () => withoutIpRules(account),
    overlap: {
      slowWrites: (ms) => emulator.configure({ writeLatencyMs: ms }),
      writesInFlight: () =>
        emulator.storage.stats()[account.resourceId.toLowerCase()]?.writesInFlight ?? 0,
    },
  };
});

describe('StorageFirewall: what is particular to storage accounts', () => {
  it('When a /32 is written, then the account holds the bare address, a read gives it back as /32 and the audit record is in the account notation', async () => {
    const account = createAccount();
    const firewall = new StorageFirewall(options());

    const write = await firewall.write(account, await firewall.read(account), [
      `${STATIC_RULE}/32`,
      '52.1.2.3/32',
      '52.2.0.0/24',
    ]);

    expect(held(account)).toEqual([STATIC_RULE, '52.1.2.3', '52.2.0.0/24']);
    expect((await firewall.read(account)).rules).toEqual([
      `${STATIC_RULE}/32`,
      '52.1.2.3/32',
      '52.2.0.0/24',
    ]);
    expect(write).toEqual({
      read: [STATIC_RULE],
      written: [STATIC_RULE, '52.1.2.3', '52.2.0.0/24'],
      added: ['52.1.2.3', '52.2.0.0/24'],
      removed: [],
    });
  });

  it("When a /31 lease's rules (storageKind.rulesFor) are written, then the account holds its two addresses bare", async () => {
    const account = createAccount();
    const firewall = new StorageFirewall(options());
    const current = await firewall.read(account);

    await firewall.write(account, current, [
      ...current.rules,
      ...storageKind.rulesFor('52.1.2.2/31'),
    ]);

    expect(held(account)).toEqual([STATIC_RULE, '52.1.2.2', '52.1.2.3']);
  });

  it('When rules are written, then bypass, defaultAction, virtualNetworkRules, resourceAccessRules and every other property of the account are kept as they were', async () => {
    const account = createAccount();
    const firewall = new StorageFirewall(options());
    const sdk = new StorageManagementClient(options().credential, SUBSCRIPTION, {
      endpoint: emulator.url,
      credentials: { scopes: ['https://management.azure.com/.default'] },
      tlsOptions: { ca: emulator.caPem },
    });
    const aclsBefore = emulator.storage.getNetworkAcls(account.resourceId);
    const before = await sdk.storageAccounts.getProperties(RG, account.name);

    await firewall.write(account, await firewall.read(account), ['52.9.9.9/32']);

    const aclsAfter = emulator.storage.getNetworkAcls(account.resourceId);
    expect(aclsAfter).toEqual({ ...aclsBefore, ipRules: [{ value: '52.9.9.9', action: 'Allow' }] });
    expect(JSON.stringify({ ...aclsAfter, ipRules: [] })).toBe(
      JSON.stringify({ ...aclsBefore, ipRules: [] }),
    );
    const after = await sdk.storageAccounts.getProperties(RG, account.name);
    expect({ ...after, networkRuleSet: { ...after.networkRuleSet, ipRules: [] } }).toEqual({
      ...before,
      networkRuleSet: { ...before.networkRuleSet, ipRules: [] },
    });
  });

  it('When two writes overlap, then the second is a conflict carrying 409 StorageAccountOperationInProgress', async () => {
    const account = createAccount();
    const firewall = new StorageFirewall(options());
    const current = await firewall.read(account);
    emulator.configure({ writeLatencyMs: 300 });
    let second: unknown;
    try {
      const first = firewall.write(account, current, ['52.1.1.1/32']);
      const deadline = performance.now() + 5000;
      while (emulator.storage.stats()[account.resourceId.toLowerCase()]?.writesInFlight !== 1) {
        if (performance.now() > deadline) throw new Error('the first write never arrived');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      second = await firewall.write(account, current, ['52.2.2.2/32']).catch((e: unknown) => e);
      await first;
    } finally {
      emulator.configure({ writeLatencyMs: 0 });
    }

    expect(second).toBeInstanceOf(FirewallError);
    expect(second).toMatchObject({ kind: 'conflict', status: 409 });
    expect((second as FirewallError).message).toContain('StorageAccountOperationInProgress');
    expect(held(account)).toEqual(['52.1.1.1']);
  });

  it('When 400 rules are held and a 401st is written, then the write is rejected with 400 and the account keeps its 400', async () => {
    const account = createAccount();
    const firewall = new StorageFirewall(options());
    const addresses = Array.from(
      { length: 401 },
      (_, i) => `52.${10 + Math.floor(i / 250)}.${i % 250}.1/32`,
    );

    await firewall.write(account, await firewall.read(account), addresses.slice(0, 400));
    const error = await firewall
      .write(account, await firewall.read(account), addresses)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(FirewallError);
    expect(error).toMatchObject({ kind: 'rejected', status: 400 });
    expect((error as FirewallError).message).toContain('InvalidValuesForRequestParameters');
    expect(held(account)).toHaveLength(400);
  });

  it("When the data plane and location are asked, then they are the account's blob endpoint and location, read once", async () => {
    const account = createAccount('eastus');
    const firewall = new StorageFirewall(options());
    const key = account.resourceId.toLowerCase();
    const getsBefore = emulator.storage.stats()[key]?.gets ?? 0;

    const blob = await firewall.dataPlane(account);
    const location = await firewall.location(account);

    expect(blob).toBe(emulator.storage.blobEndpoint(account.name));
    expect(location).toBe('eastus');
    expect(emulator.storage.stats()[key]?.gets).toBe(getsBefore + 1);
  });

  it("When the leased address lies in the account's region, then warnings() says so; elsewhere it says nothing", async () => {
    // The emulator's default tags: AzureCloud.westeurope holds 20.50.0.0/18, eastus 40.71.0.0/16.
    const account = createAccount('westeurope');
    const firewall = new StorageFirewall(options());

    const same = await firewall.warnings(account, '20.50.1.2/32');
    const other = await firewall.warnings(account, '40.71.1.2/32');

    expect(same).toHaveLength(1);
    expect(same[0]).toContain('20.50.1.2/32');
    expect(same[0]).toContain('westeurope');
    expect(same[0]).toMatch(/private endpoint/);
    expect(other).toEqual([]);
  });

  it('When Resource Manager refuses the service tags or the account is gone, then warnings() answers none instead of failing', async () => {
    const account = createAccount('westeurope');
    const firewall = new StorageFirewall(options());
    emulator.configure({ refusals: [{ vault: 'serviceTags', status: 403 }] });
    try {
      expect(await firewall.warnings(account, '20.50.1.2/32')).toEqual([]);
      expect(await firewall.warnings(target(accountName()), '20.50.1.2/32')).toEqual([]);
    } finally {
      emulator.configure({ refusals: [] });
    }
  });

  it('When the dispatching firewall gets a storage target, then the storage adapter answers; a kind without warnings gives none', async () => {
    const account = createAccount('westeurope');
    const firewalls = armFirewalls(options());
    const vault: ManagedTarget = {
      name: 'kv-none',
      kind: 'keyvault',
      subscriptionId: SUBSCRIPTION,
      resourceGroup: RG,
      resourceId: `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/kv-none`,
    };

    expect((await firewalls.read(account)).rules).toEqual([`${STATIC_RULE}/32`]);
    expect(await firewalls.warnings?.(account, '20.50.1.2/32')).toHaveLength(1);
    expect(await firewalls.warnings?.(vault, '20.50.1.2/32')).toEqual([]);
  });
});
