import type { Clock } from '../domain/clock';
import { ensureError } from '../domain/errors';
import type { ManagedTarget } from '../domain/target';
import type { LeaseStore, VaultState } from '../ports/lease-store';
import type { WriterPass } from './pass';
import type { VaultRowCache } from './row-cache';
import type { Waiters, Watch } from './waiters';

/**
 * The loop that runs passes for a target while callers wait for it: read the
 * target row (or try from a row just seen free), tell the waiters what it
 * shows, take the lock when it is free and nobody is backing off, run a pass,
 * else sleep until the lock may be free or a waiter wakes it. It carries
 * invariant 3 of docs/architecture.md ("The writer", *The lock*: taken by a
 * write conditional on the row's version, so one writer per target across all
 * instances); what a pass does is `pass.ts`, whom it answers `waiters.ts`.
 */

export interface DriveLoopOptions {
  store: Pick<LeaseStore, 'getVaultState' | 'putVaultState'>;
  clock: Clock;
  /** The targets this broker manages: a pass is run for these only. */
  vaults: ReadonlyMap<string, ManagedTarget>;
  /** Identifies this process in lock rows. */
  instanceId: string;
  lockTtlMs: number;
  /** How often the loop looks at the target row while another process writes. */
  pollMs: number;
  rows: VaultRowCache;
  waiters: Waiters;
  passes: WriterPass;
  /** The process is shutting down: run no more passes. */
  stopping(): boolean;
}

export class DriveLoop {
  constructor(private readonly options: DriveLoopOptions) {}

  /** Drive passes for `watch` until none of its callers waits any more (or the process stops). */
  async drive(vault: string, watch: Watch): Promise<void> {
    const { store, clock, rows, waiters } = this.options;
    const managed = this.options.vaults.get(vault);
    let assumed = rows.freeRow(vault);
    try {
      while (watch.waiters.length > 0 && !this.options.stopping()) {
        let state: VaultState;
        if (assumed) {
          // Only a try at the lock: no waiter takes its target from this row.
          state = assumed;
          assumed = undefined;
        } else {
          watch.reads += 1;
          const read = watch.reads;
          state = await store.getVaultState(vault);
          rows.remember(vault, state);
          waiters.rowRead(vault, watch, read, state);
          if (watch.waiters.length === 0) break;
        }

        const now = clock.now();
        const lockFree = state.lockHolder === '' || state.lockUntil <= now;
        // Waiters whose leases are being read back may need no pass at all.
        const unserved = waiters.unserved(watch);
        if (lockFree && managed && now >= watch.backoffUntil && unserved) {
          const acquired = await store.putVaultState(vault, {
            ...state,
            pass: state.pass + 1,
            lockHolder: this.options.instanceId,
            lockUntil: now + this.options.lockTtlMs,
          });
          if (!acquired) continue; // another process took it: look again
          // A completed pass has answered the waiters it served.
          const outcome = await this.options.passes.run(managed, acquired, {
            serving: (pass, applied) => waiters.serving(watch, pass, applied),
            rowWritten: (written) => rows.remember(vault, written),
            completed: (done) => waiters.answer(vault, watch, done),
            retryAt: (at, failure) => {
              watch.backoffUntil = at;
              watch.lastFailure = failure;
            },
          });
          if (outcome) assumed = rows.freeRow(vault);
          continue;
        }
        await new Promise<void>((resolve) => {
          const wait = lockFree
            ? Math.max(5, Math.min(watch.backoffUntil - now, this.options.pollMs * 4))
            : this.options.pollMs;
          const timer = setTimeout(resolve, wait);
          watch.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        watch.wake = undefined;
      }
    } catch (thrown) {
      waiters.fail(watch, ensureError(thrown));
    } finally {
      if (watch.waiters.length === 0 || this.options.stopping()) {
        waiters.forget(vault, watch);
      } else void this.drive(vault, watch);
    }
  }
}
