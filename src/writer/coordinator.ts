import { randomBytes } from 'node:crypto';

import type { Clock } from '../domain/clock';
import { DomainError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import type { ManagedTarget } from '../domain/target';
import type { LeaseStore, VaultState } from '../ports/lease-store';
import type { TargetFirewall } from '../ports/target-firewall';
import { DriveLoop } from './drive-loop';
import { type PassObserver, type PassOutcome, WriterPass } from './pass';
import { VaultRowCache } from './row-cache';
import { Waiters } from './waiters';

/**
 * The writer's public face: per-vault reconciliation with one writer at a
 * time, across any number of broker processes sharing one store. The rules it
 * keeps are written down in docs/architecture.md ("The writer"); this file
 * only builds the parts that keep them and offers `sync`, `approximateState`
 * and `shutdown`:
 *
 * - `waiters.ts`: who waits for which pass, and when each is answered (invariant 4);
 * - `drive-loop.ts`: per target, when to read the row, take the lock and run a pass (invariant 3);
 * - `pass.ts`: one pass under the lock, the only part that speaks to the firewall (invariants 1, 2);
 * - `lock.ts`: the lock a pass holds, its heartbeat and its abort signal (invariant 3);
 * - `row-cache.ts`: the target rows last seen, for estimates and a try at the lock.
 *
 * The store holds the desired state (live leases, rules the broker owns). A
 * writer takes the target's lock in the store (a conditional write of the target
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
  firewall: TargetFirewall;
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
  /** How often a waiter looks at the target row while another process writes. */
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

export class TargetCoordinator {
  /** The target rows this process read or wrote last. */
  private readonly rows: VaultRowCache;
  /** The callers waiting, per target. */
  private readonly waiters: Waiters;
  /** Runs this process's passes and holds their locks. */
  private readonly passes: WriterPass;
  /** Runs passes for a target while its callers wait. */
  private readonly loop: DriveLoop;
  private stopping = false;

  constructor(
    vaults: ManagedTarget[],
    private readonly options: CoordinatorOptions,
  ) {
    const lockTtlMs = options.lockTtlMs ?? 1_500;
    this.rows = new VaultRowCache(options.store, options.clock);
    this.waiters = new Waiters({
      store: options.store,
      clock: options.clock,
      logger: options.logger,
      start: (vault, watch) => void this.loop.drive(vault, watch),
    });
    this.passes = new WriterPass({
      store: options.store,
      firewall: options.firewall,
      clock: options.clock,
      logger: options.logger,
      observer: options.observer,
      lockTtlMs,
      heartbeatMs: options.heartbeatMs ?? Math.max(25, Math.floor(lockTtlMs / 6)),
      callTimeoutMs: options.callTimeoutMs ?? 10_000,
      settleMs: options.settleMs ?? 120_000,
      maxRules: options.maxRules ?? 1000,
      pendingTimeoutMs: options.pendingTimeoutMs ?? 32_000,
      followUp: (vault) => {
        if (!this.stopping)
          this.sync(vault, this.options.clock.now() + 50_000).catch(() => undefined);
      },
    });
    this.loop = new DriveLoop({
      store: options.store,
      clock: options.clock,
      vaults: new Map(vaults.map((vault) => [vault.name, vault])),
      instanceId: options.instanceId ?? `${process.pid}-${randomBytes(4).toString('hex')}`,
      lockTtlMs,
      pollMs: options.pollMs ?? 50,
      rows: this.rows,
      waiters: this.waiters,
      passes: this.passes,
      stopping: () => this.stopping,
    });
  }

  /**
   * The target row for estimates (capacity), never for decisions the writer
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
   * `VAULT.UNAVAILABLE` at once when Resource Manager refuses the target, and
   * with the store's error when the store fails.
   */
  sync(vault: string, deadline: number, lease?: string): Promise<PassOutcome | undefined> {
    if (this.stopping) return Promise.reject(shuttingDown());
    return this.waiters.wait(vault, deadline, lease);
  }

  /**
   * Stop writing: reject every waiter, abandon running passes and release
   * the locks this process holds, so another instance takes over at once
   * instead of after the lock's lifetime. For the host's shutdown hook.
   */
  async shutdown(): Promise<void> {
    this.stopping = true;
    this.waiters.close(shuttingDown());
    await this.passes.releaseLocks();
  }
}

function shuttingDown(): DomainError {
  return new DomainError('STORE.UNAVAILABLE', 'The broker instance is shutting down; try again', {
    retryAfterSeconds: 1,
  });
}
