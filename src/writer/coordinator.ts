import { randomBytes } from 'node:crypto';

import type { Clock } from '../domain/clock';
import { DomainError, ensureError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import type { ManagedVault } from '../domain/vault';
import type { LeaseStore, VaultState } from '../ports/lease-store';
import type { VaultFirewall } from '../ports/vault-firewall';
import { type PassObserver, type PassOutcome, WriterPass } from './pass';
import { VaultRowCache } from './row-cache';
import { Waiters, type Watch } from './waiters';

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

export class VaultCoordinator {
  /** The callers waiting, per vault. */
  private readonly waiters: Waiters;
  private readonly vaults: Map<string, ManagedVault>;
  private readonly instanceId: string;
  private readonly lockTtlMs: number;
  private readonly heartbeatMs: number;
  private readonly pollMs: number;
  /** Runs this process's passes and holds their locks. */
  private readonly passes: WriterPass;
  private stopping = false;
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
    this.waiters = new Waiters({
      store: options.store,
      clock: options.clock,
      logger: options.logger,
      start: (vault, watch) => void this.drive(vault, watch),
    });
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
    return this.waiters.wait(vault, deadline, lease);
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
    this.waiters.close(closing);
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
          this.waiters.rowRead(vault, watch, read, state);
          if (watch.waiters.length === 0) break;
        }

        const now = this.options.clock.now();
        const lockFree = state.lockHolder === '' || state.lockUntil <= now;
        // Waiters whose leases are being read back may need no pass at all.
        const unserved = this.waiters.unserved(watch);
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
            serving: (pass, applied) => this.waiters.serving(watch, pass, applied),
            rowWritten: (written) => this.rows.remember(vault, written),
            completed: (done) => this.waiters.answer(vault, watch, done),
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
      this.waiters.fail(watch, ensureError(thrown));
    } finally {
      if (watch.waiters.length === 0 || this.stopping) {
        this.waiters.forget(vault, watch);
      } else void this.drive(vault, watch);
    }
  }
}
