import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { haveChromium, launchChromium } from '../../dev/local/chromium';
import type { RunningEmulator } from '../../dev/emulator/types';
import { lockedVault, publicIp, rulesOf, testEmulator } from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';
import { CLIENT_ID, identity, startTenant, type Tenant } from '../security/support';
import { ARTIFACTS, openConsole } from './page';

/**
 * The operator console in headless Chromium against a broker process with
 * AUTH_MODE=entra (the loopback tenant of the security tests) and the ARM
 * emulator. The page acts as a Lease.Admin or Lease.Read operator through its
 * test mode (a token in sessionStorage).
 */

const CI = process.env.CI === 'true';
const available = haveChromium();

if (!available && !CI) {
  process.stderr.write(
    'test/console: SKIPPED the browser tests: no Chromium at /usr/bin/chromium (apt-get install chromium, or set KV_LEASE_CHROMIUM); with CI=true this is a failure\n',
  );
}

describe.runIf(!available && CI)('The console browser tests on CI', () => {
  it('When CI=true and Chromium is missing, then the browser tests fail instead of skipping', () => {
    throw new Error('Chromium is missing at /usr/bin/chromium: .ci/run installs it (apt-get install chromium)');
  });
});

const XSS = '<img src=x onerror=alert(1)>';
const RUN_URL = 'https://dev.azure.com/contoso/kv/_build/results?buildId=4711';
const VAULT_A = 'kv-console-a';
const VAULT_B = 'kv-console-b';

describe.runIf(available)('The operator console in a browser', () => {
  let emulator: RunningEmulator;
  let tenant: Tenant;
  let broker: BrokerProcess;
  let browser: Browser;
  const admin = identity('Lease.Admin', 'Lease.Read', 'Lease.Request');
  const reader = identity('Lease.Read');
  const pipeline = identity('Lease.Request');
  let ipCounter = 100;

  beforeAll(async () => {
    [emulator, tenant] = await Promise.all([testEmulator(), startTenant()]);
    emulator.createVault(lockedVault(VAULT_A));
    emulator.createVault(lockedVault(VAULT_B));
    [broker] = (await startBrokers({
      count: 1,
      emulator,
      vaults: [VAULT_A, VAULT_B],
      env: {
        ...tenant.env(),
        LEASE_MIN_TTL_SECONDS: '1',
        SWEEP_SCHEDULE: '*/2 * * * * *',
      },
    })) as [BrokerProcess];
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await broker?.child.stop();
    await tenant?.close();
    await emulator?.close();
  });

  const tokenOf = (who: typeof admin) => tenant.token(who, { name: `operator ${who.roles.join('+')}` });
  const grant = async (vault: string, ttlSeconds: number, reason?: string) => {
    const ip = publicIp(ipCounter++);
    const response = await http(
      'POST',
      `${broker.url}/api/leases`,
      { vault, ttlSeconds, ...(reason === undefined ? {} : { reason }) },
      { authorization: `Bearer ${await tenant.token(pipeline)}`, 'x-forwarded-for': ip },
    );
    expect(response.status).toBe(201);
    return response.body as { id: string; ip: string; vault: string };
  };
  const row = (id: string) => `#active tbody tr[data-lease-id="${id}"]`;

  it('When the console and its files are fetched, then each answer has the strict CSP and nosniff, and only built files are served', async () => {
    for (const path of ['/api/console', '/api/console/app.js', '/api/console/console.css', '/api/console/config.json', '/api/console/..%2Fpackage.json', '/api/console/nope.js']) {
      const response = await fetch(`${broker.url}${path}`);
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).not.toContain('unsafe-inline');
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
      const ok = !path.includes('..') && !path.includes('nope');
      expect(response.status, path).toBe(ok ? 200 : 404);
    }
    const html = await (await fetch(`${broker.url}/api/console`)).text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/\sstyle=|<style/); // no inline style
    const settings = await (await fetch(`${broker.url}/api/console/config.json`)).json();
    expect(settings).toEqual({
      authMode: 'entra',
      signIn: {
        clientId: CLIENT_ID,
        authority: `https://login.microsoftonline.com/${tenant.id}`,
        scopes: ['api://kv-lease-security/user_impersonation'],
      },
    });
  });

  it('When an admin opens the console, then leases, the capacity bar, a hostile reason as text, a run link and a live countdown show, and axe finds no violation', async () => {
    const hostile = await grant(VAULT_A, 3600, XSS);
    const linked = await grant(VAULT_A, 1800, RUN_URL);
    const other = await grant(VAULT_B, 900);
    const opened = await openConsole(browser, broker.url, await tokenOf(admin));
    const { page } = opened;
    try {
      for (const lease of [hostile, linked, other]) await page.waitForSelector(row(lease.id));
      // The hostile reason is text: no element was made of it, nothing ran.
      expect(await page.textContent(`${row(hostile.id)} td.reason`)).toBe(XSS);
      expect(await page.locator('#active img, #ended img, #audit img').count()).toBe(0);
      // A pipeline run URL becomes a link.
      expect(await page.getAttribute(`${row(linked.id)} td.reason a`, 'href')).toBe(RUN_URL);
      // Sorted by time left: the 900 s lease first, then 1800 s, then 3600 s.
      const order = await page.$$eval('#active tbody tr', (rows) => rows.map((r) => (r as any).dataset.leaseId));
      expect(order.slice(0, 3)).toEqual([other.id, linked.id, hostile.id]);
      // The countdown runs.
      const before = await page.textContent(`${row(other.id)} td.left`);
      await page.waitForFunction(
        ([selector, text]) => (globalThis as any).document.querySelector(selector)?.textContent !== text,
        [`${row(other.id)} td.left`, before] as const,
        { timeout: 5000 },
      );
      // The capacity bar says what GET /api/vaults says.
      const vaults = await http('GET', `${broker.url}/api/vaults`, undefined, {
        authorization: `Bearer ${await tokenOf(reader)}`,
      });
      await page.reload();
      await page.waitForSelector('body[data-rendered="true"]');
      for (const vault of vaults.body.value) {
        const card = page.locator(`#vaults li[data-vault="${vault.name}"]`);
        expect(await card.getAttribute('data-total-rules')).toBe(String(vault.totalRules));
        expect(await card.getAttribute('data-broker-rules')).toBe(String(vault.brokerRules));
        expect(await card.locator('.rules').textContent()).toBe(`${vault.totalRules} / ${vault.maxRules} rules`);
        const label = await card.locator('.bar').getAttribute('aria-label');
        expect(label).toContain(`${vault.brokerRules} held by the broker, ${vault.totalRules - vault.brokerRules} others`);
        expect(await card.locator('.active-leases').textContent()).toMatch(new RegExp(`^${vault.activeLeases} active lease`));
      }
      const a = vaults.body.value.find((v: any) => v.name === VAULT_A);
      expect(a).toMatchObject({ brokerRules: 2, totalRules: 3, activeLeases: 2 });
      // Filter by vault, then by principal.
      await page.selectOption('#filter-vault', VAULT_B);
      expect(await page.locator('#active tbody tr:not([hidden])').count()).toBe(1);
      await page.selectOption('#filter-vault', '');
      await page.fill('#filter-principal', 'nobody-has-this-id');
      expect(await page.locator('#active tbody tr:not([hidden])').count()).toBe(0);
      await page.fill('#filter-principal', pipeline.oid.slice(0, 8));
      expect(await page.locator('#active tbody tr:not([hidden])').count()).toBe(3);

      await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true });
      const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
      await page.evaluate(axeSource);
      const violations = await page.evaluate(
        "axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa'] }).then((r) => r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', ')))",
      );
      expect(violations).toEqual([]);
      // Keyboard: the release button is reachable with Tab.
      await page.focus('#filter-principal');
      let focused = '';
      for (let i = 0; i < 10 && !focused.startsWith('Renew'); i += 1) {
        await page.keyboard.press('Tab');
        focused = await page.evaluate('document.activeElement?.getAttribute("aria-label") ?? ""');
      }
      expect(focused).toMatch(/^Renew /);
      expect(opened.dialogs).toEqual([]);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When an admin releases a lease from the page after confirming, then its rule leaves the emulated vault and the row goes to the ended leases', async () => {
    const lease = await grant(VAULT_B, 1200, 'release me');
    expect(rulesOf(emulator, VAULT_B)).toContain(lease.ip);
    const opened = await openConsole(browser, broker.url, await tokenOf(admin));
    const { page } = opened;
    try {
      await page.click(`${row(lease.id)} button.release`);
      await page.waitForSelector('#confirm[open]');
      // Cancel first: nothing happens.
      await page.click('#confirm-cancel');
      expect(rulesOf(emulator, VAULT_B)).toContain(lease.ip);
      await page.click(`${row(lease.id)} button.release`);
      await page.click('#confirm-ok');
      await page.waitForSelector(row(lease.id), { state: 'detached' });
      expect(rulesOf(emulator, VAULT_B)).not.toContain(lease.ip);
      await page.waitForSelector(`#ended tbody tr[data-lease-id="${lease.id}"]`);
      expect(await page.textContent('#status')).toMatch(/^Released: /);
      expect(opened.dialogs).toEqual([]);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When a lease reaches its expiry, then its countdown ends and the row disappears without a reload', async () => {
    const lease = await grant(VAULT_A, 4);
    const opened = await openConsole(browser, broker.url, await tokenOf(reader));
    const { page } = opened;
    try {
      await page.waitForSelector(row(lease.id));
      await page.waitForSelector(row(lease.id), { state: 'detached', timeout: 8000 });
      // The sweep (every 2 s) marks it expired; the next poll lists it with the ended leases.
      await page.waitForSelector(`#ended tbody tr[data-lease-id="${lease.id}"]`, { timeout: 15_000 });
      expect(await page.textContent(`#ended tbody tr[data-lease-id="${lease.id}"] td:nth-child(2)`)).toBe('expired');
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When a Lease.Read operator opens the console, then leases show but no release or renew button exists', async () => {
    const lease = await grant(VAULT_A, 1200, 'read only');
    const opened = await openConsole(browser, broker.url, await tokenOf(reader));
    const { page } = opened;
    try {
      await page.waitForSelector(row(lease.id));
      expect(await page.locator('#active button').count()).toBe(0);
      expect(await page.isHidden('#actions-head')).toBe(true);
      expect(await page.textContent('#roles')).toBe('(Lease.Read)');
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When the audit trail is exported as CSV, then the file holds the audit rows, quoted, with formulas neutralised', async () => {
    const lease = await grant(VAULT_B, 1200, '=HYPERLINK("http://evil")');
    const opened = await openConsole(browser, broker.url, await tokenOf(admin));
    const { page } = opened;
    try {
      await page.selectOption('#audit-vault', VAULT_B);
      await page.click('#audit-form button[type="submit"]');
      await page.waitForSelector(`#audit tbody tr td.lease-id:text-is("${lease.id}")`);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#audit-csv')]);
      const csv = readFileSync(await download.path(), 'utf8');
      const lines = csv.trimEnd().split('\r\n');
      expect(lines[0]).toBe('"at","action","principal","appId","vault","ip","leaseId","outcome","detail","invocationId"');
      const audit = await http('GET', `${broker.url}/api/audit?vault=${VAULT_B}&$top=1000`, undefined, {
        authorization: `Bearer ${await tokenOf(reader)}`,
      });
      expect(lines.length - 1).toBe(audit.body.value.length);
      const grantLine = lines.find((line) => line.includes(`"${lease.id}"`) && line.includes('"grant"'));
      expect(grantLine).toContain(`"${pipeline.oid}"`);
      expect(lines.every((line) => /^"(?:[^"]|"")*"(?:,"(?:[^"]|"")*")*$/.test(line))).toBe(true);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });
});
