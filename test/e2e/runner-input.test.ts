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
