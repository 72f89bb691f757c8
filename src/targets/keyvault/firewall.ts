import { KeyVaultManagementClient, type NetworkRuleSet } from '@azure/arm-keyvault';

import type { ManagedTarget } from '../../domain/target';
import type { FirewallRules, FirewallWrite, TargetFirewall } from '../../ports/target-firewall';
import {
  armClientOptions,
  type ArmFirewallOptions,
  classifyArmError,
  perSubscription,
} from '../arm';
import { DataPlaneCache } from '../data-plane-cache';
import { wholeListWrite } from '../whole-list';

const LABEL = 'the Key Vault';

/**
 * A Key Vault's firewall through `@azure/arm-keyvault`: a GET, then a PATCH of
 * the complete `networkAcls` as read, with only `ipRules` replaced. There is
 * no add/remove of one rule and no ETag: the caller holds the vault's writer
 * role. Values are kept as the vault holds them (the plan canonicalises).
 */
export class KeyVaultFirewall implements TargetFirewall {
  private readonly client: (subscriptionId: string) => KeyVaultManagementClient;
  /** `properties.vaultUri`: fixed for a vault's life, kept once seen. */
  private readonly uris = new DataPlaneCache();

  constructor(options: ArmFirewallOptions) {
    this.client = perSubscription(
      (subscriptionId) =>
        new KeyVaultManagementClient(options.credential, subscriptionId, armClientOptions(options)),
    );
  }

  async read(vault: ManagedTarget, signal?: AbortSignal): Promise<FirewallRules> {
    try {
      const result = await this.client(vault.subscriptionId).vaults.get(
        vault.resourceGroup,
        vault.name,
        { abortSignal: signal },
      );
      this.uris.seen(vault, result.properties.vaultUri);
      const acls: NetworkRuleSet = result.properties.networkAcls ?? {};
      return { rules: (acls.ipRules ?? []).map((rule) => rule.value), base: acls };
    } catch (error) {
      throw classifyArmError(error, signal, LABEL);
    }
  }

  dataPlane(vault: ManagedTarget, signal?: AbortSignal): Promise<string | undefined> {
    return this.uris.lookup(vault, () => this.read(vault, signal));
  }

  async write(
    vault: ManagedTarget,
    current: FirewallRules,
    next: string[],
    signal?: AbortSignal,
  ): Promise<FirewallWrite> {
    const base = current.base as NetworkRuleSet;
    const networkAcls: NetworkRuleSet = {
      bypass: base.bypass,
      defaultAction: base.defaultAction,
      ipRules: next.map((value) => ({ value })),
      virtualNetworkRules: base.virtualNetworkRules ?? [],
    };
    try {
      await this.client(vault.subscriptionId).vaults.update(
        vault.resourceGroup,
        vault.name,
        { properties: { networkAcls } },
        { abortSignal: signal },
      );
    } catch (error) {
      throw classifyArmError(error, signal, LABEL);
    }
    return wholeListWrite(current.rules, next);
  }
}
