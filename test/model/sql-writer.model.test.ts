import { describe, expect, it } from 'vitest';

import type { ManagedTarget } from '../../src/domain/target';
import { FirewallError } from '../../src/ports/target-firewall';
import { ruleName } from '../../src/targets/sql/rule-names';
import { CALM, ModelRuleFirewall } from './rule-firewall';
import { seeded } from './world';

/**
 * The per-rule design of docs/architecture.md, "SQL: per-rule writes", checked against the model of a
 * per-rule firewall whose calls may land after their client gave up
 * (`rule-firewall.ts`, with the adapter's real decisions).
 *
 * `Passes` below is a scripted stand-in for the writer's per-rule rule in ten
 * lines (write when the plan changed, the read is dirty, or the target is
 * unsettled; keep `unsettledUntil` when an outcome is unknown), re-PUTting
 * the same names while unsettled: these scenarios show why that is not
 * enough (a late DELETE lands after the re-PUT). The real writer, with its
 * fresh-generation names, runs in test/model/per-rule.model.test.ts.
 */

const SERVER: ManagedTarget = {
  name: 'sql-model',
  kind: 'sql',
  resourceId: '/subscriptions/0/resourceGroups/rg/providers/Microsoft.Sql/servers/sql-model',
  subscriptionId: '0',
  resourceGroup: 'rg',
};
const ALLOW_AZURE = {
  name: 'AllowAllWindowsAzureIps',
  startIpAddress: '0.0.0.0',
  endIpAddress: '0.0.0.0',
};
const X = '52.10.20.30/32';

/** Passes of one target, one at a time (the lock), as the writer runs them for a per-rule kind. */
class Passes {
  /** Stands for "a pass reading now begins before `unsettledUntil`". */
  unsettled = false;

  constructor(
    private readonly firewall: ModelRuleFirewall,
    /** Whether a pass re-PUTs every needed rule while unsettled (the design); off to show the hazard. */
    private readonly reassert = true,
  ) {}

  async pass(live: Iterable<string>, signal?: AbortSignal): Promise<'unchanged' | 'written'> {
    const unsettled = this.unsettled;
    const read = await this.firewall.read(SERVER, signal);
    const next = [...new Set(live)].sort();
    const changed = read.dirty === true || next.join() !== read.rules.join();
    if (!changed && !(unsettled && this.reassert)) return 'unchanged';
    const before = this.unsettled;
    // Recorded in the row before any call is sent.
    this.unsettled = true;
    try {
      await this.firewall.write(
        SERVER,
        unsettled && this.reassert ? { ...read, rules: [] } : read,
        next,
        signal,
      );
    } catch (error) {
      if (error instanceof FirewallError && !error.outcomeUnknown) this.unsettled = before;
      throw error;
    }
    this.unsettled = before;
    return 'written';
  }

  /** `unsettledUntil` has passed: every abandoned call has landed or died. */
  settle(): void {
    this.unsettled = false;
  }
}

/** Runs a pass whose DELETE of `cidr`'s rule is held at Resource Manager, then gives up on it. */
async function abandonDelete(firewall: ModelRuleFirewall, passes: Passes, live: string[]) {
  const held = firewall.hold('DELETE', ruleName(X));
  const controller = new AbortController();
  const pass = passes.pass(live, controller.signal);
  await held.arrived;
  controller.abort();
  const error = await pass.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  return { error, land: held.release };
}

/** Lets every pending microtask and zero-delay timer run. */
const drain = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('Per-rule writer design against a firewall with late calls', () => {
  it('When a DELETE is abandoned and lands after a pass that saw the rule answered a grant, then the rule is gone (the hazard) until the next pass puts it back', async () => {
    const firewall = new ModelRuleFirewall(seeded(1), CALM, [ALLOW_AZURE]);
    const passes = new Passes(firewall, false);
    await passes.pass([X]);

    const { error, land } = await abandonDelete(firewall, passes, []);
    const granted = await passes.pass([X]);
    const atAnswer = firewall.brokerCidrs();
    land();
    await drain();
    const afterLanding = firewall.brokerCidrs();
    await passes.pass([X]);

    expect(error).toBeInstanceOf(FirewallError);
    expect((error as FirewallError).outcomeUnknown).toBe(true);
    expect(granted).toBe('unchanged');
    expect(atAnswer).toEqual([X]);
    expect(afterLanding).toEqual([]);
    expect(firewall.landings.at(-2)).toEqual({
      method: 'DELETE',
      name: ruleName(X),
      late: true,
    });
    expect(firewall.brokerCidrs()).toEqual([X]);
    expect(firewall.rules.get(ALLOW_AZURE.name.toLowerCase())).toEqual(ALLOW_AZURE);
  });

  it('When the abandoned DELETE lands between the read and the re-PUT of a pass while unsettled, then the re-PUT undoes it before the grant is answered', async () => {
    const firewall = new ModelRuleFirewall(seeded(2), CALM, [ALLOW_AZURE]);
    const passes = new Passes(firewall);
    await passes.pass([X]);
    const { land } = await abandonDelete(firewall, passes, []);
    expect(passes.unsettled).toBe(true);

    const reput = firewall.hold('PUT', ruleName(X));
    const granting = passes.pass([X]);
    await reput.arrived;
    land();
    await drain();
    const beforeReput = firewall.brokerCidrs();
    reput.release();
    const granted = await granting;

    expect(beforeReput).toEqual([]);
    expect(granted).toBe('written');
    expect(firewall.brokerCidrs()).toEqual([X]);
    // The unknown outcome is still unknown to the writer: it stays unsettled.
    expect(passes.unsettled).toBe(true);
  });

  it('When the abandoned DELETE lands after the re-PUT, then the rule is missing only until the next pass (the sweep), which PUTs it again', async () => {
    const firewall = new ModelRuleFirewall(seeded(3), CALM, [ALLOW_AZURE]);
    const passes = new Passes(firewall);
    await passes.pass([X]);
    const { land } = await abandonDelete(firewall, passes, []);

    await passes.pass([X]);
    land();
    await drain();
    const missing = firewall.brokerCidrs();
    const sweep = await passes.pass([X]);

    expect(missing).toEqual([]);
    expect(sweep).toBe('written');
    expect(firewall.brokerCidrs()).toEqual([X]);
  });

  it('When an abandoned PUT lands after its grant failed, then the next pass deletes the rule by its name alone, with no record of it', async () => {
    const firewall = new ModelRuleFirewall(seeded(4), CALM, [ALLOW_AZURE]);
    const passes = new Passes(firewall);
    const held = firewall.hold('PUT', ruleName(X));
    const controller = new AbortController();
    const granting = passes.pass([X], controller.signal);
    await held.arrived;
    controller.abort();
    await expect(granting).rejects.toMatchObject({ kind: 'timeout' });

    // The grant gave up: its lease ended, nothing live holds X.
    await passes.pass([]);
    held.release();
    await drain();
    const orphan = firewall.brokerCidrs();
    passes.settle();
    const sweep = await passes.pass([]);

    expect(orphan).toEqual([X]);
    expect(sweep).toBe('written');
    expect(firewall.brokerCidrs()).toEqual([]);
    expect(firewall.rules.get(ALLOW_AZURE.name.toLowerCase())).toEqual(ALLOW_AZURE);
  });

  it('When one call of a write is refused and another abandoned, then the refusal is reported, the outcome is unknown and the writer stays unsettled', async () => {
    const firewall = new ModelRuleFirewall(seeded(5), CALM, [ALLOW_AZURE], 3);
    const passes = new Passes(firewall);
    await passes.pass([X]);
    const y = '52.10.20.31/32';
    const deleting = firewall.hold('DELETE', ruleName(X));
    const putting = firewall.hold('PUT', ruleName(y));
    const controller = new AbortController();
    const writing = passes.pass([y], controller.signal);
    await Promise.all([deleting.arrived, putting.arrived]);
    // Someone adds a rule meanwhile: the server is full when the PUT lands (40611).
    firewall.rules.set('someone', {
      name: 'someone',
      startIpAddress: '52.9.9.9',
      endIpAddress: '52.9.9.9',
    });
    putting.release();
    await drain();
    controller.abort();
    const error = await writing.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    deleting.release();

    expect(error).toBeInstanceOf(FirewallError);
    expect(error).toMatchObject({ kind: 'rejected', permanent: true, outcomeUnknown: true });
    expect((error as Error).message).toContain('2 of 2 firewall rule writes failed');
    expect(passes.unsettled).toBe(true);
  });

  it('When grants, releases and passes run at random with calls landing late, then after every quiet pass the broker rules are the live ranges, and once settled they converge', async () => {
    const seed = Number(process.env.KV_LEASE_MODEL_SEED ?? Date.now() % 100000);
    const random = seeded(seed);
    const firewall = new ModelRuleFirewall(
      random,
      { travelMs: 2, workMs: 3, late: 0.15, lateMs: 40, fail: 0.05, failAfter: 0.05 },
      [ALLOW_AZURE, { name: 'office', startIpAddress: '52.10.20.30', endIpAddress: '52.10.20.30' }],
    );
    const passes = new Passes(firewall);
    const ranges = ['52.10.20.30/32', '52.10.20.31/32', '52.10.20.0/24', '52.10.21.5/32'];
    const live: string[] = [];
    let missingAfterAnswer = 0;
    let quietPasses = 0;
    for (let step = 0; step < 150; step += 1) {
      const roll = random();
      const range = ranges[Math.floor(random() * ranges.length)] as string;
      if (roll < 0.3) live.push(range);
      else if (roll < 0.55) {
        const at = live.indexOf(range);
        if (at >= 0) live.splice(at, 1);
      }
      const quietAtRead = firewall.inFlight === 0;
      const signal = AbortSignal.timeout(Math.floor(random() * 20) + 2);
      const outcome = await passes.pass(live, signal).then(
        () => 'ok' as const,
        () => 'failed' as const,
      );
      if (outcome !== 'ok') continue;
      const held = firewall.brokerCidrs();
      const needed = [...new Set(live)].sort();
      if (needed.some((cidr) => !held.includes(cidr))) missingAfterAnswer += 1;
      if (quietAtRead && firewall.inFlight === 0) {
        // No call could land during this pass: it saw and left the truth.
        quietPasses += 1;
        expect(held, `seed ${seed}, step ${step}`).toEqual(needed);
      }
    }
    // Every abandoned call lands or dies within lateMs: then the target is settled.
    await new Promise((resolve) => setTimeout(resolve, 100));
    passes.settle();
    firewall.faults = { ...firewall.faults, late: 0, fail: 0, failAfter: 0 };
    await passes.pass(live);

    console.info(
      `per-rule model seed ${seed}: ${firewall.landings.length} landings (${firewall.landings.filter((l) => l.late).length} late), ${quietPasses} quiet passes checked, ${missingAfterAnswer} passes answered while a needed rule was missing`,
    );
    expect(firewall.brokerCidrs()).toEqual([...new Set(live)].sort());
    expect(firewall.rules.get('allowallwindowsazureips')).toEqual(ALLOW_AZURE);
    expect(firewall.rules.get('office')).toEqual({
      name: 'office',
      startIpAddress: '52.10.20.30',
      endIpAddress: '52.10.20.30',
    });
    expect(quietPasses).toBeGreaterThan(0);
    expect(firewall.landings.some((landing) => landing.late)).toBe(true);
  });
});
