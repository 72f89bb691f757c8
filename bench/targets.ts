import type { SqlServerSpec, SqlServerStats } from '../dev/emulator/sql/sql-model';
import type { StorageAccountSpec } from '../dev/emulator/storage/account';
import type { StorageAccountStats } from '../dev/emulator/storage/storage-model';
import type { RunningEmulator } from '../dev/emulator/types';
import { type BenchTarget, RESOURCE_GROUP, STATIC_RULE, SUBSCRIPTION } from './harness';

/**
 * The kinds beside Key Vault as the bench sees them: their resource IDs, how they are seeded
 * in the emulator (locked down as operators do), and what the emulator counts for each.
 * Key Vault's own helpers stay in `harness.ts`, as today's rows use them.
 */

/** The operator's own rule on every seeded target, as a bare address (storage and SQL notation). */
const STATIC_ADDRESS = STATIC_RULE.replace(/\/32$/, '');

export function storageAccountId(name: string): string {
  return `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.Storage/storageAccounts/${name}`;
}

export function sqlServerId(name: string): string {
  return `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.Sql/servers/${name}`;
}

/** A storage account locked down like `lockedVault`: Deny, AzureServices, one static rule. */
export function lockedAccount(name: string): StorageAccountSpec {
  return {
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    name,
    networkAcls: {
      bypass: 'AzureServices',
      defaultAction: 'Deny',
      ipRules: [{ value: STATIC_ADDRESS, action: 'Allow' }],
    },
  };
}

/** A SQL server as operators leave it: Azure services allowed and one rule of their own. */
export function lockedServer(name: string): SqlServerSpec {
  return {
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    name,
    allowAzureServices: true,
    firewallRules: [
      { name: 'office', startIpAddress: STATIC_ADDRESS, endIpAddress: STATIC_ADDRESS },
    ],
  };
}

/** A storage account, named by `target` as a v1.1 client does; a lease is a bare address. */
export function storageTarget(emulator: RunningEmulator, name: string): BenchTarget {
  return {
    field: 'target',
    name,
    admits: (ip) =>
      emulator.storage
        .getNetworkAcls(storageAccountId(name))
        .ipRules.some((rule) => rule.value === ip),
  };
}

/** A SQL server, named by `target`; a lease is a rule from `ip` to `ip`. */
export function sqlTarget(emulator: RunningEmulator, name: string): BenchTarget {
  return {
    field: 'target',
    name,
    admits: (ip) =>
      emulator.sql
        .listFirewallRules(sqlServerId(name))
        .some((rule) => rule.startIpAddress === ip && rule.endIpAddress === ip),
  };
}

/** The emulator's counters of an account the scenario created (throws for any other). */
export function accountStats(emulator: RunningEmulator, name: string): StorageAccountStats {
  const stats = emulator.storage.stats()[storageAccountId(name).toLowerCase()];
  if (!stats) throw new Error(`the emulator has no storage account ${name}`);
  return stats;
}

/** The emulator's counters of a server the scenario created (throws for any other). */
export function serverStats(emulator: RunningEmulator, name: string): SqlServerStats {
  const stats = emulator.sql.stats()[sqlServerId(name).toLowerCase()];
  if (!stats) throw new Error(`the emulator has no SQL server ${name}`);
  return stats;
}
