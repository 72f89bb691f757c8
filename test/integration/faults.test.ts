import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import { silentLogger } from '../../src/domain/logger';
import type { ManagedTarget } from '../../src/domain/target';
import type { LeaseStore, VaultState } from '../../src/ports/lease-store';
import type { TargetFirewall } from '../../src/ports/target-firewall';
import { KeyVaultFirewall } from '../../src/targets/keyvault/firewall';
import { TargetCoordinator } from '../../src/writer/coordinator';
import {
  publicIp,
  rulesOf,
  STATIC_RULE,
  storageConnectionString,
  testBroker,
  testEmulator,
  uniqueTable,
  vaultFactory,
  vaultId,
} from '../support/harness';
import { ManualClock } from '../support/manual-clock';

let emulator: RunningEmulator;
const freshVault = vaultFactory(() => emulator, 'kv-fault');

beforeAll(async () => {
  emulator = await testEmulator({ seed: 7 });
});
afterAll(async () => {
  await emulator.close();
});

describe('Resource Manager faults', () => {
  it('When 20% of calls fail with 500/429 and overlapping writes get 409, then each grant is 201 with its rule or 503 with no active lease', async () => {
    const vault = freshVault();
    emulator.configure({
      writeLatencyMs: 100,
      conflictOnOverlap: true,
      faults: { rate: 0.2, statuses: [500, 429], retryAfterSeconds: 1 },
    });
    try {
      const broker = testBroker({
        emulator,
        vaults: [vault],
        env: { LEASE_APPLY_TIMEOUT_SECONDS: '6' },
      });
      const results = await Promise.all(
        Array.from({ length: 40 }, async (_, n) => {
          const ip = publicIp(3000 + n);
          const response = await broker.call('POST', '/api/leases', {
            body: { vault },
            headers: { 'x-forwarded-for': ip },
          });
          const present = rulesOf(emulator, vault).includes(`${ip}/32`);
          return {
            ip,
            status: response.status,
            present,
            retryAfter: response.headers.get('retry-after'),
            id: response.body?.id,
          };
        }),
      );
      for (const result of results) {
        expect([201, 503]).toContain(result.status);
        if (result.status === 201) expect(result.present).toBe(true);
        if (result.status === 503) expect(result.retryAfter).toMatch(/^\d+$/);
      }
      expect(results.some((r) => r.status === 201)).toBe(true);

      const active = await broker.store.liveLeases(vault);
      expect(active.every((lease) => lease.status === 'active')).toBe(true);
      const answered201 = new Set(results.filter((r) => r.status === 201).map((r) => r.id));
      expect(new Set(active.map((lease) => lease.id))).toEqual(answered201);

      emulator.configure({ faults: null });
      await broker.services.sweep();
      expect(rulesOf(emulator, vault)).toEqual(
        [STATIC_RULE, ...active.map((lease) => lease.ip)].sort(),
      );
    } finally {
      emulator.configure({ faults: null, writeLatencyMs: 0 });
    }
  });

  it('When every write fails, then the grant answers 503 with Retry-After and no active lease is left', async () => {
    const vault = freshVault();
    emulator.configure({ faults: { rate: 1, statuses: [500], methods: ['PATCH'] } });
    try {
      const broker = testBroker({
        emulator,
        vaults: [vault],
        env: { LEASE_APPLY_TIMEOUT_SECONDS: '2' },
      });
      const response = await broker.call('POST', '/api/leases', {
        body: { vault },
        headers: { 'x-forwarded-for': '52.3.3.3' },
      });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(response.body.type).toBe('urn:kv-lease:problem:vault-update-timeout');
      expect(await broker.store.liveLeases(vault)).toEqual([]);
      emulator.configure({ faults: null });
      await broker.services.sweep();
      expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
    } finally {
      emulator.configure({ faults: null });
    }
  });
});

describe('Drift and ownership', () => {
  it('When the broker owns a rule no live lease needs (a crashed grant), then the sweep removes it and nothing else', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    // A crash after ownership was recorded and the rule written, before the lease was kept.
    const state = await broker.store.getVaultState(vault);
    await broker.store.putVaultState(vault, { ...state, owned: ['52.4.4.4/32'] });
    emulator.setNetworkAcls(vaultId(vault), {
      ipRules: [{ value: STATIC_RULE }, { value: '52.4.4.4/32' }, { value: '52.5.5.5/32' }],
    });
    await broker.services.sweep();
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.5.5.5/32']);
  });

  it('When two sweeps run at once on two instances, then the vault ends right with one write', async () => {
    const vault = freshVault();
    const clock = new ManualClock(Date.now());
    const first = testBroker({ emulator, vaults: [vault], clock });
    const table = first.config.LEASE_TABLE_NAME;
    const second = testBroker({
      emulator,
      vaults: [vault],
      clock,
      env: { LEASE_TABLE_NAME: table },
    });
    for (let n = 0; n < 10; n += 1) {
      await first.call('POST', '/api/leases', {
        body: { vault, ttlSeconds: 60 },
        headers: { 'x-forwarded-for': publicIp(4000 + n) },
      });
    }
    const before = emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied ?? 0;
    clock.advance(61_000);
    await Promise.all([first.services.sweep(), second.services.sweep()]);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
    expect(
      (emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied ?? 0) - before,
    ).toBe(1);
  });
});

describe('A stale writer', () => {
  it('When a writer is cut off from the store past its lock and another takes over, then the stale one never writes', async () => {
    const name = freshVault();
    const vault: ManagedTarget = {
      kind: 'keyvault',
      name,
      resourceId: vaultId(name),
      subscriptionId: '00000000-0000-0000-0000-000000000000',
      resourceGroup: 'rg-test',
    };
    const store = new TableLeaseStore({
      tableName: uniqueTable(),
      connectionString: storageConnectionString(),
    });
    const real = new KeyVaultFirewall({
      endpoint: emulator.url,
      credential: {
        getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
      },
      tlsCa: emulator.caPem,
    });
    let staleWrites = 0;
    const stalling: TargetFirewall = {
      read: async (v, signal) => {
        const acls = await real.read(v, signal);
        await new Promise((resolve) => setTimeout(resolve, 3500)); // longer than the lock lifetime
        return acls;
      },
      write: async (v, current, rules, signal) => {
        staleWrites += 1;
        return real.write(v, current, rules, signal);
      },
    };
    const clock = { now: () => Date.now() };
    const options = {
      store,
      clock,
      logger: silentLogger,
      lockTtlMs: 3000,
      callTimeoutMs: 10_000,
      pollMs: 20,
    };
    // The stale writer's store answers its lock acquisition, then nothing for
    // 4 s (a partition): its heartbeat cannot renew the lock, which expires.
    let staleStorePuts = 0;
    const cutOff: LeaseStore = Object.assign(Object.create(store) as LeaseStore, {
      putVaultState: async (name: string, state: VaultState) => {
        staleStorePuts += 1;
        if (staleStorePuts > 1) await new Promise((resolve) => setTimeout(resolve, 4000));
        return store.putVaultState(name, state);
      },
    });
    const stale = new TargetCoordinator([vault], {
      ...options,
      store: cutOff,
      firewall: stalling,
      instanceId: 'stale',
    });
    const fresh = new TargetCoordinator([vault], {
      ...options,
      firewall: real,
      instanceId: 'fresh',
    });

    const now = Date.now();
    await store.createLease({
      id: `${name}.000000000000000000000001`,
      vault: name,
      ip: '52.6.6.6/32',
      status: 'pending',
      principal: 'p',
      createdAt: now,
      expiresAt: now + 600_000,
    });
    const staleSync = stale.sync(name, Date.now() + 20_000).catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 3200)); // the stale writer's lock has expired
    await store.createLease({
      id: `${name}.000000000000000000000002`,
      vault: name,
      ip: '52.7.7.7/32',
      status: 'pending',
      principal: 'p',
      createdAt: now,
      expiresAt: now + 600_000,
    });
    await fresh.sync(name, Date.now() + 10_000);
    await staleSync;
    expect(staleWrites).toBe(0);
    expect(rulesOf(emulator, name)).toEqual([STATIC_RULE, '52.6.6.6/32', '52.7.7.7/32'].sort());
  });
});
