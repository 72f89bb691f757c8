import { canonicalRule } from '../../src/domain/ip';
import type { ManagedVault } from '../../src/domain/vault';
import {
  FirewallError,
  type NetworkAcls,
  type VaultFirewall,
} from '../../src/ports/vault-firewall';

/**
 * Vault firewalls in memory, for fast tests of the writer and the use cases.
 * Like Key Vault it keeps `defaultAction`, `bypass` and subnet rules as sent,
 * stores a single address as `/32`, and answers an unknown vault with
 * `not-found`; it passes the same contract suite as the ARM adapter against
 * the emulator (test/contracts/vault-firewall.contract.ts).
 */
export class InMemoryVaultFirewall implements VaultFirewall {
  private readonly acls = new Map<string, NetworkAcls>();
  writes = 0;

  /** A vault as an operator locked it down. */
  addVault(vault: ManagedVault, acls: NetworkAcls): void {
    this.acls.set(vault.resourceId.toLowerCase(), structuredClone(acls));
  }

  rules(vault: ManagedVault): string[] {
    return (this.acls.get(vault.resourceId.toLowerCase())?.ipRules ?? [])
      .map((rule) => rule.value)
      .sort();
  }

  private find(vault: ManagedVault): NetworkAcls {
    const acls = this.acls.get(vault.resourceId.toLowerCase());
    if (!acls) throw new FirewallError('not-found', `The vault ${vault.name} was not found`);
    return acls;
  }

  // async: an unknown vault rejects, as the ARM adapter's call does.
  async read(vault: ManagedVault): Promise<NetworkAcls> {
    return structuredClone(this.find(vault));
  }

  async writeIpRules(
    vault: ManagedVault,
    base: NetworkAcls,
    ipRules: string[],
  ): Promise<NetworkAcls> {
    this.find(vault);
    const next: NetworkAcls = {
      ...structuredClone(base),
      ipRules: ipRules.map((value) => ({ value: canonicalRule(value) ?? value })),
    };
    this.acls.set(vault.resourceId.toLowerCase(), next);
    this.writes += 1;
    return structuredClone(next);
  }
}
