import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { SqlFirewallRule } from '../../dev/emulator/sql/firewall-rules';
import type { RunningEmulator } from '../../dev/emulator/types';
import { sqlClient } from '../emulator/helpers';
import { SUBSCRIPTION, testBroker, testEmulator } from '../support/harness';

/*
 * SQL servers through the whole broker (contract §4, `sql`): the real writer,
 * azurite, and the emulator through @azure/arm-sql.
 */

let emulator: RunningEmulator;
const xff = (ip: string) => ({ 'x-forwarded-for': `203.0.113.9, ${ip}:51234` });
const ALLOW_AZURE: SqlFirewallRule = {
  name: 'AllowAllWindowsAzureIps',
  startIpAddress: '0.0.0.0',
  endIpAddress: '0.0.0.0',
};
const OFFICE: SqlFirewallRule = {
  name: 'office',
  startIpAddress: '20.40.60.0',
  endIpAddress: '20.40.60.255',
};

beforeAll(async () => {
  emulator = await testEmulator();
});
afterAll(async () => {
  await emulator.close();
});

let counter = 0;
/** A fresh server, its resource ID and its name. */
function sqlServer(
  rules: SqlFirewallRule[] = [ALLOW_AZURE, OFFICE],
  publicNetworkAccess: 'Enabled' | 'Disabled' = 'Enabled',
): { id: string; name: string } {
  counter += 1;
  const name = `sql-life-${counter}-${Math.random().toString(36).slice(2, 6)}`;
  const id = emulator.sql.create({
    subscriptionId: SUBSCRIPTION,
    resourceGroup: 'rg-test',
    name,
    firewallRules: rules,
    publicNetworkAccess,
  });
  return { id, name };
}

function rulesOn(id: string): SqlFirewallRule[] {
  return emulator.sql.listFirewallRules(id).sort((a, b) => a.name.localeCompare(b.name));
}

function foreign(count: number): SqlFirewallRule[] {
  return Array.from({ length: count }, (_, i) => {
    const address = `40.0.${Math.floor(i / 256)}.${i % 256}`;
    return { name: `other-${i}`, startIpAddress: address, endIpAddress: address };
  });
}

describe('SQL servers through the broker', () => {
  it('When two leases hold one address, then its kvlease- rule exists before each 201, stays until the last release and is gone before its 200; other rules never change', async () => {
    const server = sqlServer();
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const first = await broker.call('POST', '/api/leases', {
      body: { target: server.name },
      headers: xff('52.1.2.3'),
    });
    const afterFirst = rulesOn(server.id);
    const second = await broker.call('POST', '/api/leases', {
      body: { vault: server.name },
      headers: xff('52.1.2.3'),
    });
    const released = await broker.call('DELETE', `/api/leases/${first.body.id}`);
    const afterOne = rulesOn(server.id);
    const last = await broker.call('DELETE', `/api/leases/${second.body.id}`);

    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      target: server.name,
      vault: server.name,
      kind: 'sql',
      ip: '52.1.2.3/32',
      status: 'active',
    });
    expect(second.status).toBe(201);
    const leased = {
      name: 'kvlease-52.1.2.3-32',
      startIpAddress: '52.1.2.3',
      endIpAddress: '52.1.2.3',
    };
    expect(afterFirst).toEqual([ALLOW_AZURE, leased, OFFICE]);
    expect(released.status).toBe(200);
    expect(afterOne).toEqual([ALLOW_AZURE, leased, OFFICE]);
    expect(last.status).toBe(200);
    expect(rulesOn(server.id)).toEqual([ALLOW_AZURE, OFFICE]);
  });

  it('When a server is listed, then it shows its kind, limit, every rule counted and its data plane host:1433', async () => {
    const server = sqlServer();
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });
    // Not listed before the grant: the view learns the other rules from the pass's write.
    await broker.call('POST', '/api/leases', {
      body: { target: server.name },
      headers: xff('52.1.2.4'),
    });

    const listed = await broker.call('GET', '/api/targets');
    // The emulator names its own TDS listener as the server's host when it runs one.
    const host = (await sqlClient(emulator).servers.get('rg-test', server.name))
      .fullyQualifiedDomainName;

    expect(listed.status).toBe(200);
    expect(listed.body.value).toEqual([
      expect.objectContaining({
        name: server.name,
        kind: 'sql',
        resourceId: server.id,
        activeLeases: 1,
        brokerRules: 1,
        totalRules: 3,
        maxRules: 128,
        dataPlane: `${host}:1433`,
      }),
    ]);
  });

  it('When the server is full counting rules the broker did not add, then a grant is refused with 409 at capacity and nothing is written', async () => {
    const server = sqlServer(foreign(127));
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const fits = await broker.call('POST', '/api/leases', {
      body: { target: server.name },
      headers: xff('52.1.2.5'),
    });
    const over = await broker.call('POST', '/api/leases', {
      body: { target: server.name },
      headers: xff('52.1.2.6'),
    });

    expect(fits.status).toBe(201);
    expect(over.status).toBe(409);
    expect(over.body.type).toMatch(/vault-at-capacity/);
    expect(rulesOn(server.id)).toHaveLength(128);
  });

  it('When public network access is disabled on the server, then a grant fails at once with 502 saying so, and no lease stays active', async () => {
    const server = sqlServer([ALLOW_AZURE], 'Disabled');
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });

    const started = Date.now();
    const refused = await broker.call('POST', '/api/leases', {
      body: { target: server.name },
      headers: xff('52.1.2.7'),
    });
    const active = await broker.call('GET', `/api/leases?target=${server.name}`);

    expect(refused.status).toBe(502);
    expect(refused.body.type).toMatch(/vault-unavailable/);
    expect(refused.body.detail).toMatch(/public network access is disabled/i);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(active.body.value).toEqual([]);
    expect(rulesOn(server.id)).toEqual([ALLOW_AZURE]);
  });

  it('When kvlease- rules no lease holds, or malformed ones, are on the server, then the sweep deletes them and puts back a leased rule someone deleted', async () => {
    const server = sqlServer([
      ALLOW_AZURE,
      { name: 'kvlease-52.9.9.9-32', startIpAddress: '52.9.9.9', endIpAddress: '52.9.9.9' },
      { name: 'kvlease-junk', startIpAddress: '52.9.9.10', endIpAddress: '52.9.9.10' },
    ]);
    const broker = testBroker({ emulator, vaults: [], targets: [server.id] });
    const granted = await broker.call('POST', '/api/leases', {
      body: { target: server.name },
      headers: xff('52.1.2.8'),
    });
    emulator.sql.deleteFirewallRule(server.id, 'kvlease-52.1.2.8-32');

    await broker.services.sweep();

    expect(granted.status).toBe(201);
    expect(rulesOn(server.id)).toEqual([
      ALLOW_AZURE,
      { name: 'kvlease-52.1.2.8-32', startIpAddress: '52.1.2.8', endIpAddress: '52.1.2.8' },
    ]);
  });
});
