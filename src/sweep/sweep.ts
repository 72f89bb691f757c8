import type { Clock } from '../domain/clock';
import { mapWithLimit } from '../domain/concurrency';
import type { Logger } from '../domain/logger';
import type { ManagedTarget } from '../domain/target';
import { errorFields } from '../observability/error-fields';
import { sweepFinished } from '../observability/telemetry';
import type { LeaseStore } from '../ports/lease-store';
import type { TargetCoordinator } from '../writer/coordinator';

export interface SweepResult {
  vaults: number;
  reconciled: number;
  failed: { vault: string; error: string }[];
  /** Ended leases removed from the history (retention); the audit trail keeps everything. */
  pruned: number;
  durationMs: number;
}

export interface SweepDeps {
  coordinator: TargetCoordinator;
  clock: Clock;
  logger: Logger;
  vaults: ManagedTarget[];
  /** Vaults reconciled at once. */
  concurrency?: number;
  /** The whole sweep must end well inside one timer period. */
  budgetMs?: number;
  /** Ended leases are kept this long (LEASE_HISTORY_DAYS), then the sweep removes them. */
  history?: { store: Pick<LeaseStore, 'pruneHistory'>; keepMs: number };
}

/**
 * The timer's work: one writer pass per managed vault. A pass expires leases
 * past their time, removes rules the broker owns that no live lease needs, and
 * puts back a live lease's rule that something else removed — at most one
 * firewall write per target, and none when the target already matches.
 *
 * Then it removes each target's ended leases older than the retention
 * (`history`), a bounded number per run; the audit trail is never touched.
 *
 * Safe to run on several instances at once: passes are serialised per target
 * by the coordinator's lock, and a second sweep only adds a no-op pass.
 */
export async function sweep(deps: SweepDeps): Promise<SweepResult> {
  const started = deps.clock.now();
  const deadline = started + (deps.budgetMs ?? 50_000);
  const failed: SweepResult['failed'] = [];
  let pruned = 0;
  await mapWithLimit(deps.vaults, deps.concurrency ?? 8, async (vault) => {
    try {
      await deps.coordinator.sync(vault.name, deadline);
    } catch (error) {
      const message = error instanceof Error ? error.message : 'unknown error';
      failed.push({ vault: vault.name, error: message });
      deps.logger.warn('Sweep could not reconcile a vault; the next run retries', {
        vault: vault.name,
        ...errorFields(error),
      });
    }
    if (deps.history) {
      // Retention is housekeeping: a failure is logged and the next run goes on.
      try {
        pruned += await deps.history.store.pruneHistory(vault.name, started - deps.history.keepMs);
      } catch (error) {
        deps.logger.warn('Sweep could not remove old lease history; the next run retries', {
          vault: vault.name,
          ...errorFields(error),
        });
      }
    }
  });
  const result = {
    vaults: deps.vaults.length,
    reconciled: deps.vaults.length - failed.length,
    failed,
    pruned,
    durationMs: deps.clock.now() - started,
  };
  deps.logger.info('Sweep finished', { ...result });
  sweepFinished(deps.logger, result);
  return result;
}
