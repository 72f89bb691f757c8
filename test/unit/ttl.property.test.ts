import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { DomainError } from '../../src/domain/errors';
import { type Allowance, type LeaseTerms, leaseTtlSeconds } from '../../src/policy/terms';
import {
  lockedVault,
  publicIp,
  type TestBroker,
  testBroker,
  testEmulator,
  vaultId,
} from '../support/harness';

interface TtlBounds {
  min: number;
  max: number;
  fallback: number;
  cap?: { seconds: number; rules: string[]; vault: string } | undefined;
}

/** The pure TTL rule under test, fed from bounds as settings and a policy can make them. */
function resolveTtlSeconds(requested: number | undefined, b: TtlBounds): number {
  const terms: LeaseTerms = {
    ttl: { minSeconds: b.min, maxSeconds: b.max, defaultSeconds: b.fallback },
    minPrefix: 24,
    applyTimeoutMs: 30_000,
    maxActivePerPrincipal: 20,
  };
  const allowed: Allowance | undefined = b.cap
    ? { vault: b.cap.vault, maxTtlSeconds: b.cap.seconds, rules: b.cap.rules }
    : undefined;
  return leaseTtlSeconds(terms, requested, allowed);
}

/** Bounds as settings can make them: 1 <= min <= fallback <= max, and maybe a policy cap in [min, max]. */
const bounds: fc.Arbitrary<TtlBounds> = fc
  .tuple(
    fc.integer({ min: 1, max: 604_800 }),
    fc.integer({ min: 1, max: 604_800 }),
    fc.integer({ min: 1, max: 604_800 }),
    fc.option(fc.integer({ min: 1, max: 604_800 }), { nil: undefined }),
  )
  .map(([a, b, c, d]) => {
    const [min, fallback, max] = [a, b, c].sort((x, y) => x - y) as [number, number, number];
    const cap =
      d === undefined
        ? undefined
        : { seconds: Math.min(max, Math.max(min, d)), rules: ['"r"'], vault: 'kv-a' };
    return { min, max, fallback, cap };
  });

function refusal(run: () => unknown): DomainError | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return error as DomainError;
  }
}

describe('resolveTtlSeconds', () => {
  it('When a whole number lies within [min, effective max], then it is the TTL; outside, LEASE.TTL_OUT_OF_RANGE', () => {
    fc.assert(
      fc.property(bounds, fc.integer({ min: -1_000_000, max: 2_000_000 }), (b, requested) => {
        const max = b.cap?.seconds ?? b.max;
        const error = refusal(() => resolveTtlSeconds(requested, b));
        if (requested >= b.min && requested <= max) {
          expect(error).toBeUndefined();
          expect(resolveTtlSeconds(requested, b)).toBe(requested);
        } else {
          expect(error?.code).toBe('LEASE.TTL_OUT_OF_RANGE');
          expect(error?.message).toContain(`between ${b.min} and ${max}`);
          expect(error?.errors).toEqual([{ path: 'ttlSeconds', message: error?.message }]);
          // The policy is named exactly when it, not the global bound, refused.
          const byPolicy = b.cap !== undefined && requested > max && requested <= b.max;
          expect(error?.message.includes('LEASE_POLICY')).toBe(byPolicy);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('When no TTL is asked for, then the default applies, lowered to a policy cap', () => {
    fc.assert(
      fc.property(bounds, (b) => {
        expect(resolveTtlSeconds(undefined, b)).toBe(Math.min(b.fallback, b.cap?.seconds ?? b.max));
      }),
    );
  });

  it('When the value is not a whole number, then it is refused whatever the bounds', () => {
    fc.assert(
      fc.property(
        bounds,
        fc.double({ noInteger: true }).filter((x) => !Number.isNaN(x)),
        (b, requested) => {
          expect(refusal(() => resolveTtlSeconds(requested, b))?.code).toBe(
            'LEASE.TTL_OUT_OF_RANGE',
          );
        },
      ),
    );
  });
});

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
