import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { SqlFirewallRule } from '../../dev/emulator/sql/firewall-rules';
import type { StorageNetworkAcls } from '../../dev/emulator/storage/network-rule-set';
import type { RunningEmulator } from '../../dev/emulator/types';
import { storageClient } from '../emulator/helpers';
import {
  lockedVault,
  SUBSCRIPTION,
  type TestBroker,
  testBroker,
  testEmulator,
} from '../support/harness';
import { ManualClock } from '../support/manual-clock';

/**
 * Contract §4 for storage accounts and SQL servers, from the broker's HTTP surface (the
 * handlers the host registers, real adapters through @azure/arm-storage and @azure/arm-sql
 * against the emulator, leases in azurite): what each kind's firewall holds after grants,
 * releases, expiry and drift; capacity per kind; the refusals; the views and filters.
 */

const RG = 'rg-targets';
/** The service tags served: a lease in one of these ranges is "in the account's region". */
const TAGS = {
  changeNumber: 1,
  regions: { westeurope: ['52.166.0.0/16'], northeurope: ['52.164.0.0/16'] },
};

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await testEmulator({ serviceTags: TAGS });
});
afterAll(async () => {
  await emulator.close();
});

const xff = (ip: string) => ({ 'x-forwarded-for': `203.0.113.9, ${ip}:51234` });
let counter = 0;
const unique = () => `${(counter += 1)}${Math.random().toString(36).slice(2, 8)}`;

/** Operators' storage lockdown: everything besides `ipRules` must come back as it was. */
function lockedStorageAcls(ipRules: string[] = ['20.40.60.80']): Partial<StorageNetworkAcls> {
  return {
    bypass: 'AzureServices, Logging',
    defaultAction: 'Deny',
    ipRules: ipRules.map((value) => ({ value, action: 'Allow' })),
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

/** A fresh locked storage account; returns its name and resource id. */
function freshAccount(options: { location?: string; ipRules?: string[] } = {}): {
  name: string;
  id: string;
} {
  const name = `st${unique()}`.slice(0, 24);
  const id = emulator.storage.create({
    resourceGroup: RG,
    name,
    location: options.location ?? 'westeurope',
    networkAcls: lockedStorageAcls(options.ipRules),
  });
  return { name, id };
}

/** The operator's rules on a fresh SQL server, `AllowAllWindowsAzureIps` included. */
const OFFICE: SqlFirewallRule = {
  name: 'office',
  startIpAddress: '20.40.60.0',
  endIpAddress: '20.40.60.255',
};
const AZURE: SqlFirewallRule = {
  name: 'AllowAllWindowsAzureIps',
  startIpAddress: '0.0.0.0',
  endIpAddress: '0.0.0.0',
};

function freshServer(
  options: { publicNetworkAccess?: 'Enabled' | 'Disabled'; rules?: SqlFirewallRule[] } = {},
): { name: string; id: string } {
  const name = `sql-${unique()}`;
  const id = emulator.sql.create({
    resourceGroup: RG,
    name,
    allowAzureServices: true,
    firewallRules: options.rules ?? [OFFICE],
    ...(options.publicNetworkAccess ? { publicNetworkAccess: options.publicNetworkAccess } : {}),
  });
  return { name, id };
}

/** A storage account's ipRules as stored, sorted by value. */
function storageRules(id: string): { value: string; action?: string }[] {
  return [...emulator.storage.getNetworkAcls(id).ipRules].sort((a, b) =>
    a.value.localeCompare(b.value),
  );
}
const storageValues = (id: string) => storageRules(id).map((rule) => rule.value);

/** A SQL server's rules as stored, sorted by name. */
function sqlRules(id: string): SqlFirewallRule[] {
  return [...emulator.sql.listFirewallRules(id)].sort((a, b) => a.name.localeCompare(b.name));
}
const brokerRules = (id: string) => sqlRules(id).filter((rule) => /^kvlease-/i.test(rule.name));
const foreignRules = (id: string) => sqlRules(id).filter((rule) => !/^kvlease-/i.test(rule.name));
/** The ranges the broker's rules cover, `start-end`. */
const brokerRanges = (id: string) =>
  brokerRules(id)
    .map((rule) => `${rule.startIpAddress}-${rule.endIpAddress}`)
    .sort();

function grant(broker: TestBroker, body: object, ip: string) {
  return broker.call('POST', '/api/leases', { body, headers: xff(ip) });
}

describe('Storage accounts', () => {
  it('When a pipeline asks for a lease by target, then the 201 comes once the account holds the bare address with action Allow, and everything else in networkAcls is kept', async () => {
    const account = freshAccount();
    const before = emulator.storage.getNetworkAcls(account.id);
    const broker = testBroker({ emulator, vaults: [], targets: [account.id] });

    const granted = await grant(broker, { target: account.name, ttlSeconds: 600 }, '52.10.1.1');

    expect(granted.status, granted.text).toBe(201);
    expect(granted.body).toMatchObject({
      target: account.name,
      vault: account.name,
      kind: 'storage',
      ip: '52.10.1.1/32',
      status: 'active',
    });
    expect(granted.body.warnings ?? []).toEqual([]);
    expect(storageRules(account.id)).toEqual([
      { value: '20.40.60.80', action: 'Allow' },
      { value: '52.10.1.1', action: 'Allow' },
    ]);
    const after = emulator.storage.getNetworkAcls(account.id);
    expect(after.defaultAction).toBe(before.defaultAction);
    expect(after.bypass).toBe(before.bypass);
    expect(after.virtualNetworkRules).toEqual(before.virtualNetworkRules);
    expect(after.resourceAccessRules).toEqual(before.resourceAccessRules);
  });

  it('When a v1 client names the account as vault, then it gets the same lease and the release removes the rule before the 200', async () => {
    const account = freshAccount();
    const broker = testBroker({ emulator, vaults: [], targets: [account.id] });

    const granted = await grant(broker, { vault: account.name }, '52.10.1.2');
    expect(granted.status, granted.text).toBe(201);
    expect(granted.body).toMatchObject({
      vault: account.name,
      target: account.name,
      kind: 'storage',
    });
    expect(storageValues(account.id)).toContain('52.10.1.2');

    const released = await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    expect(released.status).toBe(200);
    expect(released.body.status).toBe('released');
    expect(storageValues(account.id)).toEqual(['20.40.60.80']);
  });

  it('When an admin leases a /31, then the account holds its two addresses bare and loses both on release', async () => {
    const account = freshAccount();
    const broker = testBroker({ emulator, vaults: [], targets: [account.id] });

    const granted = await grant(broker, { target: account.name, ip: '52.10.1.4/31' }, '52.10.9.9');
    expect(granted.status, granted.text).toBe(201);
    expect(granted.body.ip).toBe('52.10.1.4/31');
    expect(storageValues(account.id)).toEqual(['20.40.60.80', '52.10.1.4', '52.10.1.5']);

    await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    expect(storageValues(account.id)).toEqual(['20.40.60.80']);
  });

  it('When two leases hold one address, then the rule stays until the last one is released', async () => {
    const account = freshAccount();
    const broker = testBroker({ emulator, vaults: [], targets: [account.id] });
    const first = await grant(broker, { target: account.name }, '52.10.1.6');
    const second = await grant(broker, { target: account.name }, '52.10.1.6');
    expect([first.status, second.status]).toEqual([201, 201]);

    await broker.call('DELETE', `/api/leases/${first.body.id}`);
    expect(storageValues(account.id)).toContain('52.10.1.6');
    await broker.call('DELETE', `/api/leases/${second.body.id}`);
    expect(storageValues(account.id)).toEqual(['20.40.60.80']);
  });

  it('When a lease expires, then the sweep removes its address and keeps the other lease', async () => {
    const clock = new ManualClock(Date.now());
    const account = freshAccount();
    const broker = testBroker({ emulator, vaults: [], targets: [account.id], clock });
    const short = await grant(broker, { target: account.name, ttlSeconds: 60 }, '52.10.2.1');
    await grant(broker, { target: account.name, ttlSeconds: 600 }, '52.10.2.2');

    clock.advance(59_999);
    await broker.services.sweep();
    expect(storageValues(account.id)).toContain('52.10.2.1');
    clock.advance(1);
    await broker.services.sweep();

    expect(storageValues(account.id)).toEqual(['20.40.60.80', '52.10.2.2']);
    expect((await broker.call('GET', `/api/leases/${short.body.id}`)).body.status).toBe('expired');
  });

  it('When someone removes a leased address behind the broker, then the sweep puts it back and keeps their own rule', async () => {
    const account = freshAccount();
    const broker = testBroker({ emulator, vaults: [], targets: [account.id] });
    await grant(broker, { target: account.name }, '52.10.3.1');
    emulator.storage.setNetworkAcls(account.id, {
      ipRules: [
        { value: '20.40.60.80', action: 'Allow' },
        { value: '52.99.0.1', action: 'Allow' },
      ],
    });

    await broker.services.sweep();

    expect(storageValues(account.id)).toEqual(['20.40.60.80', '52.10.3.1', '52.99.0.1']);
    expect(emulator.storage.getNetworkAcls(account.id).defaultAction).toBe('Deny');
  });

  it('When the account already holds 400 rules, then a grant is 409 vault-at-capacity naming the limit of 400, and nothing is written', async () => {
    const rules = Array.from({ length: 400 }, (_, n) => `20.41.${Math.floor(n / 256)}.${n % 256}`);
    const account = freshAccount({ ipRules: rules });
    const broker = testBroker({ emulator, vaults: [], targets: [account.id] });

    const refused = await grant(broker, { target: account.name }, '52.10.4.1');

    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.type).toBe('urn:kv-lease:problem:vault-at-capacity');
    expect(refused.body.detail).toMatch(
      /401 IP rules, more than the limit of 400 for a storage account/,
    );
    expect(emulator.storage.stats()[account.id.toLowerCase()]?.writesApplied ?? 0).toBe(0);
    expect(storageRules(account.id)).toHaveLength(400);
  });

  it('When someone else is writing the account, then the 409 StorageAccountOperationInProgress is retried with a fresh read and neither write is lost', async () => {
    const account = freshAccount();
    const broker = testBroker({ emulator, vaults: [], targets: [account.id] });
    // Warm the broker's first read, so the grant's PATCH lands inside the operator's write.
    await broker.call('GET', '/api/targets');
    // The operator's write holds the account long enough for the broker's PATCH to overlap it.
    emulator.configure({ writeLatencyMs: 1500 });
    try {
      const operator = storageClient(emulator).storageAccounts.update(RG, account.name, {
        networkRuleSet: {
          defaultAction: 'Deny',
          bypass: 'AzureServices, Logging',
          ipRules: [
            { iPAddressOrRange: '20.40.60.80', action: 'Allow' },
            { iPAddressOrRange: '52.98.0.1', action: 'Allow' },
          ],
          virtualNetworkRules: lockedStorageAcls().virtualNetworkRules?.map((rule) => ({
            virtualNetworkResourceId: rule.id,
            action: 'Allow' as const,
          })),
          resourceAccessRules: lockedStorageAcls().resourceAccessRules,
        },
      });
      // Until the operator's PATCH is in flight at Resource Manager.
      const patches = () => emulator.storage.stats()[account.id.toLowerCase()]?.patches ?? 0;
      const until = async (count: number) => {
        for (let waited = 0; patches() < count && waited < 5000; waited += 5)
          await new Promise((resolve) => setTimeout(resolve, 5));
      };
      await until(1);
      expect(patches()).toBe(1);
      const grants = Promise.all([
        grant(broker, { target: account.name }, '52.10.5.1'),
        grant(broker, { target: account.name }, '52.10.5.2'),
      ]);
      // The broker's PATCH has arrived (doomed to 409): later writes need not be slow.
      await until(2);
      emulator.configure({ writeLatencyMs: 0 });
      const [granted, second] = await grants;
      await operator;

      expect([granted.status, second.status]).toEqual([201, 201]);
      expect(emulator.storage.stats()[account.id.toLowerCase()]?.conflicts).toBeGreaterThanOrEqual(
        1,
      );
      expect(storageValues(account.id)).toEqual([
        '20.40.60.80',
        '52.10.5.1',
        '52.10.5.2',
        '52.98.0.1',
      ]);
    } finally {
      emulator.configure({ writeLatencyMs: 0 });
    }
  });

  it('When the leased address lies in the account’s own region, then the grant still succeeds with a warning, and a lease elsewhere carries none', async () => {
    const north = freshAccount({ location: 'northeurope' });
    const west = freshAccount({ location: 'westeurope' });
    const broker = testBroker({ emulator, vaults: [], targets: [north.id, west.id] });

    const inRegion = await grant(broker, { target: north.name }, '52.164.7.7');
    const elsewhere = await grant(broker, { target: west.name }, '52.164.7.7');

    expect(inRegion.status, inRegion.text).toBe(201);
    expect(inRegion.body.warnings).toHaveLength(1);
    expect(inRegion.body.warnings[0]).toMatch(/northeurope/);
    expect(inRegion.body.warnings[0]).toMatch(/52\.164\.7\.7/);
    expect(storageValues(north.id)).toContain('52.164.7.7');
    expect(elsewhere.status).toBe(201);
    expect(elsewhere.body.warnings ?? []).toEqual([]);
  });
});

describe('SQL servers', () => {
  it('When a pipeline asks for a lease by target, then the 201 comes once a kvlease- rule with start = end exists, the operator’s rules untouched', async () => {
    const server = freshServer();
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const granted = await grant(broker, { target: server.name, ttlSeconds: 600 }, '52.20.1.1');

    expect(granted.status, granted.text).toBe(201);
    expect(granted.body).toMatchObject({
      target: server.name,
      vault: server.name,
      kind: 'sql',
      ip: '52.20.1.1/32',
    });
    expect(brokerRanges(server.id)).toEqual(['52.20.1.1-52.20.1.1']);
    expect(foreignRules(server.id)).toEqual([AZURE, OFFICE]);
  });

  it('When a v1 client names the server as vault, then it gets the lease and the release deletes the rule before the 200', async () => {
    const server = freshServer();
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const granted = await grant(broker, { vault: server.name }, '52.20.1.2');
    expect(granted.status, granted.text).toBe(201);
    expect(granted.body.kind).toBe('sql');
    expect(brokerRanges(server.id)).toEqual(['52.20.1.2-52.20.1.2']);

    const released = await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    expect(released.status).toBe(200);
    expect(brokerRules(server.id)).toEqual([]);
    expect(foreignRules(server.id)).toEqual([AZURE, OFFICE]);
  });

  it('When two leases hold one address, then its rule stays until the last one is released', async () => {
    const server = freshServer();
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });
    const first = await grant(broker, { target: server.name }, '52.20.1.3');
    const second = await grant(broker, { target: server.name }, '52.20.1.3');
    expect([first.status, second.status]).toEqual([201, 201]);

    await broker.call('DELETE', `/api/leases/${first.body.id}`);
    expect(brokerRanges(server.id)).toEqual(['52.20.1.3-52.20.1.3']);
    await broker.call('DELETE', `/api/leases/${second.body.id}`);
    expect(brokerRules(server.id)).toEqual([]);
  });

  it('When a lease expires, then the sweep deletes its rule and keeps the other lease’s', async () => {
    const clock = new ManualClock(Date.now());
    const server = freshServer();
    const broker = testBroker({ emulator, vaults: [], targets: [server.id], clock });
    await grant(broker, { target: server.name, ttlSeconds: 60 }, '52.20.2.1');
    await grant(broker, { target: server.name, ttlSeconds: 600 }, '52.20.2.2');

    clock.advance(59_999);
    await broker.services.sweep();
    expect(brokerRanges(server.id)).toHaveLength(2);
    clock.advance(1);
    await broker.services.sweep();

    expect(brokerRanges(server.id)).toEqual(['52.20.2.2-52.20.2.2']);
    expect(foreignRules(server.id)).toEqual([AZURE, OFFICE]);
  });

  it('When someone deletes a leased rule and adds a stray kvlease- rule, then the sweep restores the one and deletes the other, and never touches rules without the prefix', async () => {
    const server = freshServer();
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });
    await grant(broker, { target: server.name }, '52.20.3.1');
    const [leased] = brokerRules(server.id);
    emulator.sql.deleteFirewallRule(server.id, leased?.name ?? '');
    emulator.sql.setFirewallRule(server.id, {
      name: 'kvlease-stray',
      startIpAddress: '52.20.3.9',
      endIpAddress: '52.20.3.9',
    });
    const unprefixed = {
      name: 'ops-52-20-3-8',
      startIpAddress: '52.20.3.8',
      endIpAddress: '52.20.3.8',
    };
    emulator.sql.setFirewallRule(server.id, unprefixed);

    await broker.services.sweep();

    expect(brokerRanges(server.id)).toEqual(['52.20.3.1-52.20.3.1']);
    expect(brokerRules(server.id).map((rule) => rule.name)).not.toContain('kvlease-stray');
    expect(foreignRules(server.id)).toEqual(
      [AZURE, OFFICE, unprefixed].sort((a, b) => a.name.localeCompare(b.name)),
    );
  });

  it('When the server holds 128 rules, none the broker’s, then a grant is 409 vault-at-capacity naming the limit of 128', async () => {
    const rules = Array.from({ length: 127 }, (_, n) => ({
      name: `ops-${n}`,
      startIpAddress: `20.42.0.${n}`,
      endIpAddress: `20.42.0.${n}`,
    }));
    const server = freshServer({ rules });
    expect(sqlRules(server.id)).toHaveLength(128);
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const refused = await grant(broker, { target: server.name }, '52.20.4.1');

    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.type).toBe('urn:kv-lease:problem:vault-at-capacity');
    expect(refused.body.detail).toMatch(
      /129 IP rules, more than the limit of 128 for a SQL server/,
    );
    expect(brokerRules(server.id)).toEqual([]);
  });

  it('When the operator’s rules leave room for one, then the first grant gets it and the second is refused', async () => {
    const rules = Array.from({ length: 126 }, (_, n) => ({
      name: `ops-${n}`,
      startIpAddress: `20.43.0.${n}`,
      endIpAddress: `20.43.0.${n}`,
    }));
    const server = freshServer({ rules });
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const first = await grant(broker, { target: server.name }, '52.20.4.2');
    const second = await grant(broker, { target: server.name }, '52.20.4.3');

    expect(first.status, first.text).toBe(201);
    expect(second.status, second.text).toBe(409);
    expect(second.body.type).toBe('urn:kv-lease:problem:vault-at-capacity');
    expect(sqlRules(server.id)).toHaveLength(128);
  });

  it('When the server’s public network access is disabled, then a grant is 502 vault-unavailable at once saying why, and the target shows unhealthy', async () => {
    const server = freshServer({ publicNetworkAccess: 'Disabled' });
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const started = performance.now();
    const refused = await grant(broker, { target: server.name }, '52.20.5.1');
    const elapsed = performance.now() - started;

    expect(refused.status, refused.text).toBe(502);
    expect(refused.body.type).toBe('urn:kv-lease:problem:vault-unavailable');
    expect(refused.body.detail).toMatch(/DenyPublicEndpointEnabled|public network access/i);
    // LEASE_APPLY_TIMEOUT_SECONDS is 10 in the harness: "at once" is well under it.
    expect(elapsed).toBeLessThan(3000);
    expect(brokerRules(server.id)).toEqual([]);
    const targets = await broker.call('GET', '/api/targets');
    const summary = targets.body.value.find((t: { name: string }) => t.name === server.name);
    expect(summary).toMatchObject({ kind: 'sql', healthy: false });
    expect(summary.lastError).toMatch(/DenyPublicEndpointEnabled|public network access/i);
  });
});

describe('Views and filters across kinds', () => {
  it('When the broker manages a vault, an account and a server, then /api/targets lists each with kind, limit and data plane, /api/vaults only the vault, and leases and audit filter by target and kind', async () => {
    const vault = `kv-tg-${unique()}`.slice(0, 24);
    emulator.createVault(lockedVault(vault));
    const account = freshAccount();
    const server = freshServer();
    const broker = testBroker({ emulator, vaults: [vault], targets: [account.id, server.id] });

    const onVault = await grant(broker, { vault }, '52.30.1.1');
    const onAccount = await grant(broker, { target: account.name }, '52.30.1.2');
    const onServer = await grant(broker, { target: server.name }, '52.30.1.3');
    expect([onVault.status, onAccount.status, onServer.status]).toEqual([201, 201, 201]);
    expect(onVault.body).toMatchObject({ kind: 'keyvault', target: vault, vault });

    const targets = await broker.call('GET', '/api/targets');
    expect(targets.status).toBe(200);
    const byName = new Map(targets.body.value.map((t: { name: string }) => [t.name, t] as const));
    expect(byName.size).toBe(3);
    expect(byName.get(vault)).toMatchObject({
      kind: 'keyvault',
      maxRules: 1000,
      activeLeases: 1,
      dataPlane: emulator.vaultUri(vault),
    });
    expect(byName.get(account.name)).toMatchObject({
      kind: 'storage',
      resourceId: account.id,
      maxRules: 400,
      activeLeases: 1,
      healthy: true,
      dataPlane: emulator.storage.blobEndpoint(account.name),
    });
    expect(byName.get(server.name)).toMatchObject({
      kind: 'sql',
      resourceId: server.id,
      maxRules: 128,
      activeLeases: 1,
      healthy: true,
      // host:1433, the host being the server's fullyQualifiedDomainName (the emulator's TDS host).
      dataPlane: `${(await emulator.sql.dataPlaneAddress(server.id)).split(':')[0]}:1433`,
    });

    const vaults = await broker.call('GET', '/api/vaults');
    expect(vaults.body.value.map((v: { name: string }) => v.name)).toEqual([vault]);

    const byTarget = await broker.call('GET', `/api/leases?target=${account.name}`);
    expect(byTarget.body.value.map((l: { id: string }) => l.id)).toEqual([onAccount.body.id]);
    const byKind = await broker.call('GET', '/api/leases?kind=sql');
    expect(byKind.body.value.map((l: { id: string }) => l.id)).toEqual([onServer.body.id]);

    const audit = await broker.call('GET', '/api/audit?kind=storage');
    expect(audit.status).toBe(200);
    expect(audit.body.value.length).toBeGreaterThan(0);
    expect(
      audit.body.value.every(
        (e: { kind: string; target: string; vault: string }) =>
          e.kind === 'storage' && e.target === account.name && e.vault === account.name,
      ),
    ).toBe(true);
    const all = await broker.call('GET', '/api/audit?$top=1000');
    const kinds = new Set(all.body.value.map((e: { kind: string }) => e.kind));
    expect(kinds).toEqual(new Set(['keyvault', 'storage', 'sql']));
  });
});
