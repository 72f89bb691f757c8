import { describe, expect, it } from 'vitest';

import { FirewallError } from '../../src/ports/target-firewall';
import { InMemoryLeaseStore } from '../fakes/lease-store';
import { STATIC_RULE, unitBroker } from '../support/unit-broker';

/**
 * The use cases through the real route table, in memory: who may do what,
 * what gets audited, and what happens on a bug or a firewall that fails.
 * Seconds, no azurite, no processes.
 */
const V = 'kv-unit';
const PIPELINE = 'pipeline-1:Lease.Request';
const READER = 'reader-1:Lease.Read';
const xff = (ip: string) => ({ 'x-forwarded-for': `203.0.113.7, ${ip}` });

describe('Use cases over in-memory ports', () => {
  it('When a pipeline is granted a lease, then the vault holds its rule and the trail says who got what', async () => {
    const broker = unitBroker({ vaults: [V] });
    const granted = await broker.call('grantLease', {
      caller: PIPELINE,
      body: { vault: V, ttlSeconds: 600 },
      headers: xff('52.1.1.1'),
    });
    expect(granted.status).toBe(201);
    expect(broker.firewall.rules(broker.vault(V))).toEqual([STATIC_RULE, '52.1.1.1/32'].sort());
    const grant = broker.audit.all().find((entry) => entry.action === 'grant');
    expect(grant).toMatchObject({
      principal: 'pipeline-1',
      vault: V,
      ip: '52.1.1.1/32',
      leaseId: granted.body.id,
      outcome: 'success',
    });
    expect(broker.audit.all().map((entry) => entry.action)).toContain('firewall-write');
  });

  it('When a caller without the role asks, then 403 before its input is read, one refusal in the trail and nothing written', async () => {
    const broker = unitBroker({ vaults: [V] });
    const refused = await broker.call('grantLease', {
      caller: READER,
      body: { vault: 'no such vault!', ttlSeconds: -5 },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toBe('Requesting a lease needs the Lease.Request role');
    expect(broker.audit.all()).toEqual([
      expect.objectContaining({ action: 'refused', principal: 'reader-1', outcome: 'refused' }),
    ]);
    expect(broker.firewall.writes).toBe(0);
    expect(await broker.store.liveLeases(V)).toEqual([]);
  });

  it('When LEASE_POLICY names no rule for the caller, then 403 names caller and vault, and is audited with the vault', async () => {
    const broker = unitBroker({
      vaults: [V],
      env: {
        LEASE_POLICY: JSON.stringify([
          { vaults: [V], oids: ['0b0b0b0b-0000-4000-8000-000000000000'] },
        ]),
      },
    });
    const refused = await broker.call('grantLease', {
      caller: PIPELINE,
      body: { vault: V },
      headers: xff('52.1.1.2'),
    });
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toContain('pipeline-1');
    expect(refused.body.detail).toContain(V);
    expect(broker.audit.all()).toEqual([
      expect.objectContaining({ action: 'refused', vault: V, ip: '52.1.1.2' }),
    ]);
    expect(broker.firewall.writes).toBe(0);
  });

  it('When another pipeline tries to release a lease, then it is a 404 and the owner can still release it', async () => {
    const broker = unitBroker({ vaults: [V] });
    const granted = await broker.call('grantLease', {
      caller: PIPELINE,
      body: { vault: V },
      headers: xff('52.1.1.3'),
    });
    const params = { id: granted.body.id as string };
    const stranger = await broker.call('releaseLease', {
      caller: 'pipeline-2:Lease.Request',
      params,
    });
    expect(stranger.status).toBe(404);
    expect(broker.firewall.rules(broker.vault(V))).toContain('52.1.1.3/32');
    const released = await broker.call('releaseLease', { caller: PIPELINE, params });
    expect(released.status).toBe(200);
    expect(released.body.status).toBe('released');
    expect(broker.firewall.rules(broker.vault(V))).toEqual([STATIC_RULE]);
    expect(broker.audit.all().filter((entry) => entry.action === 'release')).toHaveLength(1);
  });

  it('When a caller holds LEASE_MAX_ACTIVE_PER_PRINCIPAL leases, then the next grant is 409 and writes nothing', async () => {
    const broker = unitBroker({
      vaults: [V],
      env: {
        AUTH_MODE: 'entra',
        AUTH_TENANT_ID: 't',
        AUTH_AUDIENCE: 'a',
        LEASE_MAX_ACTIVE_PER_PRINCIPAL: '2',
      },
    });
    for (const ip of ['52.1.2.1', '52.1.2.2']) {
      const ok = await broker.call('grantLease', {
        caller: PIPELINE,
        body: { vault: V },
        headers: xff(ip),
      });
      expect(ok.status).toBe(201);
    }
    const writes = broker.firewall.writes;
    const third = await broker.call('grantLease', {
      caller: PIPELINE,
      body: { vault: V },
      headers: xff('52.1.2.3'),
    });
    expect(third.status).toBe(409);
    expect(third.body.type).toBe('urn:kv-lease:problem:lease-limit-reached');
    expect(broker.firewall.writes).toBe(writes);
  });

  it('When the store throws a bug (a TypeError), then the answer is 500, logged with its cause, not a retryable 503', async () => {
    const store = new InMemoryLeaseStore();
    store.getLease = () =>
      Promise.reject(new TypeError("Cannot read properties of undefined (reading 'ip')"));
    const logged: Record<string, unknown>[] = [];
    const broker = unitBroker({
      vaults: [V],
      store,
      logger: {
        info: () => undefined,
        warn: () => undefined,
        error: (message, properties) => logged.push({ ...properties, text: message }),
      },
    });
    const response = await broker.call('getLease', {
      caller: READER,
      params: { id: `${V}.${'a'.repeat(24)}` },
    });
    expect(response.status).toBe(500);
    expect(response.headers.get('retry-after')).toBeNull();
    expect(response.body.type).toBe('urn:kv-lease:problem:internal');
    expect(JSON.stringify(response.body)).not.toContain('TypeError');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ text: 'Unhandled error', function: 'getLease' });
    expect(String(logged[0]?.stack)).toContain(
      "TypeError: Cannot read properties of undefined (reading 'ip')",
    );
  });

  it('When a release cannot reach the firewall in time and is repeated once it can, then the repeat removes the rule and the trail records the release once', async () => {
    const broker = unitBroker({ vaults: [V] });
    const granted = await broker.call('grantLease', {
      caller: PIPELINE,
      body: { vault: V },
      headers: xff('52.1.3.1'),
    });
    const params = { id: granted.body.id as string };
    const write = broker.firewall.write.bind(broker.firewall);
    broker.firewall.write = () => Promise.reject(new FirewallError('transient', 'socket hang up'));
    const first = await broker.call('releaseLease', { caller: PIPELINE, params });
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).not.toBeNull();
    expect(broker.firewall.rules(broker.vault(V))).toContain('52.1.3.1/32');
    broker.firewall.write = write;
    const again = await broker.call('releaseLease', { caller: PIPELINE, params });
    expect(again.status).toBe(200);
    expect(broker.firewall.rules(broker.vault(V))).toEqual([STATIC_RULE]);
    const releases = broker.audit.all().filter((entry) => entry.action === 'release');
    expect(releases.map((entry) => entry.outcome)).toEqual(['success', 'failure']);
  });
});
