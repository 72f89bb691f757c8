import { type NetworkRuleSet, StorageManagementClient } from '@azure/arm-storage';

import { canonicalRule } from '../../domain/ip';
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
import { sameRegionWarning } from './same-region';
import { armServiceTagFetch, ServiceTagCache } from './service-tags';

const LABEL = 'the storage account';

/** The longest `warnings` takes: past it the grant goes on without (the check is advice only). */
const WARNINGS_BOUND_MS = 2000;

/**
 * What `read` hands `write`: the rule set as read, which `write` sends back with only
 * `ipRules` replaced, and the rules in the account's notation (for the audit trail).
 */
interface StorageBase {
  ruleSet: NetworkRuleSet;
  notation: string[];
}

/**
 * A storage account's rule value for a plan's rule: a single address is written bare
 * (`a.b.c.d`; Azure refuses /31 and /32 as ranges), any other range or verbatim value as it is.
 */
export function storageNotation(rule: string): string {
  return rule.endsWith('/32') && canonicalRule(rule) === rule ? rule.slice(0, -3) : rule;
}

/**
 * A storage account's firewall through `@azure/arm-storage`: `getProperties`, then `update`
 * (a synchronous PATCH) sending only `networkRuleSet` (`properties.networkAcls`), the whole set
 * as read with `ipRules` replaced. Azure has no ETag here and answers a write that overlaps
 * another on the same account with 409 `StorageAccountOperationInProgress` (a `conflict`: the
 * writer retries with a fresh read).
 */
export class StorageFirewall implements TargetFirewall {
  private readonly client: (subscriptionId: string) => StorageManagementClient;
  /** `properties.primaryEndpoints.blob`: fixed for an account's life, kept once seen. */
  private readonly endpoints = new DataPlaneCache();
  /**
   * The account's `location`, fixed for its life too.
   * NOTE: a second `DataPlaneCache`: the same keep-once-seen, retry-after-30-s behaviour.
   */
  private readonly locations = new DataPlaneCache();
  private readonly serviceTags: ServiceTagCache;

  constructor(options: ArmFirewallOptions, serviceTags?: ServiceTagCache) {
    this.client = perSubscription(
      (subscriptionId) =>
        new StorageManagementClient(options.credential, subscriptionId, armClientOptions(options)),
    );
    this.serviceTags = serviceTags ?? new ServiceTagCache({ fetch: armServiceTagFetch(options) });
  }

  async read(account: ManagedTarget, signal?: AbortSignal): Promise<FirewallRules> {
    try {
      const result = await this.client(account.subscriptionId).storageAccounts.getProperties(
        account.resourceGroup,
        account.name,
        { abortSignal: signal },
      );
      this.endpoints.seen(account, result.primaryEndpoints?.blob);
      this.locations.seen(account, result.location);
      // NOTE: Azure always returns the rule set of a StorageV2 account; without one the
      // account admits everyone, which `defaultAction: Allow` writes back unchanged.
      const ruleSet: NetworkRuleSet = result.networkRuleSet ?? { defaultAction: 'Allow' };
      const notation = (ruleSet.ipRules ?? []).map((rule) => rule.iPAddressOrRange);
      const base: StorageBase = { ruleSet, notation };
      return { rules: notation.map((value) => canonicalRule(value) ?? value), base };
    } catch (error) {
      throw classifyArmError(error, signal, LABEL);
    }
  }

  async write(
    account: ManagedTarget,
    current: FirewallRules,
    next: string[],
    signal?: AbortSignal,
  ): Promise<FirewallWrite> {
    const base = current.base as StorageBase;
    const written = next.map(storageNotation);
    // NOTE: every field is sent back as read, `ipv6Rules` only when the account has it:
    // Azure replaces the rule set whole, so a field left out would be reset.
    const networkRuleSet: NetworkRuleSet = {
      bypass: base.ruleSet.bypass,
      defaultAction: base.ruleSet.defaultAction,
      ipRules: written.map((value) => ({ iPAddressOrRange: value, action: 'Allow' })),
      virtualNetworkRules: base.ruleSet.virtualNetworkRules ?? [],
      resourceAccessRules: base.ruleSet.resourceAccessRules ?? [],
      ...(base.ruleSet.ipv6Rules ? { ipv6Rules: base.ruleSet.ipv6Rules } : {}),
    };
    try {
      await this.client(account.subscriptionId).storageAccounts.update(
        account.resourceGroup,
        account.name,
        { networkRuleSet },
        { abortSignal: signal },
      );
    } catch (error) {
      throw classifyArmError(error, signal, LABEL);
    }
    return wholeListWrite(base.notation, written);
  }

  dataPlane(account: ManagedTarget, signal?: AbortSignal): Promise<string | undefined> {
    return this.endpoints.lookup(account, () => this.read(account, signal));
  }

  location(account: ManagedTarget, signal?: AbortSignal): Promise<string | undefined> {
    return this.locations.lookup(account, () => this.read(account, signal));
  }

  /** The same-region warning (contract §4, storage), or none; never rejects, never waits past 2 s. */
  async warnings(account: ManagedTarget, cidr: string, signal?: AbortSignal): Promise<string[]> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<string[]>((resolve) => {
      timer = setTimeout(() => resolve([]), WARNINGS_BOUND_MS);
    });
    // Resource Manager failing on the location read: no warning rather than a failed grant.
    const work = this.sameRegion(account, cidr, signal).catch((): string[] => []);
    try {
      return await Promise.race([work, bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async sameRegion(
    account: ManagedTarget,
    cidr: string,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const region = await this.location(account, signal);
    if (!region) return [];
    const tags = await this.serviceTags.current(account.subscriptionId, region);
    const warning = tags && sameRegionWarning(cidr, region, tags);
    return warning ? [warning] : [];
  }
}
