import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import { silentLogger } from '../../src/domain/logger';
import type { ManagedTarget } from '../../src/domain/target';
import { FirewallError } from '../../src/ports/target-firewall';
import { KeyVaultFirewall } from '../../src/targets/keyvault/firewall';
import { TargetCoordinator } from '../../src/writer/coordinator';
import {
  lockedVault,
  STATIC_RULE,
  storageConnectionString,
  uniqueTable,
  vaultId,
} from '../support/harness';
import { armClient, restErrorOf } from './helpers';

let emulator: RunningEmulator;

beforeAll(async () => {
  emulator = await startEmulator({ seed: 11 });
});
afterAll(async () => {
  await emulator.close();
});
afterEach(() => {
  emulator.configure({ refusals: [], lateApply: null, writeLatencyMs: 0 });
});

const managed = (name: string): ManagedTarget => ({
  kind: 'keyvault',
  name,
  resourceId: vaultId(name),
  subscriptionId: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'rg-test',
});

function firewall(): KeyVaultFirewall {
  return new KeyVaultFirewall({
    endpoint: emulator.url,
    credential: {
      getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
    },
    tlsCa: emulator.caPem,
    maxRetries: 0,
  });
}

describe('Key Vault ARM emulator: permanent refusals of a vault', () => {
  it('When a vault is configured to refuse with 403, then the SDK gets AuthorizationFailed for it and other vaults answer as usual', async () => {
    emulator.createVault(lockedVault('kv-refuse-403'));
    emulator.createVault(lockedVault('kv-refuse-ok'));
    emulator.configure({ refusals: [{ vault: 'kv-refuse-403', status: 403 }] });
    const client = armClient(emulator);
    const refused = await restErrorOf(client.vaults.get('rg-test', 'kv-refuse-403'));
    expect(refused.statusCode).toBe(403);
    expect(refused.code).toBe('AuthorizationFailed');
    expect((await client.vaults.get('rg-test', 'kv-refuse-ok')).name).toBe('kv-refuse-ok');
    expect(emulator.stats().refused).toBe(1);
  });

  it('When a vault is configured to refuse writes with 404, then reads work and the broker classifies the write as a permanent refusal', async () => {
    emulator.createVault(lockedVault('kv-refuse-404'));
    emulator.configure({
      refusals: [{ vault: vaultId('kv-refuse-404'), status: 404, methods: ['PATCH', 'PUT'] }],
    });
    const vault = managed('kv-refuse-404');
    const acls = await firewall().read(vault);
    const error = await firewall()
      .write(vault, acls, [STATIC_RULE, '52.1.1.1'])
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(FirewallError);
    expect((error as FirewallError).permanent).toBe(true);
    expect((error as FirewallError).status).toBe(404);
    expect(emulator.getNetworkAcls(vaultId('kv-refuse-404')).ipRules).toEqual([
      { value: STATIC_RULE },
    ]);
  });

  it('When a refusal names an unknown status, then configuring it is refused and nothing changes', () => {
    expect(() =>
      emulator.configure({ refusals: [{ vault: 'kv-x', status: 500 as never }] }),
    ).toThrow(/refusals/);
    expect(emulator.stats().refused).toBeGreaterThanOrEqual(0);
  });
});

describe('Key Vault ARM emulator: writes applied after their client gave up', () => {
  it('When late apply is on and the client aborts the PATCH, then the write still lands afterwards', async () => {
    emulator.createVault(lockedVault('kv-late-sdk'));
    emulator.configure({ lateApply: { rate: 1, ms: 600 } });
    const vault = managed('kv-late-sdk');
    const acls = await firewall().read(vault);
    const error = await firewall()
      .write(vault, acls, [STATIC_RULE, '52.2.2.2/32'], AbortSignal.timeout(150))
      .catch((thrown: unknown) => thrown);
    expect((error as FirewallError).kind).toBe('timeout');
    expect(emulator.getNetworkAcls(vaultId('kv-late-sdk')).ipRules).toEqual([
      { value: STATIC_RULE },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(emulator.getNetworkAcls(vaultId('kv-late-sdk')).ipRules).toEqual([
      { value: STATIC_RULE },
      { value: '52.2.2.2/32' },
    ]);
    expect(emulator.stats().lateApplied).toBe(1);
  });
});

describe('The writer when an abandoned write lands late', () => {
  it('When a PATCH adding a rule is abandoned and lands after a later pass read the vault, then the rule stays owned by the broker and is removed, never left as a static rule', async () => {
    const name = 'kv-late-writer';
    emulator.createVault(lockedVault(name));
    const vault = managed(name);
    const store = new TableLeaseStore({
      tableName: uniqueTable(),
      connectionString: storageConnectionString(),
    });
    const coordinator = new TargetCoordinator([vault], {
      store,
      firewall: firewall(),
      clock: { now: () => Date.now() },
      logger: silentLogger,
      callTimeoutMs: 300,
      // An abandoned write may land up to 2.5 s after it was sent (the emulator's takes 1.2 s).
      settleMs: 2500,
      pollMs: 20,
    });
    const now = Date.now();
    const lease = {
      id: `${name}.000000000000000000000001`,
      vault: name,
      ip: '52.9.9.9/32',
      status: 'pending' as const,
      principal: 'p',
      createdAt: now,
      expiresAt: now + 600_000,
    };
    const { lease: stored } = await store.createLease(lease);
    const lateBefore = emulator.stats().lateApplied;

    // The first write is held by Resource Manager and carried out 1.2 s later;
    // the writer gives up after 300 ms, and the grant gives up (fails its lease).
    emulator.configure({ lateApply: { rate: 1, ms: 1200 } });
    await expect(coordinator.sync(name, Date.now() + 600)).rejects.toMatchObject({
      code: 'VAULT.UPDATE_TIMEOUT',
    });
    emulator.configure({ lateApply: null });
    await store.endLease(stored, 'failed', Date.now(), 'timeout');
    expect((await store.getVaultState(name)).owned).toEqual(['52.9.9.9/32']);

    // A pass now reads a vault without the rule: the late write has not landed.
    expect(emulator.getNetworkAcls(vaultId(name)).ipRules).toEqual([{ value: STATIC_RULE }]);
    await coordinator.sync(name, Date.now() + 10_000);
    // It landed meanwhile (the pass's own write was refused with 409 while it was
    // in flight) and the pass removed it: the broker still knew the rule as its own.
    expect(emulator.stats().lateApplied - lateBefore).toBe(1);
    expect(emulator.getNetworkAcls(vaultId(name)).ipRules).toEqual([{ value: STATIC_RULE }]);

    // Once no write can land any more, a pass forgets the rule.
    await new Promise((resolve) => setTimeout(resolve, 2600));
    await coordinator.sync(name, Date.now() + 10_000);
    const state = await store.getVaultState(name);
    expect(state.owned).toEqual([]);
    expect(state.unsettledUntil).toBeLessThanOrEqual(Date.now());
    expect(emulator.getNetworkAcls(vaultId(name)).ipRules).toEqual([{ value: STATIC_RULE }]);
    await coordinator.shutdown();
  });
});
