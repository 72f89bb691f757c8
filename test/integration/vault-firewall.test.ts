import { afterAll, beforeAll } from 'vitest';

import type { RunningEmulator, VaultSpec } from '../../dev/emulator/types';
import { ArmVaultFirewall } from '../../src/adapters/arm/vault-firewall';
import { LOCKED, vaultFirewallContract } from '../contracts/vault-firewall.contract';
import { SUBSCRIPTION, testEmulator } from '../support/harness';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await testEmulator();
});
afterAll(async () => {
  await emulator.close();
});

vaultFirewallContract('ArmVaultFirewall against the emulator', (vault) => {
  emulator.createVault({
    subscriptionId: SUBSCRIPTION,
    resourceGroup: vault.resourceGroup,
    name: vault.name,
    networkAcls: structuredClone(LOCKED) as VaultSpec['networkAcls'],
  });
  return new ArmVaultFirewall({
    endpoint: emulator.url,
    credential: {
      getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
    },
    tlsCa: emulator.caPem,
  });
});
