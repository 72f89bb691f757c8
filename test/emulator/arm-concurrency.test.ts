import type { KeyVaultManagementClient, NetworkRuleSet } from '@azure/arm-keyvault';
import { isRestError } from '@azure/core-rest-pipeline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { armClient, createTestVault } from './helpers';

const WRITE_LATENCY_MS = 150;

describe('Key Vault ARM emulator: overlapping and stale writes', () => {
  let emulator: RunningEmulator;
  let client: KeyVaultManagementClient;

  beforeEach(async () => {
    emulator = await startEmulator({ writeLatencyMs: WRITE_LATENCY_MS });
    client = armClient(emulator);
  });

  afterEach(async () => {
    await emulator.close();
  });

  function withRule(acls: NetworkRuleSet, value: string): NetworkRuleSet {
    return { ...acls, ipRules: [...(acls.ipRules ?? []), { value }] };
  }

  async function readAcls(vault: { resourceGroup: string; name: string }): Promise<NetworkRuleSet> {
    const read = await client.vaults.get(vault.resourceGroup, vault.name);
    if (!read.properties.networkAcls) throw new Error('the test vault has networkAcls');
    return read.properties.networkAcls;
  }

  /** Runs a write and records when it settled, relative to `started`. */
  async function timed<T>(
    started: number,
    write: Promise<T>,
  ): Promise<{ result: PromiseSettledResult<T>; ms: number }> {
    const [result] = await Promise.allSettled([write]);
    return { result, ms: performance.now() - started };
  }

  it('When two PATCHes on one vault overlap, then exactly one is applied and the other gets 409 ConflictError after its own latency', async () => {
    const vault = createTestVault(emulator);
    const acls = await readAcls(vault);

    const started = performance.now();
    const first = timed(
      started,
      client.vaults.update(vault.resourceGroup, vault.name, {
        properties: { networkAcls: withRule(acls, '20.0.0.1') },
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    const second = timed(
      started,
      client.vaults.update(vault.resourceGroup, vault.name, {
        properties: { networkAcls: withRule(acls, '20.0.0.2') },
      }),
    );
    const [a, b] = await Promise.all([first, second]);

    expect(a.result.status).toBe('fulfilled');
    expect(b.result.status).toBe('rejected');
    const reason: unknown = b.result.status === 'rejected' ? b.result.reason : undefined;
    expect(isRestError(reason)).toBe(true);
    expect(reason).toMatchObject({ statusCode: 409, code: 'ConflictError' });
    expect(reason instanceof Error && reason.message).toContain(
      'The resource was changed from the point the operation began',
    );
    expect(b.ms).toBeGreaterThanOrEqual(30 + WRITE_LATENCY_MS - 5);
    expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([{ value: '20.0.0.1/32' }]);
    expect(emulator.stats()).toMatchObject({ patches: 2, writesApplied: 1, conflicts: 1 });
    expect(emulator.stats().perVault[vault.id.toLowerCase()]).toEqual({
      gets: 1,
      writes: 2,
      writesApplied: 1,
      conflicts: 1,
    });
  });

  it('When two PATCHes start at the same moment, then exactly one wins', async () => {
    const vault = createTestVault(emulator);
    const acls = await readAcls(vault);

    const results = await Promise.allSettled(
      ['20.0.0.1', '20.0.0.2'].map((ip) =>
        client.vaults.update(vault.resourceGroup, vault.name, {
          properties: { networkAcls: withRule(acls, ip) },
        }),
      ),
    );

    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.reason).toMatchObject({ statusCode: 409, code: 'ConflictError' });
    expect(emulator.getNetworkAcls(vault.id).ipRules).toHaveLength(1);
  });

  it('When writes on two different vaults overlap, then both are applied', async () => {
    const one = createTestVault(emulator);
    const two = createTestVault(emulator);

    await Promise.all(
      [one, two].map((vault) =>
        client.vaults.update(vault.resourceGroup, vault.name, {
          properties: { networkAcls: withRule(emulator.getNetworkAcls(vault.id), '20.0.0.9') },
        }),
      ),
    );

    expect(emulator.stats()).toMatchObject({ writesApplied: 2, conflicts: 0 });
  });

  it('When conflicts are switched off, then overlapping writes are both applied and the last one wins', async () => {
    emulator.configure({ conflictOnOverlap: false });
    const vault = createTestVault(emulator);
    const acls = await readAcls(vault);

    const first = client.vaults.update(vault.resourceGroup, vault.name, {
      properties: { networkAcls: withRule(acls, '20.0.0.1') },
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    await client.vaults.update(vault.resourceGroup, vault.name, {
      properties: { networkAcls: withRule(acls, '20.0.0.2') },
    });
    await first;

    expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([{ value: '20.0.0.2/32' }]);
    expect(emulator.stats()).toMatchObject({ writesApplied: 2, conflicts: 0 });
  });

  it('When two clients do stale read-modify-writes one after the other, then the first update is silently lost', async () => {
    emulator.configure({ writeLatencyMs: 0 });
    const vault = createTestVault(emulator);
    const readByA = await readAcls(vault);
    const readByB = await readAcls(vault);

    await client.vaults.update(vault.resourceGroup, vault.name, {
      properties: { networkAcls: withRule(readByA, '20.0.0.1') },
    });
    await client.vaults.update(vault.resourceGroup, vault.name, {
      properties: { networkAcls: withRule(readByB, '20.0.0.2') },
    });

    expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([{ value: '20.0.0.2/32' }]);
    expect(emulator.stats()).toMatchObject({ writesApplied: 2, conflicts: 0 });
  });

  it('When someone else edits the firewall during a write, then there is no conflict and the write overwrites the edit', async () => {
    const vault = createTestVault(emulator);
    const acls = await readAcls(vault);

    const write = client.vaults.update(vault.resourceGroup, vault.name, {
      properties: { networkAcls: withRule(acls, '20.0.0.1') },
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    emulator.setNetworkAcls(vault.id, { ipRules: [{ value: '30.0.0.1' }] });
    expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([{ value: '30.0.0.1/32' }]);
    await write;

    expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([{ value: '20.0.0.1/32' }]);
    expect(emulator.stats().conflicts).toBe(0);
  });

  it('When a write hangs and the client gives up, then nothing is applied', async () => {
    emulator.configure({ writeLatencyMs: 0, hang: { rate: 1, ms: 400 } });
    const vault = createTestVault(emulator);
    const before = emulator.getNetworkAcls(vault.id);

    const outcome = await client.vaults
      .update(
        vault.resourceGroup,
        vault.name,
        { properties: { networkAcls: withRule(before, '20.0.0.1') } },
        { abortSignal: AbortSignal.timeout(100) },
      )
      .then(
        () => 'answered',
        (error: unknown) => error,
      );
    expect(outcome).toMatchObject({ name: 'AbortError' });
    await new Promise((resolve) => setTimeout(resolve, 450));

    expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
    expect(emulator.stats().writesApplied).toBe(0);
  });

  it('When a write hangs and the client waits, then it answers after the hang and is applied', async () => {
    emulator.configure({ writeLatencyMs: 0, hang: { rate: 1, ms: 300 } });
    const vault = createTestVault(emulator);
    const before = emulator.getNetworkAcls(vault.id);

    const started = performance.now();
    await client.vaults.update(vault.resourceGroup, vault.name, {
      properties: { networkAcls: withRule(before, '20.0.0.1') },
    });

    expect(performance.now() - started).toBeGreaterThanOrEqual(295);
    expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([{ value: '20.0.0.1/32' }]);
  });

  it('When a write is in flight, then a concurrent read still sees the state before it', async () => {
    const vault = createTestVault(emulator);
    const acls = await readAcls(vault);

    const write = client.vaults.update(vault.resourceGroup, vault.name, {
      properties: { networkAcls: withRule(acls, '20.0.0.1') },
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const during = await readAcls(vault);
    await write;

    expect(during.ipRules).toEqual([]);
    expect((await readAcls(vault)).ipRules).toEqual([{ value: '20.0.0.1/32' }]);
  });
});
