import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import {
  lockedVault,
  publicIp,
  type TestBroker,
  testBroker,
  testEmulator,
  vaultId,
} from '../support/harness';

describe('TTL bounds through the HTTP surface (LEASE_MIN_TTL_SECONDS=60, LEASE_MAX_TTL_SECONDS=7200)', () => {
  const VAULT = 'kv-ttl-prop';
  let emulator: RunningEmulator;
  let broker: TestBroker;
  let counter = 0;
  const xff = () => {
    counter += 1;
    return { 'x-forwarded-for': publicIp(50_000 + counter) };
  };
  const outside = fc.oneof(
    fc.integer({ min: -1_000_000_000, max: 59 }),
    fc.integer({ min: 7201, max: 1_000_000_000 }),
  );
  const inside = fc.integer({ min: 60, max: 7200 });

  beforeAll(async () => {
    emulator = await testEmulator();
    emulator.createVault(lockedVault(VAULT));
    broker = testBroker({ emulator, vaults: [VAULT] });
  });
  afterAll(async () => {
    await emulator.close();
  });

  it('When a grant asks for any whole number outside the bounds, negative ones included, then 400 ttl-out-of-range and nothing is written', async () => {
    await fc.assert(
      fc.asyncProperty(outside, async (ttlSeconds) => {
        const response = await broker.call('POST', '/api/leases', {
          body: { vault: VAULT, ttlSeconds },
          headers: xff(),
        });
        expect(response.status).toBe(400);
        expect(response.body.type).toBe('urn:kv-lease:problem:ttl-out-of-range');
      }),
      { numRuns: 150 },
    );
    expect(await broker.store.liveLeases(VAULT)).toEqual([]);
    expect(emulator.stats().perVault[vaultId(VAULT).toLowerCase()]?.writes ?? 0).toBe(0);
  });

  it('When a grant asks for any whole number within the bounds, then it is granted for exactly that long', async () => {
    await fc.assert(
      fc.asyncProperty(inside, async (ttlSeconds) => {
        const response = await broker.call('POST', '/api/leases', {
          body: { vault: VAULT, ttlSeconds },
          headers: xff(),
        });
        expect(response.status).toBe(201);
        expect(Date.parse(response.body.expiresAt) - Date.parse(response.body.createdAt)).toBe(
          ttlSeconds * 1000,
        );
      }),
      { numRuns: 12 },
    );
  });

  it('When a renewal asks for any whole number, then inside the bounds it sets the expiry and outside it is 400 and changes nothing', async () => {
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault: VAULT },
      headers: xff(),
    });
    expect(granted.status).toBe(201);
    let expiresAt = granted.body.expiresAt as string;
    await fc.assert(
      fc.asyncProperty(fc.oneof(inside, outside), async (ttlSeconds) => {
        const before = Date.now();
        const response = await broker.call('POST', `/api/leases/${granted.body.id}/renew`, {
          body: { ttlSeconds },
        });
        if (ttlSeconds >= 60 && ttlSeconds <= 7200) {
          expect(response.status).toBe(200);
          const expiry = Date.parse(response.body.expiresAt);
          expect(expiry).toBeGreaterThanOrEqual(before + ttlSeconds * 1000);
          expect(expiry).toBeLessThanOrEqual(Date.now() + ttlSeconds * 1000);
          expiresAt = response.body.expiresAt;
        } else {
          expect(response.status).toBe(400);
          expect(response.body.type).toBe('urn:kv-lease:problem:ttl-out-of-range');
          const current = await broker.call('GET', `/api/leases/${granted.body.id}`);
          expect(current.body.expiresAt).toBe(expiresAt);
        }
      }),
      { numRuns: 60 },
    );
  });
});
