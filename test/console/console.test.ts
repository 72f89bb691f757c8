import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { haveChromium, launchChromium } from '../../dev/local/chromium';
import { printable } from '../../src/contract/printable';
import { HOSTILE_TEXT, RAW_CONTROL } from '../clients/hostile';
import { CLIENT_ID, identity, startTenant, type Tenant } from '../security/support';
import { lockedVault, publicIp, rulesOf, testEmulator } from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';
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
    throw new Error(
      'Chromium is missing at /usr/bin/chromium: .ci/run installs it (apt-get install chromium)',
    );
  });
});

const XSS = '<img src=x onerror=alert(1)>';
const RUN_URL = 'https://dev.azure.com/contoso/kv/_build/results?buildId=4711';
const VAULT_A = 'kv-console-a';
const VAULT_B = 'kv-console-b';
const VAULT_LOCAL = 'kv-console-local';

describe.runIf(available)('The operator console in a browser', () => {
  let emulator: RunningEmulator;
  let tenant: Tenant;
  let broker: BrokerProcess;
  let local: BrokerProcess;
  let browser: Browser;
  const admin = identity('Lease.Admin', 'Lease.Read', 'Lease.Request');
  const reader = identity('Lease.Read');
  const pipeline = identity('Lease.Request');
  let ipCounter = 100;

  beforeAll(async () => {
    [emulator, tenant] = await Promise.all([testEmulator(), startTenant()]);
    emulator.createVault(lockedVault(VAULT_A));
    emulator.createVault(lockedVault(VAULT_B));
    emulator.createVault(lockedVault(VAULT_LOCAL));
    const started = (await Promise.all([
      startBrokers({
        count: 1,
        emulator,
        vaults: [VAULT_A, VAULT_B],
        env: {
          ...tenant.env(),
          LEASE_MIN_TTL_SECONDS: '1',
          SWEEP_SCHEDULE: '*/2 * * * * *',
        },
      }),
      // As npm start runs it: AUTH_MODE=disabled, no sign-in.
      startBrokers({ count: 1, emulator, vaults: [VAULT_LOCAL] }),
      launchChromium(),
    ])) as [[BrokerProcess], [BrokerProcess], Browser];
    [[broker], [local], browser] = started;
  });
  afterAll(async () => {
    await browser?.close();
    await broker?.child.stop();
    await local?.child.stop();
    await tenant?.close();
    await emulator?.close();
  });

  const tokenOf = (who: typeof admin) =>
    tenant.token(who, { name: `operator ${who.roles.join('+')}` });
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
    for (const path of [
      '/api/console',
      '/api/console/app.js',
      '/api/console/console.css',
      '/api/console/config.json',
      '/api/console/..%2Fpackage.json',
      '/api/console/nope.js',
    ]) {
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
      const order = await page.$$eval('#active tbody tr', (rows) =>
        rows.map((r) => (r as any).dataset.leaseId),
      );
      expect(order.slice(0, 3)).toEqual([other.id, linked.id, hostile.id]);
      // The countdown runs.
      const before = await page.textContent(`${row(other.id)} td.left`);
      await page.waitForFunction(
        ([selector, text]) =>
          (globalThis as any).document.querySelector(selector)?.textContent !== text,
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
        expect(await card.locator('.rules').textContent()).toBe(
          `${vault.totalRules} / ${vault.maxRules} rules`,
        );
        const label = await card.locator('.bar').getAttribute('aria-label');
        expect(label).toContain(
          `${vault.brokerRules} held by the broker, ${vault.totalRules - vault.brokerRules} others`,
        );
        expect(await card.locator('.active-leases').textContent()).toMatch(
          new RegExp(`^${vault.activeLeases} active lease`),
        );
      }
      const a = vaults.body.value.find((v: any) => v.name === VAULT_A);
      expect(a).toMatchObject({ brokerRules: 2, totalRules: 3, activeLeases: 2 });
      // Filter by vault, then by principal.
      await page.selectOption('#filter-vault', VAULT_B);
      await expect.poll(() => page.locator('#active tbody tr:not([hidden])').count()).toBe(1);
      await page.selectOption('#filter-vault', '');
      await page.fill('#filter-principal', 'nobody-has-this-id');
      await expect.poll(() => page.locator('#active tbody tr:not([hidden])').count()).toBe(0);
      await page.fill('#filter-principal', pipeline.oid.slice(0, 8));
      await expect.poll(() => page.locator('#active tbody tr:not([hidden])').count()).toBe(3);

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
      // The token travels in the Authorization header of API calls only, never in a URL.
      const token = await tokenOf(admin);
      const signature = token.split('.')[2] as string;
      expect(
        opened.requests.filter((r) => r.url.includes(signature) || r.url.includes('eyJ')),
      ).toEqual([]);
      const apiCalls = opened.requests.filter((r) => /\/api\/(leases|vaults|audit)/.test(r.url));
      expect(apiCalls.length).toBeGreaterThan(3);
      expect(apiCalls.filter((r) => !r.bearer)).toEqual([]);
      expect(opened.dialogs).toEqual([]);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When an admin renews a lease and then releases it after confirming, then its expiry moves on, its rule leaves the emulated vault and the row goes to the ended leases', async () => {
    const lease = await grant(VAULT_B, 1200, 'release me');
    expect(rulesOf(emulator, VAULT_B)).toContain(lease.ip);
    const opened = await openConsole(browser, broker.url, await tokenOf(admin));
    const { page } = opened;
    try {
      // Renew first: the lease's expiry moves on.
      const expiresAt = await page.getAttribute(row(lease.id), 'data-expires-at');
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await page.click(`${row(lease.id)} button:text-is("Renew")`);
      await page.waitForFunction(
        ([selector, before]) =>
          (globalThis as any).document.querySelector(selector)?.dataset.expiresAt > before,
        [row(lease.id), expiresAt ?? ''] as const,
      );
      expect(await page.textContent('#status')).toMatch(/^Renewed: /);
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
      await page.waitForSelector(`#ended tbody tr[data-lease-id="${lease.id}"]`, {
        timeout: 15_000,
      });
      expect(
        await page.textContent(`#ended tbody tr[data-lease-id="${lease.id}"] td:nth-child(2)`),
      ).toBe('expired');
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When a Lease.Read operator opens the console, then leases show but no release or renew button exists, and the vault health fields show when the API has them', async () => {
    const lease = await grant(VAULT_A, 1200, 'read only');
    const lastPassAt = new Date(Date.now() - 90_000).toISOString();
    const opened = await openConsole(browser, broker.url, await tokenOf(reader), {
      // The writer's health fields are additive: when GET /api/vaults has them, the page shows them
      // (and GET /api/targets, which a broker of contract §4 answers instead).
      before: (page) =>
        page.route(/\/api\/(vaults|targets)$/, async (route) => {
          const response = await route.fetch();
          const body = await response.json();
          body.value = body.value.map((vault: any) =>
            vault.name === VAULT_B
              ? { ...vault, healthy: false, lastError: '<b>ARM 503</b>', lastPassAt }
              : { ...vault, healthy: true },
          );
          await route.fulfill({ response, json: body });
        }),
    });
    const { page } = opened;
    try {
      await page.waitForSelector(row(lease.id));
      const sick = page.locator(`#vaults li[data-vault="${VAULT_B}"]`);
      expect(await sick.getAttribute('class')).toBe('vault unhealthy');
      expect(await sick.locator('.badge').textContent()).toBe('unhealthy');
      expect(await sick.locator('.last-error').textContent()).toBe('last error: <b>ARM 503</b>');
      expect(await sick.locator('.last-pass').textContent()).toMatch(
        /^last writer pass 1m 3\ds ago$/,
      );
      expect(await page.locator(`#vaults li[data-vault="${VAULT_A}"] .badge`).textContent()).toBe(
        'healthy',
      );
      expect(await page.locator('#active button').count()).toBe(0);
      expect(await page.isHidden('#actions-head')).toBe(true);
      expect(await page.textContent('#roles')).toBe('(Lease.Read)');
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When the audit trail is exported as CSV, then the file holds every audit row of the filter, each cell quoted', async () => {
    const lease = await grant(VAULT_B, 1200, '=HYPERLINK("http://evil")');
    const opened = await openConsole(browser, broker.url, await tokenOf(admin));
    const { page } = opened;
    try {
      await page.selectOption('#audit-vault', VAULT_B);
      await page.click('#audit-form button[type="submit"]');
      await page.waitForSelector(`#audit tbody tr td.lease-id:text-is("${lease.id}")`);
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.click('#audit-csv'),
      ]);
      const csv = readFileSync(await download.path(), 'utf8');
      const lines = csv.trimEnd().split('\r\n');
      expect(lines[0]).toBe(
        '"at","action","principal","appId","vault","kind","ip","leaseId","outcome","detail","invocationId"',
      );
      const audit = await http(
        'GET',
        `${broker.url}/api/audit?vault=${VAULT_B}&$top=1000`,
        undefined,
        {
          authorization: `Bearer ${await tokenOf(reader)}`,
        },
      );
      expect(lines.length - 1).toBe(audit.body.value.length);
      const grantLine = lines.find(
        (line) => line.includes(`"${lease.id}"`) && line.includes('"grant"'),
      );
      expect(grantLine).toContain(`"${pipeline.oid}"`);
      expect(grantLine).toContain(`"${VAULT_B}","keyvault"`);
      expect(lines.every((line) => /^"(?:[^"]|"")*"(?:,"(?:[^"]|"")*")*$/.test(line))).toBe(true);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When the API answers fields with terminal escapes and bidi overrides, then the page and the CSV show them escaped, never raw', async () => {
    const now = Date.now();
    const lease = {
      id: `${VAULT_A}.hostile`,
      vault: VAULT_A,
      ip: '52.99.1.1/32',
      status: 'active',
      principal: `oid${HOSTILE_TEXT}`,
      reason: HOSTILE_TEXT,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3_600_000).toISOString(),
    };
    const item = {
      at: lease.createdAt,
      action: 'grant',
      principal: lease.principal,
      vault: VAULT_A,
      ip: lease.ip,
      leaseId: lease.id,
      outcome: 'success',
      detail: `=cmd${HOSTILE_TEXT}`,
    };
    // The broker plays a hostile one for these two reads (as a store written before the broker
    // refused control characters would answer): the page must escape what it gets.
    const opened = await openConsole(browser, broker.url, await tokenOf(admin), {
      before: async (page) => {
        await page.route(
          (url) => url.pathname === '/api/leases' && url.searchParams.get('status') === 'active',
          (route) => route.fulfill({ json: { value: [lease] } }),
        );
        await page.route(
          (url) => url.pathname === '/api/audit',
          (route) => route.fulfill({ json: { value: [item] } }),
        );
      },
    });
    const { page } = opened;
    try {
      await page.waitForSelector(row(lease.id));
      await page.click('#audit-form button[type="submit"]');
      await page.waitForSelector('#audit tbody tr td.detail');
      const shown = await page.$$eval('#active tbody tr, #audit tbody tr', (rows) =>
        rows.flatMap((r) => [...(r as any).cells].map((cell: any) => cell.textContent as string)),
      );
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.click('#audit-csv'),
      ]);
      const csv = readFileSync(await download.path(), 'utf8');

      expect(await page.textContent(`${row(lease.id)} td.reason`)).toBe(printable(HOSTILE_TEXT));
      expect(await page.textContent(`${row(lease.id)} td.principal`)).toBe(
        printable(lease.principal),
      );
      expect(await page.textContent('#audit tbody td.detail')).toContain('\\u001b]52;c;');
      expect(shown.filter((text) => RAW_CONTROL.test(text))).toEqual([]);
      expect(csv.replace(/\r\n/g, '')).not.toMatch(RAW_CONTROL);
      expect(csv).toContain(`"'=cmd${printable(HOSTILE_TEXT)}"`);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When the broker runs as npm start runs it (AUTH_MODE=disabled), then the console needs no sign-in and acts with every role', async () => {
    const lease = await http(
      'POST',
      `${local.url}/api/leases`,
      { vault: VAULT_LOCAL, ttlSeconds: 600, reason: 'local run' },
      { 'x-forwarded-for': publicIp(ipCounter++) },
    );
    expect(lease.status).toBe(201);
    const opened = await openConsole(browser, local.url);
    const { page } = opened;
    try {
      await page.waitForSelector(row(lease.body.id));
      expect(await page.textContent('#who')).toBe('local-dev (AUTH_MODE=disabled)');
      expect(await page.locator(`${row(lease.body.id)} button.release`).count()).toBe(1);
      expect(await page.isHidden('#signout')).toBe(true);
      // MSAL (about 300 kB) is not even loaded: the page's own script is small.
      const scripts = [
        ...new Set(opened.requests.map((r) => r.url).filter((u) => u.endsWith('.js'))),
      ];
      let bytes = 0;
      for (const script of scripts) bytes += (await (await fetch(script)).text()).length;
      expect(bytes).toBeLessThan(60_000);
      expect(opened.requests.filter((r) => r.bearer)).toEqual([]);
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('When an operator without a session opens the console in Entra mode, then Sign in redirects to the authorize endpoint with PKCE and the broker app registration', async () => {
    const authorize: string[] = [];
    const opened = await openConsole(browser, broker.url, undefined, {
      rendered: false,
      // No Entra on loopback: answer its discovery documents and record the authorize redirect.
      before: (page) =>
        page.route('https://login.microsoftonline.com/**', (route) => {
          const url = new URL(route.request().url());
          const base = `https://login.microsoftonline.com/${tenant.id}`;
          if (url.pathname.endsWith('/openid-configuration')) {
            return route.fulfill({
              contentType: 'application/json',
              body: JSON.stringify({
                issuer: `${base}/v2.0`,
                authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
                token_endpoint: `${base}/oauth2/v2.0/token`,
                end_session_endpoint: `${base}/oauth2/v2.0/logout`,
                jwks_uri: `${base}/discovery/v2.0/keys`,
              }),
            });
          }
          if (url.pathname.includes('/discovery/instance')) {
            return route.fulfill({
              contentType: 'application/json',
              body: JSON.stringify({
                tenant_discovery_endpoint: `${base}/v2.0/.well-known/openid-configuration`,
                metadata: [
                  {
                    preferred_network: 'login.microsoftonline.com',
                    preferred_cache: 'login.windows.net',
                    aliases: ['login.microsoftonline.com', 'login.windows.net'],
                  },
                ],
              }),
            });
          }
          authorize.push(url.toString());
          return route.fulfill({
            contentType: 'text/html',
            body: '<!doctype html><title>Entra</title>',
          });
        }),
    });
    const { page } = opened;
    try {
      await page.waitForSelector('#signin-button:visible');
      expect(await page.isHidden('#app')).toBe(true);
      expect(opened.requests.filter((r) => /\/api\/(leases|vaults|audit)/.test(r.url))).toEqual([]);
      expect(opened.errors).toEqual([]);
      await page.click('#signin-button');
      await page.waitForURL(/login\.microsoftonline\.com/);
      const url = new URL(authorize.find((u) => u.includes('/authorize')) ?? '');
      expect(url.origin + url.pathname).toBe(
        `https://login.microsoftonline.com/${tenant.id}/oauth2/v2.0/authorize`,
      );
      const params = url.searchParams;
      expect(params.get('client_id')).toBe(CLIENT_ID);
      expect(params.get('response_type')).toBe('code');
      expect(params.get('code_challenge_method')).toBe('S256');
      expect(params.get('code_challenge')).toMatch(/^[\w-]{43}$/);
      expect(params.get('redirect_uri')).toBe(`${broker.url}/api/console`);
      expect(params.get('scope')?.split(' ')).toContain(
        'api://kv-lease-security/user_impersonation',
      );
    } finally {
      await opened.close();
    }
  });
});
