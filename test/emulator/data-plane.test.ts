import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { startReadyLine } from '../../dev/local/processes';
import { armClient, BEARER, createTestVault, rawRequest } from './helpers';

/** GET {vaultUri}secrets as the kv-lease probe sends it. */
function probe(emulator: RunningEmulator, name: string, headers: Record<string, string> = BEARER) {
  const uri = new URL(emulator.vaultUri(name));
  return rawRequest(emulator, 'GET', `${uri.pathname}secrets?api-version=7.5&maxresults=1`, {
    headers,
  });
}

async function until<T>(what: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 200; i += 1) {
    const value = await what();
    if (done(value)) return value;
    await delay(25);
  }
  throw new Error('condition not reached');
}

describe('Key Vault emulator: the data plane at each vault URI', () => {
  let emulator: RunningEmulator;

  beforeEach(async () => {
    emulator = await startEmulator({ dataPlane: { clientAddress: '52.10.20.30' } });
  });

  afterEach(async () => {
    await emulator.close();
  });

  it('When the SDK reads a vault, then its vaultUri points at the emulator over https', async () => {
    const { name, resourceGroup } = createTestVault(emulator);

    const vault = await armClient(emulator).vaults.get(resourceGroup, name);

    expect(vault.properties.vaultUri).toBe(`${emulator.url}/data-plane/${name}/`);
  });

  it('When a request has no bearer token, then it is a 401 challenge, firewall or not', async () => {
    const { name } = createTestVault(emulator);

    const response = await probe(emulator, name, {});

    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it('When the address is not in the rules, then it is a 403 ForbiddenByFirewall naming the client address', async () => {
    const { name } = createTestVault(emulator);

    const response = await probe(emulator, name);

    expect(response.status).toBe(403);
    const body = response.json() as any;
    expect(body.error.innererror.code).toBe('ForbiddenByFirewall');
    expect(body.error.message).toContain('Client address: 52.10.20.30');
    expect(emulator.dataPlaneStats().refused).toBe(1);
  });

  it('When the broker adds the rule, then the data plane refuses until the propagation delay has passed, then answers 200', async () => {
    emulator.configureDataPlane({ propagationDelayMs: 600 });
    const { name, resourceGroup, id } = createTestVault(emulator);
    const client = armClient(emulator);
    const acls = emulator.getNetworkAcls(id);

    const wroteAt = Date.now();
    await client.vaults.update(resourceGroup, name, {
      properties: { networkAcls: { ...acls, ipRules: [{ value: '52.10.20.30' }] } },
    });
    const right = await probe(emulator, name);
    const opened = await until(
      () => probe(emulator, name),
      (response) => response.status === 200,
    );
    const openedAfter = Date.now() - wroteAt;

    expect(right.status).toBe(403);
    expect(opened.json()).toEqual({ value: [], nextLink: null });
    expect(openedAfter).toBeGreaterThanOrEqual(600);
  });

  it('When a rule is removed, then the data plane keeps admitting the address until the delay has passed', async () => {
    const { name, id } = createTestVault(emulator, {
      networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '52.10.20.0/24' }] },
    });
    expect((await probe(emulator, name)).status).toBe(200);
    emulator.configureDataPlane({ propagationDelayMs: 400 });

    emulator.setNetworkAcls(id, { ipRules: [] });
    const during = await probe(emulator, name);
    const closed = await until(
      () => probe(emulator, name),
      (response) => response.status === 403,
    );

    expect(during.status).toBe(200);
    expect(closed.status).toBe(403);
  });

  it('When one vault is given its own client address through the admin API, then only that vault sees it', async () => {
    const first = createTestVault(emulator, {
      networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '52.10.20.30' }] },
    });
    const second = createTestVault(emulator, {
      networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '52.10.20.30' }] },
    });

    const patched = await rawRequest(emulator, 'PATCH', '/_emulator/data-plane', {
      body: { vaults: { [second.name]: { clientAddress: '20.1.2.3' } } },
    });
    const other = await probe(emulator, first.name);
    const moved = await probe(emulator, second.name);

    expect(patched.status).toBe(200);
    expect(other.status).toBe(200);
    expect(moved.status).toBe(403);
    expect((moved.json() as any).error.message).toContain('Client address: 20.1.2.3');
  });

  it('When a data-plane patch is invalid, then it is a 400 that changes nothing', async () => {
    const before = await rawRequest(emulator, 'GET', '/_emulator/data-plane');

    const response = await rawRequest(emulator, 'PATCH', '/_emulator/data-plane', {
      body: { clientAddress: '10.0.0.300', propagationDelayMs: -1 },
    });
    const after = await rawRequest(emulator, 'GET', '/_emulator/data-plane');

    expect(response.status).toBe(400);
    expect(response.text).toMatch(/clientAddress/);
    expect((after.json() as any).config).toEqual((before.json() as any).config);
  });

  it('When public network access is disabled, then the refusal is ForbiddenByConnection', async () => {
    const { name, resourceGroup } = createTestVault(emulator);
    await armClient(emulator).vaults.update(resourceGroup, name, {
      properties: { publicNetworkAccess: 'Disabled' },
    });

    const response = await probe(emulator, name);

    expect(response.status).toBe(403);
    expect((response.json() as any).error.innererror.code).toBe('ForbiddenByConnection');
  });

  it('When no client address is configured, then the vault sees the TCP peer', async () => {
    const plain = await startEmulator({ vaults: [] });
    try {
      const { name } = createTestVault(plain);
      const response = await probe(plain, name);
      expect((response.json() as any).error.message).toContain('Client address: 127.0.0.1');
    } finally {
      await plain.close();
    }
  });

  it('When the emulator CLI gets --propagation-delay and --client-address, then its data plane is configured with them', async () => {
    // The compiled CLI (npm run build, pretest), as npm start and the benchmark run it.
    const script = join(resolve(__dirname, '..', '..'), 'dist', 'dev', 'emulator', 'cli.js');
    const { child, ready } = await startReadyLine<{ ready: true; url: string; caPath: string }>(
      'emulator',
      script,
      ['--propagation-delay', '1500', '--client-address', '52.1.2.3'],
      process.env,
    );
    try {
      const config = await rawRequest(
        { url: ready.url, caPem: readFileSync(ready.caPath, 'utf8') },
        'GET',
        '/_emulator/data-plane',
      );
      expect((config.json() as any).config).toMatchObject({
        propagationDelayMs: 1500,
        clientAddress: '52.1.2.3',
      });
    } finally {
      await child.stop();
    }
  });
});
