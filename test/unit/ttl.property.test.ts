import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { DomainError } from '../../src/domain/errors';
import { type Allowance, type LeaseTerms, leaseTtlSeconds } from '../../src/policy/terms';

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
