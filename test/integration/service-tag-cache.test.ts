import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { startEmulator } from '../../dev/emulator/server';
import type { RunningEmulator } from '../../dev/emulator/types';
import {
  armServiceTagFetch,
  ServiceTagCache,
  type ServiceTagCacheOptions,
} from '../../src/targets/storage/service-tags';

const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
const DAY = 24 * 60 * 60 * 1000;
const FIRST = { changeNumber: 1, regions: { westeurope: ['20.50.0.0/18'] } };
const SECOND = { changeNumber: 2, regions: { westeurope: ['20.50.0.0/18', '13.69.0.0/17'] } };

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});
beforeEach(() => {
  emulator.configure({ readLatencyMs: 0, faults: null, refusals: [] });
  emulator.serviceTags.set(FIRST);
  emulator.resetStats();
});

/** A cache on the emulator with a hand-driven clock. */
function cacheOf(overrides: Partial<ServiceTagCacheOptions> = {}) {
  const clock = { at: 1_000_000, now: () => clock.at };
  const failures: unknown[] = [];
  const cache = new ServiceTagCache({
    fetch: armServiceTagFetch({
      endpoint: emulator.url,
      credential: {
        getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
      },
      tlsCa: emulator.caPem,
      maxRetries: 0,
    }),
    clock,
    onRefreshFailed: (error) => failures.push(error),
    ...overrides,
  });
  return { cache, clock, failures };
}

async function until(condition: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('ServiceTagCache against the emulated Service Tag Discovery API', () => {
  it("When it is first asked, then it downloads the list once and answers each region's AzureCloud ranges", async () => {
    const { cache } = cacheOf();

    const ranges = await cache.current(SUBSCRIPTION, 'westeurope');
    const again = await cache.current(SUBSCRIPTION, 'northeurope');

    expect(ranges?.get('westeurope')).toEqual(['20.50.0.0/18']);
    expect(again).toBe(ranges);
    expect(emulator.serviceTags.gets()).toBe(1);
  });

  it('When many callers ask at once before any copy exists, then they share one download', async () => {
    emulator.configure({ readLatencyMs: 100 });
    const { cache } = cacheOf();

    const answers = await Promise.all(
      Array.from({ length: 8 }, () => cache.current(SUBSCRIPTION, 'westeurope')),
    );

    expect(emulator.serviceTags.gets()).toBe(1);
    expect(new Set(answers).size).toBe(1);
    expect(answers[0]?.get('westeurope')).toEqual(['20.50.0.0/18']);
  });

  it('When a day has passed, then the stale copy is still served at once while one refresh brings the new list', async () => {
    const { cache, clock } = cacheOf();
    await cache.current(SUBSCRIPTION, 'westeurope');
    emulator.serviceTags.set(SECOND);

    clock.at += DAY - 1;
    const sameDay = await cache.current(SUBSCRIPTION, 'westeurope');
    clock.at += 1;
    const stale = await cache.current(SUBSCRIPTION, 'westeurope');
    await until(
      async () =>
        (await cache.current(SUBSCRIPTION, 'westeurope'))?.get('westeurope')?.length === 2,
    );

    expect(sameDay?.get('westeurope')).toEqual(['20.50.0.0/18']);
    expect(stale?.get('westeurope')).toEqual(['20.50.0.0/18']);
    expect(emulator.serviceTags.gets()).toBe(2);
  });

  it('When a refresh fails, then the last good copy is kept and served, the failure is reported, and the next try waits for the retry interval', async () => {
    const { cache, clock, failures } = cacheOf({ retryMs: 60_000 });
    await cache.current(SUBSCRIPTION, 'westeurope');
    emulator.serviceTags.set(SECOND);
    emulator.configure({ faults: { rate: 1, statuses: [500], methods: ['GET'] } });

    clock.at += DAY;
    const during = await cache.current(SUBSCRIPTION, 'westeurope');
    await until(() => failures.length === 1);
    const afterFailure = await cache.current(SUBSCRIPTION, 'westeurope');
    const getsAfterFailure = emulator.serviceTags.gets();
    emulator.configure({ faults: null });
    clock.at += 60_000;
    await cache.current(SUBSCRIPTION, 'westeurope');
    await until(
      async () =>
        (await cache.current(SUBSCRIPTION, 'westeurope'))?.get('westeurope')?.length === 2,
    );

    expect(during?.get('westeurope')).toEqual(['20.50.0.0/18']);
    expect(afterFailure?.get('westeurope')).toEqual(['20.50.0.0/18']);
    expect(getsAfterFailure).toBe(2);
    expect(emulator.serviceTags.gets()).toBe(3);
    expect(failures).toHaveLength(1);
  });

  it('When the first download is refused, then the answer is "unknown" (undefined), not an error', async () => {
    emulator.configure({ refusals: [{ vault: 'serviceTags', status: 403 }] });
    const { cache, failures } = cacheOf();

    const answer = await cache.current(SUBSCRIPTION, 'westeurope');

    expect(answer).toBeUndefined();
    expect(failures).toHaveLength(1);
  });

  it('When the first download is slower than the wait bound, then the caller gets "unknown" in time and a later caller the list, from the same download', async () => {
    emulator.configure({ readLatencyMs: 800 });
    const { cache } = cacheOf({ waitMs: 100 });

    const started = performance.now();
    const first = await cache.current(SUBSCRIPTION, 'westeurope');
    const waited = performance.now() - started;
    await until(async () => (await cache.current(SUBSCRIPTION, 'westeurope')) !== undefined);

    expect(first).toBeUndefined();
    expect(waited).toBeLessThan(500);
    expect(emulator.serviceTags.gets()).toBe(1);
  });
});
