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
  vaultUri?: string;
}

/**
 * Per managed vault: active leases, rules the broker holds and the rule count
 * read live from the firewall (the store's last known count when Resource
 * Manager does not answer).
 */
export async function summariseVaults(deps: {
  store: LeaseStore;
  firewall: VaultFirewall;
  vaults: ManagedVault[];
  maxRules: number;
}): Promise<VaultSummary[]> {
  return mapWithLimit(deps.vaults, 8, async (vault) => {
    const [state, live, acls] = await Promise.all([
      deps.store.getVaultState(vault.name),
      deps.store.liveLeases(vault.name),
      deps.firewall.read(vault, AbortSignal.timeout(10_000)).catch(() => undefined),
    ]);
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
