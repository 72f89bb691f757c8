import type { Clock } from '../domain/clock';
import { mapWithLimit } from '../domain/concurrency';
import type { Logger } from '../domain/logger';
import type { ManagedVault } from '../domain/vault';
import { errorFields } from '../observability/error-fields';
import type { VaultCoordinator } from '../writer/coordinator';

export interface SweepResult {
  vaults: number;
  reconciled: number;
  failed: { vault: string; error: string }[];
  durationMs: number;
}

export interface SweepDeps {
  coordinator: VaultCoordinator;
  clock: Clock;
  logger: Logger;
  vaults: ManagedVault[];
  /** Vaults reconciled at once. */
  concurrency?: number;
  /** The whole sweep must end well inside one timer period. */
  budgetMs?: number;
}

/**
 * The timer's work: one writer pass per managed vault. A pass expires leases
 * past their time, removes rules the broker owns that no live lease needs, and
 * puts back a live lease's rule that something else removed — at most one
 * firewall write per vault, and none when the vault already matches.
 *
 * Safe to run on several instances at once: passes are serialised per vault
 * by the coordinator's lock, and a second sweep only adds a no-op pass.
 */
export async function sweep(deps: SweepDeps): Promise<SweepResult> {
  const started = deps.clock.now();
  const deadline = started + (deps.budgetMs ?? 50_000);
  const failed: SweepResult['failed'] = [];
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
  });
  const result = {
    vaults: deps.vaults.length,
    reconciled: deps.vaults.length - failed.length,
    failed,
    durationMs: deps.clock.now() - started,
  };
  deps.logger.info('Sweep finished', { ...result });
  return result;
}
