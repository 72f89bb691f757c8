import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator, type StartOptions } from '../../dev/emulator/server';
import {
  API_VERSION,
  armClient,
  BEARER,
  createTestVault,
  rawRequest,
  restErrorOf,
} from './helpers';

describe('Key Vault ARM emulator: injected faults and throttling', () => {
  const started: RunningEmulator[] = [];

  async function start(options: StartOptions): Promise<RunningEmulator> {
    const emulator = await startEmulator(options);
    started.push(emulator);
    return emulator;
  }

  afterEach(async () => {
    await Promise.all(started.splice(0).map((emulator) => emulator.close()));
  });

  /** Status of each of `count` sequential GETs of one vault. */
  async function getStatuses(emulator: RunningEmulator, count: number): Promise<number[]> {
    const { id } = createTestVault(emulator, { name: 'kv-faults' });
    const statuses: number[] = [];
    for (let i = 0; i < count; i += 1) {
      const response = await rawRequest(emulator, 'GET', `${id}?api-version=${API_VERSION}`, {
        headers: BEARER,
      });
      statuses.push(response.status);
    }
    return statuses;
  }

  describe('faults', () => {
    it('When a fault rate of 0.3 is seeded, then about 30% of requests fail, in the same sequence for the same seed', async () => {
      const faults = { rate: 0.3, statuses: [500, 503] };
      const first = await start({ seed: 42, faults });
      const replay = await start({ seed: 42, faults });
      const otherSeed = await start({ seed: 7, faults });

      const statuses = await getStatuses(first, 200);
      const failed = statuses.filter((status) => status !== 200).length;

      expect(failed).toBeGreaterThanOrEqual(40);
      expect(failed).toBeLessThanOrEqual(80);
      expect(new Set(statuses)).toEqual(new Set([200, 500, 503]));
      expect(first.stats().faultsInjected).toBe(failed);
      expect(await getStatuses(replay, 200)).toEqual(statuses);
      expect(await getStatuses(otherSeed, 200)).not.toEqual(statuses);
    });

    it('When a 429 fault is injected, then the SDK sees TooManyRequests with the configured Retry-After', async () => {
      const emulator = await start({ faults: { rate: 1, statuses: [429], retryAfterSeconds: 7 } });
      const { resourceGroup, name } = createTestVault(emulator);

      const error = await restErrorOf(armClient(emulator).vaults.get(resourceGroup, name));

      expect(error.statusCode).toBe(429);
      expect(error.code).toBe('TooManyRequests');
      expect(error.response?.headers.get('retry-after')).toBe('7');
    });

    it('When a 503 fault is injected, then it is ServiceUnavailable with Retry-After 1 by default', async () => {
      const emulator = await start({ faults: { rate: 1, statuses: [503] } });
      const { resourceGroup, name } = createTestVault(emulator);

      const error = await restErrorOf(armClient(emulator).vaults.get(resourceGroup, name));

      expect(error.statusCode).toBe(503);
      expect(error.code).toBe('ServiceUnavailable');
      expect(error.response?.headers.get('retry-after')).toBe('1');
    });

    it('When a 500 fault is injected, then it is InternalServerError without Retry-After', async () => {
      const emulator = await start({ faults: { rate: 1, statuses: [500] } });
      const { resourceGroup, name } = createTestVault(emulator);

      const error = await restErrorOf(armClient(emulator).vaults.get(resourceGroup, name));

      expect(error.statusCode).toBe(500);
      expect(error.code).toBe('InternalServerError');
      expect(error.response?.headers.get('retry-after')).toBeUndefined();
    });

    it('When faults target PATCH only, then reads succeed and a faulted write applies nothing', async () => {
      const emulator = await start({ faults: { rate: 1, statuses: [500], methods: ['PATCH'] } });
      const client = armClient(emulator);
      const vault = createTestVault(emulator);
      const before = emulator.getNetworkAcls(vault.id);

      await client.vaults.get(vault.resourceGroup, vault.name);
      const error = await restErrorOf(
        client.vaults.update(vault.resourceGroup, vault.name, {
          properties: { networkAcls: { ...before, ipRules: [{ value: '20.0.0.1' }] } },
        }),
      );

      expect(error.statusCode).toBe(500);
      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
      expect(emulator.stats()).toMatchObject({
        gets: 1,
        patches: 1,
        writesApplied: 0,
        faultsInjected: 1,
      });
    });

    it('When faults are switched off again, then requests succeed', async () => {
      const emulator = await start({ faults: { rate: 1, statuses: [500] } });
      const { resourceGroup, name } = createTestVault(emulator);
      const client = armClient(emulator);
      await restErrorOf(client.vaults.get(resourceGroup, name));

      emulator.configure({ faults: null });

      await expect(client.vaults.get(resourceGroup, name)).resolves.toMatchObject({ name });
    });

    it('When the SDK retries are on and a 503 comes once, then the SDK waits the Retry-After and succeeds', async () => {
      const emulator = await start({ faults: { rate: 1, statuses: [503], retryAfterSeconds: 1 } });
      const vault = createTestVault(emulator);
      const client = armClient(emulator, { maxRetries: 3 });

      const began = performance.now();
      const read = client.vaults.get(vault.resourceGroup, vault.name);
      while (emulator.stats().faultsInjected === 0) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      emulator.configure({ faults: null });

      await expect(read).resolves.toMatchObject({ name: vault.name });
      expect(performance.now() - began).toBeGreaterThanOrEqual(950);
      expect(emulator.stats()).toMatchObject({ gets: 2, faultsInjected: 1 });
    });
  });

  describe('write throttle', () => {
    let emulator: RunningEmulator;

    beforeEach(async () => {
      emulator = await start({ writeThrottle: { capacity: 3, refillPerSecond: 0.5 } });
    });

    function addRule(
      vault: { id: string; resourceGroup: string; name: string },
      ip: string,
      subscriptionId?: string,
    ): Promise<unknown> {
      const acls = emulator.getNetworkAcls(vault.id);
      return armClient(
        emulator,
        subscriptionId === undefined ? {} : { subscriptionId },
      ).vaults.update(vault.resourceGroup, vault.name, {
        properties: { networkAcls: { ...acls, ipRules: [...acls.ipRules, { value: ip }] } },
      });
    }

    it('When the bucket is empty, then a write gets 429 TooManyRequests with the seconds until a token is back and applies nothing', async () => {
      const vault = createTestVault(emulator);
      for (const ip of ['20.0.0.1', '20.0.0.2', '20.0.0.3']) {
        await addRule(vault, ip);
      }
      const before = emulator.getNetworkAcls(vault.id);

      const error = await restErrorOf(addRule(vault, '20.0.0.4'));

      expect(error.statusCode).toBe(429);
      expect(error.code).toBe('TooManyRequests');
      expect(error.response?.headers.get('retry-after')).toBe('2');
      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
      expect(emulator.stats()).toMatchObject({ patches: 4, writesApplied: 3, throttled: 1 });
    });

    it('When one subscription is throttled, then another subscription can still write', async () => {
      const vault = createTestVault(emulator);
      const elsewhere = createTestVault(emulator, {
        subscriptionId: '22222222-2222-2222-2222-222222222222',
      });
      for (const ip of ['20.0.0.1', '20.0.0.2', '20.0.0.3']) {
        await addRule(vault, ip);
      }
      await restErrorOf(addRule(vault, '20.0.0.4'));

      await addRule(elsewhere, '20.0.0.4', '22222222-2222-2222-2222-222222222222');

      expect(emulator.getNetworkAcls(elsewhere.id).ipRules).toEqual([{ value: '20.0.0.4/32' }]);
    });

    it('When reads are made on a throttled subscription, then they are not throttled', async () => {
      const vault = createTestVault(emulator);
      for (const ip of ['20.0.0.1', '20.0.0.2', '20.0.0.3']) {
        await addRule(vault, ip);
      }

      await expect(
        armClient(emulator).vaults.get(vault.resourceGroup, vault.name),
      ).resolves.toBeDefined();
    });

    it('When a token has refilled, then the next write passes', async () => {
      // One token a second: the refusal does not depend on how fast this machine is.
      emulator.configure({ writeThrottle: { capacity: 1, refillPerSecond: 1 } });
      const vault = createTestVault(emulator);
      await addRule(vault, '20.0.0.1');
      const error = await restErrorOf(addRule(vault, '20.0.0.2'));
      expect(error.response?.headers.get('retry-after')).toBe('1');

      await new Promise((resolve) => setTimeout(resolve, 1100));
      await addRule(vault, '20.0.0.2');

      expect(emulator.getNetworkAcls(vault.id).ipRules).toHaveLength(2);
    });
  });
});
