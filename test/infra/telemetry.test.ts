import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import type { Logger } from '../../src/domain/logger';
import { jsonLogger } from '../../src/observability/json-logger';
import { TELEMETRY_EVENTS, type TelemetryEvent } from '../../src/observability/telemetry';
import { testBroker, testEmulator, vaultFactory } from '../support/harness';
import type { Expansion } from './arm';
import { type Compiled } from './compile';
import { compiledMain, deployMain, idOf, ofType, single } from './deployment';
import { asRecord } from './helpers';

/**
 * The alert rules of infra/monitoring.bicep read the broker's telemetry
 * events. These tests drive real grants and sweeps (azurite, the ARM
 * emulator) and check that the events carry the fields the queries read, and
 * that the queries read only events and fields that exist.
 */

interface Captured {
  level: string;
  message: string;
  properties: Record<string, unknown>;
}

function capturingLogger(): { logger: Logger; lines: Captured[] } {
  const lines: Captured[] = [];
  const at = (level: string) => (message: string, properties?: Record<string, unknown>) =>
    lines.push({ level, message, properties: properties ?? {} });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

function events(lines: Captured[], name: TelemetryEvent): Record<string, unknown>[] {
  return lines.filter((line) => line.message === name).map((line) => line.properties);
}

/** Each event carries exactly its catalogued fields (plus `event`). */
function expectCatalogued(name: TelemetryEvent, event: Record<string, unknown>): void {
  expect(Object.keys(event).sort(), name).toEqual(['event', ...TELEMETRY_EVENTS[name]].sort());
  expect(event.event).toBe(name);
}

let emulator: RunningEmulator;
const freshVault = vaultFactory(() => emulator, 'kv-telemetry');

beforeAll(async () => {
  emulator = await testEmulator({ seed: 11 });
});
afterAll(async () => {
  await emulator.close();
});

describe('telemetry events emitted by the broker', () => {
  it('When a grant and a sweep run, Then kvlease.pass and kvlease.sweep carry the fields the alerts read', async () => {
    const vault = freshVault();
    const { logger, lines } = capturingLogger();
    const broker = testBroker({ emulator, vaults: [vault], logger });
    const grant = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: { 'x-forwarded-for': '52.20.30.40' },
    });
    expect(grant.status).toBe(201);
    await broker.services.sweep();

    const passes = events(lines, 'kvlease.pass');
    expect(passes.length).toBeGreaterThanOrEqual(2);
    for (const pass of passes) {
      expectCatalogued('kvlease.pass', pass);
      expect(pass.vault).toBe(vault);
      expect(['written', 'unchanged']).toContain(pass.outcome);
      for (const field of ['durationMs', 'rules', 'brokerRules', 'activeLeases', 'maxRules']) {
        expect(typeof pass[field], field).toBe('number');
      }
      expect(pass.maxRules).toBe(1000);
    }
    // The grant's pass wrote the rule: the static rule plus the lease's.
    const written = passes.find((pass) => pass.outcome === 'written');
    expect(written).toMatchObject({ rules: 2, brokerRules: 1, activeLeases: 1 });
    // The sweep's pass found nothing to change.
    expect(passes.at(-1)).toMatchObject({ outcome: 'unchanged', rules: 2, activeLeases: 1 });

    const sweeps = events(lines, 'kvlease.sweep');
    expect(sweeps).toHaveLength(1);
    expectCatalogued('kvlease.sweep', sweeps[0] ?? {});
    expect(sweeps[0]).toMatchObject({ vaults: 1, reconciled: 1, failed: 0 });
  });

  it('When every firewall write fails, Then kvlease.pass.failed names the vault and the reason and no pass is reported done', async () => {
    const vault = freshVault();
    const { logger, lines } = capturingLogger();
    const broker = testBroker({
      emulator,
      vaults: [vault],
      logger,
      env: { LEASE_APPLY_TIMEOUT_SECONDS: '1' },
    });
    emulator.configure({ faults: { rate: 1, statuses: [500], methods: ['PATCH'] } });
    try {
      const grant = await broker.call('POST', '/api/leases', {
        body: { vault },
        headers: { 'x-forwarded-for': '52.20.30.41' },
      });
      expect(grant.status).toBe(503);
      // The pass that was under way at the grant's deadline fails after it (SDK retries).
      await vi.waitFor(
        () => expect(events(lines, 'kvlease.pass.failed').length).toBeGreaterThan(0),
        { timeout: 30_000, interval: 100 },
      );
    } finally {
      emulator.configure({ faults: null });
    }
    const failures = events(lines, 'kvlease.pass.failed');
    for (const failure of failures) {
      expectCatalogued('kvlease.pass.failed', failure);
      expect(failure.vault).toBe(vault);
      expect(failure.reason).toBe('transient');
      expect(typeof failure.message).toBe('string');
    }
    expect(lines.find((line) => line.message === 'kvlease.pass.failed')?.level).toBe('warn');
    expect(events(lines, 'kvlease.pass')).toEqual([]);
  });

  it('When the JSON logger writes an event, Then the pattern the KQL uses extracts it from the trace message', () => {
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
      written.push(String(chunk));
      return true;
    });
    try {
      jsonLogger.info('kvlease.sweep', { event: 'kvlease.sweep', durationMs: 12, vaults: 2 });
    } finally {
      spy.mockRestore();
    }
    // The host may prefix the line; extract(@"(\{.*\})", 1, message) takes the JSON object.
    const message = `[2026-12-01T10:00:00Z] ${written.join('').trim()}`;
    const json = /(\{.*\})/.exec(message)?.[1] ?? '';
    const parsed = JSON.parse(json) as Record<string, unknown>;
    expect(parsed).toMatchObject({ event: 'kvlease.sweep', durationMs: 12, vaults: 2 });
    expect(message).toContain('kvlease.');
  });
});

// ---- the KQL of the alert rules and the workbook ------------------------------

/*
 * The queries as deployed: infra/main.bicep compiled and expanded
 * (test/infra/deployment.ts), so each query is the text Azure Monitor runs,
 * with the shared `events` preamble and the thresholds filled in.
 */

let compiled: Compiled;
let deployed: Expansion;
const unavailable = compiledMain('test/infra/telemetry.test.ts', (built, expanded) => {
  compiled = built;
  deployed = expanded;
});

const RULE_TYPE = 'Microsoft.Insights/scheduledQueryRules';

/** Each deployed query by name: `rule:<alert>` and `tile:<workbook title>`. */
function deployedQueries(expansion: Expansion): Record<string, string> {
  const queries: Record<string, string> = {};
  for (const rule of ofType(expansion, RULE_TYPE)) {
    const criteria = asRecord(asRecord(rule.body.properties, 'properties').criteria, 'criteria');
    const [condition] = criteria.allOf as { query: string }[];
    queries[`rule:${rule.name}`] = condition?.query ?? '';
  }
  const workbook = single(expansion, 'Microsoft.Insights/workbooks');
  const data = JSON.parse(
    String(asRecord(workbook.body.properties, 'properties').serializedData),
  ) as {
    items: { content: { title: string; query: string } }[];
  };
  for (const item of data.items) queries[`tile:${item.content.title}`] = item.content.query;
  return queries;
}

/** Event names and `e.<field>` reads of each query that the telemetry catalogue does not have. */
function kqlProblems(queries: Record<string, string>): string[] {
  const problems: string[] = [];
  const catalogue = TELEMETRY_EVENTS as Record<string, readonly string[]>;
  for (const [name, query] of Object.entries(queries)) {
    const named = [...query.matchAll(/"(kvlease\.[\w.]*)"/g)].map((m) => m[1] ?? '');
    // `has "kvlease."` is a prefix filter; every other name is a full event name.
    const full = named.filter((event) => !query.includes(`has "${event}"`));
    for (const event of named) {
      const prefixOnly = query.includes(`has "${event}"`);
      const known = prefixOnly
        ? Object.keys(catalogue).some((candidate) => candidate.startsWith(event))
        : event in catalogue;
      if (!known) problems.push(`${name}: unknown event ${event}`);
    }
    const fields = new Set(full.flatMap((event) => catalogue[event] ?? []));
    for (const match of query.matchAll(/\be\.(\w+)/g)) {
      const field = match[1] ?? '';
      if (field !== 'event' && !fields.has(field))
        problems.push(
          `${name}: e.${field} is not a field of ${full.join(', ') || 'any named event'}`,
        );
    }
  }
  return problems;
}

describe.skipIf(unavailable !== undefined)(
  'alert rules and workbook (infra/monitoring.bicep), as deployed',
  () => {
    it('When the KQL of each alert and workbook tile is read, Then it names only telemetry events and fields that exist', () => {
      const queries = deployedQueries(deployed);
      expect(Object.keys(queries)).toHaveLength(8); // four alerts, four tiles
      expect(kqlProblems(queries)).toEqual([]);
    });

    it('When a query reads a renamed field or event, Then the KQL check fails (negative)', () => {
      const queries = deployedQueries(deployed);
      const capacity =
        Object.keys(queries).find((name) => name.endsWith('-vault-near-capacity')) ?? '';
      const sweep = Object.keys(queries).find((name) => name.endsWith('-sweep-not-running')) ?? '';
      expect(
        kqlProblems({
          [capacity]: (queries[capacity] ?? '').replace(
            'rules = toint(e.rules)',
            'rules = toint(e.ruleCount)',
          ),
        }),
      ).toEqual([`${capacity}: e.ruleCount is not a field of kvlease.pass`]);
      expect(
        kqlProblems({
          [sweep]: (queries[sweep] ?? '').replace('== "kvlease.sweep"', '== "kvlease.sweeps"'),
        }),
      ).toContain(`${sweep}: unknown event kvlease.sweeps`);
    });

    it('When the alerts are deployed, Then the four conditions of the issue each have a rule wired to the action groups', () => {
      const expansion = deployMain(compiled, {
        alertActionGroupIds: [
          '/subscriptions/x/resourceGroups/ops/providers/Microsoft.Insights/actionGroups/oncall',
        ],
        alertEmailAddresses: ['ops@example.com'],
        sweepPeriodMinutes: 5,
      });
      const rules = ofType(expansion, RULE_TYPE);
      const prefix = rules[0]?.name.replace(/-vault-not-reconciled$/, '') ?? '';
      expect(rules.map((rule) => rule.name.slice(prefix.length + 1))).toEqual([
        'vault-not-reconciled',
        'vault-near-capacity',
        'sweep-not-running',
        'server-errors',
      ]);
      const emailGroup = single(expansion, 'Microsoft.Insights/actionGroups');
      const queries = deployedQueries(expansion);
      for (const rule of rules) {
        const props = asRecord(rule.body.properties, 'properties');
        expect(asRecord(props.actions, 'actions').actionGroups, rule.name).toEqual([
          '/subscriptions/x/resourceGroups/ops/providers/Microsoft.Insights/actionGroups/oncall',
          idOf(emailGroup),
        ]);
      }
      const window = (suffix: string) =>
        asRecord(rules.find((rule) => rule.name.endsWith(suffix))?.body.properties, 'properties')
          .windowSize;
      expect(window('-vault-not-reconciled')).toBe('PT5M');
      expect(queries[`rule:${prefix}-vault-not-reconciled`]).toMatch(
        /ago\(5m\)[\s\S]*failures > 0 and passes == 0/,
      );
      expect(queries[`rule:${prefix}-vault-near-capacity`]).toContain(
        'rules * 100 >= maxRules * 90',
      );
      // Three sweep periods of 5 minutes.
      expect(queries[`rule:${prefix}-sweep-not-running`]).toContain('let stale = 15m;');
      expect(queries[`rule:${prefix}-server-errors`]).toMatch(
        /countif\(toint\(resultCode\) >= 500\)[\s\S]*errors \* 100 >= total \* 5/,
      );
      // The sweep period of the alert follows the default schedule: one minute.
      const parameters = compiled.templates.main?.parameters ?? {};
      expect(parameters.sweepSchedule?.defaultValue).toBe('0 */1 * * * *');
      expect(parameters.sweepPeriodMinutes?.defaultValue).toBe(1);
      expect(deployedQueries(deployed)[`rule:${prefix}-sweep-not-running`]).toContain(
        'let stale = 3m;',
      );
    });
  },
);
