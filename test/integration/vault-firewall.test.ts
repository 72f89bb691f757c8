import { afterAll, beforeAll } from 'vitest';

import type { RunningEmulator, VaultSpec } from '../../dev/emulator/types';
import { KeyVaultFirewall } from '../../src/targets/keyvault/firewall';
import { LOCKED, vaultFirewallContract } from '../contracts/vault-firewall.contract';
import { SUBSCRIPTION, testEmulator } from '../support/harness';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await testEmulator();
});
afterAll(async () => {
  await emulator.close();
});

vaultFirewallContract('KeyVaultFirewall against the emulator', (vault) => {
  const resourceId = emulator.createVault({
    subscriptionId: SUBSCRIPTION,
    resourceGroup: vault.resourceGroup,
    name: vault.name,
    networkAcls: structuredClone(LOCKED) as VaultSpec['networkAcls'],
  });
  const firewall = new KeyVaultFirewall({
    endpoint: emulator.url,
    credential: {
      getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
    },
    tlsCa: emulator.caPem,
  });
  return {
    firewall,
    networkAcls: async () => emulator.getNetworkAcls(resourceId),
  };
});
