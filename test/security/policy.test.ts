import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import {
  lockedVault,
  publicIp,
  rulesOf,
  testBroker,
  testEmulator,
  vaultId,
} from '../support/harness';
import { ManualClock } from '../support/manual-clock';
import {
  bearer,
  type CallResult,
  type Identity,
  identity,
  isProblem,
  type SecureBroker,
  secureBroker,
  startTenant,
  type Tenant,
} from './support';

let emulator: RunningEmulator;
let tenant: Tenant;

beforeAll(async () => {
  emulator = await testEmulator();
  tenant = await startTenant();
});
afterAll(async () => {
  await tenant.close();
  await emulator.close();
});

let ipCounter = 0;
function xff(): Record<string, string> {
  ipCounter += 1;
  return { 'x-forwarded-for': `${publicIp(20_000 + ipCounter)}:443` };
}

const writesOf = (vault: string) =>
  emulator.stats().perVault[vaultId(vault).toLowerCase()]?.writes ?? 0;

async function rowsOf(broker: SecureBroker, vault: string): Promise<number> {
  const listed = await broker.store.listLeases({ vault, status: 'all', top: 1000 });
  return (await broker.store.liveLeases(vault)).length + listed.items.length;
}

async function auditOf(broker: SecureBroker, response: CallResult) {
  return (await broker.auditTrail()).filter(
    (entry) => entry.invocationId === response.invocationId,
  );
}

describe('LEASE_POLICY', () => {
  const PROD = 'kv-pol-prod';
  const DEV = 'kv-pol-dev';
  const LOCKED = 'kv-pol-locked';
  const prodPipeline = identity('Lease.Request');
  const releaseManager = identity('Lease.Request');
  const admin = identity('Lease.Admin');
  let broker: SecureBroker;

  beforeAll(() => {
    for (const name of [PROD, DEV, LOCKED]) emulator.createVault(lockedVault(name));
    const policy = [
      {
        name: 'prod pipelines',
        vaults: [PROD],
        appIds: [prodPipeline.appId.toUpperCase()],
        maxTtlSeconds: 900,
      },
      { name: 'release manager', vaults: [PROD], oids: [releaseManager.oid] },
      { name: 'everyone on dev', vaults: [DEV], oids: ['*'], maxTtlSeconds: 600 },
      // The release manager also matches this one: the larger cap wins on dev.
      { vaults: [DEV], oids: [releaseManager.oid], maxTtlSeconds: 3600 },
    ];
    broker = secureBroker({
      emulator,
      vaults: [PROD, DEV, LOCKED],
      env: { ...tenant.env(), LEASE_POLICY: JSON.stringify(policy) },
    });
  });

  const grant = async (who: Identity, body: Record<string, unknown>) =>
    broker.call('POST', '/api/leases', {
      body,
      headers: { ...bearer(await tenant.token(who)), ...xff() },
    });

  it('When a rule names the caller’s application, then it may lease that vault up to the rule’s cap', async () => {
    const ok = await grant(prodPipeline, { vault: PROD, ttlSeconds: 900 });
    expect(ok.status, ok.text).toBe(201);
    expect(rulesOf(emulator, PROD)).toContain(ok.body.ip);
  });

  it('When the caller asks beyond the rule’s cap, then 400 ttl-out-of-range names the rule and the cap, and nothing is written', async () => {
    const rows = await rowsOf(broker, PROD);
    const writes = writesOf(PROD);
    const refused = await grant(prodPipeline, { vault: PROD, ttlSeconds: 901 });
    expect(refused.status).toBe(400);
    expect(refused.body.type).toBe('urn:kv-lease:problem:ttl-out-of-range');
    expect(refused.body.detail).toBe(
      `ttlSeconds must be between 60 and 900: LEASE_POLICY (rule "prod pipelines") caps leases on ${PROD} for this caller at 900 seconds`,
    );
    expect(refused.body.errors).toEqual([{ path: 'ttlSeconds', message: refused.body.detail }]);
    expect(await rowsOf(broker, PROD)).toBe(rows);
    expect(writesOf(PROD)).toBe(writes);
    // Beyond the global bound it is the global message.
    const global = await grant(prodPipeline, { vault: PROD, ttlSeconds: 7201 });
    expect(global.body.detail).toBe('ttlSeconds must be between 60 and 900');
  });

  it('When the caller names no TTL, then the default is lowered to the rule’s cap instead of refused', async () => {
    const ok = await grant(prodPipeline, { vault: PROD });
    expect(ok.status).toBe(201);
    expect(Date.parse(ok.body.expiresAt) - Date.parse(ok.body.createdAt)).toBe(900_000);
  });

  it('When the holder renews beyond its cap, then 400 names the rule; within it, 200', async () => {
    const token = await tenant.token(prodPipeline);
    const ok = await grant(prodPipeline, { vault: PROD, ttlSeconds: 600 });
    const beyond = await broker.call('POST', `/api/leases/${ok.body.id}/renew`, {
      body: { ttlSeconds: 1800 },
      headers: bearer(token),
    });
    expect(beyond.status).toBe(400);
    expect(beyond.body.detail).toMatch(/LEASE_POLICY \(rule "prod pipelines"\) caps leases/);
    const within = await broker.call('POST', `/api/leases/${ok.body.id}/renew`, {
      body: { ttlSeconds: 900 },
      headers: bearer(token),
    });
    expect(within.status).toBe(200);
  });

  it('When an admin renews someone’s lease, then the holder’s cap applies, not the admin’s', async () => {
    const ok = await grant(prodPipeline, { vault: PROD, ttlSeconds: 600 });
    const renewed = await broker.call('POST', `/api/leases/${ok.body.id}/renew`, {
      body: { ttlSeconds: 1800 },
      headers: bearer(await tenant.token(admin)),
    });
    expect(renewed.status).toBe(400);
    expect(renewed.body.detail).toMatch(/caps leases on kv-pol-prod for this caller at 900/);
  });

  it('When a rule names the caller’s oid without a cap, then the global bounds apply', async () => {
    const ok = await grant(releaseManager, { vault: PROD, ttlSeconds: 7200 });
    expect(ok.status).toBe(201);
  });

  it('When several rules match, then the largest cap applies', async () => {
    expect((await grant(releaseManager, { vault: DEV, ttlSeconds: 3600 })).status).toBe(201);
    const anyone = identity('Lease.Request');
    expect((await grant(anyone, { vault: DEV, ttlSeconds: 600 })).status).toBe(201);
    const over = await grant(anyone, { vault: DEV, ttlSeconds: 601 });
    expect(over.status).toBe(400);
    expect(over.body.detail).toMatch(/rule "everyone on dev"/);
  });

  it('When no rule names the caller, then 403 says which caller and vault, writes nothing and is audited', async () => {
    const outsider = identity('Lease.Request');
    const rows = await rowsOf(broker, PROD);
    const writes = writesOf(PROD);
    const refused = await grant(outsider, { vault: PROD });
    expect(refused.status).toBe(403);
    expect(isProblem(refused)).toBe(true);
    expect(refused.body.type).toBe('urn:kv-lease:problem:forbidden');
    expect(refused.body.detail).toBe(
      `Requesting a lease: LEASE_POLICY has no rule that lets ${outsider.oid} (application ${outsider.appId}) lease the vault ${PROD}`,
    );
    expect(await rowsOf(broker, PROD)).toBe(rows);
    expect(writesOf(PROD)).toBe(writes);
    const [entry] = await auditOf(broker, refused);
    expect(entry).toMatchObject({
      action: 'refused',
      outcome: 'refused',
      principal: outsider.oid,
      appId: outsider.appId,
      vault: PROD,
    });
    expect(entry?.detail).toMatch(/^grant: AUTH\.FORBIDDEN: .*LEASE_POLICY/);
  });

  it('When a managed vault has no rule, then nobody may lease it, Lease.Admin included', async () => {
    for (const who of [prodPipeline, releaseManager, admin]) {
      const refused = await grant(who, { vault: LOCKED });
      expect(refused.status).toBe(403);
    }
    expect(await rowsOf(broker, LOCKED)).toBe(0);
    expect(writesOf(LOCKED)).toBe(0);
  });

  it('When the vault is not managed, then it is still 404, before the policy is consulted', async () => {
    const response = await grant(prodPipeline, { vault: 'kv-not-managed' });
    expect(response.status).toBe(404);
  });
});

describe('LEASE_MAX_ACTIVE_PER_PRINCIPAL', () => {
  const A = 'kv-cap-a';
  const B = 'kv-cap-b';
  const clock = new ManualClock(Date.parse('2026-11-25T10:00:00.000Z'));
  let broker: SecureBroker;

  beforeAll(() => {
    for (const name of [A, B]) emulator.createVault(lockedVault(name));
    broker = secureBroker({
      emulator,
      vaults: [A, B],
      clock,
      env: { ...tenant.env(), LEASE_MAX_ACTIVE_PER_PRINCIPAL: '3' },
    });
  });

  // NOTE: tokens use real time while the broker's clock is fixed; both are valid.
  const grant = async (who: Identity, vault: string, headers: Record<string, string> = {}) =>
    broker.call('POST', '/api/leases', {
      body: { vault, ttlSeconds: 600 },
      headers: { ...bearer(await tenant.token(who)), ...xff(), ...headers },
    });

  it('When a caller holds the most leases across vaults, then the next grant is 409 lease-limit-reached and writes nothing', async () => {
    const pipeline = identity('Lease.Request');
    const held = [await grant(pipeline, A), await grant(pipeline, A), await grant(pipeline, B)];
    expect(held.map((r) => r.status)).toEqual([201, 201, 201]);
    const rows = (await rowsOf(broker, A)) + (await rowsOf(broker, B));
    const writes = writesOf(A) + writesOf(B);

    const refused = await grant(pipeline, A);
    expect(refused.status).toBe(409);
    expect(isProblem(refused)).toBe(true);
    expect(refused.body.type).toBe('urn:kv-lease:problem:lease-limit-reached');
    expect(refused.body.detail).toBe(
      `${pipeline.oid} holds 3 active leases, the most one caller may hold (LEASE_MAX_ACTIVE_PER_PRINCIPAL = 3); release one first`,
    );
    expect((await rowsOf(broker, A)) + (await rowsOf(broker, B))).toBe(rows);
    expect(writesOf(A) + writesOf(B)).toBe(writes);
    const [entry] = await auditOf(broker, refused);
    expect(entry).toMatchObject({ action: 'refused', principal: pipeline.oid, vault: A });
    expect(entry?.detail).toMatch(/^grant: LEASE\.LIMIT_REACHED/);

    // Someone else is not affected.
    expect((await grant(identity('Lease.Request'), A)).status).toBe(201);

    // Releasing one makes room again.
    const token = await tenant.token(pipeline);
    await broker.call('DELETE', `/api/leases/${held[0]?.body.id}`, { headers: bearer(token) });
    expect((await grant(pipeline, B)).status).toBe(201);
  });

  it('When ten grants by one caller race, then no more than the cap are granted', async () => {
    const pipeline = identity('Lease.Request');
    const raced = await Promise.all(
      Array.from({ length: 10 }, (_, n) => grant(pipeline, n % 2 ? A : B)),
    );
    const granted = raced.filter((r) => r.status === 201);
    expect(raced.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    expect(granted.length).toBeGreaterThanOrEqual(1);
    expect(granted.length).toBeLessThanOrEqual(3);
    const live = [...(await broker.store.liveLeases(A)), ...(await broker.store.liveLeases(B))];
    expect(live.filter((lease) => lease.principal === pipeline.oid)).toHaveLength(granted.length);
  });

  it('When the caller’s leases have expired, then they no longer count', async () => {
    const pipeline = identity('Lease.Request');
    for (let n = 0; n < 3; n += 1) expect((await grant(pipeline, B)).status).toBe(201);
    expect((await grant(pipeline, B)).status).toBe(409);
    clock.advance(601_000);
    expect((await grant(pipeline, B)).status).toBe(201);
  });

  it('When a caller at the cap repeats a request with its Idempotency-Key, then it gets its lease back (200); a new key is 409', async () => {
    const pipeline = identity('Lease.Request');
    const first = await grant(pipeline, A, { 'idempotency-key': 'run-1' });
    expect(first.status).toBe(201);
    await grant(pipeline, A);
    await grant(pipeline, B);
    const repeat = await grant(pipeline, A, { 'idempotency-key': 'run-1' });
    expect(repeat.status).toBe(200);
    expect(repeat.body.id).toBe(first.body.id);
    const fresh = await grant(pipeline, A, { 'idempotency-key': 'run-2' });
    expect(fresh.status).toBe(409);
    // What that refusal left is invisible to the API and to the writer.
    const listed = await broker.call('GET', '/api/leases?status=all', {
      headers: bearer(await tenant.token(pipeline)),
    });
    expect(listed.body.value).toHaveLength(3);
    expect(
      (await broker.store.liveLeases(A)).filter((l) => l.principal === pipeline.oid),
    ).toHaveLength(2);
  });

  it('When auth is disabled (everyone is local-dev), then the cap does not apply', async () => {
    const vault = 'kv-cap-dev';
    emulator.createVault(lockedVault(vault));
    const local = testBroker({
      emulator,
      vaults: [vault],
      env: { LEASE_MAX_ACTIVE_PER_PRINCIPAL: '1' },
    });
    for (let n = 0; n < 3; n += 1) {
      const response = await local.call('POST', '/api/leases', { body: { vault }, headers: xff() });
      expect(response.status).toBe(201);
    }
  });
});

describe('Vault capacity (1000 IP rules, static ones included)', () => {
  const staticRules = (count: number) =>
    Array.from({ length: count }, (_, n) => ({ value: publicIp(n) }));
  const pipeline = identity('Lease.Request');

  function fullVault(name: string, rules: number): void {
    emulator.createVault(lockedVault(name, { ipRules: staticRules(rules) }));
  }

  const grantOn = async (broker: SecureBroker, vault: string, ip?: string) =>
    broker.call('POST', '/api/leases', {
      body: { vault },
      headers: {
        ...bearer(await tenant.token(pipeline)),
        ...(ip ? { 'x-forwarded-for': ip } : xff()),
      },
    });

  it('When the vault already holds 1000 static rules, then a grant is 409 vault-at-capacity with no lease row and no firewall write', async () => {
    const vault = 'kv-full-1000';
    fullVault(vault, 1000);
    const broker = secureBroker({ emulator, vaults: [vault], env: tenant.env() });
    const refused = await grantOn(broker, vault);
    expect(refused.status).toBe(409);
    expect(isProblem(refused)).toBe(true);
    expect(refused.body.type).toBe('urn:kv-lease:problem:vault-at-capacity');
    expect(refused.body.detail).toMatch(
      /Key Vault kv-full-1000 would need 1001 IP rules, more than the limit of 1000 for a Key Vault/,
    );
    expect(await rowsOf(broker, vault)).toBe(0);
    expect(writesOf(vault)).toBe(0);
    expect(rulesOf(emulator, vault)).toHaveLength(1000);
    const entries = await auditOf(broker, refused);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ action: 'refused', principal: pipeline.oid, vault });
    expect(entries[0]?.detail).toMatch(/^grant: VAULT\.AT_CAPACITY/);
  });

  it('When the caller’s IP already is a rule of a full vault, then it gets its lease: no rule is added', async () => {
    const vault = 'kv-full-static';
    fullVault(vault, 1000);
    const broker = secureBroker({ emulator, vaults: [vault], env: tenant.env() });
    const granted = await grantOn(broker, vault, publicIp(17));
    expect(granted.status, granted.text).toBe(201);
    expect(writesOf(vault)).toBe(0);
  });

  it('When the last free rule is taken, then the next grant is refused from the store’s count without writing', async () => {
    const vault = 'kv-full-999';
    fullVault(vault, 999);
    const broker = secureBroker({ emulator, vaults: [vault], env: tenant.env() });
    const last = await grantOn(broker, vault);
    expect(last.status).toBe(201);
    expect(rulesOf(emulator, vault)).toHaveLength(1000);
    expect((await broker.store.getVaultState(vault)).totalRules).toBe(1000);
    const writes = writesOf(vault);

    const refused = await grantOn(broker, vault);
    expect(refused.status).toBe(409);
    expect(refused.body.type).toBe('urn:kv-lease:problem:vault-at-capacity');
    expect(await broker.store.liveLeases(vault)).toHaveLength(1);
    expect(writesOf(vault)).toBe(writes);

    // Once the lease is released there is room again.
    await broker.call('DELETE', `/api/leases/${last.body.id}`, {
      headers: bearer(await tenant.token(pipeline)),
    });
    expect((await grantOn(broker, vault)).status).toBe(201);
  });

  it('When two grants race for the last rule, then one gets it and the other one 409 with exactly one audit entry', async () => {
    const vault = 'kv-full-race';
    fullVault(vault, 999);
    const broker = secureBroker({ emulator, vaults: [vault], env: tenant.env() });
    const answers = await Promise.all([grantOn(broker, vault), grantOn(broker, vault)]);
    expect(answers.map((r) => r.status).sort()).toEqual([201, 409]);
    expect(rulesOf(emulator, vault)).toHaveLength(1000);
    const refusals = (await broker.auditTrail()).filter(
      (entry) => entry.action === 'refused' && entry.detail?.includes('VAULT.AT_CAPACITY'),
    );
    expect(refusals).toHaveLength(1);
  });

  it('When the vault has room, then GET /api/vaults shows the count against the limit', async () => {
    const vault = 'kv-room';
    fullVault(vault, 500);
    const broker = secureBroker({ emulator, vaults: [vault], env: tenant.env() });
    await grantOn(broker, vault);
    const listed = await broker.call('GET', '/api/vaults', {
      headers: bearer(await tenant.token(identity('Lease.Read'))),
    });
    expect(listed.body.value[0]).toMatchObject({ name: vault, totalRules: 501, maxRules: 1000 });
  });
});
