import type { Clock } from '../domain/clock';
import { mapWithLimit } from '../domain/concurrency';
import { canonicalRule } from '../domain/ip';
import type { UseCase } from '../domain/use-case';
import type { ManagedVault } from '../domain/vault';
import type { LeaseStore } from '../ports/lease-store';
import type { VaultFirewall } from '../ports/vault-firewall';

export interface VaultSummary {
  name: string;
  resourceId: string;
  activeLeases: number;
  brokerRules: number;
  totalRules: number;
  maxRules: number;
  /**
   * false when the last writer pass failed or Resource Manager did not answer
   * the read made for this summary; `lastError` says why.
   */
  healthy: boolean;
  lastError?: string | undefined;
  /** ISO time of that failure. */
  lastErrorAt?: string | undefined;
  /** ISO time of the last completed writer pass, when there was one. */
  lastPassAt?: string | undefined;
  vaultUri?: string;
}

/**
 * Per managed vault: active leases, rules the broker holds and the rule count
 * read live from the firewall (the store's last known count when Resource
 * Manager does not answer), and the vault's health: the outcome of the last
 * writer pass (recorded in the store by whichever instance ran it) and of
 * this read.
 */
export async function summariseVaults(deps: {
  store: LeaseStore;
  clock: Clock;
  firewall: VaultFirewall;
  vaults: ManagedVault[];
  maxRules: number;
}): Promise<VaultSummary[]> {
  return mapWithLimit(deps.vaults, 8, async (vault) => {
    const [state, live, firewallRead] = await Promise.all([
      deps.store.getVaultState(vault.name),
      deps.store.liveLeases(vault.name),
      deps.firewall.read(vault, AbortSignal.timeout(5_000)).then(
        (read) => ({ read, error: undefined }),
        (error: unknown) => ({
          read: undefined,
          error: error instanceof Error ? error.message : 'Resource Manager did not answer',
        }),
      ),
    ]);
    const acls = firewallRead.read;
    const failedAt = firewallRead.error ? deps.clock.now() : state.lastErrorAt;
    const lastError = firewallRead.error ?? (state.lastError || undefined);
    const current = acls
      ? new Set(acls.ipRules.map((rule) => canonicalRule(rule.value) ?? rule.value))
      : undefined;
    // Known from the read just made (or an earlier one): no extra call.
    const vaultUri = acls
      ? await deps.firewall.vaultUri?.(vault).catch(() => undefined)
      : undefined;
    return {
      name: vault.name,
      resourceId: vault.resourceId,
      activeLeases: live.filter((lease) => lease.status === 'active').length,
      brokerRules: current
        ? state.owned.filter((rule) => current.has(rule)).length
        : state.owned.length,
      totalRules: acls ? acls.ipRules.length : Math.max(0, state.totalRules),
      maxRules: deps.maxRules,
      healthy: lastError === undefined,
      ...(lastError === undefined
        ? {}
        : { lastError, lastErrorAt: failedAt > 0 ? new Date(failedAt).toISOString() : undefined }),
      ...(state.lastPassAt > 0 ? { lastPassAt: new Date(state.lastPassAt).toISOString() } : {}),
      ...(vaultUri ? { vaultUri } : {}),
    };
  });
}

/** The vault overview: Lease.Read. */
export function vaultsUseCase(
  summarise: () => Promise<VaultSummary[]>,
): UseCase<void, VaultSummary[]> {
  return {
    name: 'list-vaults',
    roles: ['Lease.Read'],
    purpose: 'Listing vaults',
    run: () => summarise(),
  };
}
