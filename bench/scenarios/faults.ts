import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import {
  type BenchContext,
  type BrokerProcess,
  grant,
  type GrantOutcome,
  lockedVault,
  median,
  publicIp,
  round,
  type Row,
  rulesOf,
  type ScenarioResult,
  sleep,
  startBrokers,
  STATIC_RULE,
  uniqueTable,
} from '../harness';

/**
 * Scenario 6: failover. Two brokers share one table; a burst goes to the
 * first, which is SIGKILLed while it holds the vault's writer lock, with a
 * burst to the second in flight. Measured from the kill: when the last of
 * the survivor's grants is answered, and when the vault holds exactly the
 * static rule plus the active leases.
 *
 * Scenario 7: permanent refusal. A vault whose writes Resource Manager
 * refuses with 403 (the broker's role removed): how long a grant takes to
 * answer (502 vault-unavailable), instead of retrying until its apply timeout.
 */

const WRITE_LATENCY_MS = 300;
const FAILOVER_VAULT = 'kv-failover';
const REFUSED_VAULT = 'kv-refused';
const GOAL_MS = 3000;
const REFUSAL_GOAL_MS = 2000;

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await check()) return true;
    await sleep(25);
  }
  return false;
}

export async function failover(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.configure({
    writeLatencyMs: WRITE_LATENCY_MS,
    readLatencyMs: 0,
    conflictOnOverlap: true,
  });
  ctx.emulator.createVault(lockedVault(FAILOVER_VAULT));
  const table = uniqueTable('failover');
  const brokers = await startBrokers(ctx, { count: 2, vaults: [FAILOVER_VAULT], table });
  const [victim, survivor] = brokers as [BrokerProcess, BrokerProcess];
  const store = new TableLeaseStore({ tableName: table, connectionString: ctx.storage });
  try {
    let sent = 0;
    const send = (broker: BrokerProcess) =>
      grant(ctx, broker.url, FAILOVER_VAULT, publicIp(40, sent++)).catch((): GrantOutcome => ({
        ip: '',
        status: 0,
        ms: 0,
        ruleAtAnswer: false,
      }));
    // Grants to the victim until its writer holds the lock (a pass in progress).
    const toVictim: Promise<GrantOutcome>[] = [];
    const holding = await until(async () => {
      if (toVictim.length < 400) toVictim.push(send(victim));
      const state = await store.getVaultState(FAILOVER_VAULT);
      return state.lockHolder.startsWith(`${victim.pid}-`) && state.lockUntil > Date.now();
    }, 20_000);
    if (!holding) throw new Error('the victim never held the writer lock');
    const toSurvivor = Array.from({ length: 50 }, () => send(survivor));
    victim.child.process.kill('SIGKILL');
    const killedAt = performance.now();
    const answered = await Promise.all(
      toSurvivor.map((pending) => pending.then((outcome) => ({ outcome, at: performance.now() }))),
    );
    const answeredMs = Math.max(...answered.map((entry) => entry.at)) - killedAt;
    await Promise.all(toVictim);
    const converged = await until(async () => {
      const response = await fetch(`${survivor.url}/api/leases?vault=${FAILOVER_VAULT}&$top=1000`);
      const listed = (await response.json()) as { value: { ip: string }[] };
      const expected = new Set([STATIC_RULE, ...listed.value.map((lease) => lease.ip)]);
      const rules = rulesOf(ctx.emulator, FAILOVER_VAULT);
      return rules.size === expected.size && [...rules].every((rule) => expected.has(rule));
    }, 30_000);
    const convergedMs = performance.now() - killedAt;
    const survivor201 = answered.filter((entry) => entry.outcome.status === 201);
    const lost = survivor201.filter(
      (entry) => !rulesOf(ctx.emulator, FAILOVER_VAULT).has(`${entry.outcome.ip}/32`),
    ).length;
    const scenario = '6 failover';
    const rows: Row[] = [
      {
        scenario,
        metric: "SIGKILL holding the lock: survivor's 50 grants all answered after",
        value: round(answeredMs),
        unit: 'ms',
        target: `<= ${GOAL_MS} ms`,
        pass: answeredMs <= GOAL_MS,
      },
      {
        scenario,
        metric: 'vault converged (static + active) after the kill',
        value: converged ? round(convergedMs) : 'never (30 s)',
        unit: converged ? 'ms' : '',
        target: `<= ${GOAL_MS} ms`,
        pass: converged && convergedMs <= GOAL_MS,
      },
      {
        scenario,
        metric: "survivor's grants: 201 / lost rules",
        value: `${survivor201.length}/50 / ${lost}`,
        target: '50/50 / 0',
        pass: survivor201.length === 50 && lost === 0,
      },
    ];
    return {
      rows,
      details: {
        writeLatencyMs: WRITE_LATENCY_MS,
        victimGrantsSent: toVictim.length,
        answeredMs: round(answeredMs),
        convergedMs: round(convergedMs),
        survivorStatuses: answered.map((entry) => entry.outcome.status),
      },
    };
  } finally {
    await Promise.all(brokers.map((broker) => ctx.children.stop(broker.child)));
  }
}

export async function permanentRefusal(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.configure({ writeLatencyMs: WRITE_LATENCY_MS, readLatencyMs: 0 });
  ctx.emulator.createVault(lockedVault(REFUSED_VAULT));
  const [broker] = await startBrokers(ctx, {
    count: 1,
    vaults: [REFUSED_VAULT],
    table: uniqueTable('refused'),
  });
  if (!broker) throw new Error('no broker');
  ctx.emulator.configure({
    refusals: [{ vault: REFUSED_VAULT, status: 403, methods: ['PATCH', 'PUT'] }],
  });
  try {
    const outcomes: GrantOutcome[] = [];
    for (let n = 0; n < 5; n += 1)
      outcomes.push(await grant(ctx, broker.url, REFUSED_VAULT, publicIp(41, n)));
    const ms = outcomes.map((outcome) => outcome.ms);
    const worst = Math.max(...ms);
    const problems = outcomes.map((outcome) => outcome.problem ?? String(outcome.status));
    const scenario = '7 permanent refusal';
    const rows: Row[] = [
      {
        scenario,
        metric: 'grant on a vault answering 403: median / max (n=5)',
        value: `${round(median(ms))} / ${round(worst)}`,
        unit: 'ms',
        target: `<= ${REFUSAL_GOAL_MS} ms`,
        pass: worst <= REFUSAL_GOAL_MS,
      },
      {
        scenario,
        metric: 'answers',
        value: [...new Set(problems)].join(', '),
        target: '502 vault-unavailable',
        pass: problems.every((problem) => problem === '502 vault-unavailable'),
      },
    ];
    return { rows, details: { grantMs: ms.map((value) => round(value, 1)), problems } };
  } finally {
    ctx.emulator.configure({ refusals: [] });
    await ctx.children.stop(broker.child);
  }
}
