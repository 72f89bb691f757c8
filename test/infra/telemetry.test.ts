import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import type { Logger } from '../../src/domain/logger';
import { jsonLogger } from '../../src/observability/json-logger';
import { TELEMETRY_EVENTS, type TelemetryEvent } from '../../src/observability/telemetry';
import { testBroker, testEmulator, vaultFactory } from '../support/harness';
import { withoutComments } from './bicep';
import { readText } from './helpers';

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

const monitoring = readText('infra/monitoring.bicep');

/** The top-level `var` statements of a Bicep file, by name. */
function vars(source: string): Map<string, string> {
  const text = withoutComments(source);
  const found = new Map<string, string>();
  const starts = [...text.matchAll(/^(var|resource|param|output|module)\s+(\w+)/gm)];
  starts.forEach((match, index) => {
    if (match[1] !== 'var') return;
    const end = starts[index + 1]?.index ?? text.length;
    found.set(match[2] ?? '', text.slice(match.index, end));
  });
  return found;
}

const KQL_VARS = [
  'events',
  'notReconciledQuery',
  'capacityQuery',
  'sweepStaleQuery',
  'serverErrorQuery',
  'workbookQueries',
];

/** Event names and `e.<field>` reads of each query that the telemetry catalogue does not have. */
function kqlProblems(source: string): string[] {
  const problems: string[] = [];
  const statements = vars(source);
  const catalogue = TELEMETRY_EVENTS as Record<string, readonly string[]>;
  for (const name of KQL_VARS) {
    const text = statements.get(name);
    if (text === undefined) {
      problems.push(`var ${name} missing`);
      continue;
    }
    // The shared `events` preamble is part of each query that concatenates it.
    const query =
      text.includes('${events}') || /concat\(events,/.test(text)
        ? `${statements.get('events') ?? ''}${text}`
        : text;
    const named = [...query.matchAll(/"(kvlease\.[\w.]*)"/g)].map((m) => m[1] ?? '');
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

describe('alert rules and workbook (infra/monitoring.bicep)', () => {
  it('When the KQL of each alert and workbook tile is read, Then it names only telemetry events and fields that exist', () => {
    expect(kqlProblems(monitoring)).toEqual([]);
  });

  it('When a query reads a renamed field or event, Then the KQL check fails (negative)', () => {
    expect(
      kqlProblems(monitoring.replace('rules = toint(e.rules)', 'rules = toint(e.ruleCount)')),
    ).toEqual(['capacityQuery: e.ruleCount is not a field of kvlease.pass']);
    expect(kqlProblems(monitoring.replace('== "kvlease.sweep"', '== "kvlease.sweeps"'))).toContain(
      'sweepStaleQuery: unknown event kvlease.sweeps',
    );
  });

  it('When the alerts are declared, Then the four conditions of the issue each have a rule wired to the action groups', () => {
    const code = withoutComments(monitoring);
    const rules = [...code.matchAll(/^\s+name: '([\w-]+)'\n\s+displayName:/gm)].map((m) => m[1]);
    expect(rules).toEqual([
      'vault-not-reconciled',
      'vault-near-capacity',
      'sweep-not-running',
      'server-errors',
    ]);
    expect(code).toMatch(/query: notReconciledQuery[\s\S]*window: 'PT5M'/);
    expect(code).toMatch(/ago\(5m\)[\s\S]*failures > 0 and passes == 0/);
    expect(code).toMatch(/param capacityAlertPercent int = 90/);
    expect(code).toMatch(
      /replace\('''[\s\S]*__MINUTES__[\s\S]*''', '__MINUTES__', string\(3 \* sweepPeriodMinutes\)\)/,
    );
    expect(code).toMatch(/countif\(toint\(resultCode\) >= 500\)/);
    expect(code).toMatch(/actionGroups: actionGroups/);
    expect(code).toMatch(
      /var actionGroups = union\(actionGroupIds, empty\(alertEmailAddresses\) \? \[\] : \[emailGroup\.id\]\)/,
    );
    // main.bicep hands the parameters down.
    const main = withoutComments(readText('infra/main.bicep'));
    expect(main).toMatch(/actionGroupIds: alertActionGroupIds/);
    expect(main).toMatch(/alertEmailAddresses: alertEmailAddresses/);
    // The sweep period of the alert follows the default schedule: one minute.
    expect(main).toMatch(/param sweepSchedule string = '0 \*\/1 \* \* \* \*'/);
    expect(main).toMatch(/param sweepPeriodMinutes int = 1/);
  });
});
