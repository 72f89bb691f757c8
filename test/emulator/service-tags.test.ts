import { afterEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { networkClient, rawRequest, restErrorOf } from './helpers';

describe('Emulator: the Service Tag Discovery API through @azure/arm-network', () => {
  let emulator: RunningEmulator;

  afterEach(async () => {
    await emulator.close();
  });

  it('When the tags are listed, then every configured region comes back as AzureCloud.<region> with its prefixes and the changeNumber', async () => {
    emulator = await startEmulator({
      serviceTags: {
        changeNumber: 42,
        regions: { westeurope: ['20.50.0.0/18'], eastus: ['40.71.0.0/16', '52.168.0.0/16'] },
      },
    });

    const result = await networkClient(emulator).serviceTags.list('westeurope');

    expect(result.changeNumber).toBe('42');
    expect(result.cloud).toBe('Public');
    const byName = new Map(result.values?.map((tag) => [tag.name, tag.properties]));
    expect(byName.get('AzureCloud.westeurope')).toMatchObject({
      region: 'westeurope',
      addressPrefixes: ['20.50.0.0/18'],
    });
    expect(byName.get('AzureCloud.eastus')).toMatchObject({
      region: 'eastus',
      addressPrefixes: ['40.71.0.0/16', '52.168.0.0/16'],
    });
    expect(byName.get('AzureCloud')?.addressPrefixes).toHaveLength(3);
    expect(emulator.serviceTags.gets()).toBe(1);
  });

  it('When no tags are configured, then the defaults hold public IPv4 ranges for a few regions', async () => {
    emulator = await startEmulator();

    const result = await networkClient(emulator).serviceTags.list('northeurope');

    const regions = result.values?.map((tag) => tag.properties?.region).filter(Boolean);
    expect(regions).toEqual(expect.arrayContaining(['westeurope', 'northeurope', 'eastus']));
    for (const prefix of result.values?.flatMap((tag) => tag.properties?.addressPrefixes ?? []) ??
      []) {
      expect(prefix).not.toMatch(
        /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|127\.|192\.0\.2\.|198\.51\.100\.|203\.0\.113\.)/,
      );
    }
  });

  it('When the admin API replaces the tags, then the next list shows them; an invalid set is refused and changes nothing', async () => {
    emulator = await startEmulator();
    const client = networkClient(emulator);

    const replaced = await rawRequest(emulator, 'PUT', '/_emulator/service-tags', {
      body: { changeNumber: 7, regions: { uksouth: ['51.140.0.0/17'] } },
    });
    const invalid = await rawRequest(emulator, 'PUT', '/_emulator/service-tags', {
      body: { changeNumber: 8, regions: { uksouth: ['51.140.0.1/17'] } },
    });
    const result = await client.serviceTags.list('uksouth');

    expect(replaced.status).toBe(200);
    expect(invalid.status).toBe(400);
    expect(result.changeNumber).toBe('7');
    expect(result.values?.map((tag) => tag.name)).toEqual(['AzureCloud', 'AzureCloud.uksouth']);
  });

  it('When the serviceTags refusal or a fault is configured, then the list fails as Azure would', async () => {
    emulator = await startEmulator({ refusals: [{ vault: 'serviceTags', status: 403 }] });
    const client = networkClient(emulator);

    const forbidden = await restErrorOf(client.serviceTags.list('westeurope'));
    emulator.configure({ refusals: [], faults: { rate: 1, statuses: [500], methods: ['GET'] } });
    const failed = await restErrorOf(client.serviceTags.list('westeurope'));

    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.message).toContain('Microsoft.Network/locations/serviceTags/read');
    expect(failed.statusCode).toBe(500);
  });
});
