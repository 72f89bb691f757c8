import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser, BrowserContext, Page } from 'playwright-core';

/**
 * A console page opened in a fresh browser context, as one operator: the
 * token (when there is one) goes into sessionStorage under `kv-lease.token`
 * before any script of the page runs (the console's test mode). Everything
 * the page says on its console, every page error and every dialog is kept,
 * so a test can assert there were none.
 */

export const ARTIFACTS = join(__dirname, 'artifacts');

export interface ConsolePage {
  page: Page;
  context: BrowserContext;
  errors: string[];
  dialogs: string[];
  /** Every request the page made: its URL and whether it carried a bearer token. */
  requests: { url: string; bearer: boolean }[];
  close(): Promise<void>;
}

export async function openConsole(
  browser: Browser,
  baseUrl: string,
  token?: string,
  options: { rendered?: boolean; before?: (page: Page) => Promise<unknown> } = {},
): Promise<ConsolePage> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  if (token !== undefined) {
    await context.addInitScript((value: string) => {
      (globalThis as any).sessionStorage.setItem('kv-lease.token', value);
    }, token);
  }
  const page = await context.newPage();
  const errors: string[] = [];
  const dialogs: string[] = [];
  const requests: ConsolePage['requests'] = [];
  page.on('request', (request) => {
    requests.push({
      url: request.url(),
      bearer: /^Bearer \S+$/.test(request.headers().authorization ?? ''),
    });
  });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning')
      errors.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  await options.before?.(page);
  await page.goto(`${baseUrl}/api/console`);
  if (options.rendered !== false)
    await page.waitForSelector('body[data-rendered="true"]', { timeout: 20_000 });
  return { page, context, errors, dialogs, requests, close: () => context.close() };
}
