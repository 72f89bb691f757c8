import type { KeyVaultManagementClient, NetworkRuleSet } from '@azure/arm-keyvault';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { armClient, createTestVault, restErrorOf } from './helpers';

const SUBNET =
  '/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/build-agents';

describe('Key Vault ARM emulator: networkAcls writes', () => {
  let emulator: RunningEmulator;
  let client: KeyVaultManagementClient;

  beforeEach(async () => {
    emulator = await startEmulator();
    client = armClient(emulator);
  });

  afterEach(async () => {
    await emulator.close();
  });

  /** A Deny vault with a static rule and a subnet rule, the kind the broker manages. */
  function managedVault(): { id: string; resourceGroup: string; name: string } {
    return createTestVault(emulator, {
      networkAcls: {
        bypass: 'None',
        defaultAction: 'Deny',
        ipRules: [{ value: '52.10.0.0/16' }],
        virtualNetworkRules: [{ id: SUBNET, ignoreMissingVnetServiceEndpoint: true }],
      },
    });
  }

  function patchRules(
    vault: { resourceGroup: string; name: string },
    networkAcls: NetworkRuleSet,
  ): ReturnType<KeyVaultManagementClient['vaults']['update']> {
    return client.vaults.update(vault.resourceGroup, vault.name, { properties: { networkAcls } });
  }

  describe('merge semantics', () => {
    it('When the complete networkAcls read by a GET is sent back with one more rule, then bypass, defaultAction and subnet rules are kept', async () => {
      const vault = managedVault();
      const read = await client.vaults.get(vault.resourceGroup, vault.name);
      const current = read.properties.networkAcls;
      if (!current) throw new Error('the vault has networkAcls');

      const updated = await patchRules(vault, {
        ...current,
        ipRules: [...(current.ipRules ?? []), { value: '20.30.40.50' }],
      });

      const expected = {
        bypass: 'None',
        defaultAction: 'Deny',
        ipRules: [{ value: '52.10.0.0/16' }, { value: '20.30.40.50/32' }],
        virtualNetworkRules: [{ id: SUBNET.toLowerCase(), ignoreMissingVnetServiceEndpoint: true }],
      };
      expect(updated.properties.networkAcls).toEqual(expected);
      expect(emulator.getNetworkAcls(vault.id)).toEqual(expected);
    });

    it('When a networkAcls with only ipRules is sent, then the omitted fields are reset to their Azure defaults', async () => {
      const vault = managedVault();

      await patchRules(vault, { ipRules: [{ value: '20.30.40.50' }] });

      expect(emulator.getNetworkAcls(vault.id)).toEqual({
        bypass: 'AzureServices',
        defaultAction: 'Allow',
        ipRules: [{ value: '20.30.40.50/32' }],
        virtualNetworkRules: [],
      });
    });

    it('When a networkAcls without ipRules is sent, then the rules are emptied', async () => {
      const vault = managedVault();

      await patchRules(vault, { bypass: 'None', defaultAction: 'Deny' });

      expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([]);
      expect(emulator.getNetworkAcls(vault.id).virtualNetworkRules).toEqual([]);
    });

    it('When a PATCH leaves networkAcls out, then the firewall is untouched and the other properties merge', async () => {
      const vault = managedVault();
      const before = emulator.getNetworkAcls(vault.id);

      const updated = await client.vaults.update(vault.resourceGroup, vault.name, {
        tags: { owner: 'team-a' },
        properties: { enabledForDeployment: true },
      });

      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
      expect(updated.tags).toEqual({ owner: 'team-a' });
      expect(updated.properties).toMatchObject({
        enabledForDeployment: true,
        enableSoftDelete: true,
        sku: { family: 'A', name: 'standard' },
      });
    });

    it('When single addresses are written, then they are stored and read back as /32 and CIDRs are kept', async () => {
      const vault = managedVault();

      const updated = await patchRules(vault, {
        bypass: 'None',
        defaultAction: 'Deny',
        ipRules: [{ value: '8.8.8.8' }, { value: '20.1.2.0/24' }, { value: '9.9.9.9/32' }],
        virtualNetworkRules: [],
      });

      const expected = [{ value: '8.8.8.8/32' }, { value: '20.1.2.0/24' }, { value: '9.9.9.9/32' }];
      expect(updated.properties.networkAcls?.ipRules).toEqual(expected);
      const read = await client.vaults.get(vault.resourceGroup, vault.name);
      expect(read.properties.networkAcls?.ipRules).toEqual(expected);
    });

    it('When a PUT replaces the vault without networkAcls, then the vault has no network rules left', async () => {
      const vault = managedVault();

      const replaced = await client.vaults.createOrUpdate(vault.resourceGroup, vault.name, {
        location: 'westeurope',
        properties: {
          tenantId: '00000000-0000-0000-0000-000000000000',
          sku: { family: 'A', name: 'premium' },
        },
      });

      expect(replaced.properties.sku.name).toBe('premium');
      expect(replaced.properties.networkAcls).toBeUndefined();
      expect(emulator.getNetworkAcls(vault.id).defaultAction).toBe('Allow');
    });

    it('When a PUT has no location, then it is refused and nothing changes', async () => {
      const vault = managedVault();
      const before = emulator.getNetworkAcls(vault.id);

      const error = await restErrorOf(
        client.vaults.createOrUpdate(vault.resourceGroup, vault.name, {
          location: '',
          properties: {
            tenantId: '00000000-0000-0000-0000-000000000000',
            sku: { family: 'A', name: 'standard' },
          },
        }),
      );

      expect(error.statusCode).toBe(400);
      expect(error.code).toBe('LocationRequired');
      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
    });

    it('When a PATCH targets a vault that does not exist, then it gets 404 and creates nothing', async () => {
      const error = await restErrorOf(
        patchRules({ resourceGroup: 'rg-test', name: 'kv-nowhere' }, { ipRules: [] }),
      );

      expect(error.statusCode).toBe(404);
      expect(error.code).toBe('ResourceNotFound');
      expect(emulator.stats().writesApplied).toBe(0);
    });
  });

  describe('ipRules validation, all or nothing', () => {
    const forbidden: [string, string][] = [
      ['10.0.0.0/8', '10.0.0.0–10.255.255.255 (private IP addresses)'],
      ['10.20.30.40', '10.0.0.0–10.255.255.255 (private IP addresses)'],
      ['172.16.5.0/24', '172.16.0.0–172.31.255.255 (private IP addresses)'],
      ['172.31.255.255', '172.16.0.0–172.31.255.255 (private IP addresses)'],
      ['192.168.1.0/24', '192.168.0.0–192.168.255.255 (private IP addresses)'],
      ['127.0.0.1', '127.0.0.0–127.255.255.255 (loopback addresses)'],
      ['0.0.0.0', '0.0.0.0–0.255.255.255'],
      ['0.0.0.0/0', '0.0.0.0–0.255.255.255'],
      ['169.254.169.254', '169.254.0.0–169.254.255.255 (link-local addresses)'],
      ['224.0.0.1', '224.0.0.0–239.255.255.255 (multicast addresses)'],
      ['239.255.255.255', '224.0.0.0–239.255.255.255 (multicast addresses)'],
      ['240.0.0.0/4', '240.0.0.0–255.255.255.255 (reserved addresses'],
      ['255.255.255.255', '240.0.0.0–255.255.255.255 (reserved addresses'],
      ['8.0.0.0/5', '10.0.0.0–10.255.255.255 (private IP addresses)'],
    ];

    it.each(forbidden)(
      'When %s is sent, then it is refused as belonging to %s and nothing is applied',
      async (value, range) => {
        const vault = managedVault();
        const before = emulator.getNetworkAcls(vault.id);

        const error = await restErrorOf(
          patchRules(vault, { ...before, ipRules: [{ value: '20.30.40.50' }, { value }] }),
        );

        expect(error.statusCode).toBe(400);
        expect(error.code).toBe('BadRequest');
        expect(error.message).toContain(
          `Invalid value found at properties.networkAcls.ipRules[1].value: ${value} belongs to forbidden range ${range}`,
        );
        expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
        expect(emulator.stats().writesApplied).toBe(0);
      },
    );

    it('When the private range of the facts file is sent, then the message is exactly the one Azure gives', async () => {
      const vault = managedVault();

      const error = await restErrorOf(patchRules(vault, { ipRules: [{ value: '10.0.0.0/8' }] }));

      expect(error.message).toBe(
        'Invalid value found at properties.networkAcls.ipRules[0].value: 10.0.0.0/8 belongs to forbidden range 10.0.0.0–10.255.255.255 (private IP addresses)',
      );
    });

    it.each([
      '11.0.0.0/8',
      '172.32.0.1',
      '192.169.0.0/16',
      '126.255.255.255',
      '223.255.255.255',
      '1.0.0.0/8',
    ])(
      'When the public neighbour %s of a forbidden range is sent, then it is accepted',
      async (value) => {
        const vault = managedVault();

        await patchRules(vault, { ...emulator.getNetworkAcls(vault.id), ipRules: [{ value }] });

        expect(emulator.getNetworkAcls(vault.id).ipRules).toHaveLength(1);
      },
    );

    it.each([
      ['2001:db8::1', 'IPv4 only'],
      ['2001:db8::/32', 'IPv4 only'],
      ['1.2.3', 'not a valid IPv4'],
      ['1.2.3.256', 'not a valid IPv4'],
      ['01.2.3.4', 'not a valid IPv4'],
      ['0x14.1.2.3', 'not a valid IPv4'],
      [' 20.1.2.3', 'not a valid IPv4'],
      ['20.1.2.3/', 'not a valid IPv4'],
      ['20.1.2.0/024', 'not a valid IPv4'],
      ['20.1.2.3/33', 'prefix length above 32'],
      ['20.1.2.3/24', 'host bits set'],
      ["'20.1.2.0/24'", 'not a valid IPv4'],
      ['', 'not a valid IPv4'],
      ['garbage', 'not a valid IPv4'],
    ])(
      'When the invalid value "%s" is sent, then it is refused (%s) and nothing is applied',
      async (value, reason) => {
        const vault = managedVault();
        const before = emulator.getNetworkAcls(vault.id);

        const error = await restErrorOf(
          patchRules(vault, { ...before, ipRules: [{ value: '20.30.40.50' }, { value }] }),
        );

        expect(error.statusCode).toBe(400);
        expect(error.code).toBe('BadRequest');
        expect(error.message).toMatch(
          /^Invalid value found at properties\.networkAcls\.ipRules\[1\]\.value: /,
        );
        expect(error.message).toContain(reason);
        expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
      },
    );

    it('When the same address is sent bare and as /32, then the write is refused as a duplicate and nothing is applied', async () => {
      const vault = managedVault();
      const before = emulator.getNetworkAcls(vault.id);

      const error = await restErrorOf(
        patchRules(vault, {
          ...before,
          ipRules: [...before.ipRules, { value: '20.30.40.50' }, { value: '20.30.40.50/32' }],
        }),
      );

      expect(error.statusCode).toBe(400);
      expect(error.code).toBe('BadRequest');
      expect(error.message).toContain('ipRules[2].value: 20.30.40.50/32 duplicates');
      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
    });

    it('When 1000 rules are sent, then all are stored; when 1001 are sent, then the write is refused naming the limit and nothing is applied', async () => {
      const vault = managedVault();
      const rules = Array.from({ length: 1001 }, (_, i) => ({
        value: `20.1.${i >> 8}.${i & 255}`,
      }));

      const accepted = await patchRules(vault, {
        bypass: 'None',
        defaultAction: 'Deny',
        ipRules: rules.slice(0, 1000),
        virtualNetworkRules: [],
      });
      const stored = emulator.getNetworkAcls(vault.id);
      const error = await restErrorOf(patchRules(vault, { ...stored, ipRules: rules }));

      expect(accepted.properties.networkAcls?.ipRules).toHaveLength(1000);
      expect(error.statusCode).toBe(400);
      expect(error.code).toBe('BadRequest');
      expect(error.message).toContain('1000');
      expect(emulator.getNetworkAcls(vault.id)).toEqual(stored);
      expect(emulator.stats().writesApplied).toBe(1);
    });

    it('When 201 virtual network rules are sent, then the write is refused naming the limit of 200', async () => {
      const vault = managedVault();
      const before = emulator.getNetworkAcls(vault.id);
      const subnets = Array.from({ length: 201 }, (_, i) => ({ id: `${SUBNET}-${i}` }));

      const error = await restErrorOf(
        patchRules(vault, { ...before, virtualNetworkRules: subnets }),
      );

      expect(error.statusCode).toBe(400);
      expect(error.message).toContain('200');
      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
    });

    it('When defaultAction is not Allow or Deny, then the write is refused and nothing is applied', async () => {
      const vault = managedVault();
      const before = emulator.getNetworkAcls(vault.id);

      const error = await restErrorOf(patchRules(vault, { ...before, defaultAction: 'deny' }));

      expect(error.statusCode).toBe(400);
      expect(error.message).toContain('properties.networkAcls.defaultAction');
      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
    });
  });
});
