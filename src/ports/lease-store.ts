import type { Lease, LeaseStatus, PublicLeaseStatus } from '../domain/lease';

/** A lease as read from the store, with the version that guards updates. */
export interface StoredLease extends Lease {
  etag: string;
}

/**
 * Per-vault coordination state: the writer lock, pass counters and the rules
 * the broker owns. `pass` counts writer passes begun, `applied` the last one
 * that completed; a caller that read `pass = n` after its own change knows the
 * firewall reflects that change once `applied > n`.
 */
export interface VaultState {
  pass: number;
  applied: number;
  lockHolder: string;
  /** Epoch ms after which the lock is free, whoever holds it. */
  lockUntil: number;
  /** Canonical rules the broker added (recorded before each write). */
  owned: string[];
  /** Total ipRules after the last completed pass; -1 when unknown. */
  totalRules: number;
  /** Epoch ms when the last pass completed; 0 when none has. */
  lastPassAt: number;
  /**
   * Epoch ms until which a firewall write whose outcome is unknown (timed out,
   * abandoned, its writer gone) may still land. Recorded before every write and
   * restored once the write is answered; while it lies ahead the writer keeps
   * every owned rule and writes even an unchanged list (see docs/architecture.md).
   */
  unsettledUntil: number;
  /** Why the last pass failed (`''` after a pass that completed): the vault's health. */
  lastError: string;
  /** Epoch ms of that failure; 0 when none. */
  lastErrorAt: number;
  /** Absent when the row does not exist yet. */
  etag?: string | undefined;
}

export const EMPTY_VAULT_STATE: VaultState = {
  pass: 0,
  applied: 0,
  lockHolder: '',
  lockUntil: 0,
  owned: [],
  totalRules: -1,
  lastPassAt: 0,
  unsettledUntil: 0,
  lastError: '',
  lastErrorAt: 0,
};

export interface LeasePage {
  items: StoredLease[];
  continuation?: string | undefined;
}

export interface ListQuery {
  vault: string;
  /** `ended`: released or expired. */
  status: PublicLeaseStatus | 'all' | 'ended';
  /**
   * Only this principal's leases. Its ended leases (`released`, `expired`,
   * `ended`) are read from its own history, never by scanning other callers'.
   */
  principal?: string | undefined;
  top: number;
  continuation?: string | undefined;
}

/**
 * Leases and per-vault state. Every update is conditional on the version that
 * was read (ETag), so two broker instances can never silently overwrite each
 * other; a lost race returns `undefined` and the caller re-reads.
 */
export interface LeaseStore {
  /** Create the table if needed; also the health probe. */
  ensureReady(): Promise<void>;
  getLease(id: string, vault: string): Promise<StoredLease | undefined>;
  /**
   * Record a new live lease. With an idempotency key, a live lease already
   * recorded under the same key is returned instead (`created: false`).
   */
  createLease(
    lease: Lease,
    idempotencyKey?: string,
  ): Promise<{ lease: StoredLease; created: boolean }>;
  /** Read-only: the lease recorded under an idempotency key, if any (live or ended). */
  findIdempotentLease(
    vault: string,
    principal: string,
    key: string,
  ): Promise<StoredLease | undefined>;
  /**
   * Per-principal slots, for LEASE_MAX_ACTIVE_PER_PRINCIPAL: one index row per
   * live lease in the principal's own partition. `claimSlot` records the
   * lease's slot first and then counts the principal's unexpired slots (its
   * own included), so concurrent grants can over-refuse but never over-grant.
   * Slots are released when a lease ends (`endLease`).
   */
  claimSlot(
    lease: Pick<Lease, 'id' | 'vault' | 'principal' | 'expiresAt'>,
    now: number,
  ): Promise<number>;
  releaseSlot(lease: Pick<Lease, 'id' | 'principal'>): Promise<void>;
  /** Live (pending and active) leases of a vault: one partition range query. */
  liveLeases(vault: string): Promise<StoredLease[]>;
  /** One page: exactly one store call (the caller bounds how many it makes). */
  listLeases(query: ListQuery): Promise<LeasePage>;
  /**
   * Retention: remove ended leases of a vault that ended before `endedBefore`
   * (at most a bounded number per call; the next call goes on). The audit
   * trail is not touched. Returns how many were removed.
   */
  pruneHistory(vault: string, endedBefore: number): Promise<number>;
  /** Move a live lease to an ended status; `undefined` if it changed meanwhile. */
  endLease(
    lease: StoredLease,
    status: Extract<LeaseStatus, 'released' | 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<StoredLease | undefined>;
  /**
   * End many live leases of one vault at once (a sweep): the same conditional
   * decision as `endLease`, written in transactions. `changed` holds the
   * leases that changed meanwhile and were left as they are.
   */
  endLeases(
    leases: StoredLease[],
    status: Extract<LeaseStatus, 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<{ ended: StoredLease[]; changed: StoredLease[] }>;
  /** Conditional update of a live lease; `undefined` if it changed meanwhile. */
  updateLiveLease(
    lease: StoredLease,
    patch: Partial<Pick<Lease, 'status' | 'expiresAt'>>,
  ): Promise<StoredLease | undefined>;
  /**
   * Mark pending leases active after their rules were written; returns the
   * ids marked (a lease that changed meanwhile, failed by its grant or
   * released, is left as it is).
   */
  markActive(leases: StoredLease[]): Promise<Set<string>>;
  getVaultState(vault: string): Promise<VaultState>;
  /** Conditional write (create when `state.etag` is absent); `undefined` on a lost race. */
  putVaultState(vault: string, state: VaultState): Promise<VaultState | undefined>;
}
