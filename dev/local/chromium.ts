import { existsSync } from 'node:fs';

import type { Browser } from 'playwright-core';

/**
 * Headless Chromium for the console's browser tests and its bench row: the
 * Debian package (`apt-get install chromium`, which .ci/run does) driven by
 * playwright-core, with nothing that phones home.
 */

export const CHROMIUM_PATH = process.env.KV_LEASE_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function haveChromium(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/** Playwright gives every launch a fresh temporary profile (user-data-dir) and removes it on close. */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}
