import { randomBytes } from 'node:crypto';

import type { Clock } from '../domain/clock';
import { DomainError, ensureError } from '../domain/errors';
import { canonicalRule } from '../domain/ip';
import type { Lease } from '../domain/lease';
import type { Logger } from '../domain/logger';
import { planRules } from '../domain/rule-plan';
import type { ManagedVault } from '../domain/vault';
import { passCompleted, passFailed } from '../observability/telemetry';
import type { LeaseStore, StoredLease, VaultState } from '../ports/lease-store';
import { FirewallError, type VaultFirewall } from '../ports/vault-firewall';
import { HeldLock, LostLock } from './lock';
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

/**
 * Hooks for the audit trail. A pass ends (and its waiters are answered) only
 * once the promises its hooks returned have settled, so an answered grant or
 * a finished sweep has its audit entries written.
 */
export interface PassObserver {
  /**
   * A lease the pass ended as expired, reported once the pass knows what
   * became of its rule: with the outcome of the write that removed it (or
   * `success` when no write was needed), never before that write.
   */
  leaseExpired?(
    lease: Lease,
    result: { outcome: 'success' | 'failure'; detail: string },
  ): void | Promise<void>;
  /** A pending lease whose rule was written after its grant gave up: ended as failed instead of activated. */
  grantWithdrawn?(lease: Lease, detail: string): void | Promise<void>;
  /** Every firewall write a pass sent: what it read, what it wrote, and the outcome. */
  firewallWritten?(event: {
    vault: string;
    read: string[];
    written: string[];
    added: string[];
    removed: string[];
    outcome: 'success' | 'failure';
    detail?: string;
  }): void | Promise<void>;
}

/** Collects what the observer hooks of one pass returned. */
type Notes = (settling: void | Promise<void>) => void;

/** What a completed pass did, for the waiters in the process that ran it. */
export interface PassOutcome {
  pass: number;
  activated: ReadonlySet<string>;
  refused: ReadonlySet<string>;
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

/** A lock is given up this long before it expires, so no call outlives it. */
const LOCK_MARGIN_MS = 300;

export class VaultCoordinator {
  private readonly watches = new Map<string, Watch>();
  private readonly vaults: Map<string, ManagedVault>;
  private readonly instanceId: string;
  private readonly lockTtlMs: number;
  private readonly heartbeatMs: number;
  private readonly pollMs: number;
  private readonly callTimeoutMs: number;
  private readonly settleMs: number;
  private readonly maxRules: number;
  private readonly pendingTimeoutMs: number;
  /** Locks this process holds right now, released on shutdown. */
  private readonly held = new Set<HeldLock>();
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
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.settleMs = options.settleMs ?? 120_000;
    this.maxRules = options.maxRules ?? 1000;
    this.pendingTimeoutMs = options.pendingTimeoutMs ?? 32_000;
    this.rows = new VaultRowCache(options.store, options.clock);
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
    await Promise.allSettled([...this.held].map((lock) => lock.release()));
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
          const outcome = await this.runPass(managed, acquired, watch);
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

  /**
   * One writer pass while holding the lock. Returns the outcome when it
   * completed, `undefined` when it failed or lost the lock (waiters retry).
   */
  private async runPass(
    vault: ManagedVault,
    locked: VaultState,
    watch: Watch,
  ): Promise<PassOutcome | undefined> {
    const notes: Promise<void>[] = [];
    const lock = new HeldLock({
      store: this.options.store,
      vault: vault.name,
      state: locked,
      clock: this.options.clock,
      ttlMs: this.lockTtlMs,
      heartbeatMs: this.heartbeatMs,
      marginMs: LOCK_MARGIN_MS,
    });
    this.held.add(lock);
    try {
      return await this.pass(
        vault,
        lock,
        watch,
        (settling) => {
          if (settling) notes.push(settling);
        },
        () => Promise.allSettled(notes),
      );
    } finally {
      lock.stop();
      this.held.delete(lock);
      await Promise.allSettled(notes);
    }
  }

  private async pass(
    vault: ManagedVault,
    lock: HeldLock,
    watch: Watch,
    note: Notes,
    noted: () => Promise<unknown>,
  ): Promise<PassOutcome | undefined> {
    const { store, firewall, clock, logger, observer } = this.options;
    const acquired = lock.state;
    const startedAt = clock.now();
    // Leases this pass ended as expired, reported with what became of their rules.
    let expired: StoredLease[] = [];
    const reportExpired = (outcome: 'success' | 'failure', detail: (lease: Lease) => string) => {
      for (const lease of expired)
        note(observer?.leaseExpired?.(lease, { outcome, detail: detail(lease) }));
      expired = [];
    };
    try {
      const readAt = clock.now();
      // Every waiter here now made its change before this pass reads the
      // leases: this pass serves it, even one that arrived too late for the
      // row read that led here (without this, it would wait a pass more).
      for (const waiter of watch.waiters) this.aim(waiter, acquired.pass, acquired.applied);
      const [acls, live] = await Promise.all([
        lock.call(this.callTimeoutMs, (signal) => firewall.read(vault, signal)),
        store.liveLeases(vault.name),
      ]);
      const now = clock.now();
      const { survivors, ended } = await this.expire(live, now);
      expired = ended;
      const plan = planRules({
        current: acls.ipRules.map((rule) => rule.value),
        owned: acquired.owned,
        live: survivors,
        maxRules: this.maxRules,
      });
      const refused = new Set<string>();
      for (const lease of survivors.filter((candidate) =>
        plan.overCapacity.includes(candidate.id),
      )) {
        // The waiting grant records the refusal (with its lease id) in the audit trail.
        if (await store.endLease(lease, 'failed', now, 'capacity')) refused.add(lease.id);
      }

      // NOTE: a write abandoned earlier (timed out, its writer gone) may still
      // land after this read. Until it surely has ended, keep every rule the
      // broker ever owned, and write even an unchanged list: a write answered
      // success proves no earlier one is still in flight (Resource Manager
      // refuses overlapping writes with 409), so what this pass wrote is what
      // the vault holds when its waiters are answered.
      const unsettled = readAt < acquired.unsettledUntil;
      let wrote = false;
      if (plan.changed || unsettled) {
        // Ownership is recorded (and the lock renewed) before the rule is
        // written, so no crash can leave a rule the broker does not know it added.
        await lock.update({
          owned: plan.ownedBeforeWrite,
          unsettledUntil: Math.max(acquired.unsettledUntil, clock.now() + this.settleMs),
        });
        const before = new Set(acls.ipRules.map((rule) => rule.value));
        const after = new Set(plan.next);
        const added = plan.next.filter((rule) => !before.has(rule));
        const removed = [...before].filter((rule) => !after.has(rule));
        const written = {
          vault: vault.name,
          read: acls.ipRules.map((rule) => rule.value),
          written: plan.next,
          added,
          removed,
        };
        try {
          await lock.call(this.callTimeoutMs, (signal) =>
            firewall.writeIpRules(vault, acls, plan.next, signal),
          );
          wrote = true;
          note(observer?.firewallWritten?.({ ...written, outcome: 'success' }));
        } catch (error) {
          // A refused write changed nothing: the time it might still land is not needed.
          if (error instanceof FirewallError && !error.outcomeUnknown) {
            await lock.update({ unsettledUntil: acquired.unsettledUntil }).catch(() => undefined);
          }
          note(
            observer?.firewallWritten?.({
              ...written,
              outcome: 'failure',
              detail: error instanceof Error ? error.message : 'unknown',
            }),
          );
          throw error;
        }
      }
      // The expired leases' rules are gone now (or were not needed gone).
      const kept = new Set(plan.next.map((rule) => canonicalRule(rule) ?? rule));
      const readRules = new Set(
        acls.ipRules.map((rule) => canonicalRule(rule.value) ?? rule.value),
      );
      reportExpired('success', (lease) =>
        kept.has(lease.ip)
          ? `its rule ${lease.ip} stays: another live lease holds it, or the broker did not add it`
          : readRules.has(lease.ip)
            ? `its rule ${lease.ip} was removed from the vault`
            : `its rule ${lease.ip} was not on the vault`,
      );

      const applied = new Set(plan.applied);
      // NOTE: the write may have taken long. A pending lease whose grant has
      // given up by now (answered 503) is never activated: it fails instead,
      // and its rule, written anyway, is removed by the next pass.
      const late = clock.now();
      const candidates = survivors.filter(
        (lease) => lease.status === 'pending' && applied.has(lease.id),
      );
      const withdrawn = candidates.filter((lease) => this.stalePending(lease, late));
      const activated = candidates.filter((lease) => !this.stalePending(lease, late));
      await this.withdraw(vault.name, withdrawn, late, wrote, note);
      const marked = await store.markActive(activated);
      // Not marked: changed meanwhile. One its grant failed at its deadline had
      // its rule written all the same: the trail says so and a pass removes it.
      const lost = activated.filter((lease) => !marked.has(lease.id));
      if (lost.length > 0) await this.reportFailed(vault.name, lost, wrote, note);
      const outcome: PassOutcome = {
        pass: acquired.pass,
        activated: marked,
        refused,
      };
      // The rules are on the vault and the leases active: the pass is done, and
      // this process's waiters are answered (once the pass's audit entries are
      // written) while the lock is being freed, not after.
      passCompleted(logger, {
        vault: vault.name,
        outcome: plan.changed ? 'written' : 'unchanged',
        rules: plan.next.length,
        maxRules: this.maxRules,
        brokerRules: plan.ownedAfterWrite.length,
        activeLeases: survivors.length - refused.size,
        startedAt,
        endedAt: clock.now(),
      });
      const answered = noted().then(() => this.answer(vault.name, watch, outcome));
      const done = this.rows.remember(
        vault.name,
        await lock.finish({
          applied: acquired.pass,
          owned: unsettled ? plan.ownedBeforeWrite : plan.ownedAfterWrite,
          // This pass's own write answered: only earlier unknown writes remain.
          unsettledUntil: wrote ? acquired.unsettledUntil : lock.state.unsettledUntil,
          totalRules: plan.next.length,
          lastPassAt: now,
          lastError: '',
          lastErrorAt: 0,
        }),
      );
      await answered;
      if (!done) throw new LostLock();
      watch.backoffUntil = 0;
      watch.lastFailure = undefined;
      return outcome;
    } catch (thrown) {
      reportExpired(
        'failure',
        (lease) =>
          `the pass that would remove its rule ${lease.ip} failed (${thrown instanceof Error ? thrown.message : 'unknown'}); the next pass retries`,
      );
      if (thrown instanceof LostLock || lock.lost) {
        logger.warn('Writer lock lost during a pass; another writer took over', {
          vault: vault.name,
        });
        return undefined;
      }
      const error =
        lock.expiring && !(thrown instanceof DomainError)
          ? new FirewallError(
              'timeout',
              'The writer lock could not be renewed in time',
              undefined,
              {
                cause: thrown,
              },
            )
          : thrown;
      const message = error instanceof Error ? error.message : 'unknown';
      passFailed(logger, { vault: vault.name, error, startedAt, endedAt: clock.now() });
      // Let the next writer in at once (recording why this pass failed, the
      // vault's health); this process backs off before retrying.
      await lock.release({ lastError: message, lastErrorAt: clock.now() });
      if (error instanceof FirewallError && error.permanent) {
        logger.error('Resource Manager refuses the vault; its waiters are answered at once', {
          vault: vault.name,
          kind: error.kind,
          status: error.status,
          error: message,
        });
        throw new DomainError(
          'VAULT.UNAVAILABLE',
          `The firewall of vault ${vault.name} cannot be changed: ${message}. Nothing was changed; retrying will not help until that is fixed.`,
          { cause: error },
        );
      }
      if (error instanceof FirewallError) {
        const delay = error.retryAfterMs ?? (error.kind === 'conflict' ? 100 : 500);
        watch.backoffUntil = clock.now() + delay + Math.floor(Math.random() * 100);
        watch.lastFailure = message;
        logger.warn('Firewall pass failed; will retry', {
          vault: vault.name,
          kind: error.kind,
          error: message,
        });
        return undefined;
      }
      throw error;
    }
  }

  /**
   * End leases past their expiry before the write that removes their rules:
   * a lease renewed meanwhile loses the conditional update and stays live.
   * A lease still pending past the grant timeout was answered 503 by a grant
   * that could not mark it failed itself (e.g. the store was down): it fails now.
   */
  private async expire(
    live: StoredLease[],
    now: number,
  ): Promise<{ survivors: StoredLease[]; ended: StoredLease[] }> {
    const { store } = this.options;
    const survivors = live.filter(
      (lease) => lease.expiresAt > now && !this.stalePending(lease, now),
    );
    const timedOut = live.filter((lease) => this.stalePending(lease, now));
    const expired = live.filter(
      (lease) => lease.expiresAt <= now && !this.stalePending(lease, now),
    );
    // Many leases end at once in a sweep: the store ends them in batches.
    const [failed, ended] = await Promise.all([
      store.endLeases(timedOut, 'failed', now, 'timeout'),
      store.endLeases(expired, 'expired', now),
    ]);
    // A lease that changed meanwhile (renewed, or activated just in time) stays if still live.
    const changed = await Promise.all(
      [...failed.changed, ...ended.changed].map((lease) => store.getLease(lease.id, lease.vault)),
    );
    for (const fresh of changed) {
      if (
        fresh &&
        (fresh.status === 'pending' || fresh.status === 'active') &&
        fresh.expiresAt > now
      ) {
        if (!this.stalePending(fresh, now)) survivors.push(fresh);
      }
    }
    return { survivors, ended: ended.ended };
  }

  /**
   * End as failed the pending leases this pass applied after their grants
   * gave up, say so in the audit trail, and have a pass run soon to remove
   * their rules (the sweep is the backstop). A lease that changed meanwhile
   * (its grant marked it failed itself) needs no word.
   */
  private async withdraw(
    vault: string,
    leases: StoredLease[],
    now: number,
    wrote: boolean,
    note: Notes,
  ): Promise<void> {
    if (leases.length === 0) return;
    const result = await this.options.store.endLeases(leases, 'failed', now, 'timeout');
    this.say(vault, result.ended, wrote, note);
    // Those that changed meanwhile were mostly failed by their own grant.
    await this.reportFailed(vault, result.changed, wrote, note);
  }

  /** Of leases that changed under the pass, report those now failed (by their grant's deadline). */
  private async reportFailed(
    vault: string,
    leases: StoredLease[],
    wrote: boolean,
    note: Notes,
  ): Promise<void> {
    const { store } = this.options;
    const fresh = await Promise.all(
      leases.map((lease) => store.getLease(lease.id, lease.vault).catch(() => undefined)),
    );
    this.say(
      vault,
      fresh.filter((lease): lease is StoredLease => lease?.status === 'failed'),
      wrote,
      note,
    );
  }

  /** The trail entry of leases that failed although this pass wrote their rules, and a pass to remove them. */
  private say(vault: string, failed: StoredLease[], wrote: boolean, note: Notes): void {
    // Without a write of this pass, its rule was there already: nothing to contradict.
    const ended = wrote ? failed.filter((lease) => lease.failure === 'timeout') : [];
    for (const lease of ended) {
      note(
        this.options.observer?.grantWithdrawn?.(
          lease,
          `its grant was answered 503 (no answer within the apply timeout) before the writer could mark it active; its rule ${lease.ip} was written anyway and is removed by the next pass (unless another live lease holds it); the lease is failed`,
        ),
      );
    }
    if (ended.length > 0) {
      setTimeout(() => {
        if (!this.stopping)
          this.sync(vault, this.options.clock.now() + 50_000).catch(() => undefined);
      }, 0);
    }
  }

  private stalePending(lease: StoredLease, now: number): boolean {
    return lease.status === 'pending' && lease.createdAt + this.pendingTimeoutMs < now;
  }
}
