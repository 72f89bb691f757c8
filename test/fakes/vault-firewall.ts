import { canonicalRule, parseLeaseIp } from '../../src/domain/ip';
import type { ManagedTarget } from '../../src/domain/target';
import {
  FirewallError,
  type FirewallRules,
  type FirewallWrite,
  type TargetFirewall,
} from '../../src/ports/target-firewall';
import { keyVaultKind } from '../../src/targets/keyvault/kind';
import { wholeListWrite } from '../../src/targets/whole-list';

/** `properties.networkAcls` of a vault, as the fake keeps it. */
export interface NetworkAcls {
  bypass?: string | undefined;
  defaultAction?: string | undefined;
  ipRules: { value: string }[];
  virtualNetworkRules?:
    { id: string; ignoreMissingVnetServiceEndpoint?: boolean | undefined }[] | undefined;
}

/**
 * Key Vault firewalls in memory, for fast tests of the writer and the use
 * cases. Like Key Vault it keeps `defaultAction`, `bypass` and subnet rules as
 * sent, stores a single address as `/32`, and answers an unknown vault with
 * `not-found`, refuses a value that is not a public IPv4 address or range and
 * more rules than Key Vault's limit; it passes the same contract suite as the
 * ARM adapter against the emulator (test/contracts/target-firewall.contract.ts).
 */
export class InMemoryVaultFirewall implements TargetFirewall {
  private readonly acls = new Map<string, NetworkAcls>();
  writes = 0;

  /** A vault as an operator locked it down. */
  addVault(vault: ManagedTarget, acls: NetworkAcls): void {
    this.acls.set(vault.resourceId.toLowerCase(), structuredClone(acls));
  }

  rules(vault: ManagedTarget): string[] {
    return (this.acls.get(vault.resourceId.toLowerCase())?.ipRules ?? [])
      .map((rule) => rule.value)
      .sort();
  }

  /** The whole networkAcls as the vault holds them. */
  networkAcls(vault: ManagedTarget): NetworkAcls | undefined {
    const acls = this.acls.get(vault.resourceId.toLowerCase());
    return acls && structuredClone(acls);
  }

  private find(vault: ManagedTarget): NetworkAcls {
    const acls = this.acls.get(vault.resourceId.toLowerCase());
    if (!acls) throw new FirewallError('not-found', `The vault ${vault.name} was not found`);
    return acls;
  }

  // async: an unknown vault rejects, as the ARM adapter's call does.
  async read(vault: ManagedTarget): Promise<FirewallRules> {
    const acls = structuredClone(this.find(vault));
    return { rules: acls.ipRules.map((rule) => rule.value), base: acls };
  }

  async write(
    vault: ManagedTarget,
    current: FirewallRules,
    next: string[],
  ): Promise<FirewallWrite> {
    this.find(vault);
    refuse(next);
    const base = current.base as NetworkAcls;
    const written: NetworkAcls = {
      ...structuredClone(base),
      ipRules: next.map((value) => ({ value: canonicalRule(value) ?? value })),
    };
    this.acls.set(vault.resourceId.toLowerCase(), written);
    this.writes += 1;
    return wholeListWrite(current.rules, next);
  }
}

/** What Key Vault refuses with a 400 before changing anything: a bad value, too many rules. */
function refuse(values: string[]): void {
  for (const value of values) {
    try {
      parseLeaseIp(value, 0);
    } catch {
      throw new FirewallError('rejected', `Key Vault refuses the IP rule ${value}`);
    }
  }
  if (values.length > keyVaultKind.maxRules)
    throw new FirewallError(
      'rejected',
      `Key Vault holds at most ${keyVaultKind.maxRules} IP rules`,
    );
}
