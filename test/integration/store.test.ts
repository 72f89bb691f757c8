import { describe, expect, it } from 'vitest';

import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import type { Lease } from '../../src/domain/lease';
import { storageConnectionString, uniqueTable } from '../support/harness';

const NOW = Date.parse('2026-11-25T10:00:00.000Z');

function newStore(): TableLeaseStore {
  return new TableLeaseStore({
    tableName: uniqueTable(),
    connectionString: storageConnectionString(),
  });
}

function lease(n: number, overrides: Partial<Lease> = {}): Lease {
  return {
    id: `kv-store.${String(n).padStart(24, '0')}`,
    vault: 'kv-store',
    ip: `52.9.0.${n}/32`,
    status: 'active',
    principal: 'pipeline-a',
    createdAt: NOW,
    expiresAt: NOW + 60_000,
    ...overrides,
  };
}

describe('TableLeaseStore', () => {
  it('When 150 leases end at once and one changed meanwhile, then the others end and that one is left as it is', async () => {
    const store = newStore();
    for (let n = 0; n < 150; n += 1) await store.createLease(lease(n, { slot: true }));
    for (let n = 0; n < 150; n += 1) await store.claimSlot(lease(n), NOW);
    const live = await store.liveLeases('kv-store');
    const renewed = live.find((l) => l.id === lease(7).id);
    expect(renewed).toBeDefined();
    await store.updateLiveLease(renewed!, { expiresAt: NOW + 600_000 });

    const result = await store.endLeases(live, 'expired', NOW + 61_000);
    expect(result.changed.map((l) => l.id)).toEqual([lease(7).id]);
    expect(result.ended).toHaveLength(149);
    const left = await store.liveLeases('kv-store');
    expect(left.map((l) => [l.id, l.expiresAt])).toEqual([[lease(7).id, NOW + 600_000]]);
    expect((await store.getLease(lease(3).id, 'kv-store'))?.status).toBe('expired');
    const history = await store.listLeases({ vault: 'kv-store', status: 'expired', top: 1000 });
    expect(history.items).toHaveLength(149);
    // Only the renewed lease still holds a slot of its principal.
    expect(await store.claimSlot(lease(999), NOW)).toBe(2);
  });

  it('When a principal claims slots, then the count covers its unexpired live leases only', async () => {
    const store = newStore();
    expect(await store.claimSlot(lease(1), NOW)).toBe(1);
    expect(await store.claimSlot(lease(2), NOW)).toBe(2);
    expect(await store.claimSlot(lease(3, { principal: 'someone-else' }), NOW)).toBe(1);
    const later = { expiresAt: NOW + 200_000 };
    expect(await store.claimSlot(lease(4, later), NOW + 60_001)).toBe(1); // 1 and 2 have expired by then
    await store.releaseSlot(lease(4));
    expect(await store.claimSlot(lease(5, later), NOW + 60_001)).toBe(1);
  });

  it('When an idempotency key was used, then it finds that lease without writing anything', async () => {
    const store = newStore();
    await store.createLease(lease(1), 'key-1');
    expect((await store.findIdempotentLease('kv-store', 'pipeline-a', 'key-1'))?.id).toBe(
      lease(1).id,
    );
    expect(await store.findIdempotentLease('kv-store', 'pipeline-b', 'key-1')).toBeUndefined();
    expect(await store.findIdempotentLease('kv-store', 'pipeline-a', 'key-2')).toBeUndefined();
  });
});
