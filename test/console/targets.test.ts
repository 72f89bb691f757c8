import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { haveChromium, launchChromium } from '../../dev/local/chromium';
import type { AuditItem, Lease, Target, Vault } from '../../src/contract';
import { printable } from '../../src/contract/printable';
import { HOSTILE_TEXT, RAW_CONTROL } from '../clients/hostile';
import { type FakeApi, startFakeApi } from './fake-api';
import { ARTIFACTS, openConsole } from './page';

/**
 * The console's view of contract §4 (targets of every kind, the kind filter,
 * lease warnings, the 24-hour chart) in headless Chromium, against the fake
 * API of fake-api.ts: the broker of this branch does not serve GET
 * /api/targets or the kind fields yet. The fake parses every query with the
 * contract's schemas and every answer with its resource schemas, so what the
 * page is tested against is what the contract allows. Skipped without
 * Chromium, like test/console/console.test.ts (which fails on CI instead).
 */

const HOUR = 3_600_000;
const MIN = 60_000;
const XSS = '<img src=x onerror=alert(1)>';
const available = haveChromium();

const sub = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers';
const WARNING =
  '52.10.0.3 is in westeurope, the region of stterraform: Azure does not apply IP rules to traffic from there';

function targets(): Target[] {
  return [
    {
      name: 'kv-main',
      kind: 'keyvault',
      resourceId: `${sub}/Microsoft.KeyVault/vaults/kv-main`,
      activeLeases: 2,
      brokerRules: 2,
      totalRules: 10,
      maxRules: 1000,
      healthy: true,
      dataPlane: 'https://kv-main.vault.azure.net/',
    },
    {
      name: 'stterraform',
      kind: 'storage',
      resourceId: `${sub}/Microsoft.Storage/storageAccounts/stterraform`,
      activeLeases: 1,
      brokerRules: 1,
      totalRules: 390,
      maxRules: 400,
      healthy: true,
      lastPassAt: new Date(Date.now() - 30_000).toISOString(),
      dataPlane: 'https://stterraform.blob.core.windows.net/',
    },
    {
      name: 'sql-orders',
      kind: 'sql',
      resourceId: `${sub}/Microsoft.Sql/servers/sql-orders`,
      activeLeases: 1,
      brokerRules: 1,
      totalRules: 12,
      maxRules: 128,
      healthy: false,
      lastError: `DenyPublicEndpointEnabled ${XSS}${HOSTILE_TEXT}`,
      lastErrorAt: new Date(Date.now() - 60_000).toISOString(),
      dataPlane: 'sql-orders.database.windows.net:1433',
    },
  ];
}

let counter = 0;
function lease(
  target: string,
  kind: Lease['kind'] | 'v1',
  createdAgo: number,
  ends: number,
  extra: Partial<Lease> = {},
): Lease {
  counter += 1;
  const now = Date.now();
  const status = extra.status ?? 'active';
  return {
    id: `${target}.${String(counter).padStart(24, '0')}`,
    vault: target,
    ...(kind === 'v1' ? {} : { target, kind }),
    ip: `52.10.0.${counter}/32`,
    status,
    principal: 'pipeline-oid',
    reason: `run ${counter}`,
    createdAt: new Date(now - createdAgo).toISOString(),
    expiresAt: new Date(now + ends).toISOString(),
    ...extra,
  };
}

/** Active now: kv-main 2 (one a v1 lease without kind), stterraform 1 (with warnings), sql-orders 1. */
function leases(): Lease[] {
  const now = Date.now();
  const ended = (at: number) => new Date(now - at).toISOString();
  return [
    lease('kv-main', 'keyvault', 2 * HOUR, 40 * MIN),
    lease('kv-main', 'v1', 30 * MIN, 30 * MIN),
    lease('stterraform', 'storage', 10 * MIN, 50 * MIN, {
      warnings: [WARNING, `second ${HOSTILE_TEXT}`],
    }),
    lease('sql-orders', 'sql', 5 * MIN, 25 * MIN, { reason: XSS }),
    lease('stterraform', 'storage', 20 * HOUR, -18 * HOUR, {
      status: 'released',
      endedAt: ended(19 * HOUR),
    }),
    lease('sql-orders', 'sql', 6 * HOUR, -5 * HOUR, { status: 'expired' }),
    lease('kv-main', 'keyvault', 30 * HOUR, -29 * HOUR, { status: 'expired' }),
  ];
}

function audit(list: Lease[]): AuditItem[] {
  const item = (l: Lease, extra: Partial<AuditItem> = {}): AuditItem => ({
    at: l.createdAt,
    action: 'grant',
    principal: l.principal,
    appId: null,
    vault: l.vault,
    ...(l.kind === undefined ? {} : { target: l.vault, kind: l.kind }),
    ip: l.ip,
    leaseId: l.id,
    outcome: 'success',
    detail: null,
    invocationId: null,
    ...extra,
  });
  const [first] = list;
  return [
    ...list.slice(0, 4).map((l) => item(l)),
    // Refused before a target was known: no target, no kind.
    item(first as Lease, {
      vault: null,
      target: null,
      kind: null,
      ip: null,
      leaseId: null,
      outcome: 'refused',
      detail: 'no vault',
    }),
  ];
}

describe.runIf(available)('The operator console with targets of every kind (contract §4)', () => {
  let browser: Browser;
  const fakes: FakeApi[] = [];
  const fake = async (options: Parameters<typeof startFakeApi>[0]) => {
    const started = await startFakeApi(options);
    fakes.push(started);
    return started;
  };

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await Promise.all(fakes.map((f) => f.close()));
  });

  it('When the broker has targets, then each shows with its kind and its bar against the kind limit, the Kind column, filters and warnings show, everything escaped, and axe finds no violation', async () => {
    const all = leases();
    const api = await fake({ targets: targets(), leases: all, audit: audit(all) });
    const opened = await openConsole(browser, api.url);
    const { page } = opened;
    try {
      // The cards: kind, limit and health, from GET /api/targets (not /api/vaults).
      const card = (name: string) => page.locator(`#vaults li[data-target="${name}"]`);
      await card('sql-orders').waitFor();
      expect(await card('stterraform').getAttribute('data-kind')).toBe('storage');
      expect(await card('stterraform').locator('.kind').textContent()).toBe('Storage account');
      expect(await card('stterraform').locator('.rules').textContent()).toBe('390 / 400 rules');
      expect(await card('stterraform').locator('.bar').getAttribute('aria-label')).toBe(
        '390 of 400 rules used (the limit of a Storage account): 1 held by the broker, 389 others',
      );
      expect(await card('sql-orders').getAttribute('data-max-rules')).toBe('128');
      expect(await card('sql-orders').locator('.badge').textContent()).toBe('unhealthy');
      expect(await card('sql-orders').locator('.last-error').textContent()).toBe(
        `last error: DenyPublicEndpointEnabled ${XSS}${printable(HOSTILE_TEXT)}`,
      );
      expect(await card('sql-orders').locator('.data-plane').textContent()).toBe(
        'sql-orders.database.windows.net:1433',
      );
      expect(await card('kv-main').locator('.rules').textContent()).toBe('10 / 1000 rules');
      // The bar's broker share is drawn against the kind's limit: 1 of 128 is wider than 2 of 1000.
      const share = (name: string) =>
        card(name)
          .locator('.bar .others')
          .evaluate((el) => (el as any).getBoundingClientRect().width);
      expect(await share('stterraform')).toBeGreaterThan(await share('kv-main'));
      expect(api.requests.map((u) => u.pathname)).not.toContain('/api/vaults');

      // The Kind column; a lease without kind (v1) is on a Key Vault; warnings are printed.
      const row = (l: Lease) => `#active tbody tr[data-lease-id="${l.id}"]`;
      const [kvLease, v1Lease, stLease, sqlLease, released, expired, oldest] = all as [
        Lease,
        Lease,
        Lease,
        Lease,
        Lease,
        Lease,
        Lease,
      ];
      await page.waitForSelector(row(sqlLease));
      expect(await page.textContent(`${row(v1Lease)} td.kind`)).toBe('Key Vault');
      expect(await page.textContent(`${row(sqlLease)} td.kind`)).toBe('SQL server');
      expect(await page.textContent(`${row(sqlLease)} td.reason`)).toBe(XSS);
      expect(await page.locator(`${row(stLease)} td.reason .warning`).allTextContents()).toEqual([
        `Warning: ${WARNING}`,
        `Warning: second ${printable(HOSTILE_TEXT)}`,
      ]);
      expect(await page.locator(`${row(kvLease)} .warning`).count()).toBe(0);

      // Filter by kind: the active rows at once, the ended ones asked of the API with kind=.
      const shown = () =>
        page.$$eval('#active tbody tr:not([hidden])', (rows) =>
          rows.map((r) => (r as any).dataset.leaseId),
        );
      const ended = () =>
        page.$$eval('#ended tbody tr', (rows) => rows.map((r) => (r as any).dataset.leaseId));
      // Most recent end first: the SQL lease expired 5 h ago, the storage one released 19 h ago.
      await expect.poll(ended).toEqual([expired.id, released.id, oldest.id]);
      await page.selectOption('#filter-kind', 'storage');
      await expect.poll(shown).toEqual([stLease.id]);
      await expect.poll(ended).toEqual([released.id]);
      expect(
        api.requests.some(
          (u) =>
            u.searchParams.get('status') === 'released' && u.searchParams.get('kind') === 'storage',
        ),
      ).toBe(true);
      await page.selectOption('#filter-kind', 'keyvault');
      await expect
        .poll(async () => (await shown()).sort())
        .toEqual([kvLease.id, v1Lease.id].sort());
      await page.selectOption('#filter-kind', '');
      await expect.poll(async () => (await shown()).length).toBe(4);

      // The audit trail: a Kind column, and the kind filter sent as kind=.
      const auditKinds = () => page.locator('#audit tbody td.kind').allTextContents();
      await expect
        .poll(auditKinds)
        .toEqual(['Key Vault', 'Key Vault', 'Storage account', 'SQL server', '']);
      await page.selectOption('#audit-kind', 'sql');
      await page.click('#audit-form button[type="submit"]');
      await expect.poll(auditKinds).toEqual(['SQL server']);
      expect(
        api.requests.some(
          (u) => u.pathname === '/api/audit' && u.searchParams.get('kind') === 'sql',
        ),
      ).toBe(true);

      // Nothing from the API became markup or reached the page raw.
      expect(await page.locator('main img').count()).toBe(0);
      const texts = await page.$$eval('main *', (els) =>
        els.map((e) => (e as any).textContent as string),
      );
      expect(texts.filter((t) => RAW_CONTROL.test(t))).toEqual([]);

      await page.locator('#chart[data-state="complete"]').waitFor();
      await page.screenshot({ path: join(ARTIFACTS, 'console-targets.png'), fullPage: true });
      const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
      await page.evaluate(axeSource);
      const violations = await page.evaluate(
        "axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa'] }).then((r) => r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', ')))",
      );
      expect(violations).toEqual([]);
      expect(opened.dialogs).toEqual([]);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When the chart is drawn, then it has one step line per target with the peak held at once, a legend, axes, and a title and description', async () => {
    const all = leases();
    const api = await fake({ targets: targets(), leases: all, audit: [] });
    const opened = await openConsole(browser, api.url);
    const { page } = opened;
    try {
      await page.locator('#chart[data-state="complete"]').waitFor();
      const lines = await page.$$eval('#chart svg.chart path.line', (paths) =>
        paths.map((p) => ({
          target: (p as any).dataset.target,
          peak: (p as any).dataset.peak,
          current: (p as any).dataset.current,
          d: p.getAttribute('d') ?? '',
        })),
      );
      // kv-main: its 2 h lease and the v1 lease overlap now; the 30 h old one is outside the window.
      expect(lines.map(({ target, peak, current }) => [target, peak, current])).toEqual([
        ['kv-main', '2', '2'],
        ['sql-orders', '1', '1'],
        ['stterraform', '1', '1'],
      ]);
      for (const line of lines) expect(line.d).toMatch(/^M[\d.]+ [\d.]+(?:[HV][\d.]+)+$/);
      const svg = page.locator('#chart svg.chart');
      expect(await svg.getAttribute('role')).toBe('img');
      expect(await svg.getAttribute('data-buckets')).toBe('96');
      expect(await svg.getAttribute('data-bucket-minutes')).toBe('15');
      expect(await page.textContent('#chart-title')).toBe(
        'Active leases per target, last 24 hours',
      );
      const desc = (await page.textContent('#chart-desc')) ?? '';
      expect(desc).toContain('kv-main (Key Vault): peak 2, 2 active now.');
      expect(desc).toContain('stterraform (Storage account): peak 1, 1 active now.');
      expect(await page.locator('#chart .x-tick text').count()).toBe(8);
      expect(await page.locator('#chart .y-tick text').allTextContents()).toEqual(['0', '1', '2']);
      expect(await page.locator('#chart .chart-legend li').allTextContents()).toEqual([
        'kv-mainKey Vaultpeak 2, now 2',
        'sql-ordersSQL serverpeak 1, now 1',
        'stterraformStorage accountpeak 1, now 1',
      ]);
      // Every target's leases fitted in one page: the chart says nothing about missing ones.
      expect(await page.locator('#chart .chart-note').count()).toBe(0);
      // One page per target held every lease: nothing more was asked (the reads run
      // side by side, so they may arrive in any order).
      expect(
        api.requests
          .filter((u) => u.searchParams.get('status') === 'all')
          .map((u) => u.searchParams.get('vault'))
          .sort(),
      ).toEqual(['kv-main', 'sql-orders', 'stterraform']);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When the lease history has more pages than the cap, then the chart reads 20 pages, the first page of every target first, and says it stopped early', async () => {
    const all = leases();
    const api = await fake({ targets: targets(), leases: all, audit: [], endlessHistory: true });
    const opened = await openConsole(browser, api.url);
    const { page } = opened;
    try {
      await page.locator('#chart[data-state="partial"]').waitFor();
      const history = api.requests.filter((u) => u.searchParams.get('status') === 'all');
      expect(history).toHaveLength(20);
      // Each target's first page before any second one, each asked by name (side by side:
      // in any order among themselves).
      expect(
        history
          .slice(0, 3)
          .map((u) => [u.searchParams.get('vault'), u.searchParams.get('$skiptoken')])
          .sort(),
      ).toEqual([
        ['kv-main', null],
        ['sql-orders', null],
        ['stterraform', null],
      ]);
      // 6 leases of the fixture overlap the window, and 17 pages held one more each.
      expect(await page.textContent('#chart .chart-note')).toBe(
        'The chart stopped after 20 pages of leases (23 in the last 24 hours): leases may be missing.',
      );
      expect(await page.textContent('#chart-desc')).toContain('Only 20 pages of leases were read');
      expect(await page.locator('#chart path.line').count()).toBe(3);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When the broker is v1 (no GET /api/targets, no kind=), then its vaults show as Key Vaults and a kind filter is applied by the page without sending kind=', async () => {
    const vaults: Vault[] = [
      {
        name: 'kv-old',
        resourceId: `${sub}/Microsoft.KeyVault/vaults/kv-old`,
        activeLeases: 1,
        brokerRules: 1,
        totalRules: 4,
        maxRules: 1000,
        healthy: true,
        vaultUri: 'https://kv-old.vault.azure.net/',
      },
    ];
    const old = lease('kv-old', 'v1', 10 * MIN, 20 * MIN);
    const api = await fake({ vaults, leases: [old], audit: audit([old]) });
    const opened = await openConsole(browser, api.url);
    const { page } = opened;
    try {
      const card = page.locator('#vaults li[data-vault="kv-old"]');
      await card.waitFor();
      expect(await card.getAttribute('data-kind')).toBe('keyvault');
      expect(await card.locator('.data-plane').textContent()).toBe(
        'https://kv-old.vault.azure.net/',
      );
      // The page read the document and asked /api/vaults: never /api/targets, so no 404 in the console.
      expect(api.requests.map((u) => u.pathname)).not.toContain('/api/targets');
      await page.selectOption('#filter-kind', 'sql');
      await expect.poll(() => page.locator('#active tbody tr:not([hidden])').count()).toBe(0);
      await page.selectOption('#audit-kind', 'storage');
      await page.click('#audit-form button[type="submit"]');
      await expect.poll(() => page.locator('#audit tbody tr').count()).toBe(0);
      await page.selectOption('#audit-kind', 'keyvault');
      await page.click('#audit-form button[type="submit"]');
      await expect.poll(() => page.locator('#audit tbody tr').count()).toBe(1);
      // The fake refuses kind= like a v1 broker (400): the page never sent it.
      expect(api.requests.filter((u) => u.searchParams.has('kind'))).toEqual([]);
      await page.locator('#chart[data-state="complete"]').waitFor();
      expect(await page.locator('#chart path.line').getAttribute('data-target')).toBe('kv-old');
      expect(await page.textContent('#status')).toBe('');
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });
});
