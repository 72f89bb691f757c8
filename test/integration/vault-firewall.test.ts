import { afterAll, beforeAll } from 'vitest';

import { startEmulator } from '../../dev/emulator/server';
import type { RunningEmulator } from '../../dev/emulator/types';
import type { ManagedTarget } from '../../src/domain/target';
import { KeyVaultFirewall } from '../../src/targets/keyvault/firewall';
import { keyVaultKind } from '../../src/targets/keyvault/kind';
import { targetFirewallContract } from '../contracts/target-firewall.contract';

const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
const RG = 'rg-test';
const STATIC_RULE = '20.40.60.80/32';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});

let counter = 0;
function vault(name: string): ManagedTarget {
  const parsed = keyVaultKind.parseId(
    `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/${name}`,
  );
  if (typeof parsed !== 'object') throw new Error(`not a vault id: ${String(parsed)}`);
  return parsed;
}

targetFirewallContract('KeyVaultFirewall against the emulator', () => {
  counter += 1;
  const target = vault(`kv-tfc-${counter}-${Math.random().toString(36).slice(2, 8)}`);
  emulator.createVault({
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RG,
    name: target.name,
    networkAcls: {
      bypass: 'AzureServices',
      defaultAction: 'Deny',
      ipRules: [{ value: STATIC_RULE }],
      virtualNetworkRules: [
        {
          id: `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/build`,
        },
      ],
    },
  });
  const key = target.resourceId.toLowerCase();
  return {
    kind: keyVaultKind,
    firewall: new KeyVaultFirewall({
      endpoint: emulator.url,
      credential: {
        getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
      },
      tlsCa: emulator.caPem,
      maxRetries: 0,
    }),
    target,
    existing: [STATIC_RULE],
    missing: vault('kv-tfc-missing'),
    others: () => ({ ...emulator.getNetworkAcls(target.resourceId), ipRules: undefined }),
    overlap: {
      slowWrites: (ms) => emulator.configure({ writeLatencyMs: ms }),
      writesInFlight: () => {
        const stats = emulator.stats().perVault[key];
        return stats ? stats.writes - stats.writesApplied - stats.conflicts : 0;
      },
    },
  };
});
