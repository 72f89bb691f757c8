import { randomBytes } from 'node:crypto';

import type { Clock } from '../domain/clock';
import { DomainError, ensureError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import type { ManagedVault } from '../domain/vault';
import type { LeaseStore, StoredLease, VaultState } from '../ports/lease-store';
import type { VaultFirewall } from '../ports/vault-firewall';
import { type PassObserver, type PassOutcome, WriterPass } from './pass';
import { readLeases } from './read-leases';
import { VaultRowCache } from './row-cache';

/**
 * Per-vault reconciliation with one writer at a time, across any number of
 * broker processes sharing one store. The rules it keeps are written down in
 * docs/architecture.md ("The writer").
 *
 * The store holds the desired state (live leases, rules the broker owns). A
 * writer takes the vault's lock in the store (a conditional write of the vault
 * row, short-lived and kept alive by a heartbeat while the pass runs), reads
 * the firewall and the live leases, records ownership of any rule it is about
 * to add (renewing the lock), PATCHes the firewall once, marks the pending
 * leases it applied active, and releases the lock while recording the pass as
 * applied.
 *
 * Callers never queue a write each: they wait until a pass that *began after
 * their own change* has completed (`sync`). Every lease recorded while a write
 * is in flight is applied together by the next pass, so a burst of grants
 * costs a handful of PATCHes, not one each.
 */

export type { PassObserver, PassOutcome } from './pass';

export interface CoordinatorOptions {
  store: LeaseStore;
  firewall: VaultFirewall;
  clock: Clock;
  logger: Logger;
  /** Identifies this process in lock rows, for operators reading the store. */
  instanceId?: string;
  /**
   * Lifetime of the writer lock: a writer that dies holding it blocks its vault
   * at most this long. A heartbeat renews it while a pass runs.
   */
  lockTtlMs?: number;
  /** How often the heartbeat looks at the lock (it renews it once a third of its lifetime passed); default a sixth of the lifetime. */
  heartbeatMs?: number;
  /** How often a waiter looks at the vault row while another process writes. */
  pollMs?: number;
  /** Most a single firewall call may take (the SDK's retries included). */
  callTimeoutMs?: number;
  /**
   * How long after a firewall write was sent it may still land, although its
   * client gave up (unverified in Azure, so assumed): the writer keeps owning
   * every rule such a write could carry until this has passed.
   */
  settleMs?: number;
  maxRules?: number;
  /**
   * A lease still pending this long after it was recorded has been answered
   * 503 (its grant gave up): never activate it, end it as failed.
   */
  pendingTimeoutMs?: number;
  observer?: PassObserver;
}

interface Waiter {
  /** Reads of the vault row this watch had begun when the waiter arrived. */
  arrivedAfterRead: number;
  target: number | undefined;
  /** A grant's lease: the waiter is also done once the lease is applied (or refused). */
  lease: string | undefined;
  /** The vault row's `applied` when the target was set: a pass completed since may have applied the lease. */
  appliedSeen: number | undefined;
  /** The lease is being read back. */
  probing: boolean;
  deadline: number;
  resolve: (outcome: PassOutcome | undefined) => void;
  reject: (error: Error) => void;
}

interface Watch {
  waiters: Waiter[];
  /** Reads of the vault row begun so far. */
  reads: number;
  wake: (() => void) | undefined;
  backoffUntil: number;
  lastFailure: string | undefined;
}

export class VaultCoordinator {
  private readonly watches = new Map<string, Watch>();
  private readonly vaults: Map<string, ManagedVault>;
  private readonly instanceId: string;
  private readonly lockTtlMs: number;
  private readonly heartbeatMs: number;
  private readonly pollMs: number;
  /** Runs this process's passes and holds their locks. */
  private readonly passes: WriterPass;
  private stopping = false;
  /** Outcomes of recent local passes, so local waiters need no extra read. */
  private readonly recent = new Map<string, PassOutcome>();
  /** The vault rows this process read or wrote last. */
  private readonly rows: VaultRowCache;

  constructor(
    vaults: ManagedVault[],
    private readonly options: CoordinatorOptions,
  ) {
    this.vaults = new Map(vaults.map((vault) => [vault.name, vault]));
    this.instanceId = options.instanceId ?? `${process.pid}-${randomBytes(4).toString('hex')}`;
    this.lockTtlMs = options.lockTtlMs ?? 1_500;
    this.heartbeatMs = options.heartbeatMs ?? Math.max(25, Math.floor(this.lockTtlMs / 6));
    this.pollMs = options.pollMs ?? 50;
    this.rows = new VaultRowCache(options.store, options.clock);
    this.passes = new WriterPass({
      store: options.store,
      firewall: options.firewall,
      clock: options.clock,
      logger: options.logger,
      observer: options.observer,
      lockTtlMs: this.lockTtlMs,
      heartbeatMs: this.heartbeatMs,
      callTimeoutMs: options.callTimeoutMs ?? 10_000,
      settleMs: options.settleMs ?? 120_000,
      maxRules: options.maxRules ?? 1000,
      pendingTimeoutMs: options.pendingTimeoutMs ?? 32_000,
      followUp: (vault) => {
        if (!this.stopping)
          this.sync(vault, this.options.clock.now() + 50_000).catch(() => undefined);
      },
    });
  }

  /**
   * The vault row for estimates (capacity), never for decisions the writer
   * makes: at most `maxAgeMs` old, or one read shared by every caller asking
   * meanwhile (`VaultRowCache.approximate`).
   */
  approximateState(vault: string, maxAgeMs: number): Promise<VaultState> {
    return this.rows.approximate(vault, maxAgeMs);
  }

  /**
   * Resolves once a writer pass that began after this call has completed, so
   * the firewall reflects every change the caller made to the store before
   * calling. A grant names its `lease`: it also resolves once that lease is
   * active (its rule written) or refused for capacity, with an outcome that
   * says which, even when the pass that did it began a moment before the
   * call. Rejects with `VAULT.UPDATE_TIMEOUT` at the deadline (a timer, so
   * a hung store or firewall call cannot hold the caller past it), with
   * `VAULT.UNAVAILABLE` at once when Resource Manager refuses the vault, and
   * with the store's error when the store fails.
   */
  sync(vault: string, deadline: number, lease?: string): Promise<PassOutcome | undefined> {
    if (this.stopping) {
      return Promise.reject(
        new DomainError('STORE.UNAVAILABLE', 'The broker instance is shutting down; try again', {
          retryAfterSeconds: 1,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      let watch = this.watches.get(vault);
      if (!watch) {
        watch = {
          waiters: [],
          reads: 0,
          wake: undefined,
          backoffUntil: 0,
          lastFailure: undefined,
        };
        this.watches.set(vault, watch);
      }
      const current = watch;
      const timer = setTimeout(
        () => {
          const index = current.waiters.indexOf(waiter);
          if (index < 0) return;
          current.waiters.splice(index, 1);
          this.options.logger.warn('A caller stopped waiting for the vault firewall', {
            vault,
            error: current.lastFailure ?? 'the current attempt has not finished',
          });
          reject(this.timeout(current));
        },
        Math.max(0, deadline - this.options.clock.now()),
      );
      const waiter: Waiter = {
        arrivedAfterRead: current.reads,
        target: undefined,
        lease,
        appliedSeen: undefined,
        probing: false,
        deadline,
        resolve: (outcome) => {
          clearTimeout(timer);
          resolve(outcome);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      current.waiters.push(waiter);
      if (current.waiters.length === 1) {
        void this.drive(vault, current);
      } else {
        current.wake?.();
      }
    });
  }

  private timeout(watch: Watch): DomainError {
    const why = watch.lastFailure ? ` (last attempt: ${watch.lastFailure})` : '';
    return new DomainError(
      'VAULT.UPDATE_TIMEOUT',
      `No firewall write completed before the deadline${why}`,
      { retryAfterSeconds: 5 },
    );
  }

  /**
   * Stop writing: reject every waiter, abandon running passes and release
   * the locks this process holds, so another instance takes over at once
   * instead of after the lock's lifetime. For the host's shutdown hook.
   */
  async shutdown(): Promise<void> {
    this.stopping = true;
    const closing = new DomainError(
      'STORE.UNAVAILABLE',
      'The broker instance is shutting down; try again',
      { retryAfterSeconds: 1 },
    );
    for (const watch of this.watches.values()) {
      for (const waiter of watch.waiters.splice(0)) waiter.reject(closing);
      watch.wake?.();
    }
    await this.passes.releaseLocks();
  }

  private async drive(vault: string, watch: Watch): Promise<void> {
    const managed = this.vaults.get(vault);
    let assumed = this.rows.freeRow(vault);
    try {
      while (watch.waiters.length > 0 && !this.stopping) {
        let state: VaultState;
        if (assumed) {
          // Only a try at the lock: no waiter takes its target from this row.
          state = assumed;
          assumed = undefined;
        } else {
          watch.reads += 1;
          const read = watch.reads;
          state = await this.options.store.getVaultState(vault);
          this.rows.remember(vault, state);
          // Waiters that arrived before this read began get their target now: the
          // next pass to begin will read the store after their change. One that
          // arrived while the read was under way waits for the next read: this one
          // may show the row from before its change, and a pass begun since.
          for (const waiter of watch.waiters)
            if (waiter.arrivedAfterRead < read) this.aim(waiter, state.pass + 1, state.applied);
          this.settle(vault, watch, state.applied);
          if (watch.waiters.length === 0) break;
        }

        const now = this.options.clock.now();
        const lockFree = state.lockHolder === '' || state.lockUntil <= now;
        // Waiters whose leases are being read back may need no pass at all.
        const unserved = watch.waiters.some((waiter) => !waiter.probing);
        if (lockFree && managed && now >= watch.backoffUntil && unserved) {
          const acquired = await this.options.store.putVaultState(vault, {
            ...state,
            pass: state.pass + 1,
            lockHolder: this.instanceId,
            lockUntil: now + this.lockTtlMs,
          });
          if (!acquired) continue; // another process took it: look again
          // A completed pass has answered the waiters it served.
          const outcome = await this.passes.run(managed, acquired, {
            serving: (pass, applied) => {
              for (const waiter of watch.waiters) this.aim(waiter, pass, applied);
            },
            rowWritten: (written) => this.rows.remember(vault, written),
            completed: (done) => this.answer(vault, watch, done),
            retryAt: (at, failure) => {
              watch.backoffUntil = at;
              watch.lastFailure = failure;
            },
          });
          if (outcome) assumed = this.rows.freeRow(vault);
          continue;
        }
        await new Promise<void>((resolve) => {
          const wait = lockFree
            ? Math.max(5, Math.min(watch.backoffUntil - now, this.pollMs * 4))
            : this.pollMs;
          const timer = setTimeout(resolve, wait);
          watch.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        watch.wake = undefined;
      }
    } catch (thrown) {
      const error = ensureError(thrown);
      for (const waiter of watch.waiters.splice(0)) waiter.reject(error);
    } finally {
      if (watch.waiters.length === 0 || this.stopping) {
        if (this.watches.get(vault) === watch) this.watches.delete(vault);
      } else void this.drive(vault, watch);
    }
  }

  /** A pass of this process completed: answer the waiters it served. */
  private answer(vault: string, watch: Watch, outcome: PassOutcome): void {
    this.recent.set(vault, outcome);
    this.settle(vault, watch, outcome.pass);
  }

  /** Give a waiter the pass that will serve it, unless it has one already. */
  private aim(waiter: Waiter, target: number, applied: number): void {
    if (waiter.target !== undefined) return;
    waiter.target = target;
    waiter.appliedSeen = applied;
  }

  /**
   * Resolve waiters whose pass is done; reject those out of time. A grant's
   * waiter is also done once its lease is applied or refused: by a pass here
   * (its outcome says so), or by one elsewhere, seen by reading the lease back
   * once the vault row shows a pass completed (a grant that registered just
   * after a pass read the leases, but whose lease that pass applied, does not
   * wait for the next pass).
   */
  private settle(vault: string, watch: Watch, applied: number): void {
    const now = this.options.clock.now();
    const recent = this.recent.get(vault);
    const probe: Waiter[] = [];
    watch.waiters = watch.waiters.filter((waiter) => {
      if (waiter.probing) return true;
      const reached = waiter.target !== undefined && waiter.target <= applied;
      if (reached && recent && recent.pass >= (waiter.target as number)) {
        waiter.resolve(recent);
        return false;
      }
      if (waiter.lease !== undefined) {
        if (recent && (recent.activated.has(waiter.lease) || recent.refused.has(waiter.lease))) {
          waiter.resolve(recent);
          return false;
        }
        if (reached || (waiter.appliedSeen !== undefined && applied > waiter.appliedSeen)) {
          waiter.appliedSeen = applied;
          probe.push(waiter);
          return true;
        }
      } else if (reached) {
        waiter.resolve(undefined);
        return false;
      }
      if (now >= waiter.deadline) {
        waiter.reject(this.timeout(watch));
        return false;
      }
      return true;
    });
    if (probe.length > 0) void this.probe(vault, watch, probe, applied);
  }

  /**
   * Read back the leases of `waiters` (one read for many) after the vault row
   * showed pass `applied` completed: an applied or refused lease answers its
   * waiter, one whose target pass completed is answered either way (its grant
   * looks at the lease itself), the rest wait on.
   */
  private async probe(
    vault: string,
    watch: Watch,
    waiters: Waiter[],
    applied: number,
  ): Promise<void> {
    for (const waiter of waiters) waiter.probing = true;
    let leases: Map<string, StoredLease | undefined> | undefined;
    try {
      leases = await readLeases(
        this.options.store,
        vault,
        waiters.map((waiter) => waiter.lease as string),
      );
    } catch {
      leases = undefined; // the grant reads its lease itself, or the next pass answers it
    }
    const done = new Set<Waiter>();
    for (const waiter of waiters) {
      waiter.probing = false;
      const lease = leases?.get(waiter.lease as string);
      const active = lease?.status === 'active';
      const refused = lease?.status === 'failed' && lease.failure === 'capacity';
      const reached = waiter.target !== undefined && waiter.target <= applied;
      if (!active && !refused && !reached) continue;
      const ids = new Set(lease ? [lease.id] : []);
      waiter.resolve(
        active || refused
          ? {
              pass: applied,
              activated: active ? ids : new Set(),
              refused: refused ? ids : new Set(),
            }
          : undefined,
      );
      done.add(waiter);
    }
    watch.waiters = watch.waiters.filter((waiter) => !done.has(waiter));
    watch.wake?.();
  }
}
