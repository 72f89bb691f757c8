import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import type { Child } from '../../dev/local/processes';
import { lockedVault, rulesOf, STATIC_RULE, testEmulator, vaultId } from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';
import { brokerOnOwnStore, grantAfterRecovery, grantFor } from './helpers';

/**
 * Faults that are silent (a store that accepts connections and answers
 * nothing) or permanent (Resource Manager refusing a vault), against broker
 * processes.
 */

let emulator: RunningEmulator;

beforeAll(async () => {
  emulator = await testEmulator({ writeLatencyMs: 50 });
});
afterAll(async () => {
  await emulator.close();
});

/** A call that must answer within `ms`: a hung answer fails the test instead of hanging it. */
async function within(
  ms: number,
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const started = Date.now();
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(ms),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? JSON.parse(text) : undefined,
    ms: Date.now() - started,
  };
}

describe('A vault Resource Manager refuses for good', () => {
  let brokers: BrokerProcess[] = [];
  let logs = '';
  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.child.stop()));
  });

  it('When the broker may no longer write a vault (403) or the vault is gone (404), then grants answer 502 vault-unavailable saying why, leave no lease, the vault shows unhealthy and other vaults carry on', async () => {
    for (const name of ['kv-denied', 'kv-deleted', 'kv-fine'])
      emulator.createVault(lockedVault(name));
    brokers = await startBrokers({
      count: 1,
      emulator,
      vaults: ['kv-denied', 'kv-deleted', 'kv-fine'],
      env: { LEASE_APPLY_TIMEOUT_SECONDS: '20' },
    });
    const broker = brokers[0] as BrokerProcess;
    broker.child.process.stderr?.on('data', (chunk: Buffer) => {
      logs += chunk.toString();
    });
    emulator.configure({
      refusals: [
        { vault: 'kv-denied', status: 403, methods: ['PATCH', 'PUT'] },
        { vault: 'kv-deleted', status: 404 },
      ],
    });
    try {
      const denied = await within(
        15_000,
        'POST',
        `${broker.url}/api/leases`,
        { vault: 'kv-denied' },
        { 'x-forwarded-for': '52.20.0.1' },
      );
      expect(denied.status).toBe(502);
      expect(denied.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(denied.body.type).toBe('urn:kv-lease:problem:vault-unavailable');
      expect(denied.body.detail).toMatch(/kv-denied/);
      expect(denied.body.detail).toMatch(/403 AuthorizationFailed/);

      const deleted = await within(
        15_000,
        'POST',
        `${broker.url}/api/leases`,
        { vault: 'kv-deleted' },
        { 'x-forwarded-for': '52.20.0.2' },
      );
      expect(deleted.status).toBe(502);
      expect(deleted.body.type).toBe('urn:kv-lease:problem:vault-unavailable');
      expect(deleted.body.detail).toMatch(/404/);

      const fine = await http(
        'POST',
        `${broker.url}/api/leases`,
        { vault: 'kv-fine' },
        { 'x-forwarded-for': '52.20.0.3' },
      );
      expect(fine.status).toBe(201);
      expect(rulesOf(emulator, 'kv-fine')).toEqual([STATIC_RULE, '52.20.0.3/32'].sort());

      for (const vault of ['kv-denied', 'kv-deleted']) {
        const listed = await http('GET', `${broker.url}/api/leases?vault=${vault}&status=all`);
        expect(listed.body.value).toEqual([]);
        expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
      }
      const vaults = await http('GET', `${broker.url}/api/vaults`);
      type Summary = { name: string; healthy: boolean; lastError?: string; lastPassAt?: string };
      const byName = Object.fromEntries(
        (vaults.body.value as Summary[]).map((vault) => [vault.name, vault]),
      );
      expect(byName['kv-denied']).toMatchObject({ healthy: false });
      expect(byName['kv-denied']?.lastError).toMatch(/403/);
      expect(byName['kv-deleted']).toMatchObject({ healthy: false });
      expect(byName['kv-fine']).toMatchObject({ healthy: true });
      expect(byName['kv-fine']?.lastPassAt).toEqual(expect.any(String));
      expect(logs).toMatch(/"level":"error".*Resource Manager refuses the target.*kv-denied/);
      process.stdout.write(
        `[e2e refusal] 403 answered in ${denied.ms} ms, 404 in ${deleted.ms} ms\n`,
      );

      // Once the role is back, the vault recovers without a restart.
      emulator.configure({ refusals: [] });
      const again = await http(
        'POST',
        `${broker.url}/api/leases`,
        { vault: 'kv-denied' },
        { 'x-forwarded-for': '52.20.0.4' },
      );
      expect(again.status).toBe(201);
      const healed = await http('GET', `${broker.url}/api/vaults`);
      expect(
        (healed.body.value as { name: string; healthy: boolean }[]).find(
          (vault) => vault.name === 'kv-denied',
        )?.healthy,
      ).toBe(true);
    } finally {
      emulator.configure({ refusals: [] });
    }
  });
});

describe('A lease store that hangs', () => {
  let azurite: Child | undefined;
  let brokers: BrokerProcess[] = [];
  afterAll(async () => {
    if (azurite?.process.pid) azurite.process.kill('SIGCONT');
    await Promise.all(brokers.map((broker) => broker.child.stop()));
    await azurite?.stop();
  });

  it('When the store accepts connections and answers nothing (SIGSTOP), then health answers 503 within 5 s and a grant 503 with Retry-After within its apply timeout; after SIGCONT the broker recovers unaided', async () => {
    const vault = 'kv-hung';
    emulator.createVault(lockedVault(vault));
    const started = await brokerOnOwnStore({
      emulator,
      vault,
      // NOTE: a failed request also waits for its audit entry, bounded by the
      // store's own call timeout (10 s): the answer comes after two store timeouts.
      env: { LEASE_APPLY_TIMEOUT_SECONDS: '25' },
    });
    azurite = started.azurite;
    brokers = [started.broker];
    const broker = brokers[0] as BrokerProcess;
    const before = await grantFor(broker, vault, '52.21.0.1');
    expect(before.status).toBe(201);

    const pid = azurite.process.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      const health = await within(5000, 'GET', `${broker.url}/api/health`);
      expect(health.status).toBe(503);
      const grant = await within(
        25_000,
        'POST',
        `${broker.url}/api/leases`,
        { vault },
        { 'x-forwarded-for': '52.21.0.2' },
      );
      expect(grant.status).toBe(503);
      expect(grant.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(grant.body.type).toMatch(/store-unavailable|vault-update-timeout/);
      expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.21.0.1/32'].sort());
      process.stdout.write(
        `[e2e hung store] health 503 in ${health.ms} ms, grant 503 in ${grant.ms} ms\n`,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }

    const after = await grantAfterRecovery(broker, vault, '52.21.0.3');
    expect(after.status).toBe(201);
    const released = await http('DELETE', `${broker.url}/api/leases/${before.body.id}`);
    expect(released.status).toBe(200);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.21.0.3/32'].sort());
    expect(emulator.getNetworkAcls(vaultId(vault)).ipRules.map((rule) => rule.value)).not.toContain(
      '52.21.0.2/32',
    );
  });
});
