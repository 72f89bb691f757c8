import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { FIREWALL_VIEW_TTL_MS } from '../../src/overview/targets';
import { lockedVault, testBroker, testEmulator, vaultId } from '../support/harness';
import { ManualClock } from '../support/manual-clock';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await testEmulator();
});
afterAll(async () => {
  await emulator.close();
});

const xff = (ip: string) => ({ 'x-forwarded-for': ip });

describe('GET /api/vaults and Resource Manager', () => {
  it('When a console polls the vault list, then Resource Manager is read at most once per vault per 30 s across callers, and a grant or release made meanwhile still shows at once', async () => {
    const vault = 'kv-view-1';
    emulator.createVault(lockedVault(vault));
    const clock = new ManualClock(Date.now());
    const broker = testBroker({ emulator, vaults: [vault], clock });
    const gets = () => emulator.stats().perVault[vaultId(vault).toLowerCase()]?.gets ?? 0;

    const before = gets();
    // Many callers at once, then a poll every 5 s for 25 s.
    const first = await Promise.all(
      Array.from({ length: 5 }, () => broker.call('GET', '/api/vaults')),
    );
    for (let poll = 0; poll < 5; poll += 1) {
      clock.advance(5_000);
      expect((await broker.call('GET', '/api/vaults')).status).toBe(200);
    }
    expect(first.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    expect(first[0]?.body.value[0]).toMatchObject({ totalRules: 1, brokerRules: 0 });
    expect(gets() - before).toBe(1);

    // A grant (its pass reads and writes the vault) shows at once, without another read for the list.
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.7.7.1'),
    });
    expect(granted.status).toBe(201);
    const afterGrant = gets();
    const listed = await broker.call('GET', '/api/vaults');
    expect(listed.body.value[0]).toMatchObject({ activeLeases: 1, brokerRules: 1, totalRules: 2 });
    expect((await broker.call('DELETE', `/api/leases/${granted.body.id}`)).status).toBe(200);
    const released = await broker.call('GET', '/api/vaults');
    expect(released.body.value[0]).toMatchObject({
      activeLeases: 0,
      brokerRules: 0,
      totalRules: 1,
    });
    const readsForLists = gets() - afterGrant - 1; // the release's pass read the vault once
    expect(readsForLists).toBe(0);

    // Once the view is older than 30 s, the next list reads Resource Manager again (once).
    clock.advance(FIREWALL_VIEW_TTL_MS + 1);
    const latest = gets();
    await Promise.all([broker.call('GET', '/api/vaults'), broker.call('GET', '/api/vaults')]);
    expect(gets() - latest).toBe(1);
  });
});
