import type { Clock } from '../domain/clock';
import { DomainError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import type { LeaseStore, StoredLease, VaultState } from '../ports/lease-store';
import type { PassOutcome } from './pass';
import { readLeases } from './read-leases';

/**
 * The callers waiting for a target's firewall (`sync`): which pass serves each
 * one (its target), when it is answered (that pass completed, here or in
 * another instance, or its grant's lease applied or refused), and its
 * deadline. It carries invariant 4 of docs/architecture.md ("The writer",
 * *Waiters*): a caller is answered only after a pass that read the store
 * after its change has completed. When passes run is the drive loop's
 * business (`drive-loop.ts`); this module only learns of rows read and
 * passes run.
 */

interface Waiter {
  /** Reads of the target row this watch had begun when the waiter arrived. */
  arrivedAfterRead: number;
  target: number | undefined;
  /** A grant's lease: the waiter is also done once the lease is applied (or refused). */
  lease: string | undefined;
  /** The target row's `applied` when the target was set: a pass completed since may have applied the lease. */
  appliedSeen: number | undefined;
  /** The lease is being read back. */
  probing: boolean;
  deadline: number;
  resolve: (outcome: PassOutcome | undefined) => void;
  reject: (error: Error) => void;
}

/** One target's waiting callers, and the state of the loop that drives passes for them. */
export interface Watch {
  waiters: Waiter[];
  /** Reads of the target row begun so far. */
  reads: number;
  /** Cuts the drive loop's sleep short (a new waiter, a lease read back). */
  wake: (() => void) | undefined;
  /** No pass is tried before this (after a failed one). */
  backoffUntil: number;
  /** Why the last pass failed, for the answer of a waiter out of time. */
  lastFailure: string | undefined;
}

export interface WaitersOptions {
  store: Pick<LeaseStore, 'liveLeases' | 'getLease'>;
  clock: Clock;
  logger: Logger;
  /** A target's first waiter arrived: start driving passes for its watch. */
  start(vault: string, watch: Watch): void;
}

export class Waiters {
  private readonly watches = new Map<string, Watch>();
  /** Outcomes of recent local passes, so local waiters need no extra read. */
  private readonly recent = new Map<string, PassOutcome>();

  constructor(private readonly options: WaitersOptions) {}

  /** A caller waits (see `TargetCoordinator.sync`); its deadline is a timer. */
  wait(
    vault: string,
    deadline: number,
    lease: string | undefined,
  ): Promise<PassOutcome | undefined> {
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
          reject(timeout(current));
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
        this.options.start(vault, current);
      } else {
        current.wake?.();
      }
    });
  }

  /** The drive loop read the target row (its `read`-th read, begun before `state` came back). */
  rowRead(vault: string, watch: Watch, read: number, state: VaultState): void {
    // Waiters that arrived before this read began get their target now: the
    // next pass to begin will read the store after their change. One that
    // arrived while the read was under way waits for the next read: this one
    // may show the row from before its change, and a pass begun since.
    for (const waiter of watch.waiters)
      if (waiter.arrivedAfterRead < read) aim(waiter, state.pass + 1, state.applied);
    this.settle(vault, watch, state.applied);
  }

  /**
   * A pass of this process (number `pass`) is about to read the leases: every
   * waiter here now made its change before that read, so that pass serves it,
   * even one that arrived too late for the row read that led there (without
   * this, it would wait a pass more).
   */
  serving(watch: Watch, pass: number, applied: number): void {
    for (const waiter of watch.waiters) aim(waiter, pass, applied);
  }

  /** A pass of this process completed: answer the waiters it served. */
  answer(vault: string, watch: Watch, outcome: PassOutcome): void {
    this.recent.set(vault, outcome);
    this.settle(vault, watch, outcome.pass);
  }

  /** Some waiter needs a pass (waiters whose leases are being read back may need none). */
  unserved(watch: Watch): boolean {
    return watch.waiters.some((waiter) => !waiter.probing);
  }

  /** Answer every waiter of `watch` with `error` (the store failed, or the target is refused). */
  fail(watch: Watch, error: Error): void {
    for (const waiter of watch.waiters.splice(0)) waiter.reject(error);
  }

  /** Answer every waiter of every vault with `error` and wake their loops (shutdown). */
  close(error: Error): void {
    for (const watch of this.watches.values()) {
      this.fail(watch, error);
      watch.wake?.();
    }
  }

  /** The drive loop of `watch` stopped with nobody waiting (or the process stops). */
  forget(vault: string, watch: Watch): void {
    if (this.watches.get(vault) === watch) this.watches.delete(vault);
  }

  /**
   * Resolve waiters whose pass is done; reject those out of time. A grant's
   * waiter is also done once its lease is applied or refused: by a pass here
   * (its outcome says so), or by one elsewhere, seen by reading the lease back
   * once the target row shows a pass completed (a grant that registered just
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
        waiter.reject(timeout(watch));
        return false;
      }
      return true;
    });
    if (probe.length > 0) void this.probe(vault, watch, probe, applied);
  }

  /**
   * Read back the leases of `waiters` (one read for many) after the target row
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

/** Give a waiter the pass that will serve it, unless it has one already. */
function aim(waiter: Waiter, target: number, applied: number): void {
  if (waiter.target !== undefined) return;
  waiter.target = target;
  waiter.appliedSeen = applied;
}

function timeout(watch: Watch): DomainError {
  const why = watch.lastFailure ? ` (last attempt: ${watch.lastFailure})` : '';
  return new DomainError(
    'VAULT.UPDATE_TIMEOUT',
    `No firewall write completed before the deadline${why}`,
    { retryAfterSeconds: 5 },
  );
}
