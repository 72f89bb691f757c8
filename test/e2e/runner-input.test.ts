import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { lockedVault, publicIp, rulesOf, STATIC_RULE, testEmulator } from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';

/**
 * Input that only the HTTP front reaches: malformed percent-encoding in a
 * path and odd X-Forwarded-For values, sent over a real socket to the local
 * runner.
 */
const VAULT = 'kv-runner-input';
let emulator: RunningEmulator;
let broker: BrokerProcess;

beforeAll(async () => {
  emulator = await testEmulator();
  emulator.createVault(lockedVault(VAULT));
  [broker] = (await startBrokers({ count: 1, emulator, vaults: [VAULT] })) as [BrokerProcess];
});

afterAll(async () => {
  await broker.child.stop();
  await emulator.close();
});

describe('The local runner at its front door', () => {
  for (const path of ['/api/leases/%zz', '/api/leases/kv-a.%E0%A4%A', '/api/leases/%/renew']) {
    it(`When a path has malformed percent-encoding (${path}), then 400 problem+json, not 500`, async () => {
      const method = path.endsWith('/renew') ? 'POST' : 'GET';
      const response = await http(method, `${broker.url}${path}`);
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(response.body.type).toBe('urn:kv-lease:problem:invalid-request');
    });
  }

  it('When X-Forwarded-For ends in an address with a non-breaking space before or after it, then 400 no-client-ip and no rule', async () => {
    for (const last of [`${publicIp(7)}\u00a0`, `\u00a0${publicIp(8)}`]) {
      const response = await fetch(`${broker.url}/api/leases`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-forwarded-for': `203.0.113.1, ${last}`,
        },
        body: JSON.stringify({ vault: VAULT }),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { type: string }).type).toBe(
        'urn:kv-lease:problem:no-client-ip',
      );
    }
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });

  it('When an admin names an ip with surrounding spaces, then 400 ip-not-allowed and no rule', async () => {
    const response = await http('POST', `${broker.url}/api/leases`, {
      vault: VAULT,
      ip: ` ${publicIp(9)} `,
    });
    expect(response.status).toBe(400);
    expect(response.body.type).toBe('urn:kv-lease:problem:ip-not-allowed');
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });
});

describe('Methods and bodies the API does not take, at the runner', () => {
  it.each([
    ['PUT', '/api/leases', 'GET, POST'],
    ['PATCH', `/api/leases/${VAULT}.${'a'.repeat(24)}`, 'GET, DELETE'],
    ['GET', `/api/leases/${VAULT}.${'a'.repeat(24)}/renew`, 'POST'],
    ['DELETE', '/api/health', 'GET'],
    // No definition names this one: the runner hands it to the route's 405 definition.
    ['PROPFIND', '/api/vaults', 'GET'],
  ])('When %s %s is sent, then 405 problem+json with Allow: %s', async (method, path, allow) => {
    const response = await fetch(`${broker.url}${path}`, { method });
    expect(response.status).toBe(405);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.headers.get('allow')).toBe(allow);
    expect(((await response.json()) as { type: string }).type).toBe(
      'urn:kv-lease:problem:method-not-allowed',
    );
  });

  it('When a body over 16 KiB comes chunked (no Content-Length), then 413 and no rule', async () => {
    const chunk = new TextEncoder().encode(' '.repeat(1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode(`{"vault":"${VAULT}"}`));
        if (sent++ < 17) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await fetch(`${broker.url}/api/leases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': publicIp(10) },
      body,
      duplex: 'half',
    });
    expect(response.status).toBe(413);
    expect(((await response.json()) as { type: string }).type).toBe(
      'urn:kv-lease:problem:body-too-large',
    );
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });
});
