import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { TableAuditLog } from '../../src/adapters/tables/audit-log';
import { silentLogger } from '../../src/domain/logger';
import type { AuditEntry } from '../../src/ports/audit-log';
import {
  lockedVault,
  publicIp,
  STATIC_RULE,
  storageConnectionString,
  testEmulator,
  uniqueTable,
} from '../support/harness';
import { ManualClock } from '../support/manual-clock';
import {
  bearer,
  type CallResult,
  type CapturedLine,
  type Identity,
  identity,
  type SecureBroker,
  secureBroker,
  startTenant,
  type Tenant,
} from './support';

const T0 = Date.parse('2026-11-25T10:00:00.000Z');
const APPEND_VAULT = 'kv-audit-append';
const HOUR = 3600_000;

let emulator: RunningEmulator;
let tenant: Tenant;
let readerToken: string;

beforeAll(async () => {
  emulator = await testEmulator();
  tenant = await startTenant();
  readerToken = await tenant.token(identity('Lease.Read'));
  emulator.createVault(lockedVault(APPEND_VAULT));
});
afterAll(async () => {
  await tenant.close();
  await emulator.close();
});

let ipCounter = 0;
const nextIp = () => {
  ipCounter += 1;
  return publicIp(30_000 + ipCounter);
};

/** One page of GET /api/audit as a Lease.Read caller. */
async function auditPage(broker: SecureBroker, query = ''): Promise<CallResult> {
  const response = await broker.call('GET', `/api/audit${query}`, { headers: bearer(readerToken) });
  expect(response.status, response.text).toBe(200);
  return response;
}

/** Every item of GET /api/audit, following nextLink. */
async function auditAll(broker: SecureBroker, query = '?$top=1000'): Promise<any[]> {
  const items: any[] = [];
  let path: string | undefined = `/api/audit${query}`;
  while (path) {
    const response = await broker.call('GET', path, { headers: bearer(readerToken) });
    expect(response.status, response.text).toBe(200);
    // v1.1 (contract §4): every item names its target twice (vault, target) and its kind;
    // checked here once, so the comparisons below read as the v1 trail.
    for (const { target, kind, ...item } of response.body.value) {
      expect(target).toBe(item.vault);
      expect(kind).toBe(item.vault === null ? null : 'keyvault');
      items.push(item);
    }
    path = response.body.nextLink
      ? (() => {
          const url = new URL(response.body.nextLink as string);
          return `${url.pathname}${url.search}`;
        })()
      : undefined;
  }
  return items;
}

describe('The audit trail of lease actions', () => {
  const VAULT = 'kv-audit-life';
  const clock = new ManualClock(T0);
  let broker: SecureBroker;
  const pipeline = identity('Lease.Request');
  let token: string;
  const logs: CapturedLine[] = [];

  beforeAll(async () => {
    emulator.createVault(lockedVault(VAULT));
    broker = secureBroker({ emulator, vaults: [VAULT], clock, env: tenant.env(), capture: logs });
    token = await tenant.token(pipeline);
  });

  const byInvocation = (items: any[], response: CallResult) =>
    items.filter((item) => item.invocationId === response.invocationId);

  it('When a lease is granted, renewed and released, then each is one entry with who, what, where, the outcome and the invocation, and so is each firewall write', async () => {
    const ip = nextIp();
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault: VAULT, ttlSeconds: 600 },
      headers: { ...bearer(token), 'x-forwarded-for': `${ip}:4711` },
    });
    expect(granted.status).toBe(201);
    const id = granted.body.id as string;
    clock.advance(60_000);
    const renewed = await broker.call('POST', `/api/leases/${id}/renew`, {
      body: { ttlSeconds: 900 },
      headers: bearer(token),
    });
    expect(renewed.status).toBe(200);
    clock.advance(60_000);
    const released = await broker.call('DELETE', `/api/leases/${id}`, { headers: bearer(token) });
    expect(released.status).toBe(200);
    // Releasing again changes nothing, so it records nothing.
    const again = await broker.call('DELETE', `/api/leases/${id}`, { headers: bearer(token) });
    expect(again.status).toBe(200);

    const items = await auditAll(broker);
    const lease = {
      principal: pipeline.oid,
      appId: pipeline.appId,
      vault: VAULT,
      ip: `${ip}/32`,
      leaseId: id,
    };
    expect(byInvocation(items, granted)).toEqual(
      expect.arrayContaining([
        {
          at: new Date(T0).toISOString(),
          action: 'grant',
          ...lease,
          outcome: 'success',
          detail: `expires ${new Date(T0 + 600_000).toISOString()}`,
          invocationId: granted.invocationId,
        },
        {
          at: new Date(T0).toISOString(),
          action: 'firewall-write',
          principal: 'kv-lease',
          // Every field of the contract is there, null where it does not apply.
          appId: null,
          vault: VAULT,
          ip: null,
          leaseId: null,
          outcome: 'success',
          detail: `read [${STATIC_RULE}]; wrote [${STATIC_RULE}, ${ip}/32]: added [${ip}/32] removed []`,
          invocationId: granted.invocationId,
        },
      ]),
    );
    expect(byInvocation(items, granted)).toHaveLength(2);
    expect(byInvocation(items, renewed)).toEqual([
      {
        at: new Date(T0 + 60_000).toISOString(),
        action: 'renew',
        ...lease,
        outcome: 'success',
        detail: `expires ${new Date(T0 + 60_000 + 900_000).toISOString()}`,
        invocationId: renewed.invocationId,
      },
    ]);
    const releaseEntries = byInvocation(items, released);
    expect(releaseEntries.map((item) => item.action).sort()).toEqual(['firewall-write', 'release']);
    expect(releaseEntries.find((item) => item.action === 'release')).toMatchObject({
      ...lease,
      outcome: 'success',
    });
    expect(releaseEntries.find((item) => item.action === 'firewall-write')?.detail).toBe(
      `read [${STATIC_RULE}, ${ip}/32]; wrote [${STATIC_RULE}]: added [] removed [${ip}/32]`,
    );
    expect(byInvocation(items, again)).toEqual([]);
  });

  it('When a lease expires, then the sweep records the expiry and the write, with the timer’s invocation id', async () => {
    const ip = nextIp();
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault: VAULT, ttlSeconds: 60 },
      headers: { ...bearer(token), 'x-forwarded-for': ip },
    });
    clock.advance(61_000);
    const swept = await broker.services.sweep('timer-invocation-1');
    expect(swept.failed).toEqual([]);
    const items = (await auditAll(broker)).filter(
      (item) => item.invocationId === 'timer-invocation-1',
    );
    expect(items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          action: 'expire',
          principal: pipeline.oid,
          appId: pipeline.appId,
          vault: VAULT,
          ip: `${ip}/32`,
          leaseId: granted.body.id,
          outcome: 'success',
          detail: `expired, ended by kv-lease; its rule ${ip}/32 was removed from the Key Vault`,
        }),
        expect.objectContaining({
          action: 'firewall-write',
          principal: 'kv-lease',
          vault: VAULT,
          outcome: 'success',
          detail: `read [${STATIC_RULE}, ${ip}/32]; wrote [${STATIC_RULE}]: added [] removed [${ip}/32]`,
        }),
      ]),
    );
    expect(items).toHaveLength(2);

    // A renewal after expiry is refused, and the refusal names the lease.
    const late = await broker.call('POST', `/api/leases/${granted.body.id}/renew`, {
      body: {},
      headers: bearer(token),
    });
    expect(late.status).toBe(409);
    const [refusal] = byInvocation(await auditAll(broker), late);
    expect(refusal).toMatchObject({
      action: 'refused',
      principal: pipeline.oid,
      appId: pipeline.appId,
      vault: VAULT,
      leaseId: granted.body.id,
      outcome: 'refused',
    });
    expect(refusal.detail).toMatch(/^renew: LEASE\.NOT_ACTIVE: The lease is expired/);
  });

  it('When the timer passes no invocation id, then the sweep’s entries share a generated one that its log names', async () => {
    await broker.call('POST', '/api/leases', {
      body: { vault: VAULT, ttlSeconds: 60 },
      headers: { ...bearer(token), 'x-forwarded-for': nextIp() },
    });
    clock.advance(61_000);
    await broker.services.sweep();
    const recent = (await auditPage(broker, '?$top=5')).body.value;
    const sweepIds = new Set(
      recent
        .filter((item: any) => item.action === 'expire' || item.action === 'firewall-write')
        .slice(0, 2)
        .map((item: any) => item.invocationId),
    );
    expect(sweepIds.size).toBe(1);
    const [id] = [...sweepIds] as string[];
    expect(id).toMatch(/^sweep:[0-9a-f-]{36}$/);
    expect(logs.find((line) => line.text.startsWith('Sweep started'))?.text).toContain(id);
  });
});

describe('GET /api/audit', () => {
  const A = 'kv-audit-a';
  const B = 'kv-audit-b';
  const clock = new ManualClock(T0);
  let broker: SecureBroker;
  const first = identity('Lease.Request');
  const second = identity('Lease.Request');

  /** Grants and releases on both vaults by both callers, spread over three days. */
  beforeAll(async () => {
    for (const name of [A, B]) emulator.createVault(lockedVault(name));
    broker = secureBroker({ emulator, vaults: [A, B], clock, env: tenant.env() });
    const act = async (who: Identity, vault: string) => {
      const token = await tenant.token(who);
      const granted = await broker.call('POST', '/api/leases', {
        body: { vault },
        headers: { ...bearer(token), 'x-forwarded-for': nextIp() },
      });
      expect(granted.status).toBe(201);
      clock.advance(HOUR);
      await broker.call('DELETE', `/api/leases/${granted.body.id}`, { headers: bearer(token) });
      clock.advance(HOUR);
    };
    for (let day = 0; day < 3; day += 1) {
      clock.set(T0 + day * 24 * HOUR);
      await act(first, A);
      await act(second, B);
      await act(second, A);
    }
  });

  it('When read, then entries come newest first, across days', async () => {
    const items = await auditAll(broker);
    // 9 grants, 9 releases, 18 firewall writes.
    expect(items).toHaveLength(36);
    const times = items.map((item) => Date.parse(item.at));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    for (const item of items) {
      expect(Object.keys(item)).toEqual(
        expect.arrayContaining(['at', 'action', 'principal', 'vault', 'outcome', 'detail']),
      );
    }
  });

  it('When filtered by vault, then only that vault’s entries come back', async () => {
    const items = await auditAll(broker, `?vault=${A.toUpperCase()}&$top=1000`);
    expect(items.length).toBe(24);
    expect(items.every((item) => item.vault === A)).toBe(true);
  });

  it('When filtered by principal, then only that principal’s entries come back', async () => {
    const items = await auditAll(broker, `?principal=${first.oid}`);
    expect(items.map((item) => item.action).sort()).toEqual([
      'grant',
      'grant',
      'grant',
      'release',
      'release',
      'release',
    ]);
    expect(items.every((item) => item.principal === first.oid && item.vault === A)).toBe(true);
  });

  it('When filtered by since, then only entries at or after it come back, whatever the offset notation', async () => {
    const since = T0 + 24 * HOUR + 2 * HOUR; // day 2, after its first grant and release
    for (const notation of [
      new Date(since).toISOString(),
      '2026-11-26T13:00:00+01:00', // the same instant
    ]) {
      const items = await auditAll(broker, `?since=${encodeURIComponent(notation)}&$top=1000`);
      expect(items.length).toBe(36 - 12 - 4);
      expect(items.every((item) => Date.parse(item.at) >= since)).toBe(true);
    }
  });

  it('When the filters are combined, then all of them apply', async () => {
    const since = T0 + 24 * HOUR;
    const items = await auditAll(
      broker,
      `?vault=${A}&principal=${second.oid}&since=${new Date(since).toISOString()}`,
    );
    expect(items.map((item) => item.action).sort()).toEqual([
      'grant',
      'grant',
      'release',
      'release',
    ]);
  });

  it('When read in pages, then nextLink walks the same entries in the same order, keeping the filters', async () => {
    const whole = await auditAll(broker, `?vault=${A}&$top=1000`);
    const firstPage = await auditPage(broker, `?vault=${A}&$top=5`);
    expect(firstPage.body.value).toHaveLength(5);
    const link = new URL(firstPage.body.nextLink as string);
    expect(link.searchParams.get('vault')).toBe(A);
    expect(link.searchParams.get('$top')).toBe('5');
    const paged = await auditAll(broker, `?vault=${A}&$top=5`);
    expect(paged).toEqual(whole);
    const last = await auditAll(broker, `?vault=${A}&$top=1000`);
    expect(last).toEqual(whole);
  });
});

describe('Append-only', () => {
  /**
   * The real table client against azurite, with every call it receives
   * recorded (method, and the kinds of a transaction's actions), so a test can
   * say what the audit log asked of the store while it did its whole job.
   */
  function recordingClient(table = `${uniqueTable()}audit`) {
    const real = TableClient.fromConnectionString(storageConnectionString(), table, {
      allowInsecureConnection: true,
    });
    const calls: string[] = [];
    const client = new Proxy(real, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const name = String(property);
          if (name === 'submitTransaction') {
            const actions = (args[0] as [string, unknown][]).map(([kind]) => kind);
            calls.push(`submitTransaction(${[...new Set(actions)].join(',')})`);
          } else {
            calls.push(name);
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return { client, real, calls };
  }

  const entry = (n: number, at = T0): AuditEntry => ({
    at,
    action: 'grant',
    principal: `p${n}`,
    vault: 'kv-x',
    ip: '52.1.2.3/32',
    leaseId: `kv-x.${String(n).padStart(24, 'a')}`,
    outcome: 'success',
  });

  it('When the log appends one entry, a burst across days, pages through them and recovers a lost table, then it only ever creates', async () => {
    const { client, real, calls } = recordingClient();
    const log = new TableAuditLog(client, silentLogger);
    await log.append(entry(0));
    // A burst in one turn of the event loop, across two days: transactions per day.
    await Promise.all(
      Array.from({ length: 150 }, (_, n) => log.append(entry(n + 1, T0 + (n % 2) * 24 * HOUR))),
    );
    let continuation: string | undefined;
    let read = 0;
    do {
      const page = await log.query({ top: 40, continuation });
      read += page.entries.length;
      continuation = page.continuation;
    } while (continuation);
    expect(read).toBe(151);
    // The store loses the table; the next entries still land.
    await real.deleteTable();
    await Promise.all([log.append(entry(200)), log.append(entry(201))]);
    await log.append(entry(202));
    const after = await log.query({ top: 1000 });
    expect(after.entries.map((e) => e.principal).sort()).toEqual(['p200', 'p201', 'p202']);

    const kinds = new Set(calls);
    expect([...kinds].sort()).toEqual(
      ['createEntity', 'createTable', 'listEntities', 'submitTransaction(create)'].sort(),
    );
  });

  it('When a broker grants, renews, releases, refuses and sweeps, then no audit entry written earlier ever changes or disappears', async () => {
    const clock = new ManualClock(T0);
    const broker = secureBroker({ emulator, vaults: [APPEND_VAULT], clock, env: tenant.env() });
    const token = await tenant.token(identity('Lease.Request'));
    const snapshot = async () => {
      const rows = new Map<string, string>();
      const client = TableClient.fromConnectionString(
        storageConnectionString(),
        `${broker.config.LEASE_TABLE_NAME}audit`,
        { allowInsecureConnection: true },
      );
      for await (const row of client.listEntities<Record<string, unknown>>())
        rows.set(`${row.partitionKey}|${row.rowKey}`, JSON.stringify(row));
      return rows;
    };
    const steps: (() => Promise<unknown>)[] = [
      () =>
        broker.call('POST', '/api/leases', {
          body: { vault: APPEND_VAULT, ttlSeconds: 600 },
          headers: { ...bearer(token), 'x-forwarded-for': nextIp() },
        }),
      () => broker.call('POST', '/api/leases', { body: { vault: APPEND_VAULT } }), // 401
      async () => {
        const listed = await broker.call('GET', '/api/leases', { headers: bearer(token) });
        const id = listed.body.value[0].id as string;
        await broker.call('POST', `/api/leases/${id}/renew`, {
          body: { ttlSeconds: 900 },
          headers: bearer(token),
        });
        return broker.call('DELETE', `/api/leases/${id}`, { headers: bearer(token) });
      },
      () =>
        broker.call('POST', '/api/leases', {
          body: { vault: APPEND_VAULT, ttlSeconds: 60 },
          headers: { ...bearer(token), 'x-forwarded-for': nextIp() },
        }),
      async () => {
        clock.advance(2 * 60_000);
        return broker.services.sweep();
      },
    ];
    let previous = new Map<string, string>(); // the audit table does not exist yet
    for (const step of steps) {
      await step();
      const current = await snapshot();
      expect(current.size).toBeGreaterThan(previous.size);
      for (const [key, row] of previous) expect(current.get(key), key).toBe(row);
      previous = current;
    }
  });

  it('When entries are appended at the same millisecond with the same content, then every one is kept and none changes', async () => {
    const client = TableClient.fromConnectionString(
      storageConnectionString(),
      `${uniqueTable()}audit`,
      {
        allowInsecureConnection: true,
      },
    );
    const log = new TableAuditLog(client, silentLogger);
    const entry: AuditEntry = {
      at: T0,
      action: 'grant',
      principal: 'p',
      vault: 'kv-x',
      ip: '52.1.2.3/32',
      leaseId: `kv-x.${'a'.repeat(24)}`,
      outcome: 'success',
    };
    await Promise.all(Array.from({ length: 50 }, () => log.append(entry)));
    const read = async () => {
      const rows: Record<string, unknown>[] = [];
      for await (const row of client.listEntities<Record<string, unknown>>()) rows.push(row);
      return rows;
    };
    const before = await read();
    expect(before).toHaveLength(50);
    expect(new Set(before.map((row) => row.rowKey)).size).toBe(50);
    await log.append({ ...entry, action: 'release' });
    const after = await read();
    expect(after).toHaveLength(51);
    for (const row of before) {
      expect(after.find((candidate) => candidate.rowKey === row.rowKey)).toEqual(row);
    }
  });
});
