import { mulberry32 } from '../../dev/emulator/chance';
import { DomainError } from '../../src/domain/errors';
import type { Lease, LeaseStatus } from '../../src/domain/lease';
import type { ManagedVault } from '../../src/domain/vault';
import {
  EMPTY_VAULT_STATE,
  type LeasePage,
  type LeaseStore,
  type StoredLease,
  type VaultState,
} from '../../src/ports/lease-store';
import {
  FirewallError,
  type NetworkAcls,
  type VaultFirewall,
} from '../../src/ports/vault-firewall';

/**
 * The world of the writer model test: one lease store and one vault firewall,
 * both in memory, whose every call takes a random time (fake timers), may fail
 * before or after its effect, and answers in any order. Each effect happens at
 * one instant, so the test can check the contract between any two steps.
 *
 * What the firewall assumes of Resource Manager (docs/architecture.md):
 * a request reaches it within `travelMs` of being sent; a write arriving while
 * another is in flight is refused with 409; a write may be carried out long
 * after its client gave up (up to `lateMs`).
 */

export type Random = () => number;

/** KV_LEASE_MODEL_TRACE=1 prints every effect, for replaying a failing seed. */
const trace = (line: string) => {
  if (process.env.KV_LEASE_MODEL_TRACE) process.stderr.write(`${Date.now() % 100000} ${line}\n`);
};

export function seeded(seed: number): Random {
  return mulberry32(seed);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function unavailable(): DomainError {
  return new DomainError('STORE.UNAVAILABLE', 'model: the store failed', {
    retryAfterSeconds: 1,
  });
}

export interface StoreFaults {
  /** Most a call waits before and after its effect. */
  maxDelayMs: number;
  /** Probability a call stalls `stallMs` first (a heartbeat misses its turn; the lock may expire). */
  stall: number;
  stallMs: number;
  /** Probability a call fails before its effect. */
  failBefore: number;
  /** Probability a call fails after its effect (the caller cannot tell it happened). */
  failAfter: number;
}

/** A LeaseStore with the table adapter's conditional semantics (ETags), in memory. */
export class ModelStore implements LeaseStore {
  readonly leases = new Map<string, StoredLease>();
  readonly vaults = new Map<string, VaultState & { etag: string }>();
  /** When each lease stopped being live, by the store's clock (the instant of the effect). */
  readonly endedEffectAt = new Map<string, number>();
  private version = 0;

  constructor(
    private readonly random: Random,
    public faults: StoreFaults,
    /** Told when a lease row comes to exist (at the instant of the effect). */
    private readonly onCreate: (lease: Lease) => void = () => undefined,
  ) {}

  private etag(): string {
    this.version += 1;
    return `W/"${this.version}"`;
  }

  /** One call: a delay, maybe a failure, the effect at one instant, a delay, maybe a failure. */
  private async op<T>(effect: () => T): Promise<T> {
    if (this.random() < this.faults.stall) await sleep(this.faults.stallMs);
    await sleep(Math.floor(this.random() * this.faults.maxDelayMs));
    if (this.random() < this.faults.failBefore) throw unavailable();
    const result = structuredClone(effect());
    await sleep(Math.floor(this.random() * this.faults.maxDelayMs));
    if (this.random() < this.faults.failAfter) throw unavailable();
    return result;
  }

  /** Ground truth, for the checks (no delay, no fault). */
  vaultState(vault: string): VaultState {
    return structuredClone(this.vaults.get(vault) ?? { ...EMPTY_VAULT_STATE });
  }

  liveNow(vault: string): StoredLease[] {
    return [...this.leases.values()].filter(
      (lease) => lease.vault === vault && (lease.status === 'pending' || lease.status === 'active'),
    );
  }

  ensureReady(): Promise<void> {
    return this.op(() => undefined);
  }

  getLease(id: string): Promise<StoredLease | undefined> {
    return this.op(() => this.leases.get(id));
  }

  createLease(lease: Lease): Promise<{ lease: StoredLease; created: boolean }> {
    return this.op(() => {
      const stored = { ...lease, etag: this.etag() };
      this.leases.set(lease.id, stored);
      this.onCreate(lease);
      trace(`lease ${lease.id.slice(-3)} ${lease.ip} created`);
      return { lease: stored, created: true };
    });
  }

  liveLeases(vault: string): Promise<StoredLease[]> {
    return this.op(() => {
      trace(
        `liveLeases ${this.liveNow(vault)
          .map((l) => `${l.id.slice(-3)}:${l.ip}:${l.status}`)
          .join(' ')}`,
      );
      return this.liveNow(vault);
    });
  }

  private end(
    lease: StoredLease,
    status: Extract<LeaseStatus, 'released' | 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): StoredLease | undefined {
    const current = this.leases.get(lease.id);
    if (!current || current.etag !== lease.etag) return undefined;
    if (current.status !== 'pending' && current.status !== 'active') return undefined;
    const ended = { ...current, status, endedAt, failure, etag: this.etag() };
    this.leases.set(lease.id, ended);
    this.endedEffectAt.set(lease.id, Date.now());
    trace(`lease ${lease.id.slice(-3)} ${lease.ip} -> ${status}`);
    return ended;
  }

  endLease(
    lease: StoredLease,
    status: Extract<LeaseStatus, 'released' | 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<StoredLease | undefined> {
    return this.op(() => this.end(lease, status, endedAt, failure));
  }

  endLeases(
    leases: StoredLease[],
    status: Extract<LeaseStatus, 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<{ ended: StoredLease[]; changed: StoredLease[] }> {
    if (leases.length === 0) return Promise.resolve({ ended: [], changed: [] });
    return this.op(() => {
      const result = { ended: [] as StoredLease[], changed: [] as StoredLease[] };
      for (const lease of leases) {
        const ended = this.end(lease, status, endedAt, failure);
        if (ended) result.ended.push(ended);
        else result.changed.push(lease);
      }
      return result;
    });
  }

  updateLiveLease(
    lease: StoredLease,
    patch: Partial<Pick<Lease, 'status' | 'expiresAt'>>,
  ): Promise<StoredLease | undefined> {
    return this.op(() => {
      const current = this.leases.get(lease.id);
      if (!current || current.etag !== lease.etag) return undefined;
      const next = { ...current, ...patch, etag: this.etag() };
      this.leases.set(lease.id, next);
      return next;
    });
  }

  markActive(leases: StoredLease[]): Promise<void> {
    if (leases.length === 0) return Promise.resolve();
    return this.op(() => {
      // Conditional on each lease's version, like the table adapter: a lease
      // released meanwhile stays released.
      for (const lease of leases) {
        const current = this.leases.get(lease.id);
        if (current && current.etag === lease.etag && current.status === 'pending')
          this.leases.set(lease.id, { ...current, status: 'active', etag: this.etag() });
        trace(`markActive ${leases.map((lease) => lease.id.slice(-3)).join(',')}`);
      }
    });
  }

  getVaultState(vault: string): Promise<VaultState> {
    return this.op(() => this.vaultState(vault));
  }

  putVaultState(vault: string, state: VaultState): Promise<VaultState | undefined> {
    return this.op(() => {
      const current = this.vaults.get(vault);
      if ((current?.etag ?? undefined) !== state.etag) return undefined;
      const next = { ...state, etag: this.etag() };
      this.vaults.set(vault, next);
      trace(
        `row pass=${next.pass} applied=${next.applied} lock=${next.lockHolder}@${next.lockUntil % 100000} owned=${next.owned.join(',')} U=${next.unsettledUntil % 100000}`,
      );
      return next;
    });
  }

  // Not used by the writer.
  findIdempotentLease(): Promise<StoredLease | undefined> {
    return Promise.reject(new Error('model: not used by the writer'));
  }
  claimSlot(): Promise<number> {
    return Promise.reject(new Error('model: not used by the writer'));
  }
  releaseSlot(): Promise<void> {
    return Promise.reject(new Error('model: not used by the writer'));
  }
  listLeases(): Promise<LeasePage> {
    return Promise.reject(new Error('model: not used by the writer'));
  }
}

export interface FirewallFaults {
  /** Most a request or an answer travels. */
  travelMs: number;
  /** Most Resource Manager takes to carry a write out, normally. */
  workMs: number;
  /** Probability a write is carried out late (up to `lateMs`): its client usually gave up. */
  late: number;
  lateMs: number;
  /** Probability a call fails with 500 before changing anything. */
  fail: number;
  /** Probability a write is applied but answered 500. */
  failAfter: number;
}

/** One in-flight write at "Resource Manager". */
export interface InFlight {
  rules: string[];
  doomed: boolean;
}

/** A Key Vault firewall as Resource Manager keeps it: no ETag, 409 on overlapping writes. */
export class ModelFirewall implements VaultFirewall {
  rules: string[];
  readonly inFlight = new Set<InFlight>();
  writes = 0;
  lateLandings = 0;

  constructor(
    private readonly random: Random,
    public faults: FirewallFaults,
    initial: string[],
  ) {
    this.rules = [...initial];
  }

  private delay(maxMs: number): Promise<void> {
    return sleep(Math.floor(this.random() * maxMs));
  }

  /** The client's view: rejected at once when its signal fires, whatever the server does. */
  private client<T>(signal: AbortSignal | undefined, server: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const abort = () =>
        reject(new FirewallError('timeout', 'model: the client gave up', undefined));
      if (signal?.aborted) {
        abort();
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
      server.then(resolve, reject).finally(() => signal?.removeEventListener('abort', abort));
    });
  }

  read(_vault: ManagedVault, signal?: AbortSignal): Promise<NetworkAcls> {
    const server = (async () => {
      await this.delay(this.faults.travelMs);
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', 'model: 500 on read', undefined, { status: 500 });
      const snapshot = this.rules.map((value) => ({ value }));
      trace(`read ${this.rules.join(',')}`);
      await this.delay(this.faults.travelMs);
      return { bypass: 'AzureServices', defaultAction: 'Deny', ipRules: snapshot };
    })();
    server.catch(() => undefined);
    return this.client(signal, server);
  }

  writeIpRules(
    _vault: ManagedVault,
    _base: NetworkAcls,
    ipRules: string[],
    signal?: AbortSignal,
  ): Promise<NetworkAcls> {
    if (signal?.aborted)
      return Promise.reject(new FirewallError('timeout', 'model: aborted before sending'));
    const server = (async () => {
      await this.delay(this.faults.travelMs);
      const write: InFlight = { rules: [...ipRules], doomed: this.inFlight.size > 0 };
      trace(`write arrives ${write.rules.join(',')}${write.doomed ? ' (doomed)' : ''}`);
      this.inFlight.add(write);
      const late = this.random() < this.faults.late;
      await this.delay(late ? this.faults.lateMs : this.faults.workMs);
      this.inFlight.delete(write);
      if (write.doomed)
        throw new FirewallError('conflict', 'model: 409 ConflictError', undefined, {
          status: 409,
        });
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', 'model: 500 on write', undefined, { status: 500 });
      this.rules = [...write.rules];
      this.writes += 1;
      trace(`write lands ${write.rules.join(',')}${signal?.aborted ? ' LATE' : ''}`);
      if (signal?.aborted) this.lateLandings += 1;
      if (this.random() < this.faults.failAfter)
        throw new FirewallError('transient', 'model: applied, answered 500', undefined, {
          status: 500,
        });
      await this.delay(this.faults.travelMs);
      return { ipRules: this.rules.map((value) => ({ value })) };
    })();
    server.catch(() => undefined);
    return this.client(signal, server);
  }
}
