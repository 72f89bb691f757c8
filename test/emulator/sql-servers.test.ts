import type { SqlManagementClient } from '@azure/arm-sql';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { rawRequest, restErrorOf, sqlClient, uniqueName, until } from './helpers';

const RG = 'rg-sql';

describe('Emulator: SQL servers and firewall rules through @azure/arm-sql', () => {
  let emulator: RunningEmulator;
  let client: SqlManagementClient;

  beforeEach(async () => {
    emulator = await startEmulator();
    client = sqlClient(emulator);
  });

  afterEach(async () => {
    await emulator.close();
  });

  function createServer(
    options: { publicNetworkAccess?: 'Enabled' | 'Disabled'; allowAzureServices?: boolean } = {},
  ): { id: string; name: string } {
    const name = uniqueName('sql');
    return { id: emulator.sql.create({ resourceGroup: RG, name, ...options }), name };
  }

  async function listRules(server: string): Promise<string[]> {
    const names: string[] = [];
    for await (const rule of client.firewallRules.listByServer(RG, server)) {
      names.push(rule.name ?? '');
    }
    return names.sort();
  }

  it('When a server is read, then the SDK sees its publicNetworkAccess and, as FQDN, the host of its TDS endpoint', async () => {
    const server = createServer();

    const read = await client.servers.get(RG, server.name);

    expect(read.id).toBe(server.id);
    expect(read.fullyQualifiedDomainName).toBe('127.0.0.1');
    expect(await emulator.sql.dataPlaneAddress(server.id)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(read.publicNetworkAccess).toBe('Enabled');
  });

  it('When a rule is created, read, updated, listed and deleted, then each answers as Azure SQL does', async () => {
    const server = createServer({ allowAzureServices: true });

    const created = await client.firewallRules.createOrUpdate(
      RG,
      server.name,
      'kvlease-52-10-20-30',
      {
        startIpAddress: '52.10.20.30',
        endIpAddress: '52.10.20.30',
      },
    );
    const read = await client.firewallRules.get(RG, server.name, 'kvlease-52-10-20-30');
    const updated = await client.firewallRules.createOrUpdate(
      RG,
      server.name,
      'KVLEASE-52-10-20-30',
      {
        startIpAddress: '52.10.20.30',
        endIpAddress: '52.10.20.31',
      },
    );
    const listed = await listRules(server.name);
    await client.firewallRules.delete(RG, server.name, 'kvlease-52-10-20-30');
    const missing = await restErrorOf(
      client.firewallRules.get(RG, server.name, 'kvlease-52-10-20-30'),
    );
    await client.firewallRules.delete(RG, server.name, 'kvlease-52-10-20-30');

    expect(created).toMatchObject({
      name: 'kvlease-52-10-20-30',
      startIpAddress: '52.10.20.30',
      endIpAddress: '52.10.20.30',
    });
    expect(created.id).toBe(`${server.id}/firewallRules/kvlease-52-10-20-30`);
    expect(read.endIpAddress).toBe('52.10.20.30');
    expect(updated).toMatchObject({ name: 'kvlease-52-10-20-30', endIpAddress: '52.10.20.31' });
    expect(listed).toEqual(['AllowAllWindowsAzureIps', 'kvlease-52-10-20-30']);
    expect(missing.statusCode).toBe(404);
    expect(emulator.sql.listFirewallRules(server.id)).toEqual([
      { name: 'AllowAllWindowsAzureIps', startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' },
    ]);
    expect(emulator.sql.stats()[server.id.toLowerCase()]).toMatchObject({
      puts: 2,
      deletes: 2,
      writesApplied: 3,
      lists: 1,
    });
  });

  it('When a PUT creates a rule, then it answers 201, and 200 when it replaces one', async () => {
    const server = createServer();
    const path = `${server.id}/firewallRules/r1?api-version=2021-11-01`;
    const body = { properties: { startIpAddress: '52.1.1.1', endIpAddress: '52.1.1.1' } };

    const first = await rawRequest(emulator, 'PUT', path, {
      headers: { authorization: 'Bearer t' },
      body,
    });
    const second = await rawRequest(emulator, 'PUT', path, {
      headers: { authorization: 'Bearer t' },
      body,
    });

    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
  });

  it.each([
    ['a slash (percent-encoded)', 'a%2Fb'],
    ['a colon', 'a:b'],
    ['an asterisk', 'a*b'],
    ['a percent sign', 'a%25b'],
    ['an ampersand', 'a&b'],
    ['a control character', 'a%01b'],
    ['129 characters', 'r'.repeat(129)],
  ])(
    'When a rule name has %s, then the PUT answers 400 and nothing is created',
    async (_label, name) => {
      const server = createServer();

      const response = await rawRequest(
        emulator,
        'PUT',
        `${server.id}/firewallRules/${name}?api-version=2021-11-01`,
        {
          headers: { authorization: 'Bearer t' },
          body: { properties: { startIpAddress: '52.1.1.1', endIpAddress: '52.1.1.1' } },
        },
      );

      expect(response.status).toBe(400);
      expect(response.json()).toMatchObject({ error: { code: 'InvalidResourceName' } });
      expect(emulator.sql.listFirewallRules(server.id)).toEqual([]);
    },
  );

  it('When a 128-character name is used, then it is accepted', async () => {
    const server = createServer();

    await client.firewallRules.createOrUpdate(RG, server.name, 'r'.repeat(128), {
      startIpAddress: '52.1.1.1',
      endIpAddress: '52.1.1.1',
    });

    expect(emulator.sql.listFirewallRules(server.id)).toHaveLength(1);
  });

  it('When start is above end or not IPv4, then the PUT answers 400', async () => {
    const server = createServer();

    const reversed = await restErrorOf(
      client.firewallRules.createOrUpdate(RG, server.name, 'r', {
        startIpAddress: '52.1.1.2',
        endIpAddress: '52.1.1.1',
      }),
    );
    const v6 = await restErrorOf(
      client.firewallRules.createOrUpdate(RG, server.name, 'r', {
        startIpAddress: '::1',
        endIpAddress: '::1',
      }),
    );

    expect(reversed.statusCode).toBe(400);
    expect(v6.statusCode).toBe(400);
    expect(v6.code).toBe('FirewallRuleNotIPv4Address');
    expect(emulator.sql.listFirewallRules(server.id)).toEqual([]);
  });

  it('When a server holds 128 rules (AllowAllWindowsAzureIps included), then the 129th fails with 40611 and an update of an existing one still works', async () => {
    const server = createServer({ allowAzureServices: true });
    for (let i = 0; i < 127; i += 1) {
      emulator.sql.setFirewallRule(server.id, {
        name: `other-${i}`,
        startIpAddress: `52.0.${i}.1`,
        endIpAddress: `52.0.${i}.1`,
      });
    }

    const error = await restErrorOf(
      client.firewallRules.createOrUpdate(RG, server.name, 'kvlease-one-more', {
        startIpAddress: '52.9.9.9',
        endIpAddress: '52.9.9.9',
      }),
    );
    await client.firewallRules.createOrUpdate(RG, server.name, 'other-0', {
      startIpAddress: '52.9.9.9',
      endIpAddress: '52.9.9.9',
    });

    expect(error.statusCode).toBe(400);
    expect(error.code).toBe('40611');
    expect(error.message).toContain('maximum of 128 firewall rules');
    expect(emulator.sql.listFirewallRules(server.id)).toHaveLength(128);
  });

  it('When public network access is disabled, then rule writes answer 400 DenyPublicEndpointEnabled and change nothing', async () => {
    const server = createServer({ publicNetworkAccess: 'Disabled' });
    emulator.sql.setFirewallRule(server.id, {
      name: 'keep',
      startIpAddress: '52.1.1.1',
      endIpAddress: '52.1.1.1',
    });

    const put = await restErrorOf(
      client.firewallRules.createOrUpdate(RG, server.name, 'kvlease-x', {
        startIpAddress: '52.2.2.2',
        endIpAddress: '52.2.2.2',
      }),
    );
    const deleted = await restErrorOf(client.firewallRules.delete(RG, server.name, 'keep'));
    const read = await client.servers.get(RG, server.name);

    expect(put.statusCode).toBe(400);
    expect(put.code).toBe('DenyPublicEndpointEnabled');
    expect(deleted.code).toBe('DenyPublicEndpointEnabled');
    expect(read.publicNetworkAccess).toBe('Disabled');
    expect(emulator.sql.listFirewallRules(server.id).map((rule) => rule.name)).toEqual(['keep']);
  });

  it('When interruptedDeletes is on, then a delete answers 409 OperationInterrupted and the rule stays', async () => {
    const server = createServer();
    emulator.sql.setFirewallRule(server.id, {
      name: 'kvlease-a',
      startIpAddress: '52.1.1.1',
      endIpAddress: '52.1.1.1',
    });
    emulator.configure({ interruptedDeletes: { rate: 1 } });

    const error = await restErrorOf(client.firewallRules.delete(RG, server.name, 'kvlease-a'));

    expect(error.statusCode).toBe(409);
    expect(error.code).toBe('OperationInterrupted');
    expect(emulator.sql.listFirewallRules(server.id)).toHaveLength(1);
    expect(emulator.sql.stats()[server.id.toLowerCase()]?.interrupted).toBe(1);
  });

  it('When PUTs of different rules overlap, then all apply (no 409) and the peak in flight is counted', async () => {
    emulator.configure({ writeLatencyMs: 200 });
    const server = createServer();
    const put = (i: number) =>
      client.firewallRules.createOrUpdate(RG, server.name, `kvlease-${i}`, {
        startIpAddress: `52.1.1.${i}`,
        endIpAddress: `52.1.1.${i}`,
      });

    const all = Promise.all([1, 2, 3, 4].map(put));
    await until(() => (emulator.sql.stats()[server.id.toLowerCase()]?.writesInFlight ?? 0) >= 2);
    await all;

    expect(await listRules(server.name)).toEqual([
      'kvlease-1',
      'kvlease-2',
      'kvlease-3',
      'kvlease-4',
    ]);
    expect(emulator.sql.stats()[server.id.toLowerCase()]).toMatchObject({
      writesInFlight: 0,
      writesApplied: 4,
    });
    expect(
      emulator.sql.stats()[server.id.toLowerCase()]?.peakWritesInFlight,
    ).toBeGreaterThanOrEqual(2);
  });

  it('When the shared refusal names the server, then its reads and writes answer 403 AuthorizationFailed', async () => {
    const server = createServer();
    emulator.configure({ refusals: [{ vault: server.name, status: 403, methods: ['PUT'] }] });

    const error = await restErrorOf(
      client.firewallRules.createOrUpdate(RG, server.name, 'r', {
        startIpAddress: '52.1.1.1',
        endIpAddress: '52.1.1.1',
      }),
    );

    expect(error.statusCode).toBe(403);
    expect(error.message).toContain('Microsoft.Sql/servers/write');
    expect(emulator.sql.listFirewallRules(server.id)).toEqual([]);
  });

  it('When an unknown server is read or written, then the answer is 404', async () => {
    const read = await restErrorOf(client.servers.get(RG, 'nosuchserver'));
    const put = await restErrorOf(
      client.firewallRules.createOrUpdate(RG, 'nosuchserver', 'r', {
        startIpAddress: '52.1.1.1',
        endIpAddress: '52.1.1.1',
      }),
    );

    expect(read.statusCode).toBe(404);
    expect(put.statusCode).toBe(404);
  });

  it('When the admin API creates a server, edits rules and flips public access, then the SDK sees it', async () => {
    const name = uniqueName('sql');
    const created = await rawRequest(emulator, 'POST', '/_emulator/sql-servers', {
      body: {
        resourceGroup: RG,
        name,
        allowAzureServices: true,
        firewallRules: [{ name: 'office', startIpAddress: '52.5.5.0', endIpAddress: '52.5.5.255' }],
      },
    });
    const { id } = created.json() as { id: string };
    const q = `id=${encodeURIComponent(id)}`;
    const put = await rawRequest(
      emulator,
      'PUT',
      `/_emulator/sql-servers/firewall-rules?${q}&name=extra`,
      {
        body: { startIpAddress: '52.6.6.6', endIpAddress: '52.6.6.6' },
      },
    );
    const removed = await rawRequest(
      emulator,
      'DELETE',
      `/_emulator/sql-servers/firewall-rules?${q}&name=office`,
    );
    const flipped = await rawRequest(emulator, 'PATCH', `/_emulator/sql-servers?${q}`, {
      body: { publicNetworkAccess: 'Disabled' },
    });
    const badSpec = await rawRequest(emulator, 'POST', '/_emulator/sql-servers', {
      body: { resourceGroup: RG, name: 'Bad_Name' },
    });

    expect(created.status).toBe(201);
    expect(put.status).toBe(200);
    expect(removed.status).toBe(200);
    expect(flipped.status).toBe(200);
    expect(badSpec.status).toBe(400);
    expect(await listRules(name)).toEqual(['AllowAllWindowsAzureIps', 'extra']);
    expect((await client.servers.get(RG, name)).publicNetworkAccess).toBe('Disabled');
  });
});
