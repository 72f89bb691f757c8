import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { type Child, startAzurite } from '../../dev/local/processes';
import { lockedVault, rulesOf, STATIC_RULE, testEmulator, vaultId } from '../support/harness';
import { type BrokerProcess, http } from '../support/processes';
import {
  brokerOnOwnStore,
  eventually,
  grantAfterRecovery,
  grantFor,
  twoBrokersOnOneVault,
} from './helpers';

let emulator: RunningEmulator;

beforeAll(async () => {
  emulator = await testEmulator({ writeLatencyMs: 200, conflictOnOverlap: true });
});
afterAll(async () => {
  await emulator.close();
});

describe('A broker process killed mid-burst', () => {
  let brokers: BrokerProcess[] = [];
  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.child.stop()));
  });

  it('When one of two brokers is SIGKILLed while it holds the writer lock during a burst, then the vault converges to static rules plus active leases', async () => {
    const vault = 'kv-crash';
    emulator.createVault(lockedVault(vault));
    const pair = await twoBrokersOnOneVault({
      emulator,
      vault,
      block: 6000,
      env: { SWEEP_SCHEDULE: '*/2 * * * * *' },
    });
    brokers = pair.brokers;
    const [victim, survivor] = pair.brokers;
    const grant = pair.grant;
    // A burst goes to the victim, whose writer then takes the vault's lock; it
    // is killed at the worst moment, while it holds the lock, with the
    // survivor's burst in flight.
    const toVictim = await pair.burstUntilLocked(victim);
    const toSurvivor = Array.from({ length: 30 }, () => grant(survivor));
    victim.child.process.kill('SIGKILL');
    const killedAt = Date.now();
    const fromVictim = await Promise.all(toVictim);
    const fromSurvivor = await Promise.all(toSurvivor);
    const survivorAnsweredMs = Date.now() - killedAt;
    const results = [...fromVictim, ...fromSurvivor];
    for (const result of results.filter((r) => r.status === 201)) {
      expect(rulesOf(emulator, vault)).toContain(result.body.ip);
    }

    // The dead writer's lock lives 1.5 s: the survivor takes over and converges
    // well within a few seconds (bench row "failover" measures it).
    const activeIps = async () => {
      const listed = await http('GET', `${survivor.url}/api/leases?vault=${vault}&$top=1000`);
      return listed.body.value.map((lease: { ip: string }) => lease.ip) as string[];
    };
    const took = await eventually(async () => {
      const expected = [STATIC_RULE, ...(await activeIps())].sort();
      return JSON.stringify(rulesOf(emulator, vault)) === JSON.stringify(expected);
    }, 10_000);
    // Every lease the survivor answered 201 for is still active and on the vault.
    const survivorGrants = fromSurvivor.filter((r) => r.status === 201).map((r) => r.body.ip);
    expect(survivorGrants.length).toBeGreaterThan(0);
    expect(await activeIps()).toEqual(expect.arrayContaining(survivorGrants));
    process.stdout.write(
      `[e2e crash] killed holding the lock; survivor's grants answered ${survivorAnsweredMs} ms and vault converged ${Date.now() - killedAt} ms after the kill (${took} ms after the burst); 201s: survivor ${survivorGrants.length}/${fromSurvivor.length}, victim ${fromVictim.filter((r) => r.status === 201).length}/${fromVictim.length} before the kill\n`,
    );
  });
});

describe('A broker process stopped gracefully', () => {
  let brokers: BrokerProcess[] = [];
  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.child.stop()));
  });

  it('When a broker gets SIGTERM while it holds the writer lock, then it releases the lock before it exits and the other broker carries on at once', async () => {
    const vault = 'kv-sigterm';
    emulator.createVault(lockedVault(vault));
    const pair = await twoBrokersOnOneVault({ emulator, vault, block: 7000 });
    brokers = pair.brokers;
    const [leaving, staying] = pair.brokers;
    const { store } = pair;
    const toLeaving = await pair.burstUntilLocked(leaving);
    const exited = new Promise((resolve) => leaving.child.process.once('exit', resolve));
    leaving.child.process.kill('SIGTERM');
    await exited;
    const state = await store.getVaultState(vault);
    // Released (or already taken by the other broker), not left to expire.
    expect(state.lockHolder.startsWith(`${leaving.pid}-`) && state.lockUntil > Date.now()).toBe(
      false,
    );
    await Promise.all(toLeaving);
    const after = await pair.grant(staying);
    expect(after.status).toBe(201);
    expect(rulesOf(emulator, vault)).toContain(after.body.ip);
  });
});

describe('The lease store going away', () => {
  let azurite: Child | undefined;
  let brokers: BrokerProcess[] = [];
  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.child.stop()));
    await azurite?.stop();
  });

  it('When the store stops, then grants and health answer 503 and nothing is written; when it returns, the broker recovers', async () => {
    const vault = 'kv-outage';
    emulator.createVault(lockedVault(vault));
    const location = mkdtempSync(join(tmpdir(), 'kv-lease-azurite-'));
    const started = await brokerOnOwnStore({ emulator, vault, location });
    azurite = started.azurite;
    const { port } = started;
    brokers = [started.broker];
    const broker = brokers[0] as BrokerProcess;
    const before = await grantFor(broker, vault, '52.8.8.1');
    expect(before.status).toBe(201);

    await azurite.stop();
    const writes = emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writes ?? 0;
    const health = await http('GET', `${broker.url}/api/health`);
    expect(health.status).toBe(503);
    const refused = await grantFor(broker, vault, '52.8.8.2');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.body.type).toMatch(/store-unavailable|vault-update-timeout/);
    await new Promise((resolve) => setTimeout(resolve, 2500)); // a couple of sweep ticks with the store down
    expect(emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writes ?? 0).toBe(writes);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.8.8.1/32'].sort());

    azurite = await startAzurite({ port, location });
    const after = await grantAfterRecovery(broker, vault, '52.8.8.3');
    expect(after.status).toBe(201);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.8.8.1/32', '52.8.8.3/32'].sort());
    expect((await http('GET', `${broker.url}/api/leases/${before.body.id}`)).body.status).toBe(
      'active',
    );
  });
});

describe('The lease store hanging', () => {
  let azurite: Child | undefined;
  let brokers: BrokerProcess[] = [];
  afterAll(async () => {
    azurite?.process.kill('SIGCONT');
    await Promise.all(brokers.map((broker) => broker.child.stop()));
    await azurite?.stop();
  });

  it('When the store accepts connections but answers nothing, then every endpoint that needs it answers 503 problem+json with Retry-After within the store timeout, and all recover once it answers again', async () => {
    const vault = 'kv-hung-store';
    emulator.createVault(lockedVault(vault));
    const started = await brokerOnOwnStore({ emulator, vault });
    azurite = started.azurite;
    brokers = [started.broker];
    const broker = started.broker;
    const held = await grantFor(broker, vault, '52.8.9.1');
    expect(held.status).toBe(201);
    const id = held.body.id as string;

    azurite.process.kill('SIGSTOP');
    // One stopped window, every endpoint at once.
    const calls: [string, string, unknown?][] = [
      ['GET', '/api/audit'],
      ['GET', `/api/leases/${id}`],
      ['GET', `/api/leases?vault=${vault}&status=all`],
      ['GET', '/api/vaults'],
      ['POST', `/api/leases/${id}/renew`, {}],
      ['DELETE', `/api/leases/${id}`],
    ];
    const stoppedAt = Date.now();
    const answers = await Promise.all(
      calls.map(async ([method, path, body]) => {
        const answer = await http(method, `${broker.url}${path}`, body);
        return { path: `${method} ${path}`, ms: Date.now() - stoppedAt, ...answer };
      }),
    );
    for (const answer of answers) {
      expect({ path: answer.path, status: answer.status }).toEqual({
        path: answer.path,
        status: 503,
      });
      expect(answer.headers.get('content-type')).toBe('application/problem+json');
      expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
      // The store timeout is 10 s per call: no answer hangs past it (loose, for a loaded machine).
      expect(answer.ms).toBeLessThan(14_000);
    }
    azurite.process.kill('SIGCONT');

    await eventually(
      async () => (await http('GET', `${broker.url}/api/leases/${id}`)).status === 200,
      15_000,
    );
    for (const [method, path, body] of calls.filter(([method]) => method === 'GET')) {
      expect((await http(method, `${broker.url}${path}`, body)).status).toBe(200);
    }
    expect((await http('DELETE', `${broker.url}/api/leases/${id}`)).status).toBe(200);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
    process.stdout.write(
      `[e2e hung store] 503 answers after ${answers.map((a) => `${a.path.split(' ')[0]} ${a.ms} ms`).join(', ')}\n`,
    );
  });
});
