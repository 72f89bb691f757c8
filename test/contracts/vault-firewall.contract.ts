import { describe, expect, it } from 'vitest';

import type { ManagedVault } from '../../src/domain/vault';
import {
  FirewallError,
  type NetworkAcls,
  type VaultFirewall,
} from '../../src/ports/vault-firewall';

const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';

export function managedVault(name: string): ManagedVault {
  return {
    name,
    subscriptionId: SUBSCRIPTION,
    resourceGroup: 'rg-test',
    resourceId: `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/${name}`,
  };
}

export const LOCKED: NetworkAcls = {
  bypass: 'AzureServices',
  defaultAction: 'Deny',
  ipRules: [{ value: '20.40.60.80/32' }],
  virtualNetworkRules: [
    {
      id: `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/build`,
    },
  ],
};

/**
 * What every VaultFirewall must do, against the ARM adapter talking to the
 * emulator and against the in-memory fake alike. `setup` makes a firewall
 * that holds `vault` locked down as LOCKED.
 */
export function vaultFirewallContract(
  name: string,
  setup: (vault: ManagedVault) => Promise<VaultFirewall> | VaultFirewall,
): void {
  describe(`VaultFirewall contract: ${name}`, () => {
    let counter = 0;
    const next = () => {
      counter += 1;
      return managedVault(`kv-fwc-${counter}`);
    };

    it('When rules are written from a fresh read, then the vault holds exactly them (single addresses as /32) and keeps everything else', async () => {
      const vault = next();
      const firewall = await setup(vault);
      const base = await firewall.read(vault);
      expect(base.defaultAction).toBe('Deny');
      const written = await firewall.writeIpRules(vault, base, [
        '20.40.60.80/32',
        '52.1.2.3',
        '52.2.0.0/24',
      ]);
      const read = await firewall.read(vault);
      for (const acls of [written, read]) {
        expect(acls.ipRules.map((rule) => rule.value).sort()).toEqual(
          ['20.40.60.80/32', '52.1.2.3/32', '52.2.0.0/24'].sort(),
        );
        expect(acls.bypass).toBe('AzureServices');
        expect(acls.defaultAction).toBe('Deny');
        expect(acls.virtualNetworkRules?.map((rule) => rule.id.toLowerCase())).toEqual(
          LOCKED.virtualNetworkRules?.map((rule) => rule.id.toLowerCase()),
        );
      }
    });

    it('When every rule is removed, then the vault holds none', async () => {
      const vault = next();
      const firewall = await setup(vault);
      await firewall.writeIpRules(vault, await firewall.read(vault), []);
      expect((await firewall.read(vault)).ipRules).toEqual([]);
    });

    it('When the vault does not exist, then reading it fails as not-found', async () => {
      const firewall = await setup(next());
      const error: unknown = await firewall
        .read(managedVault('kv-fwc-missing'))
        .catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(FirewallError);
      expect((error as FirewallError).kind).toBe('not-found');
    });
  });
}
