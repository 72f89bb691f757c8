import { checkContinuation } from '../../src/adapters/tables/continuation';
import { isLive, type Lease, type LeaseStatus } from '../../src/domain/lease';
import {
  EMPTY_VAULT_STATE,
  type LeasePage,
  type LeaseStore,
  type ListQuery,
  type StoredLease,
  type VaultState,
} from '../../src/ports/lease-store';

/**
 * The LeaseStore port in memory, for fast tests of the use cases and the
 * writer. It passes the same contract suite as the Table Storage adapter
 * (test/contracts/lease-store.contract.ts): every update is conditional on
 * the version read, and a lost race answers `undefined`.
 */
export class InMemoryLeaseStore implements LeaseStore {
  private version = 0;
  private readonly leases = new Map<string, StoredLease>();
  private readonly keys = new Map<string, string>();
  private readonly slots = new Map<string, Map<string, number>>();
  private readonly vaults = new Map<string, VaultState>();
  /** Calls made, by method name: what a test may want to count. */
  readonly calls = new Map<string, number>();

  private count(method: string): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
  }

  private etag(): string {
    this.version += 1;
    return `W/"${this.version}"`;
  }

  private stored(lease: Lease): StoredLease {
    const copy: StoredLease = { ...lease, etag: this.etag() };
    this.leases.set(lease.id, copy);
    return { ...copy };
  }

  /** Every lease as stored now, by id: what a check reads without going through the port. */
  snapshot(): ReadonlyMap<string, StoredLease> {
    return new Map([...this.leases].map(([id, lease]) => [id, { ...lease }]));
  }

  /** A vault's row as stored now. */
  vaultStateNow(vault: string): VaultState {
    const state = this.vaults.get(vault);
    return state ? { ...state, owned: [...state.owned] } : { ...EMPTY_VAULT_STATE, owned: [] };
  }

  ensureReady(): Promise<void> {
    this.count('ensureReady');
    return Promise.resolve();
  }

  getLease(id: string, vault: string): Promise<StoredLease | undefined> {
    this.count('getLease');
    const lease = this.leases.get(id);
    return Promise.resolve(lease && lease.vault === vault ? { ...lease } : undefined);
  }

  createLease(
    lease: Lease,
    idempotencyKey?: string,
  ): Promise<{ lease: StoredLease; created: boolean }> {
    this.count('createLease');
    if (idempotencyKey !== undefined) {
      const key = `${lease.vault}\n${lease.principal}\n${idempotencyKey}`;
      const previous = this.leases.get(this.keys.get(key) ?? '');
      if (previous && isLive(previous))
        return Promise.resolve({ lease: { ...previous }, created: false });
      this.keys.set(key, lease.id);
    }
    return Promise.resolve({ lease: this.stored(lease), created: true });
  }

  findIdempotentLease(
    vault: string,
    principal: string,
    key: string,
  ): Promise<StoredLease | undefined> {
    this.count('findIdempotentLease');
    const lease = this.leases.get(this.keys.get(`${vault}\n${principal}\n${key}`) ?? '');
    return Promise.resolve(lease ? { ...lease } : undefined);
  }

  claimSlot(
    lease: Pick<Lease, 'id' | 'vault' | 'principal' | 'expiresAt'>,
    now: number,
  ): Promise<number> {
    this.count('claimSlot');
    const slots = this.slots.get(lease.principal) ?? new Map<string, number>();
    this.slots.set(lease.principal, slots);
    slots.set(lease.id, lease.expiresAt);
    return Promise.resolve([...slots.values()].filter((expiresAt) => expiresAt > now).length);
  }

  releaseSlot(lease: Pick<Lease, 'id' | 'principal'>): Promise<void> {
    this.count('releaseSlot');
    this.slots.get(lease.principal)?.delete(lease.id);
    return Promise.resolve();
  }

  liveLeases(vault: string): Promise<StoredLease[]> {
    this.count('liveLeases');
    return Promise.resolve(
      [...this.leases.values()]
        .filter((lease) => lease.vault === vault && isLive(lease))
        .map((lease) => ({ ...lease })),
    );
  }

  /** Pages in id order; the continuation has the shape the Tables SDK issues. */
  async listLeases(query: ListQuery): Promise<LeasePage> {
    this.count('listLeases');
    const after =
      query.continuation === undefined
        ? undefined
        : (
            JSON.parse(
              Buffer.from(checkContinuation(query.continuation), 'base64').toString('utf8'),
            ) as { nextRowKey?: string }
          ).nextRowKey;
    const statuses =
      query.status === 'all'
        ? ['active', 'released', 'expired']
        : query.status === 'ended'
          ? ['released', 'expired']
          : [query.status];
    const matching = [...this.leases.values()]
      .filter(
        (lease) =>
          lease.vault === query.vault &&
          statuses.includes(lease.status) &&
          (query.principal === undefined || lease.principal === query.principal) &&
          (after === undefined || lease.id >= after),
      )
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const items = matching.slice(0, query.top).map((lease) => ({ ...lease }));
    const next = matching[query.top];
    const continuation = next
      ? Buffer.from(
          JSON.stringify({ nextPartitionKey: query.vault, nextRowKey: next.id }),
        ).toString('base64')
      : undefined;
    return { items, continuation };
  }

  pruneHistory(vault: string, endedBefore: number): Promise<number> {
    this.count('pruneHistory');
    let removed = 0;
    for (const [id, lease] of this.leases) {
      if (lease.vault !== vault || isLive(lease)) continue;
      if (lease.endedAt !== undefined && lease.endedAt < endedBefore) {
        this.leases.delete(id);
        removed += 1;
      }
    }
    return Promise.resolve(removed);
  }

  private endOne(
    lease: StoredLease,
    status: Extract<LeaseStatus, 'released' | 'expired' | 'failed'>,
    endedAt: number,
    failure: string | undefined,
  ): StoredLease | undefined {
    const current = this.leases.get(lease.id);
    if (!current || current.etag !== lease.etag || !isLive(current)) return undefined;
    const { etag: _etag, ...rest } = current;
    const ended = this.stored({ ...rest, status, endedAt, failure });
    if (ended.slot) this.slots.get(ended.principal)?.delete(ended.id);
    return ended;
  }

  endLease(
    lease: StoredLease,
    status: Extract<LeaseStatus, 'released' | 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<StoredLease | undefined> {
    this.count('endLease');
    return Promise.resolve(this.endOne(lease, status, endedAt, failure));
  }

  endLeases(
    leases: StoredLease[],
    status: Extract<LeaseStatus, 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<{ ended: StoredLease[]; changed: StoredLease[] }> {
    this.count('endLeases');
    const result = { ended: [] as StoredLease[], changed: [] as StoredLease[] };
    for (const lease of leases) {
      const ended = this.endOne(lease, status, endedAt, failure);
      if (ended) result.ended.push(ended);
      else result.changed.push(lease);
    }
    return Promise.resolve(result);
  }

  private updateOne(
    lease: StoredLease,
    patch: Partial<Pick<Lease, 'status' | 'expiresAt'>>,
  ): StoredLease | undefined {
    const current = this.leases.get(lease.id);
    if (!current || current.etag !== lease.etag || !isLive(current)) return undefined;
    const { etag: _etag, ...rest } = current;
    const next = this.stored({ ...rest, ...patch });
    if (patch.expiresAt !== undefined && next.slot)
      this.slots.get(next.principal)?.set(next.id, next.expiresAt);
    return next;
  }

  updateLiveLease(
    lease: StoredLease,
    patch: Partial<Pick<Lease, 'status' | 'expiresAt'>>,
  ): Promise<StoredLease | undefined> {
    this.count('updateLiveLease');
    return Promise.resolve(this.updateOne(lease, patch));
  }

  /** All at one instant, like a transaction: one changed meanwhile is left as it is. */
  markActive(leases: StoredLease[]): Promise<Set<string>> {
    this.count('markActive');
    const marked = new Set<string>();
    for (const lease of leases)
      if (this.updateOne(lease, { status: 'active' })) marked.add(lease.id);
    return Promise.resolve(marked);
  }

  getVaultState(vault: string): Promise<VaultState> {
    this.count('getVaultState');
    return Promise.resolve(this.vaultStateNow(vault));
  }

  putVaultState(vault: string, state: VaultState): Promise<VaultState | undefined> {
    this.count('putVaultState');
    const current = this.vaults.get(vault);
    if ((current?.etag ?? undefined) !== state.etag) return Promise.resolve(undefined);
    const next = { ...state, owned: [...state.owned], etag: this.etag() };
    this.vaults.set(vault, next);
    return Promise.resolve({ ...next, owned: [...next.owned] });
  }
}
