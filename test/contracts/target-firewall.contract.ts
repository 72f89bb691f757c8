import { describe, expect, it } from 'vitest';

import type { ManagedTarget } from '../../src/domain/target';
import { FirewallError, type TargetFirewall } from '../../src/ports/target-firewall';
import type { TargetKind } from '../../src/targets/kind';

/** One fresh target of a kind, behind the adapter under test, and what the contract may ask of it. */
export interface TargetFirewallFixture {
  kind: TargetKind;
  firewall: TargetFirewall;
  /** Exists and holds exactly `existing` (canonical) as its IP rules, besides settings of its own. */
  target: ManagedTarget;
  existing: string[];
  /** Of the same kind and subscription, but does not exist. */
  missing: ManagedTarget;
  /** Everything on the target besides its IP rules, as the resource provider holds it (read out of band). */
  others(): unknown;
  /** A rule the kind refuses (default `10.1.2.3/32`, a private address). */
  invalidRule?: string;
  /**
   * Where the kind's resource provider refuses a write that overlaps another on the same target
   * (409): slow its writes down (0 restores) and count the writes in flight. Absent: not tested.
   */
  overlap?: { slowWrites(ms: number): void; writesInFlight(): number };
}

async function failureOf(promise: Promise<unknown>): Promise<FirewallError> {
  const outcome: unknown = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof FirewallError)) {
    throw new Error(`expected a FirewallError, got ${String(outcome)}`);
  }
  return outcome;
}

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** `count` distinct public single-address rules (canonical). */
function publicAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `52.${100 + Math.floor(i / 250)}.${i % 250}.7/32`);
}

/**
 * What every `TargetFirewall` adapter must do against its kind's resource provider (the ARM
 * emulator driven by the real SDK): rules round-trip in canonical form, nothing else on the
 * target changes, and failures come back classified so the writer knows whether to retry.
 */
export function targetFirewallContract(
  name: string,
  setup: () => Promise<TargetFirewallFixture> | TargetFirewallFixture,
): void {
  describe(`TargetFirewall contract: ${name}`, () => {
    it('When rules are written from a fresh read, then a read gives exactly them (canonical) and everything else on the target is kept', async () => {
      const fixture = await setup();
      const { firewall, target } = fixture;
      const othersBefore = fixture.others();
      const first = await firewall.read(target);
      expect([...first.rules].sort()).toEqual([...fixture.existing].sort());
      const next = [...first.rules, '52.1.2.3/32', '52.2.0.0/24'];

      const write = await firewall.write(target, first, next);
      const second = await firewall.read(target);

      expect([...second.rules].sort()).toEqual([...next].sort());
      expect(write.added).toHaveLength(2);
      expect(write.removed).toEqual([]);
      expect(fixture.others()).toEqual(othersBefore);
    });

    it('When every rule is removed, then a read gives none and everything else is kept', async () => {
      const fixture = await setup();
      const { firewall, target } = fixture;
      const othersBefore = fixture.others();

      const write = await firewall.write(target, await firewall.read(target), []);

      expect((await firewall.read(target)).rules).toEqual([]);
      expect(write.removed).toHaveLength(fixture.existing.length);
      expect(fixture.others()).toEqual(othersBefore);
    });

    it('When the target does not exist, then reading it fails as not-found (permanent)', async () => {
      const fixture = await setup();

      const error = await failureOf(fixture.firewall.read(fixture.missing));

      expect(error.kind).toBe('not-found');
      expect(error.permanent).toBe(true);
    });

    it('When a rule the kind refuses is written, then the write fails as rejected (permanent) and the rules are unchanged', async () => {
      const fixture = await setup();
      const { firewall, target } = fixture;
      const current = await firewall.read(target);

      const error = await failureOf(
        firewall.write(target, current, [...current.rules, fixture.invalidRule ?? '10.1.2.3/32']),
      );

      expect(error.kind).toBe('rejected');
      expect(error.permanent).toBe(true);
      expect(error.outcomeUnknown).toBe(false);
      expect([...(await firewall.read(target)).rules].sort()).toEqual([...fixture.existing].sort());
    });

    it("When one rule more than the kind's limit is written, then the write fails as rejected", async () => {
      const fixture = await setup();
      const { firewall, target, kind } = fixture;
      const current = await firewall.read(target);
      const next = [...current.rules, ...publicAddresses(kind.maxRules + 1 - current.rules.length)];

      const error = await failureOf(firewall.write(target, current, next));

      expect(error.kind).toBe('rejected');
      if (kind.model === 'whole-list') {
        expect([...(await firewall.read(target)).rules].sort()).toEqual(
          [...fixture.existing].sort(),
        );
      }
    });

    it('When two writes of one target overlap, then the second fails as a conflict (retryable) and only the first applies', async (context) => {
      const fixture = await setup();
      const { firewall, target, overlap } = fixture;
      if (!overlap) {
        context.skip();
        return;
      }
      const current = await firewall.read(target);
      overlap.slowWrites(300);
      try {
        const first = firewall.write(target, current, [...current.rules, '52.1.1.1/32']);
        await until(() => overlap.writesInFlight() === 1);
        const error = await failureOf(
          firewall.write(target, current, [...current.rules, '52.2.2.2/32']),
        );
        await first;

        expect(error.kind).toBe('conflict');
        expect(error.permanent).toBe(false);
        expect(error.outcomeUnknown).toBe(false);
      } finally {
        overlap.slowWrites(0);
      }
      expect([...(await firewall.read(target)).rules].sort()).toEqual(
        [...fixture.existing, '52.1.1.1/32'].sort(),
      );
    });
  });
}
