import type { ManagedTarget } from '../../src/domain/target';
import { keyVaultKind } from '../../src/targets/keyvault/kind';
import { auditLogContract } from '../contracts/audit-log.contract';
import { leaseStoreContract } from '../contracts/lease-store.contract';
import { targetFirewallContract } from '../contracts/target-firewall.contract';
import { InMemoryAuditLog } from '../fakes/audit-log';
import { InMemoryLeaseStore } from '../fakes/lease-store';
import { InMemoryVaultFirewall } from '../fakes/vault-firewall';

// The fake the fast tests use passes the same contract as the real adapter.
leaseStoreContract('InMemoryLeaseStore', () => new InMemoryLeaseStore());

let vaults = 0;
targetFirewallContract('InMemoryVaultFirewall', () => {
  vaults += 1;
  const firewall = new InMemoryVaultFirewall();
  const vault = keyVault(`kv-fake-${vaults}`);
  firewall.addVault(vault, {
    bypass: 'AzureServices',
    defaultAction: 'Deny',
    ipRules: [{ value: '20.40.60.80/32' }],
    virtualNetworkRules: [
      {
        id: '/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/build',
      },
    ],
  });
  return {
    kind: keyVaultKind,
    firewall,
    target: vault,
    existing: ['20.40.60.80/32'],
    missing: keyVault('kv-fake-missing'),
    others: () => ({ ...firewall.networkAcls(vault), ipRules: undefined }),
  };
});

function keyVault(name: string): ManagedTarget {
  const parsed = keyVaultKind.parseId(
    `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/${name}`,
  );
  if (typeof parsed !== 'object') throw new Error(`not a vault id: ${String(parsed)}`);
  return parsed;
}

auditLogContract('InMemoryAuditLog', () => new InMemoryAuditLog());
