import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import {
  lockedVault,
  rulesOf,
  STATIC_RULE,
  type TestBroker,
  testBroker,
  testEmulator,
  vaultId,
} from '../support/harness';
import { ManualClock } from '../support/manual-clock';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await testEmulator();
});
afterAll(async () => {
  await emulator.close();
});

async function trail(broker: TestBroker): Promise<any[]> {
  const answer = await broker.call('GET', '/api/audit?$top=1000');
  expect(answer.status).toBe(200);
  return answer.body.value;
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('The audit trail never contradicts the firewall', () => {
  it.each([
    { latencyMs: 1500, when: 'before the writer gives the lease up' },
    { latencyMs: 4000, when: 'after the writer gives the lease up too' },
  ])(
    'When a grant’s deadline passes while the write carrying its rule is in flight and the write lands $when, then the lease is never activated: the grant answers 503, the trail says the rule was written anyway, and a pass removes it',
    async ({ latencyMs }) => {
      const vault = `kv-consistent-late-${latencyMs}`;
      emulator.createVault(lockedVault(vault));
      // The grant gives up after 1 s; the write carrying its rule lands later.
      emulator.configure({ writeLatencyMs: latencyMs });
      const broker = testBroker({
        emulator,
        vaults: [vault],
        env: { LEASE_APPLY_TIMEOUT_SECONDS: '1' },
      });
      const applied = emulator.stats().writesApplied;
      try {
        const granted = await broker.call('POST', '/api/leases', {
          body: { vault },
          headers: { 'x-forwarded-for': '52.9.9.1' },
        });
        expect(granted.status).toBe(503);
        expect(granted.headers.get('retry-after')).toMatch(/^\d+$/);
        await until(() => emulator.stats().writesApplied > applied);
        emulator.configure({ writeLatencyMs: 0 });
        await until(async () =>
          (await trail(broker)).some((entry) => /written anyway/.test(entry.detail ?? '')),
        );

        const entries = await trail(broker);
        const withdrawn = entries.find(
          (entry) =>
            entry.action === 'grant' &&
            entry.outcome === 'failure' &&
            entry.ip === '52.9.9.1/32' &&
            /written anyway/.test(entry.detail),
        );
        expect(withdrawn, JSON.stringify(entries, null, 1)).toBeDefined();
        expect(
          entries.some((entry) => entry.action === 'grant' && entry.outcome === 'success'),
        ).toBe(false);
        // Never shown as a lease, and its rule goes without waiting for the sweep.
        expect((await broker.call('GET', `/api/leases/${withdrawn.leaseId}`)).status).toBe(404);
        await until(() => !rulesOf(emulator, vault).includes('52.9.9.1/32'));
        expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
      } finally {
        emulator.configure({ writeLatencyMs: 0 });
      }
    },
  );

  it('When the write that would remove an expired lease’s rule fails, then its expire entry says so (outcome failure), and the next sweep removes the rule and records that write', async () => {
    const vault = 'kv-consistent-expire';
    emulator.createVault(lockedVault(vault));
    const clock = new ManualClock(Date.now());
    const broker = testBroker({ emulator, vaults: [vault], clock });
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault, ttlSeconds: 60 },
      headers: { 'x-forwarded-for': '52.9.9.2' },
    });
    expect(granted.status).toBe(201);
    clock.advance(61_000);
    emulator.configure({ refusals: [{ vault: vaultId(vault), status: 403, methods: ['PATCH'] }] });
    try {
      const swept = await broker.services.sweep('sweep-refused');
      expect(swept.failed).toHaveLength(1);
    } finally {
      emulator.configure({ refusals: [] });
    }
    const expired = (await trail(broker)).filter(
      (entry) => entry.action === 'expire' && entry.leaseId === granted.body.id,
    );
    expect(expired).toEqual([
      expect.objectContaining({ outcome: 'failure', invocationId: 'sweep-refused' }),
    ]);
    expect(expired[0].detail).toMatch(/failed.*next pass retries/);
    expect(rulesOf(emulator, vault)).toContain('52.9.9.2/32');

    await broker.services.sweep('sweep-after');
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
    const writes = (await trail(broker)).filter(
      (entry) => entry.action === 'firewall-write' && entry.invocationId === 'sweep-after',
    );
    expect(writes).toEqual([
      expect.objectContaining({
        outcome: 'success',
        detail: `read [${STATIC_RULE}, 52.9.9.2/32]; wrote [${STATIC_RULE}]: added [] removed [52.9.9.2/32]`,
      }),
    ]);
  });
});
