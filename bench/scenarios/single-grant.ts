import {
  armClient,
  type BenchContext,
  grant,
  lockedVault,
  median,
  publicIp,
  RESOURCE_GROUP,
  round,
  type ScenarioResult,
  startBrokers,
  uniqueTable,
  vaultStats,
} from '../harness';

/**
 * Scenario 1: one grant next to one raw ARM write. Sequential single grants
 * (fresh IP each, one broker process) against read-modify-writes through the
 * SDK, each timed as GET+PATCH and as the PATCH alone.
 */

const SCENARIO = '1 single grant';
const WRITE_LATENCY_MS = 300;
const SAMPLES = 10;
const GRANT_VAULT = 'kv-single';
const RAW_VAULT = 'kv-raw';

export async function singleGrant(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.configure({
    writeLatencyMs: WRITE_LATENCY_MS,
    readLatencyMs: 0,
    conflictOnOverlap: true,
  });
  ctx.emulator.createVault(lockedVault(GRANT_VAULT));
  ctx.emulator.createVault(lockedVault(RAW_VAULT));
  const [broker] = await startBrokers(ctx, {
    count: 1,
    vaults: [GRANT_VAULT],
    table: uniqueTable('single'),
  });
  if (!broker) throw new Error('no broker');

  try {
    // Warm-up (not counted): TLS sessions, table creation, first token.
    const warm = await grant(ctx, broker.url, GRANT_VAULT, publicIp(1, 0));
    if (warm.status !== 201) throw new Error(`warm-up grant answered ${warm.status}`);
    ctx.emulator.resetStats();

    const grants: number[] = [];
    const statuses: number[] = [];
    for (let n = 1; n <= SAMPLES; n += 1) {
      const outcome = await grant(ctx, broker.url, GRANT_VAULT, publicIp(1, n));
      statuses.push(outcome.status);
      if (outcome.status === 201) grants.push(outcome.ms);
    }
    const grantArm = vaultStats(ctx.emulator, GRANT_VAULT);

    const client = armClient(ctx.emulator);
    const readModifyWrite = async (ip: string) => {
      const started = performance.now();
      const vault = await client.vaults.get(RESOURCE_GROUP, RAW_VAULT);
      const acls = vault.properties.networkAcls ?? {};
      const patchStarted = performance.now();
      await client.vaults.update(RESOURCE_GROUP, RAW_VAULT, {
        properties: {
          networkAcls: { ...acls, ipRules: [...(acls.ipRules ?? []), { value: ip }] },
        },
      });
      const ended = performance.now();
      return { total: ended - started, patch: ended - patchStarted };
    };
    await readModifyWrite(publicIp(2, 0)); // warm-up
    const getPatch: number[] = [];
    const patchOnly: number[] = [];
    for (let n = 1; n <= SAMPLES; n += 1) {
      const timing = await readModifyWrite(publicIp(2, n));
      getPatch.push(timing.total);
      patchOnly.push(timing.patch);
    }

    const grantMs = median(grants);
    const patchMs = median(patchOnly);
    const getPatchMs = median(getPatch);
    const budget = 1.5 * patchMs + 50;
    const non201 = statuses.filter((status) => status !== 201).length;
    return {
      rows: [
        {
          scenario: SCENARIO,
          metric: `grant median (n=${grants.length})`,
          value: round(grantMs),
          unit: 'ms',
        },
        {
          scenario: SCENARIO,
          metric: 'raw GET+PATCH median',
          value: round(getPatchMs),
          unit: 'ms',
        },
        { scenario: SCENARIO, metric: 'raw PATCH alone median', value: round(patchMs), unit: 'ms' },
        {
          scenario: SCENARIO,
          metric: 'grant / PATCH alone',
          value: `${round(grantMs / patchMs, 2)}x, +${round(grantMs - patchMs)} ms`,
          target: `<= 1.5x PATCH + 50 ms (${round(budget)} ms)`,
          pass: grants.length > 0 && grantMs <= budget,
        },
        {
          scenario: SCENARIO,
          metric: 'grant / GET+PATCH',
          value: `${round(grantMs / getPatchMs, 2)}x, +${round(grantMs - getPatchMs)} ms`,
        },
        {
          scenario: SCENARIO,
          metric: 'ARM calls per grant (GET / PATCH)',
          value: `${round(grantArm.gets / SAMPLES, 1)} / ${round(grantArm.writes / SAMPLES, 1)}`,
        },
        {
          scenario: SCENARIO,
          metric: 'non-201 grants',
          value: non201,
          target: '0',
          pass: non201 === 0,
        },
      ],
      details: {
        writeLatencyMs: WRITE_LATENCY_MS,
        samples: SAMPLES,
        grantMs: grants.map((ms) => round(ms, 1)),
        rawGetPatchMs: getPatch.map((ms) => round(ms, 1)),
        rawPatchMs: patchOnly.map((ms) => round(ms, 1)),
        grantArmCalls: grantArm,
        statuses,
      },
    };
  } finally {
    await ctx.children.stop(broker.child);
  }
}
