import type { Clock } from '../domain/clock';
import { DomainError } from '../domain/errors';
import type { BrokerEvent } from '../domain/events';
import { canonicalRule } from '../domain/ip';
import type { Lease } from '../domain/lease';
import type { Logger } from '../domain/logger';
import { planRules } from '../domain/rule-plan';
import type { ManagedTarget } from '../domain/target';
import { passCompleted, passFailed } from '../observability/telemetry';
import type { LeaseStore, StoredLease, VaultState } from '../ports/lease-store';
import { FirewallError, type TargetFirewall } from '../ports/target-firewall';
import { kindOf } from '../targets/kinds';
import { HeldLock, LostLock } from './lock';

/**
 * One writer pass of one vault, run while this process holds its lock: read
 * the firewall (through the `TargetFirewall` port, its only firewall
 * dependency) and the live leases, end the expired ones, plan the rules,
 * record ownership, write the complete list once, mark the applied leases
 * active, and free the lock recording the pass as applied.
 *
 * It carries invariants 1 and 2 of docs/architecture.md ("The writer": rules
 * the broker did not add are kept, ownership is recorded before the write and
 * kept while a write may still land), the audit order of "The audit trail
 * and the firewall" (an `expire` entry never before its write; a grant that
 * gave up is never activated), and the lock's lifetime around the pass (a
 * `HeldLock` with its heartbeat, invariant 3, enforced in `lock.ts`). Who
 * waits for a pass, and when one starts, is not its business: it tells a
 * `PassListener`.
 */

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
  /** Every firewall write a pass sent: what it read, what it wrote, and the outcome (the audit event's fields). */
  firewallWritten?(event: FirewallWritten): void | Promise<void>;
}

type FirewallWritten = Omit<Extract<BrokerEvent, { type: 'firewall-written' }>, 'type'>;

/** What a completed pass did, for the waiters in the process that ran it. */
export interface PassOutcome {
  pass: number;
  activated: ReadonlySet<string>;
  refused: ReadonlySet<string>;
}

/** What one pass tells the process that runs it (its waiters, its row cache, its retries). */
export interface PassListener {
  /**
   * The pass (number `pass`, taken from a row showing `applied`) is about to
   * read the leases: every waiter registered now made its change before that read.
   */
  serving(pass: number, applied: number): void;
  /** The target row as the pass's final write left it (the lock free). */
  rowWritten(state: VaultState): void;
  /** The pass completed and its audit entries are written: answer the waiters it served. */
  completed(outcome: PassOutcome): void;
  /** When the next pass may start, and why the last one failed (`0, undefined` after a success). */
  retryAt(at: number, failure: string | undefined): void;
}

export interface WriterPassOptions {
  store: LeaseStore;
  firewall: TargetFirewall;
  clock: Clock;
  logger: Logger;
  observer: PassObserver | undefined;
  lockTtlMs: number;
  heartbeatMs: number;
  callTimeoutMs: number;
  settleMs: number;
  /** A limit of rules for every target (tests); by default each kind's own (`TargetKind.maxRules`). */
  maxRules: number | undefined;
  pendingTimeoutMs: number;
  /** Have a pass run soon for `vault` (leases it failed had their rules written). */
  followUp(vault: string): void;
}

/** Collects what the observer hooks of one pass returned. */
type Notes = (settling: void | Promise<void>) => void;

/** A lock is given up this long before it expires, so no call outlives it. */
const LOCK_MARGIN_MS = 300;

export class WriterPass {
  /** Locks this process holds right now, released on shutdown. */
  private readonly held = new Set<HeldLock>();

  constructor(private readonly options: WriterPassOptions) {}

  /**
   * One writer pass while holding the lock (`locked`: the row written by the
   * conditional write that took it). Returns the outcome when it completed,
   * `undefined` when it failed or lost the lock (waiters retry).
   */
  async run(
    vault: ManagedTarget,
    locked: VaultState,
    listener: PassListener,
  ): Promise<PassOutcome | undefined> {
    const notes: Promise<void>[] = [];
    const lock = new HeldLock({
      store: this.options.store,
      vault: vault.name,
      state: locked,
      clock: this.options.clock,
      ttlMs: this.options.lockTtlMs,
      heartbeatMs: this.options.heartbeatMs,
      marginMs: LOCK_MARGIN_MS,
    });
    this.held.add(lock);
    try {
      return await this.pass(
        vault,
        lock,
        listener,
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

  /** Abandon the running passes and free the rows of the locks they hold (shutdown). */
  releaseLocks(): Promise<unknown> {
    return Promise.allSettled([...this.held].map((lock) => lock.release()));
  }

  private async pass(
    vault: ManagedTarget,
    lock: HeldLock,
    listener: PassListener,
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
      // Every waiter registered by now made its change before this read.
      listener.serving(acquired.pass, acquired.applied);
      const kind = kindOf(vault);
      const maxRules = this.options.maxRules ?? kind.maxRules;
      const [acls, live] = await Promise.all([
        lock.call(this.options.callTimeoutMs, (signal) => firewall.read(vault, signal)),
        store.liveLeases(vault.name),
      ]);
      const now = clock.now();
      const { survivors, ended } = await this.expire(live, now);
      expired = ended;
      // A kind whose rules are marked as the broker's (by name) says which; else the store does.
      const plan = planRules({
        current: acls.rules,
        owned: acls.owned ?? acquired.owned,
        live: survivors,
        maxRules,
        reserved: acls.reserved,
        rulesFor: kind.rulesFor,
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
      // the target holds when its waiters are answered.
      const unsettled = readAt < acquired.unsettledUntil;
      let wrote = false;
      if (plan.changed || unsettled || acls.dirty) {
        // Ownership is recorded (and the lock renewed) before the rule is
        // written, so no crash can leave a rule the broker does not know it added.
        await lock.update({
          owned: plan.ownedBeforeWrite,
          unsettledUntil: Math.max(acquired.unsettledUntil, clock.now() + this.options.settleMs),
        });
        const before = new Set(acls.rules);
        const after = new Set(plan.next);
        const written = {
          vault: vault.name,
          reserved: acls.reserved,
          read: acls.rules,
          written: plan.next,
          added: plan.next.filter((rule) => !before.has(rule)),
          removed: acls.rules.filter((rule) => !after.has(rule)),
        };
        try {
          // NOTE: a per-rule kind sends only what differs from `current`; while an
          // abandoned write may still land (a late DELETE), it is told so, and
          // makes every needed rule hold again under fresh names (docs/architecture.md, "SQL").
          const current = unsettled ? { ...acls, reassert: true } : acls;
          const done = await lock.call(this.options.callTimeoutMs, (signal) =>
            firewall.write(vault, current, plan.next, signal),
          );
          wrote = true;
          note(observer?.firewallWritten?.({ ...written, ...done, outcome: 'success' }));
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
      const readRules = new Set(acls.rules.map((rule) => canonicalRule(rule) ?? rule));
      const rulesOf = (lease: Lease) => kind.rulesFor(lease.ip);
      reportExpired('success', (lease) =>
        rulesOf(lease).some((rule) => kept.has(rule))
          ? `its rule ${lease.ip} stays: another live lease holds it, or the broker did not add it`
          : rulesOf(lease).some((rule) => readRules.has(rule))
            ? `its rule ${lease.ip} was removed from the ${kind.label}`
            : `its rule ${lease.ip} was not on the ${kind.label}`,
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
      // The rules are on the target and the leases active: the pass is done, and
      // this process's waiters are answered (once the pass's audit entries are
      // written) while the lock is being freed, not after.
      passCompleted(logger, {
        vault: vault.name,
        outcome: plan.changed ? 'written' : 'unchanged',
        rules: plan.next.length,
        maxRules,
        brokerRules: plan.ownedAfterWrite.length,
        activeLeases: survivors.length - refused.size,
        startedAt,
        endedAt: clock.now(),
      });
      const answered = noted().then(() => listener.completed(outcome));
      const done = await lock.finish({
        applied: acquired.pass,
        owned: unsettled ? plan.ownedBeforeWrite : plan.ownedAfterWrite,
        // This pass's own write answered: only earlier unknown writes remain.
        unsettledUntil: wrote ? acquired.unsettledUntil : lock.state.unsettledUntil,
        totalRules: plan.next.length + (acls.reserved ?? 0),
        lastPassAt: now,
        lastError: '',
        lastErrorAt: 0,
      });
      if (done) listener.rowWritten(done);
      await answered;
      if (!done) throw new LostLock();
      listener.retryAt(0, undefined);
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
      // target's health); this process backs off before retrying.
      await lock.release({ lastError: message, lastErrorAt: clock.now() });
      if (error instanceof FirewallError && error.permanent) {
        logger.error('Resource Manager refuses the target; its waiters are answered at once', {
          vault: vault.name,
          kind: error.kind,
          status: error.status,
          error: message,
        });
        throw new DomainError(
          'VAULT.UNAVAILABLE',
          `The firewall of ${kindOf(vault).label} ${vault.name} cannot be changed: ${message}. Nothing was changed; retrying will not help until that is fixed.`,
          { cause: error },
        );
      }
      if (error instanceof FirewallError) {
        const delay = error.retryAfterMs ?? (error.kind === 'conflict' ? 100 : 500);
        listener.retryAt(clock.now() + delay + Math.floor(Math.random() * 100), message);
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
      setTimeout(() => this.options.followUp(vault), 0);
    }
  }

  private stalePending(lease: StoredLease, now: number): boolean {
    return lease.status === 'pending' && lease.createdAt + this.options.pendingTimeoutMs < now;
  }
}
