import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { testBroker, testEmulator, uniqueTable, vaultFactory } from '../support/harness';

/** The additive `vaultUri` of the lease resource, as the in-process broker answers it. */
describe('broker: vaultUri on the lease', () => {
  let emulator: RunningEmulator;
  const freshVault = vaultFactory(() => emulator, 'kv-uri');

  beforeAll(async () => {
    emulator = await testEmulator();
  });

  afterAll(async () => {
    await emulator.close();
  });

  it('When a lease is granted, read, renewed, listed and released, then each answer names the vault URI of the ARM GET', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const body = { vault, ip: '52.30.1.1' };

    const granted = await broker.call('POST', '/api/leases', { body });
    const id = granted.body.id as string;
    const answers = [
      granted.body,
      (await broker.call('GET', `/api/leases/${id}`)).body,
      (await broker.call('POST', `/api/leases/${id}/renew`, { body: {} })).body,
      (await broker.call('GET', `/api/leases?vault=${vault}`)).body.value[0],
      (await broker.call('DELETE', `/api/leases/${id}`)).body,
    ];

    expect(granted.status).toBe(201);
    for (const answer of answers) expect(answer.vaultUri).toBe(emulator.vaultUri(vault));
  });

  it('When Resource Manager cannot be read, then the lease is answered without vaultUri', async () => {
    const vault = freshVault();
    const table = uniqueTable();
    const granting = testBroker({ emulator, vaults: [vault], env: { LEASE_TABLE_NAME: table } });
    const id = (await granting.call('POST', '/api/leases', { body: { vault, ip: '52.30.1.2' } }))
      .body.id as string;
    // Another instance, which has not seen the vault yet, while every ARM GET fails.
    const other = testBroker({ emulator, vaults: [vault], env: { LEASE_TABLE_NAME: table } });
    emulator.configure({ faults: { rate: 1, statuses: [500], methods: ['GET'] } });
    try {
      const first = await other.call('GET', `/api/leases/${id}`);
      const second = await other.call('GET', `/api/leases/${id}`);

      expect(first.status).toBe(200);
      expect(first.body.id).toBe(id);
      expect(first.body).not.toHaveProperty('vaultUri');
      expect(second.body).not.toHaveProperty('vaultUri');
    } finally {
      emulator.configure({ faults: null });
    }
  });
});
