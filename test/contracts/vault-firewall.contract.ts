import { describe, expect, it } from 'vitest';

import type { ManagedTarget } from '../../src/domain/target';
import { FirewallError, type TargetFirewall } from '../../src/ports/target-firewall';
import type { NetworkAcls } from '../fakes/vault-firewall';

const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';

export function managedVault(name: string): ManagedTarget {
  return {
    name,
    kind: 'keyvault',
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

/** A Key Vault firewall under test, and a look at the whole networkAcls it holds. */
export interface VaultUnderTest {
  firewall: TargetFirewall;
  networkAcls(): Promise<NetworkAcls>;
}

/**
 * What every Key Vault `TargetFirewall` must do, against the ARM adapter
 * talking to the emulator and against the in-memory fake alike. `setup` makes
 * a firewall that holds `vault` locked down as LOCKED.
 */
export function vaultFirewallContract(
  name: string,
  setup: (vault: ManagedTarget) => Promise<VaultUnderTest> | VaultUnderTest,
): void {
  describe(`VaultFirewall contract: ${name}`, () => {
    let counter = 0;
    const next = () => {
      counter += 1;
      return managedVault(`kv-fwc-${counter}`);
    };

    it('When rules are written from a fresh read, then the vault holds exactly them (single addresses as /32) and keeps everything else', async () => {
      const vault = next();
      const { firewall, networkAcls } = await setup(vault);
      const base = await firewall.read(vault);
      expect(base.rules).toEqual(['20.40.60.80/32']);
      const written = await firewall.write(vault, base, [
        '20.40.60.80/32',
        '52.1.2.3',
        '52.2.0.0/24',
      ]);
      expect(written.added).toEqual(['52.1.2.3', '52.2.0.0/24']);
      expect(written.removed).toEqual([]);
      expect((await firewall.read(vault)).rules.sort()).toEqual(
        ['20.40.60.80/32', '52.1.2.3/32', '52.2.0.0/24'].sort(),
      );
      for (const acls of [await networkAcls()]) {
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
      const { firewall } = await setup(vault);
      const written = await firewall.write(vault, await firewall.read(vault), []);
      expect(written.removed).toEqual(['20.40.60.80/32']);
      expect((await firewall.read(vault)).rules).toEqual([]);
    });

    it('When the vault does not exist, then reading it fails as not-found', async () => {
      const { firewall } = await setup(next());
      const error: unknown = await firewall
        .read(managedVault('kv-fwc-missing'))
        .catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(FirewallError);
      expect((error as FirewallError).kind).toBe('not-found');
    });
  });
}
