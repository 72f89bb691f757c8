import { afterEach, describe, expect, it, vi } from 'vitest';

import type { Lease } from '../../src/domain/lease';
import { silentLogger } from '../../src/domain/logger';
import type { ManagedTarget } from '../../src/domain/target';
import { TargetCoordinator } from '../../src/writer/coordinator';
import { ModelRuleFirewall, ModelStore, seeded } from './world';

/**
 * The writer model of `writer.model.test.ts` against a per-rule firewall (an
 * Azure SQL server, `ModelRuleFirewall`): two coordinators share one store and
 * one server; the store delays and fails calls and stalls long enough for locks
 * to expire; each rule's PUT or DELETE travels on its own, may fail before or
 * after its effect, and may be carried out after its client gave up, with no
 * 409 to order it after later calls (Azure SQL has none). Clients grant,
 * release and sweep at random. After every step:
 *
 * - rules without the `kvlease-` prefix are never changed (contract §4);
 * - a grant answered 201 finds its rule on the server at the answer;
 * - a release answered 200 finds its rule gone, unless another lease holds it;
 * - an active lease's rule, and a released one's absence, may be undone by a
 *   call landing late (docs/architecture.md, "SQL: per-rule writes": the late DELETE and late PUT), but
 *   only for a while: the next passes repair it within `REPAIR_MS`;
 *
 * and once the faults stop, the server converges: the broker's rules are
 * exactly the live leases' ranges, one rule each.
 *
 * Replay a failure with KV_LEASE_MODEL_SEED=<seed> (and KV_LEASE_MODEL_TRACE=1).
 */

const SERVER = 'sql-model';
const MANAGED: ManagedTarget = {
  kind: 'sql',
  name: SERVER,
  resourceId: `/subscriptions/0/resourceGroups/rg/providers/Microsoft.Sql/servers/${SERVER}`,
  subscriptionId: '0',
  resourceGroup: 'rg',
};
/** The operator's rules: never touched, whatever their range. */
const FOREIGN = {
  AllowAllWindowsAzureIps: { start: '0.0.0.0', end: '0.0.0.0' },
  office: { start: '20.40.60.0', end: '20.40.60.255' },
  // A rule without the prefix on a leased address: still not the broker's.
  'ops-52-0-0-4': { start: '52.0.0.4', end: '52.0.0.4' },
};
/** Few addresses, so leases share them. */
const POOL = ['52.0.0.1/32', '52.0.0.2/32', '52.0.0.3/32', '52.0.0.4/32'];
const APPLY_MS = 3000;
const STEPS = Number(process.env.KV_LEASE_MODEL_STEPS ?? 3000);
const SETTLE_MS = 6000;
/** How long a late call's damage may last before a pass repairs it. */
const REPAIR_MS = 8000;

interface Run {
  steps: number;
  granted: number;
  released: number;
  calls: number;
  lateLandings: number;
  /** Times an active lease's rule went missing after its answer (a late DELETE), repaired in time. */
  lostThenRepaired: number;
  /** Times a released rule came back (a late PUT), removed in time. */
  backThenRemoved: number;
  /** Grants answered 201 while their rule was missing because an abandoned DELETE had landed. */
  answeredAfterLateDelete: number;
}

/**
 * `strict`: contract §4 to the letter ("it exists before the grant's 201"), a
 * late DELETE no excuse. Otherwise such a grant is counted, and its rule must
 * be back within `REPAIR_MS` (the looser check, kept for a model whose calls
 * the strict one would not survive).
 */
async function runModel(seed: number, strict = false): Promise<Run> {
  const random = seeded(seed);
  vi.spyOn(Math, 'random').mockImplementation(random);
  vi.useFakeTimers({
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'],
    now: 1_800_000_000_000,
  });

  /** IPs a release promised gone, until a lease for them is recorded again: since when. */
  const promisedGone = new Map<string, number>();
  const store = new ModelStore(
    random,
    { maxDelayMs: 60, stall: 0.01, stallMs: 1500, failBefore: 0.03, failAfter: 0.02 },
    (lease: Lease) => promisedGone.delete(lease.ip),
  );
  const firewall = new ModelRuleFirewall(
    random,
    { travelMs: 30, workMs: 150, late: 0.15, lateMs: 3000, fail: 0.05, failAfter: 0.03 },
    FOREIGN,
  );
  const foreignBefore = firewall.foreignRules();
  const coordinator = (instanceId: string) =>
    new TargetCoordinator([MANAGED], {
      store,
      firewall,
      clock: { now: () => Date.now() },
      logger: silentLogger,
      instanceId,
      lockTtlMs: 1000,
      heartbeatMs: 250,
      pollMs: 20,
      callTimeoutMs: 700,
      settleMs: SETTLE_MS,
      pendingTimeoutMs: APPLY_MS + 500,
    });
  const instances = [coordinator('a'), coordinator('b')];
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

  const run: Run = {
    steps: 0,
    granted: 0,
    released: 0,
    calls: 0,
    lateLandings: 0,
    lostThenRepaired: 0,
    backThenRemoved: 0,
    answeredAfterLateDelete: 0,
  };
  const violations: string[] = [];
  const violate = (what: string) => violations.push(`at step ${run.steps}: ${what}`);
  /** Leases answered 201. */
  const granted = new Set<string>();
  /** Active leases whose rule is missing: since when. */
  const missingSince = new Map<string, number>();
  let nextId = 0;
  let outstanding = 0;
  const onServer = () => new Set(firewall.brokerRules());

  const grant = async (writer: TargetCoordinator) => {
    const now = Date.now();
    nextId += 1;
    const lease: Lease = {
      id: `${SERVER}.${String(nextId).padStart(24, '0')}`,
      vault: SERVER,
      kind: 'sql',
      ip: pick(POOL),
      status: 'pending',
      principal: 'p',
      createdAt: now,
      expiresAt: now + 500 + Math.floor(random() * 3000),
    };
    try {
      await store.createLease(lease);
    } catch {
      return;
    }
    const deadline = now + APPLY_MS;
    const answered = () => {
      if (!onServer().has(lease.ip)) {
        // NOTE: the late-DELETE hazard: a pass read the rule, then a DELETE an
        // earlier pass had given up on landed before this answer.
        if (!strict && firewall.lateDeleted.has(lease.ip)) run.answeredAfterLateDelete += 1;
        else violate(`grant ${lease.id} answered without ${lease.ip}`);
      }
      granted.add(lease.id);
      run.granted += 1;
    };
    for (;;) {
      let timedOut = false;
      try {
        const outcome = await writer.sync(SERVER, deadline, lease.id);
        if (outcome?.activated.has(lease.id)) return answered();
        if (outcome?.refused.has(lease.id)) return;
      } catch {
        timedOut = true;
      }
      let current;
      try {
        current = await store.getLease(lease.id, SERVER);
        if (timedOut && current?.status === 'pending') {
          await store.endLease(current, 'failed', Date.now(), 'timeout');
          return;
        }
      } catch {
        return;
      }
      if (current?.status === 'active') return answered();
      if (timedOut || current?.status !== 'pending') return;
    }
  };

  const release = async (writer: TargetCoordinator) => {
    const candidates = [...granted].filter((id) => store.leases.get(id)?.status === 'active');
    if (candidates.length === 0) return;
    const id = pick(candidates);
    let ended;
    try {
      const current = await store.getLease(id, SERVER);
      if (!current || current.status !== 'active') return;
      ended = await store.endLease(current, 'released', Date.now());
    } catch {
      return;
    }
    if (!ended) return;
    try {
      await writer.sync(SERVER, Date.now() + APPLY_MS);
    } catch {
      return;
    }
    run.released += 1;
    const changedAt = store.endedEffectAt.get(id) ?? 0;
    const held = [...store.leases.values()].some(
      (lease) =>
        lease.id !== id &&
        lease.ip === ended.ip &&
        (lease.status === 'pending' ||
          lease.status === 'active' ||
          (store.endedEffectAt.get(lease.id) ?? 0) >= changedAt),
    );
    if (!held) {
      if (onServer().has(ended.ip))
        violate(`release of ${id} answered with ${ended.ip} still on the server`);
      promisedGone.set(ended.ip, Number.POSITIVE_INFINITY);
    }
  };

  const sweep = async (writer: TargetCoordinator) => {
    await writer.sync(SERVER, Date.now() + 5000).catch(() => undefined);
  };

  let traffic = true;
  const schedule = () => {
    setTimeout(
      () => {
        if (!traffic) return;
        if (outstanding < 8) {
          const writer = pick(instances);
          const roll = random();
          const operation = roll < 0.55 ? grant : roll < 0.85 ? release : sweep;
          outstanding += 1;
          void operation(writer).finally(() => {
            outstanding -= 1;
          });
        }
        schedule();
      },
      Math.floor(random() * 250),
    );
  };

  const check = () => {
    const now = Date.now();
    const rules = onServer();
    const foreign = firewall.foreignRules();
    if (foreign.join() !== foreignBefore.join())
      violate(`rules without the prefix changed: ${foreign.join(' ')}`);
    for (const id of granted) {
      const lease = store.leases.get(id);
      if (!lease || lease.status !== 'active' || lease.expiresAt <= now) {
        granted.delete(id);
        missingSince.delete(id);
      } else if (!rules.has(lease.ip)) {
        if (!missingSince.has(id)) missingSince.set(id, now);
        if (now - (missingSince.get(id) ?? now) > REPAIR_MS)
          violate(`active lease ${id} lacks its rule ${lease.ip} for over ${REPAIR_MS} ms`);
      } else if (missingSince.delete(id)) {
        run.lostThenRepaired += 1;
      }
    }
    for (const [ip, since] of promisedGone) {
      if (rules.has(ip)) {
        if (since === Number.POSITIVE_INFINITY) promisedGone.set(ip, now);
        else if (now - since > REPAIR_MS)
          violate(`released rule ${ip} back for over ${REPAIR_MS} ms with no lease holding it`);
      } else if (since !== Number.POSITIVE_INFINITY) {
        promisedGone.set(ip, Number.POSITIVE_INFINITY);
        run.backThenRemoved += 1;
      }
    }
  };

  try {
    schedule();
    for (run.steps = 0; run.steps < STEPS && violations.length === 0; run.steps += 1) {
      await vi.advanceTimersToNextTimerAsync();
      check();
    }
    traffic = false;
    store.faults = { maxDelayMs: 5, stall: 0, stallMs: 0, failBefore: 0, failAfter: 0 };
    firewall.faults = { travelMs: 5, workMs: 20, late: 0, lateMs: 0, fail: 0, failAfter: 0 };
    for (
      let quiet = 0;
      quiet < (SETTLE_MS + 2 * APPLY_MS) / 50 && violations.length === 0;
      quiet += 1
    ) {
      await vi.advanceTimersByTimeAsync(50);
      check();
    }
    let converged = false;
    void (instances[0] as TargetCoordinator).sync(SERVER, Date.now() + 5000).then(() => {
      converged = true;
    });
    for (let tick = 0; tick < 200 && !converged; tick += 1) await vi.advanceTimersByTimeAsync(25);
    if (!converged) violate('the final pass did not complete');
    await vi.advanceTimersByTimeAsync(1000);
    const now = Date.now();
    const live = store
      .liveNow(SERVER)
      .filter((lease) => lease.expiresAt > now)
      .map((lease) => lease.ip);
    const expected = [...new Set(live)].sort();
    const actual = [...new Set(firewall.brokerRules())];
    if (actual.join() !== expected.join())
      violate(`converged to ${actual.join(',')}, expected the live ranges ${expected.join(',')}`);
    if (firewall.foreignRules().join() !== foreignBefore.join())
      violate('rules without the prefix changed');
    run.calls = firewall.calls;
    run.lateLandings = firewall.lateLandings;
  } finally {
    traffic = false;
    let closed = false;
    const closing = Promise.all(instances.map((instance) => instance.shutdown())).finally(() => {
      closed = true;
    });
    for (let tick = 0; tick < 400 && !closed; tick += 1) await vi.advanceTimersByTimeAsync(25);
    await closing;
    vi.useRealTimers();
    vi.restoreAllMocks();
  }
  if (violations.length > 0) {
    const message = `per-rule writer model, seed ${seed} (replay: KV_LEASE_MODEL_SEED=${seed}): ${violations.slice(0, 5).join('; ')}`;
    process.stderr.write(`${message}\n`);
    throw new Error(message);
  }
  return run;
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('The writer on a per-rule firewall under any interleaving (randomized model)', () => {
  // Seeds whose runs release and land calls late (seed 2 no longer releases
  // since re-asserting writes changed the call pattern; the strict test below
  // still runs it).
  const fixed = [1, 3, 4, 5];
  const fresh = Array.from({ length: Number(process.env.KV_LEASE_MODEL_RUNS ?? 1) }, () =>
    Math.floor(Math.random() * 2 ** 31),
  );
  const seeds = process.env.KV_LEASE_MODEL_SEED
    ? [Number(process.env.KV_LEASE_MODEL_SEED)]
    : [...fixed, ...fresh];

  it.each(seeds)(
    'When two coordinators share a store and a SQL server whose rule calls fail and land late (seed %i), then every answer keeps the contract, late damage is repaired, and the server converges',
    async (seed) => {
      const run = await runModel(seed);
      expect(run.granted).toBeGreaterThan(0);
      expect(run.released).toBeGreaterThan(0);
      // The fixed seeds are known to land calls late; a fresh one may happen not to.
      if (fixed.includes(seed)) expect(run.lateLandings).toBeGreaterThan(0);
      process.stdout.write(`[per-rule model seed ${seed}] ${JSON.stringify(run)}\n`);
    },
  );

  // The contract's own words for SQL (§4): the rule exists before the grant's
  // 201, even when a DELETE an earlier pass gave up on lands late. A re-PUT of
  // the same name would not do (a late DELETE of that name can land after it):
  // while unsettled a pass writes every needed rule under a fresh generation's
  // name (src/targets/sql/rule-calls.ts, `reassertCalls`).
  it('When a DELETE given up by an earlier pass lands after a pass read its rule (seeds 1-12), then no grant is answered before its rule exists (contract §4, strictly)', async () => {
    for (let seed = 1; seed <= 12; seed += 1) await runModel(seed, true);
  });
});
