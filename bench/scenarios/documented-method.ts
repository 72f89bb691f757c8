import type { Vault } from '@azure/arm-keyvault';

import { createServices } from '../../src/app/composition';
import { loadConfig } from '../../src/app/config';
import { silentLogger } from '../../src/domain/logger';
import { KeyVaultFirewall } from '../../src/targets/keyvault/firewall';
import {
  ARM_TOKEN,
  armClient,
  armErrorLabel,
  type BenchContext,
  type BrokerProcess,
  grant,
  lockedVault,
  publicIp,
  release,
  RESOURCE_GROUP,
  type Row,
  rulesOf,
  type ScenarioResult,
  seeded,
  sleep,
  startBrokers,
  STATIC_RULE,
  uniqueTable,
  vaultId,
} from '../harness';

/**
 * Scenario 4: Microsoft's documented pipeline step (Add-AzKeyVaultNetworkRule
 * ... Remove-AzKeyVaultNetworkRule, and `az keyvault network-rule add/remove`):
 * each job GETs the vault and PUTs the whole vault back with its IP added, and
 * at the end GETs and PUTs it back without its IP. No ETag, so parallel jobs
 * race. A quarter of the jobs are cancelled and never run their remove step.
 * Then the same 20 jobs through kv-lease.
 */

const SCENARIO = '4 documented method';
const CONTRAST = '4 kv-lease contrast';
const JOBS = 20;
const WRITE_LATENCY_MS = 300;
/** A Resource Manager GET is not free either. */
const READ_LATENCY_MS = 100;
/**
 * Between the GET's answer and the PUT reaching Resource Manager the client
 * works (the cmdlet or az CLI builds the new vault object) and the PUT
 * travels: a job's PUT overwrites any write applied during this gap, silently.
 */
const CLIENT_GAP_MS = 150;
/**
 * Jobs start at seeded random offsets within a spread: 2 s is one pipeline's
 * fan-out (jobs start nearly together), 10 s several pipelines trickling in.
 * kv-lease gets the tight spread.
 */
const VARIANTS = [
  { spreadMs: 2000, vault: 'kv-doc-2s', ipBlock: 40 },
  { spreadMs: 10_000, vault: 'kv-doc-10s', ipBlock: 42 },
];
const LEASE_SPREAD_MS = 2000;
const SEED = 20260401;
const TTL_SECONDS = 600;
const LEASE_VAULT = 'kv-doc-lease';

const cancelled = (job: number): boolean => job % 4 === 3;

function startDelays(seed: number, spreadMs: number): number[] {
  const random = seeded(seed);
  return Array.from({ length: JOBS }, () => Math.floor(random() * spreadMs));
}

/** `ok`, or what went wrong. */
type StepOutcome = string;

/** GET the vault, then PUT it back as read with `ipRules` changed by `edit`. */
async function getAndPut(
  client: ReturnType<typeof armClient>,
  name: string,
  edit: (rules: { value: string }[]) => { value: string }[],
): Promise<StepOutcome> {
  try {
    const vault: Vault = await client.vaults.get(RESOURCE_GROUP, name);
    const acls = vault.properties.networkAcls ?? {};
    await sleep(CLIENT_GAP_MS);
    await client.vaults.createOrUpdate(RESOURCE_GROUP, name, {
      location: vault.location ?? 'westeurope',
      tags: vault.tags,
      properties: {
        ...vault.properties,
        networkAcls: { ...acls, ipRules: edit(acls.ipRules ?? []) },
      },
    });
    return 'ok';
  } catch (error) {
    return armErrorLabel(error);
  }
}

function tally(outcomes: StepOutcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}

async function documentedMethod(ctx: BenchContext, variant: (typeof VARIANTS)[number]) {
  const { vault, spreadMs } = variant;
  ctx.emulator.createVault(lockedVault(vault));
  const client = armClient(ctx.emulator);
  await client.vaults.get(RESOURCE_GROUP, vault); // warm the TLS session
  const ips = Array.from({ length: JOBS }, (_, job) => publicIp(variant.ipBlock, job));

  const addDelays = startDelays(SEED, spreadMs);
  const added = await Promise.all(
    ips.map(async (ip, job) => {
      await sleep(addDelays[job] as number);
      return getAndPut(client, vault, (rules) => [...rules, { value: ip }]);
    }),
  );
  const afterAdd = rulesOf(ctx.emulator, vault);
  const failed = added.filter((outcome) => outcome !== 'ok').length;
  const lostUpdate = ips.filter(
    (ip, job) => added[job] === 'ok' && !afterAdd.has(`${ip}/32`),
  ).length;
  const withoutRule = ips.filter((ip) => !afterAdd.has(`${ip}/32`)).length;

  const removeDelays = startDelays(SEED + 1, spreadMs);
  const removed = await Promise.all(
    ips.map(async (ip, job) => {
      if (cancelled(job)) return 'cancelled';
      await sleep(removeDelays[job] as number);
      return getAndPut(client, vault, (rules) =>
        rules.filter((rule) => rule.value !== ip && rule.value !== `${ip}/32`),
      );
    }),
  );
  const afterRemove = rulesOf(ctx.emulator, vault);
  const leftBehind = ips.filter((ip) => afterRemove.has(`${ip}/32`));
  const leftByCancelled = ips.filter((ip, job) => cancelled(job) && afterRemove.has(`${ip}/32`));
  return {
    spreadMs,
    add: tally(added),
    failed,
    lostUpdate,
    withoutRule,
    remove: tally(removed),
    leftBehind: leftBehind.length,
    leftByCancelled: leftByCancelled.length,
    leftByRemovers: leftBehind.length - leftByCancelled.length,
    cancelledWithRule: ips.filter((ip, job) => cancelled(job) && afterAdd.has(`${ip}/32`)).length,
    staticRuleKept: afterRemove.has(STATIC_RULE),
  };
}

async function withKvLease(ctx: BenchContext) {
  ctx.emulator.createVault(lockedVault(LEASE_VAULT));
  const table = uniqueTable('doc');
  const brokers = await startBrokers(ctx, { count: 2, vaults: [LEASE_VAULT], table });
  try {
    const ips = Array.from({ length: JOBS }, (_, job) => publicIp(41, job));
    const brokerOf = (job: number) => brokers[job % brokers.length] as BrokerProcess;
    const addDelays = startDelays(SEED, LEASE_SPREAD_MS);
    const grants = await Promise.all(
      ips.map(async (ip, job) => {
        await sleep(addDelays[job] as number);
        return grant(ctx, brokerOf(job).url, LEASE_VAULT, ip, TTL_SECONDS);
      }),
    );
    const afterGrant = rulesOf(ctx.emulator, LEASE_VAULT);
    const non201 = grants.filter((g) => g.status !== 201).length;
    const lost = grants.filter((g) => g.status === 201 && !afterGrant.has(`${g.ip}/32`)).length;

    const removeDelays = startDelays(SEED + 1, LEASE_SPREAD_MS);
    const releases = await Promise.all(
      grants.map(async (g, job) => {
        if (cancelled(job) || g.id === undefined) return undefined;
        await sleep(removeDelays[job] as number);
        return release(brokerOf(job + 1).url, g.id);
      }),
    );
    const releaseFailures = releases.filter((r) => r !== undefined && r.status !== 200).length;
    const afterRelease = rulesOf(ctx.emulator, LEASE_VAULT);
    const leftBehind = ips.filter((ip) => afterRelease.has(`${ip}/32`)).length;

    // What the timer does once the leases expire: one sweep whose clock is past their expiry.
    const config = loadConfig(brokerEnvForSweep(ctx, table));
    const services = createServices(config, {
      logger: silentLogger,
      clock: { now: () => Date.now() + (TTL_SECONDS + 60) * 1000 },
      firewall: new KeyVaultFirewall({
        endpoint: ctx.emulator.url,
        credential: {
          getToken: () =>
            Promise.resolve({ token: ARM_TOKEN, expiresOnTimestamp: Date.now() + 3600e3 }),
        },
        tlsCa: ctx.emulator.caPem,
      }),
    });
    const swept = await services.sweep();
    const afterSweep = rulesOf(ctx.emulator, LEASE_VAULT);
    return {
      non201,
      problems: grants.filter((g) => g.problem !== undefined).map((g) => g.problem),
      lost,
      releaseFailures,
      leftBehind,
      leftAfterExpirySweep: ips.filter((ip) => afterSweep.has(`${ip}/32`)).length,
      sweepFailed: swept.failed.length,
      staticRuleKept: afterSweep.has(STATIC_RULE),
    };
  } finally {
    await Promise.all(brokers.map((broker) => ctx.children.stop(broker.child)));
  }
}

function brokerEnvForSweep(ctx: BenchContext, table: string): NodeJS.ProcessEnv {
  return {
    BROKER_VAULTS: vaultId(LEASE_VAULT),
    LEASE_STORAGE_CONNECTION_STRING: ctx.storage,
    LEASE_TABLE_NAME: table,
    AZURE_ARM_ENDPOINT: ctx.emulator.url,
    AZURE_ARM_TOKEN: ARM_TOKEN,
    AUTH_MODE: 'disabled',
  };
}

type DocumentedFigures = Awaited<ReturnType<typeof documentedMethod>>;

function documentedRows(doc: DocumentedFigures): Row[] {
  const scenario = `${SCENARIO} (${doc.spreadMs / 1000} s spread)`;
  const cancelledJobs = JOBS / 4;
  return [
    { scenario, metric: 'add step: PUT failed (409)', value: doc.failed },
    { scenario, metric: 'add step: PUT ok, rule lost later', value: doc.lostUpdate },
    { scenario, metric: 'jobs without their rule', value: `${doc.withoutRule}/${JOBS}` },
    {
      scenario,
      metric: 'remove step: PUT failed (409)',
      value: JOBS - cancelledJobs - (doc.remove['ok'] ?? 0),
    },
    {
      scenario,
      metric: 'cancelled jobs whose rule was on the vault',
      value: `${doc.cancelledWithRule}/${cancelledJobs}`,
    },
    {
      scenario,
      metric: 'rules left after cleanup (of cancelled/others)',
      value: `${doc.leftBehind} (${doc.leftByCancelled}/${doc.leftByRemovers})`,
    },
  ];
}

export async function documentedVsLease(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.emulator.configure({
    writeLatencyMs: WRITE_LATENCY_MS,
    readLatencyMs: READ_LATENCY_MS,
    conflictOnOverlap: true,
  });
  try {
    const documented: DocumentedFigures[] = [];
    for (const variant of VARIANTS) {
      ctx.log(
        `documented method: ${JOBS} jobs over ${variant.spreadMs / 1000} s, GET + PUT of the whole vault`,
      );
      documented.push(await documentedMethod(ctx, variant));
    }
    ctx.log(
      `kv-lease: ${JOBS} grants over ${LEASE_SPREAD_MS / 1000} s, ${JOBS / 4} never released`,
    );
    const lease = await withKvLease(ctx);
    const cancelledJobs = JOBS / 4;
    const rows: Row[] = [
      ...documented.flatMap(documentedRows),
      {
        scenario: CONTRAST,
        metric: 'non-201 grants',
        value: lease.non201,
        target: '0',
        pass: lease.non201 === 0,
      },
      {
        scenario: CONTRAST,
        metric: 'jobs without their rule',
        value: `${lease.lost}/${JOBS}`,
        target: '0',
        pass: lease.lost === 0,
      },
      {
        scenario: CONTRAST,
        metric: 'failed releases',
        value: lease.releaseFailures,
        target: '0',
        pass: lease.releaseFailures === 0,
      },
      {
        scenario: CONTRAST,
        metric: 'rules left after releases',
        value: lease.leftBehind,
        target: `${cancelledJobs} (the cancelled)`,
        pass: lease.leftBehind === cancelledJobs,
      },
      {
        scenario: CONTRAST,
        metric: 'left after the sweep past expiry',
        value: lease.leftAfterExpirySweep,
        target: '0',
        pass: lease.leftAfterExpirySweep === 0 && lease.staticRuleKept,
      },
    ];
    return {
      rows,
      details: {
        jobs: JOBS,
        cancelledJobs,
        writeLatencyMs: WRITE_LATENCY_MS,
        readLatencyMs: READ_LATENCY_MS,
        clientGapMs: CLIENT_GAP_MS,
        leaseSpreadMs: LEASE_SPREAD_MS,
        seed: SEED,
        method: 'GET + PUT (vaults.createOrUpdate) of the whole vault as read, no retry on 409',
        documented,
        kvLease: lease,
      },
    };
  } finally {
    ctx.emulator.configure({ readLatencyMs: 0 });
  }
}
