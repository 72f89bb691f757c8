import { describe, expect, it } from 'vitest';

import { DomainError } from '../../src/domain/errors';
import { type Lease, newLeaseId } from '../../src/domain/lease';
import type { LeaseStore } from '../../src/ports/lease-store';

const NOW = Date.parse('2026-11-25T10:00:00.000Z');
const VAULT = 'kv-store';

function lease(n: number, overrides: Partial<Lease> = {}): Lease {
  return {
    id: `${VAULT}.${String(n).padStart(24, '0')}`,
    vault: VAULT,
    ip: `52.9.${Math.floor(n / 256)}.${n % 256}/32`,
    status: 'active',
    principal: 'pipeline-a',
    createdAt: NOW,
    expiresAt: NOW + 60_000,
    ...overrides,
  };
}

/**
 * What every LeaseStore must do, run against the Table Storage adapter
 * (azurite) and the in-memory fake alike, so the fake the fast tests use
 * behaves like the store the broker runs on.
 */
export function leaseStoreContract(name: string, newStore: () => LeaseStore): void {
  describe(`LeaseStore contract: ${name}`, () => {
    it('When a lease is created, then it reads back by id, live, and not from another vault', async () => {
      const store = newStore();
      const created = await store.createLease(lease(1, { status: 'pending' }));
      expect(created.created).toBe(true);
      expect(await store.getLease(lease(1).id, VAULT)).toMatchObject({
        id: lease(1).id,
        status: 'pending',
        ip: lease(1).ip,
      });
      expect(await store.getLease(lease(1).id, 'kv-other')).toBeUndefined();
      expect((await store.liveLeases(VAULT)).map((l) => l.id)).toEqual([lease(1).id]);
    });

    it('When an update carries a version that is no longer current, then it answers undefined and changes nothing', async () => {
      const store = newStore();
      await store.createLease(lease(1));
      const read = (await store.getLease(lease(1).id, VAULT))!;
      const renewed = await store.updateLiveLease(read, { expiresAt: NOW + 600_000 });
      expect(renewed?.expiresAt).toBe(NOW + 600_000);
      expect(await store.updateLiveLease(read, { expiresAt: NOW + 1 })).toBeUndefined();
      expect(await store.endLease(read, 'released', NOW)).toBeUndefined();
      expect((await store.getLease(lease(1).id, VAULT))?.expiresAt).toBe(NOW + 600_000);
    });

    it('When a live lease ends, then it is no longer live, keeps its history and cannot end twice', async () => {
      const store = newStore();
      await store.createLease(lease(1));
      const read = (await store.getLease(lease(1).id, VAULT))!;
      const ended = await store.endLease(read, 'released', NOW + 5);
      expect(ended).toMatchObject({ status: 'released', endedAt: NOW + 5 });
      expect(await store.liveLeases(VAULT)).toEqual([]);
      expect((await store.getLease(lease(1).id, VAULT))?.status).toBe('released');
      expect(await store.endLease(read, 'expired', NOW + 6)).toBeUndefined();
    });

    it('When 150 leases end at once and one changed meanwhile, then the others end and that one is left as it is', async () => {
      const store = newStore();
      for (let n = 0; n < 150; n += 1) await store.createLease(lease(n, { slot: true }));
      for (let n = 0; n < 150; n += 1) await store.claimSlot(lease(n), NOW);
      const live = await store.liveLeases(VAULT);
      const renewed = live.find((l) => l.id === lease(7).id);
      expect(renewed).toBeDefined();
      await store.updateLiveLease(renewed!, { expiresAt: NOW + 600_000 });

      const result = await store.endLeases(live, 'expired', NOW + 61_000);
      expect(result.changed.map((l) => l.id)).toEqual([lease(7).id]);
      expect(result.ended).toHaveLength(149);
      const left = await store.liveLeases(VAULT);
      expect(left.map((l) => [l.id, l.expiresAt])).toEqual([[lease(7).id, NOW + 600_000]]);
      expect((await store.getLease(lease(3).id, VAULT))?.status).toBe('expired');
      const history = await store.listLeases({ vault: VAULT, status: 'expired', top: 1000 });
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

    it('When an idempotency key is reused while its lease lives, then the same lease comes back; once it ended, a new one is made', async () => {
      const store = newStore();
      expect((await store.createLease(lease(1), 'key-1')).created).toBe(true);
      const again = await store.createLease(lease(2), 'key-1');
      expect(again).toMatchObject({ created: false, lease: { id: lease(1).id } });
      expect((await store.findIdempotentLease(VAULT, 'pipeline-a', 'key-1'))?.id).toBe(lease(1).id);
      expect(await store.findIdempotentLease(VAULT, 'pipeline-b', 'key-1')).toBeUndefined();
      expect(await store.findIdempotentLease(VAULT, 'pipeline-a', 'key-2')).toBeUndefined();
      await store.endLease((await store.getLease(lease(1).id, VAULT))!, 'released', NOW);
      const fresh = await store.createLease(lease(3), 'key-1');
      expect(fresh).toMatchObject({ created: true, lease: { id: lease(3).id } });
    });

    it('When leases are listed in pages, then the pages cover each matching lease once, filtered by status and principal', async () => {
      const store = newStore();
      for (let n = 0; n < 7; n += 1)
        await store.createLease(lease(n, { principal: n % 2 ? 'pipeline-b' : 'pipeline-a' }));
      const seen: string[] = [];
      let continuation: string | undefined;
      do {
        const page = await store.listLeases({
          vault: VAULT,
          status: 'active',
          top: 3,
          continuation,
        });
        expect(page.items.length).toBeLessThanOrEqual(3);
        seen.push(...page.items.map((l) => l.id));
        continuation = page.continuation;
      } while (continuation);
      expect(seen.sort()).toEqual(Array.from({ length: 7 }, (_, n) => lease(n).id).sort());
      const own = await store.listLeases({
        vault: VAULT,
        status: 'all',
        principal: 'pipeline-b',
        top: 100,
      });
      expect(own.items.map((l) => l.principal)).toEqual(['pipeline-b', 'pipeline-b', 'pipeline-b']);
      expect((await store.listLeases({ vault: VAULT, status: 'expired', top: 10 })).items).toEqual(
        [],
      );
    });

    it('When a principal lists its ended leases, then it gets its own only, by status, in pages', async () => {
      const store = newStore();
      for (let n = 0; n < 9; n += 1)
        await store.createLease(lease(n, { principal: n % 3 ? 'pipeline-b' : 'pipeline-a' }));
      for (const live of await store.liveLeases(VAULT)) {
        const n = Number(live.id.slice(-2));
        if (n !== 8) await store.endLease(live, n % 2 ? 'released' : 'expired', NOW + n);
      }
      const ownEnded: string[] = [];
      let continuation: string | undefined;
      do {
        const page = await store.listLeases({
          vault: VAULT,
          status: 'ended',
          principal: 'pipeline-b',
          top: 2,
          continuation,
        });
        ownEnded.push(...page.items.map((l) => l.id));
        expect(page.items.every((l) => l.principal === 'pipeline-b' && l.vault === VAULT)).toBe(
          true,
        );
        continuation = page.continuation;
      } while (continuation);
      expect(ownEnded.sort()).toEqual([1, 2, 4, 5, 7].map((n) => lease(n).id));
      const released = await store.listLeases({
        vault: VAULT,
        status: 'released',
        principal: 'pipeline-b',
        top: 100,
      });
      expect(released.items.map((l) => l.id).sort()).toEqual([1, 5, 7].map((n) => lease(n).id));
      expect(released.items[0]).toMatchObject({ status: 'released', ip: expect.any(String) });
      const other = await store.listLeases({
        vault: 'kv-other',
        status: 'ended',
        principal: 'pipeline-b',
        top: 100,
      });
      expect(other.items).toEqual([]);
    });

    it('When history is pruned, then leases that ended before the cutoff are gone and the others stay', async () => {
      const store = newStore();
      const DAY = 86_400_000;
      const at = (days: number, n: number): Lease =>
        lease(n, { id: newLeaseId(VAULT, NOW - days * DAY), createdAt: NOW - days * DAY });
      const old = at(10, 1);
      const young = at(1, 2);
      const live = at(20, 3); // created long ago, renewed, still live
      for (const created of [old, young, live]) await store.createLease(created);
      const read = async (l: Lease) => (await store.getLease(l.id, VAULT))!;
      await store.endLease(await read(old), 'expired', NOW - 9 * DAY);
      await store.endLease(await read(young), 'released', NOW - DAY);
      expect(await store.pruneHistory(VAULT, NOW - 5 * DAY)).toBe(1);
      expect(await store.getLease(old.id, VAULT)).toBeUndefined();
      expect((await store.getLease(young.id, VAULT))?.status).toBe('released');
      expect((await store.getLease(live.id, VAULT))?.status).toBe('active');
      const own = await store.listLeases({
        vault: VAULT,
        status: 'ended',
        principal: 'pipeline-a',
        top: 100,
      });
      expect(own.items.map((l) => l.id)).toEqual([young.id]);
      expect(await store.pruneHistory(VAULT, NOW - 5 * DAY)).toBe(0);
    });

    it('When a continuation was not issued by the store, then listing refuses it with REQUEST.INVALID', async () => {
      const store = newStore();
      for (const forged of ['not-base64!', Buffer.from('{"x":1}').toString('base64')]) {
        const error: unknown = await store
          .listLeases({ vault: VAULT, status: 'active', top: 10, continuation: forged })
          .catch((thrown: unknown) => thrown);
        expect(error).toBeInstanceOf(DomainError);
        expect((error as DomainError).code).toBe('REQUEST.INVALID');
      }
    });

    it('When vault state is written, then only a writer holding the current version succeeds', async () => {
      const store = newStore();
      const empty = await store.getVaultState(VAULT);
      expect(empty).toMatchObject({ pass: 0, applied: 0, owned: [], totalRules: -1 });
      const first = await store.putVaultState(VAULT, { ...empty, pass: 1, owned: ['52.1.1.1/32'] });
      expect(first?.etag).toBeDefined();
      // A second creator, and a writer with the old version, both lose.
      expect(await store.putVaultState(VAULT, { ...empty, pass: 9 })).toBeUndefined();
      const read = await store.getVaultState(VAULT);
      expect(read).toMatchObject({ pass: 1, owned: ['52.1.1.1/32'] });
      expect(await store.putVaultState(VAULT, { ...read, applied: 1 })).toBeDefined();
      expect(await store.putVaultState(VAULT, { ...read, applied: 2 })).toBeUndefined();
      expect((await store.getVaultState(VAULT)).applied).toBe(1);
    });

    it('When pending leases are marked active, then they are active, and one changed meanwhile is left as it is', async () => {
      const store = newStore();
      await store.createLease(lease(1, { status: 'pending' }));
      await store.createLease(lease(2, { status: 'pending' }));
      const live = await store.liveLeases(VAULT);
      const second = live.find((l) => l.id === lease(2).id)!;
      await store.endLease(second, 'released', NOW);
      await store.markActive(live);
      expect((await store.getLease(lease(1).id, VAULT))?.status).toBe('active');
      expect((await store.getLease(lease(2).id, VAULT))?.status).toBe('released');
    });
  });
}
