import { auditLogContract } from '../contracts/audit-log.contract';
import { leaseStoreContract } from '../contracts/lease-store.contract';
import { LOCKED, vaultFirewallContract } from '../contracts/vault-firewall.contract';
import { InMemoryAuditLog } from '../fakes/audit-log';
import { InMemoryLeaseStore } from '../fakes/lease-store';
import { InMemoryVaultFirewall } from '../fakes/vault-firewall';

// The fake the fast tests use passes the same contract as the real adapter.
leaseStoreContract('InMemoryLeaseStore', () => new InMemoryLeaseStore());

vaultFirewallContract('InMemoryVaultFirewall', (vault) => {
  const firewall = new InMemoryVaultFirewall();
  firewall.addVault(vault, LOCKED);
  return { firewall, networkAcls: async () => firewall.networkAcls(vault)! };
});

auditLogContract('InMemoryAuditLog', () => new InMemoryAuditLog());
