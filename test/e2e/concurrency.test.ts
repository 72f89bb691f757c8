import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { lockedVault, publicIp, rulesOf, STATIC_RULE, vaultId } from '../support/harness';
import { testEmulator } from '../support/harness';
import { type BrokerProcess, http, percentile, startBrokers } from '../support/processes';

const VAULT = 'kv-burst';
const GRANTS = 120;
let emulator: RunningEmulator;
let brokers: BrokerProcess[] = [];

beforeAll(async () => {
  emulator = await testEmulator({ writeLatencyMs: 300, conflictOnOverlap: true });
  emulator.createVault(lockedVault(VAULT));
  brokers = await startBrokers({ count: 2, emulator, vaults: [VAULT] });
});

afterAll(async () => {
  await Promise.all(brokers.map((broker) => broker.child.stop()));
  await emulator.close();
});

describe('Two broker processes on one store and one vault', () => {
  it(`When ${GRANTS} grants arrive at once across both, then every 201 has its rule and releases leave exactly the rest`, async () => {
    const latencies: number[] = [];
    const missingAtAnswer: string[] = [];
    const results = await Promise.all(
      Array.from({ length: GRANTS }, async (_, n) => {
        const ip = publicIp(1000 + n);
        const broker = brokers[n % brokers.length] as BrokerProcess;
        const started = performance.now();
        const response = await http(
          'POST',
          `${broker.url}/api/leases`,
          { vault: VAULT, ttlSeconds: 900 },
          { 'x-forwarded-for': ip },
        );
        latencies.push(performance.now() - started);
        // The emulator runs in this process: its state at the moment the answer arrives.
        if (response.status === 201 && !rulesOf(emulator, VAULT).includes(`${ip}/32`))
          missingAtAnswer.push(ip);
        return { ip, n, status: response.status, id: response.body?.id as string };
      }),
    );
    expect(results.filter((r) => r.status !== 201)).toEqual([]);
    expect(missingAtAnswer).toEqual([]);
    const stats = emulator.stats();
    const vaultStats = stats.perVault[vaultId(VAULT).toLowerCase()];
    // Shared writes: far fewer PATCHes than grants.
    expect(vaultStats?.writesApplied ?? 0).toBeLessThan(GRANTS / 4);
    expect(rulesOf(emulator, VAULT)).toEqual(
      [STATIC_RULE, ...results.map((r) => `${r.ip}/32`)].sort(),
    );

    const released = results.filter((r) => r.n % 2 === 0);
    const kept = results.filter((r) => r.n % 2 === 1);
    const releases = await Promise.all(
      released.map((r) =>
        http(
          'DELETE',
          `${(brokers[(r.n + 1) % brokers.length] as BrokerProcess).url}/api/leases/${r.id}`,
        ),
      ),
    );
    expect(releases.map((r) => r.status).filter((s) => s !== 200)).toEqual([]);
    expect(rulesOf(emulator, VAULT)).toEqual(
      [STATIC_RULE, ...kept.map((r) => `${r.ip}/32`)].sort(),
    );

    const listed = await http(
      'GET',
      `${(brokers[0] as BrokerProcess).url}/api/leases?vault=${VAULT}&$top=1000`,
    );
    expect(listed.body.value.map((l: { id: string }) => l.id).sort()).toEqual(
      kept.map((r) => r.id).sort(),
    );

    const after = emulator.stats().perVault[vaultId(VAULT).toLowerCase()];
    process.stdout.write(
      `[e2e burst] grants=${GRANTS} brokers=${brokers.length} writeLatency=300ms ` +
        `grantWrites=${vaultStats?.writesApplied} conflicts=${vaultStats?.conflicts} totalWrites=${after?.writesApplied} ` +
        `p50=${percentile(latencies, 50).toFixed(0)}ms p99=${percentile(latencies, 99).toFixed(0)}ms max=${Math.max(...latencies).toFixed(0)}ms\n`,
    );
  });
});
