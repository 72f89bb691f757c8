import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import {
  publicIp,
  rulesOf,
  STATIC_RULE,
  testBroker,
  testEmulator,
  vaultFactory,
  vaultId,
} from '../support/harness';
import { ManualClock } from '../support/manual-clock';

let emulator: RunningEmulator;
const freshVault = vaultFactory(() => emulator, 'kv-life');
const xff = (ip: string) => ({ 'x-forwarded-for': `203.0.113.9, ${ip}:51234` });

beforeAll(async () => {
  emulator = await testEmulator();
});
afterAll(async () => {
  await emulator.close();
});

describe('grant and release', () => {
  it('When a pipeline asks for a lease, then it gets 201 only once the vault holds its /32 rule', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const response = await broker.call('POST', '/api/leases', {
      body: { vault, ttlSeconds: 600, reason: 'run 42' },
      headers: xff('52.1.2.3'),
    });
    expect(response.status).toBe(201);
    expect(response.headers.get('location')).toBe(`/api/leases/${response.body.id}`);
    expect(response.body).toMatchObject({
      vault,
      ip: '52.1.2.3/32',
      status: 'active',
      principal: 'local-dev',
      reason: 'run 42',
    });
    expect(Date.parse(response.body.expiresAt) - Date.parse(response.body.createdAt)).toBe(600_000);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.1.2.3/32'].sort());
  });

  it('When the broker writes, then defaultAction, bypass and virtual network rules stay as they were', async () => {
    const vault = freshVault();
    const before = emulator.getNetworkAcls(vaultId(vault));
    const broker = testBroker({ emulator, vaults: [vault] });
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.1.2.4'),
    });
    await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    const after = emulator.getNetworkAcls(vaultId(vault));
    expect(after.defaultAction).toBe('Deny');
    expect(after.bypass).toBe('AzureServices');
    expect(after.virtualNetworkRules).toEqual(before.virtualNetworkRules);
    expect(after.ipRules).toEqual(before.ipRules);
    expect(emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied).toBe(2);
  });

  it('When a lease is for an IP that is already a static rule, then releasing it never removes that rule', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff(STATIC_RULE.replace('/32', '')),
    });
    expect(granted.status).toBe(201);
    const released = await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    expect(released.body.status).toBe('released');
    await broker.services.sweep();
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
    expect(emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied ?? 0).toBe(0);
  });

  it('When two leases hold one IP, then the rule stays until the last of them ends', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const first = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.1.2.5'),
    });
    const second = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.1.2.5'),
    });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(first.body.id).not.toBe(second.body.id);
    await broker.call('DELETE', `/api/leases/${first.body.id}`);
    expect(rulesOf(emulator, vault)).toContain('52.1.2.5/32');
    await broker.call('DELETE', `/api/leases/${second.body.id}`);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
  });

  it('When a released lease is released again, then it answers 200 with the lease unchanged', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.1.2.6'),
    });
    const first = await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    const again = await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE]);
  });

  it('When the same Idempotency-Key is sent twice, then the second answer is 200 with the same lease', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const headers = { ...xff('52.1.2.7'), 'idempotency-key': 'run-123-attempt-1' };
    const first = await broker.call('POST', '/api/leases', { body: { vault }, headers });
    const second = await broker.call('POST', '/api/leases', { body: { vault }, headers });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    const listed = await broker.call('GET', `/api/leases?vault=${vault}`);
    expect(listed.body.value).toHaveLength(1);
  });
  it('When the same Idempotency-Key arrives twice at once, then one lease is granted and both answers carry it', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const headers = { ...xff('52.1.2.8'), 'idempotency-key': 'run-456-attempt-1' };
    const answers = await Promise.all([
      broker.call('POST', '/api/leases', { body: { vault }, headers }),
      broker.call('POST', '/api/leases', { body: { vault }, headers }),
    ]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 201]);
    expect(answers[0]?.body.id).toBe(answers[1]?.body.id);
    expect(answers.every((a) => a.body.status === 'active')).toBe(true);
    expect(await broker.store.liveLeases(vault)).toHaveLength(1);
  });
});

describe('reading, listing and renewing', () => {
  it('When leases end in different ways, then GET and the status filter show each as it is', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    const a = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.1.3.1'),
    });
    const b = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.1.3.2'),
    });
    await broker.call('DELETE', `/api/leases/${b.body.id}`);
    expect((await broker.call('GET', `/api/leases/${a.body.id}`)).body.status).toBe('active');
    expect((await broker.call('GET', `/api/leases/${b.body.id}`)).body).toMatchObject({
      status: 'released',
    });
    const ids = async (status: string) =>
      (await broker.call('GET', `/api/leases?vault=${vault}&status=${status}`)).body.value.map(
        (l: { id: string }) => l.id,
      );
    expect(await ids('active')).toEqual([a.body.id]);
    expect(await ids('released')).toEqual([b.body.id]);
    expect((await ids('all')).sort()).toEqual([a.body.id, b.body.id].sort());
    expect(await ids('expired')).toEqual([]);
    expect((await broker.call('GET', '/api/leases/kv-nope.000000000000000000000000')).status).toBe(
      404,
    );
  });

  it('When more leases exist than fit a page, then nextLink pages through all of them', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    await Promise.all(
      [1, 2, 3, 4, 5].map((n) =>
        broker.call('POST', '/api/leases', { body: { vault }, headers: xff(publicIp(500 + n)) }),
      ),
    );
    const seen: string[] = [];
    let next: string | undefined = `/api/leases?vault=${vault}&$top=2`;
    while (next) {
      const page = await broker.call('GET', next);
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      expect(page.body.value.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.value.map((l: { id: string }) => l.id));
      next = page.body.nextLink;
    }
    expect(new Set(seen).size).toBe(5);
  });

  it('When a lease is renewed, then expiresAt moves to now + ttl, and a released lease answers 409', async () => {
    const clock = new ManualClock(Date.parse('2026-11-25T10:00:00.000Z'));
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault], clock });
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault, ttlSeconds: 120 },
      headers: xff('52.1.4.1'),
    });
    clock.advance(60_000);
    const renewed = await broker.call('POST', `/api/leases/${granted.body.id}/renew`, {
      body: { ttlSeconds: 300 },
    });
    expect(renewed.status).toBe(200);
    expect(renewed.body.expiresAt).toBe('2026-11-25T10:06:00.000Z');
    await broker.call('DELETE', `/api/leases/${granted.body.id}`);
    const refused = await broker.call('POST', `/api/leases/${granted.body.id}/renew`, { body: {} });
    expect(refused.status).toBe(409);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
  });

  it('When a release has been answered, then the vault list no longer counts its rule or lease', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    await broker.call('POST', '/api/leases', { body: { vault }, headers: xff('52.1.5.3') });
    const gone = await broker.call('POST', '/api/leases', {
      body: { vault },
      headers: xff('52.1.5.4'),
    });
    expect((await broker.call('DELETE', `/api/leases/${gone.body.id}`)).status).toBe(200);
    const vaults = await broker.call('GET', '/api/vaults');
    expect(vaults.body.value).toEqual([
      expect.objectContaining({ activeLeases: 1, brokerRules: 1, totalRules: 2 }),
    ]);
  });

  it('When operators list vaults, then each shows active leases, broker rules and total rules', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    await broker.call('POST', '/api/leases', { body: { vault }, headers: xff('52.1.5.1') });
    await broker.call('POST', '/api/leases', { body: { vault }, headers: xff('52.1.5.2') });
    const vaults = await broker.call('GET', '/api/vaults');
    expect(vaults.body.value).toEqual([
      {
        name: vault,
        resourceId: vaultId(vault),
        activeLeases: 2,
        brokerRules: 2,
        totalRules: 3,
        maxRules: 1000,
        healthy: true,
        lastPassAt: expect.any(String),
        vaultUri: emulator.vaultUri(vault),
      },
    ]);
  });
});

describe('the sweep', () => {
  it('When a lease passes its expiry, then the next sweep removes its rule and marks it expired', async () => {
    const clock = new ManualClock(Date.now());
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault], clock });
    const short = await broker.call('POST', '/api/leases', {
      body: { vault, ttlSeconds: 60 },
      headers: xff('52.1.6.1'),
    });
    const long = await broker.call('POST', '/api/leases', {
      body: { vault, ttlSeconds: 600 },
      headers: xff('52.1.6.2'),
    });
    clock.advance(59_999);
    await broker.services.sweep();
    expect(rulesOf(emulator, vault)).toContain('52.1.6.1/32');
    clock.advance(1);
    await broker.services.sweep();
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.1.6.2/32'].sort());
    const expired = await broker.call('GET', `/api/leases/${short.body.id}`);
    expect(expired.body).toMatchObject({
      status: 'expired',
      endedAt: new Date(clock.now()).toISOString(),
    });
    expect((await broker.call('GET', `/api/leases/${long.body.id}`)).body.status).toBe('active');
    // Contract §1: releasing an expired lease answers 200 with it unchanged (it now lives in
    // the history, with its caller's copy) and writes nothing.
    const writes = emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied;
    const releasedAgain = await broker.call('DELETE', `/api/leases/${short.body.id}`);
    expect(releasedAgain.status).toBe(200);
    expect(releasedAgain.body).toEqual(expired.body);
    expect(emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied).toBe(writes);
  });

  it('When something removes a leased rule behind the broker, then the sweep puts it back', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    await broker.call('POST', '/api/leases', { body: { vault }, headers: xff('52.1.7.1') });
    emulator.setNetworkAcls(vaultId(vault), {
      ipRules: [{ value: STATIC_RULE }, { value: '52.99.0.1/32' }],
    });
    await broker.services.sweep();
    expect(rulesOf(emulator, vault)).toEqual([STATIC_RULE, '52.1.7.1/32', '52.99.0.1/32'].sort());
  });

  it('When the vault already matches the leases, then the sweep writes nothing', async () => {
    const vault = freshVault();
    const broker = testBroker({ emulator, vaults: [vault] });
    await broker.call('POST', '/api/leases', { body: { vault }, headers: xff('52.1.8.1') });
    const writes = emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied;
    await broker.services.sweep();
    await broker.services.sweep();
    expect(emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writesApplied).toBe(writes);
  });
});
