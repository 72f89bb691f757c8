import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type EmulatorStats, type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { armClient, createTestVault, rawRequest, uniqueName } from './helpers';

describe('Key Vault ARM emulator: admin API and module API', () => {
  let emulator: RunningEmulator;

  beforeEach(async () => {
    emulator = await startEmulator();
  });

  afterEach(async () => {
    await emulator.close();
  });

  describe('admin HTTP API (no auth)', () => {
    it('When a vault is posted, then it answers 201 with the id and the SDK can read the vault', async () => {
      const name = uniqueName();

      const response = await rawRequest(emulator, 'POST', '/_emulator/vaults', {
        body: {
          resourceGroup: 'rg-admin',
          name,
          networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '52.1.2.3' }] },
        },
      });

      expect(response.status).toBe(201);
      const { id } = response.json() as { id: string };
      expect(id).toBe(
        `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-admin/providers/Microsoft.KeyVault/vaults/${name}`,
      );
      const vault = await armClient(emulator).vaults.get('rg-admin', name);
      expect(vault.properties.networkAcls).toEqual({
        bypass: 'AzureServices',
        defaultAction: 'Deny',
        ipRules: [{ value: '52.1.2.3/32' }],
        virtualNetworkRules: [],
      });
    });

    it('When a posted vault has a private rule or an invalid name, then it answers 400 and creates nothing', async () => {
      const privateRule = await rawRequest(emulator, 'POST', '/_emulator/vaults', {
        body: {
          resourceGroup: 'rg-admin',
          name: uniqueName(),
          networkAcls: { ipRules: [{ value: '10.1.1.1' }] },
        },
      });
      const badName = await rawRequest(emulator, 'POST', '/_emulator/vaults', {
        body: { resourceGroup: 'rg-admin', name: 'this-vault-name-is-far-too-long-for-azure' },
      });
      const unknownField = await rawRequest(emulator, 'POST', '/_emulator/vaults', {
        body: { resourceGroup: 'rg-admin', name: uniqueName(), colour: 'blue' },
      });

      expect(privateRule.status).toBe(400);
      expect(privateRule.json()).toMatchObject({ error: { code: 'BadRequest' } });
      expect(badName.status).toBe(400);
      expect(unknownField.status).toBe(400);
      const list = await rawRequest(emulator, 'GET', '/_emulator/vaults');
      expect(list.json()).toEqual({ value: [] });
    });

    it('When the same vault is posted twice, then the second answers 409', async () => {
      const body = { resourceGroup: 'rg-admin', name: uniqueName() };

      const first = await rawRequest(emulator, 'POST', '/_emulator/vaults', { body });
      const second = await rawRequest(emulator, 'POST', '/_emulator/vaults', {
        body: { ...body, name: body.name.toUpperCase() },
      });

      expect(first.status).toBe(201);
      expect(second.status).toBe(409);
    });

    it('When vaults are listed, then every vault is returned in its ARM shape', async () => {
      const one = createTestVault(emulator);
      const two = createTestVault(emulator);

      const response = await rawRequest(emulator, 'GET', '/_emulator/vaults');

      expect(response.status).toBe(200);
      const { value } = response.json() as { value: { id: string; type: string }[] };
      expect(value.map((vault) => vault.id).sort()).toEqual([one.id, two.id].sort());
      expect(value.every((vault) => vault.type === 'Microsoft.KeyVault/vaults')).toBe(true);
    });

    it('When someone else puts partial acls, then only the fields sent change, with no ARM write counted', async () => {
      const vault = createTestVault(emulator);

      const response = await rawRequest(
        emulator,
        'PUT',
        `/_emulator/vaults/acls?id=${encodeURIComponent(vault.id.toUpperCase())}`,
        { body: { ipRules: [{ value: '30.1.2.3' }] } },
      );

      expect(response.status).toBe(200);
      expect(emulator.getNetworkAcls(vault.id)).toEqual({
        bypass: 'AzureServices',
        defaultAction: 'Deny',
        ipRules: [{ value: '30.1.2.3/32' }],
        virtualNetworkRules: [],
      });
      expect(emulator.stats()).toMatchObject({ patches: 0, puts: 0, writesApplied: 0 });
    });

    it('When someone else puts invalid acls or names an unknown vault, then it answers 400 or 404 and nothing changes', async () => {
      const vault = createTestVault(emulator);
      const before = emulator.getNetworkAcls(vault.id);

      const invalid = await rawRequest(
        emulator,
        'PUT',
        `/_emulator/vaults/acls?id=${encodeURIComponent(vault.id)}`,
        {
          body: { ipRules: [{ value: '30.1.2.3' }, { value: '192.168.0.1' }] },
        },
      );
      const unknown = await rawRequest(
        emulator,
        'PUT',
        `/_emulator/vaults/acls?id=${encodeURIComponent(vault.id.replace(/[^/]+$/, 'kv-unknown'))}`,
        { body: { ipRules: [] } },
      );

      expect(invalid.status).toBe(400);
      expect(unknown.status).toBe(404);
      expect(emulator.getNetworkAcls(vault.id)).toEqual(before);
    });

    it('When the config is patched, then it answers the new config and the emulator uses it', async () => {
      const patched = await rawRequest(emulator, 'PATCH', '/_emulator/config', {
        body: {
          writeLatencyMs: 25,
          conflictOnOverlap: false,
          writeThrottle: { capacity: 5, refillPerSecond: 1 },
        },
      });
      const read = await rawRequest(emulator, 'GET', '/_emulator/config');

      const expected = {
        readLatencyMs: 0,
        writeLatencyMs: 25,
        conflictOnOverlap: false,
        faults: null,
        writeThrottle: { capacity: 5, refillPerSecond: 1 },
        hang: null,
        lateApply: null,
        refusals: [],
        interruptedDeletes: null,
      };
      expect(patched.status).toBe(200);
      expect(patched.json()).toEqual(expected);
      expect(read.json()).toEqual(expected);
    });

    it('When an invalid config is patched, then it answers 400 naming the field and nothing changes', async () => {
      const before = (await rawRequest(emulator, 'GET', '/_emulator/config')).json();

      const negative = await rawRequest(emulator, 'PATCH', '/_emulator/config', {
        body: { writeLatencyMs: 10, faults: { rate: 2, statuses: [500] } },
      });
      const unknownKey = await rawRequest(emulator, 'PATCH', '/_emulator/config', {
        body: { writeLatency: 10 },
      });

      expect(negative.status).toBe(400);
      expect(negative.text).toContain('faults.rate');
      expect(unknownKey.status).toBe(400);
      expect((await rawRequest(emulator, 'GET', '/_emulator/config')).json()).toEqual(before);
    });

    it('When stats are read and reset, then they count ARM requests and go back to zero', async () => {
      const vault = createTestVault(emulator);
      await armClient(emulator).vaults.get(vault.resourceGroup, vault.name);

      const stats = (await rawRequest(emulator, 'GET', '/_emulator/stats')).json() as EmulatorStats;
      const reset = await rawRequest(emulator, 'POST', '/_emulator/stats/reset');

      expect(stats.gets).toBe(1);
      expect(stats.perVault[vault.id.toLowerCase()]).toEqual({
        gets: 1,
        writes: 0,
        writesApplied: 0,
        conflicts: 0,
      });
      expect(reset.status).toBe(200);
      expect(reset.json()).toMatchObject({ gets: 0, patches: 0, puts: 0 });
      expect(emulator.stats().perVault[vault.id.toLowerCase()]).toEqual({
        gets: 0,
        writes: 0,
        writesApplied: 0,
        conflicts: 0,
      });
    });

    it('When health is asked, then it answers 200', async () => {
      const response = await rawRequest(emulator, 'GET', '/_emulator/health');

      expect(response.status).toBe(200);
      expect(response.json()).toEqual({ status: 'ok' });
    });

    it('When an admin route is unknown or the method is wrong, then it answers 404 or 405 in the ARM error shape', async () => {
      const unknown = await rawRequest(emulator, 'GET', '/_emulator/nothing');
      const wrongMethod = await rawRequest(emulator, 'DELETE', '/_emulator/vaults');

      expect(unknown.status).toBe(404);
      expect(unknown.json()).toMatchObject({ error: { code: 'NotFound' } });
      expect(wrongMethod.status).toBe(405);
      expect(wrongMethod.headers.allow).toBe('GET, POST');
    });
  });

  describe('module API', () => {
    it('When createVault gets a name Azure would refuse or an existing vault, then it throws', () => {
      const vault = createTestVault(emulator);

      expect(() =>
        emulator.createVault({ resourceGroup: 'rg', name: '1starts-with-digit' }),
      ).toThrow(/vault name/);
      expect(() => emulator.createVault({ resourceGroup: 'rg', name: 'double--dash' })).toThrow(
        /vault name/,
      );
      expect(() =>
        emulator.createVault({
          resourceGroup: vault.resourceGroup.toUpperCase(),
          name: vault.name,
        }),
      ).toThrow(/already exists/);
    });

    it('When getNetworkAcls is given an unknown id, then it throws', () => {
      expect(() =>
        emulator.getNetworkAcls(
          '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-none',
        ),
      ).toThrow(/No vault/);
    });

    it('When getNetworkAcls is called, then it returns a copy the caller cannot use to change the vault', () => {
      const vault = createTestVault(emulator, {
        networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '52.1.2.3' }] },
      });

      emulator.getNetworkAcls(vault.id).ipRules.push({ value: '52.9.9.9/32' });

      expect(emulator.getNetworkAcls(vault.id).ipRules).toEqual([{ value: '52.1.2.3/32' }]);
    });

    it('When configure gets an invalid patch, then it throws and keeps the old config', async () => {
      emulator.configure({ readLatencyMs: 5 });

      expect(() => emulator.configure({ readLatencyMs: -1 })).toThrow(/readLatencyMs/);
      expect(() => emulator.configure({ hang: { rate: 0.5, ms: -3 } })).toThrow(/hang/);
      expect((await rawRequest(emulator, 'GET', '/_emulator/config')).json()).toMatchObject({
        readLatencyMs: 5,
        hang: null,
      });
    });

    it('When close is called twice, then both resolve and the port stops answering', async () => {
      const other = await startEmulator();

      await Promise.all([other.close(), other.close()]);

      await expect(rawRequest(other, 'GET', '/_emulator/health')).rejects.toThrow();
    });
  });
});
