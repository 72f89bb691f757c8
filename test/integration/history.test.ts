import { once } from 'node:events';
import {
  createServer,
  type IncomingMessage,
  request as forward,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import { mapWithLimit } from '../../src/domain/concurrency';
import { type Lease, newLeaseId } from '../../src/domain/lease';
import { MAX_LIST_CALLS } from '../../src/leases/leases';
import {
  bearer,
  identity,
  type SecureBroker,
  secureBroker,
  startTenant,
  type Tenant,
} from '../security/support';
import { lockedVault, publicIp, storageConnectionString, testEmulator } from '../support/harness';
import { ManualClock } from '../support/manual-clock';

/**
 * A proxy in front of azurite that counts (and records) the requests the
 * broker's store sends: the store work of one API request, measured in calls
 * rather than time.
 */
async function countingProxy(target: string): Promise<{
  connectionString: string;
  requests: string[];
  close(): Promise<void>;
}> {
  const endpoint = /TableEndpoint=(http:\/\/[^;/]+)/.exec(target)?.[1];
  if (!endpoint) throw new Error('the test store has no plain-http TableEndpoint');
  const upstream = new URL(endpoint);
  const requests: string[] = [];
  const server: Server = createServer((incoming, outgoing) => void relay(incoming, outgoing));
  async function relay(incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> {
    requests.push(`${incoming.method} ${decodeURIComponent(incoming.url ?? '')}`);
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const out = forward(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    out.on('error', () => outgoing.destroy());
    out.end(Buffer.concat(chunks));
  }
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    connectionString: target.replace(endpoint, `http://127.0.0.1:${port}`),
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const T0 = Date.parse('2026-11-25T10:00:00.000Z');
const DAY = 86_400_000;

let emulator: RunningEmulator;
let tenant: Tenant;
beforeAll(async () => {
  emulator = await testEmulator();
  tenant = await startTenant();
});
afterAll(async () => {
  await emulator.close();
  await tenant.close();
});

describe('A long history of ended leases', () => {
  const VAULT = 'kv-history-long';
  const OTHERS = 2000;
  const mine = identity('Lease.Request');
  const reader = identity('Lease.Read');
  let proxy: Awaited<ReturnType<typeof countingProxy>>;
  let broker: SecureBroker;
  let ownIds: string[] = [];

  beforeAll(async () => {
    emulator.createVault(lockedVault(VAULT));
    proxy = await countingProxy(storageConnectionString());
    broker = secureBroker({
      emulator,
      vaults: [VAULT],
      env: { ...tenant.env(), LEASE_STORAGE_CONNECTION_STRING: proxy.connectionString },
    });
    // Seeded through the adapter, in bulk: other callers' ended leases, and a few of ours.
    const seeder = new TableLeaseStore({
      tableName: broker.config.LEASE_TABLE_NAME,
      connectionString: storageConnectionString(),
    });
    const now = Date.now();
    const lease = (n: number, principal: string): Lease => ({
      id: newLeaseId(VAULT, now - DAY + n * 10),
      vault: VAULT,
      ip: `${publicIp(n)}/32`,
      status: 'active',
      principal,
      createdAt: now - DAY + n * 10,
      expiresAt: now - DAY + n * 10 + 600_000,
    });
    const leases = Array.from({ length: OTHERS + 5 }, (_, n) =>
      lease(n, n % 600 === 7 ? mine.oid : `pipeline-${n % 40}`),
    );
    ownIds = leases.filter((l) => l.principal === mine.oid).map((l) => l.id);
    await mapWithLimit(leases, 32, (l) => seeder.createLease(l));
    const live = await seeder.liveLeases(VAULT);
    const ended = await seeder.endLeases(live, 'expired', now - 1000);
    expect(ended.ended).toHaveLength(leases.length);
  }, 120_000);
  afterAll(async () => {
    await proxy.close();
  });

  /** The store requests one API call makes. */
  async function storeCalls(call: () => Promise<{ status: number }>) {
    // The tables exist (a loaded azurite may take a while after the seeding): not counted below.
    while ((await broker.call('GET', '/api/health')).status !== 200);
    await broker.call('GET', '/api/audit?$top=1', { headers: bearer(await tenant.token(reader)) });
    const from = proxy.requests.length;
    const response = await call();
    return { response, requests: proxy.requests.slice(from) };
  }

  it('When a Lease.Request caller lists its own history, then it gets exactly its leases in a bounded number of store calls, none of which reads the vault’s history', async () => {
    const token = await tenant.token(mine);
    const { response, requests } = await storeCalls(() =>
      broker.call('GET', `/api/leases?vault=${VAULT}&status=all&$top=100`, {
        headers: bearer(token),
      }),
    );
    expect(response.status, JSON.stringify({ response, requests })).toBe(200);
    const body = (response as unknown as { body: { value: { id: string; principal: string }[] } })
      .body;
    expect(body.value.map((l) => l.id).sort()).toEqual([...ownIds].sort());
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.length).toBeLessThanOrEqual(MAX_LIST_CALLS);
    // Other callers' history lives under the vault's `L_` keys: never queried here.
    for (const line of requests) expect(line).not.toContain("RowKey ge 'L_");
  });

  it('When a filter matches nothing in the long history, then the list still makes at most a fixed number of store calls', async () => {
    const token = await tenant.token(mine);
    const { response, requests } = await storeCalls(() =>
      broker.call('GET', `/api/leases?vault=${VAULT}&status=released`, {
        headers: bearer(token),
      }),
    );
    expect(response.status).toBe(200);
    expect(requests.length).toBeLessThanOrEqual(MAX_LIST_CALLS);
  });

  it('When a Lease.Read caller pages through the whole history, then each page costs at most a fixed number of store calls and nextLink leads on', async () => {
    const token = await tenant.token(reader);
    let path: string | undefined = `/api/leases?vault=${VAULT}&status=expired&$top=1000`;
    let seen = 0;
    let pages = 0;
    while (path && pages < 20) {
      const current: string = path;
      const { response, requests } = await storeCalls(() =>
        broker.call('GET', current, { headers: bearer(token) }),
      );
      expect(response.status).toBe(200);
      expect(requests.length).toBeLessThanOrEqual(MAX_LIST_CALLS);
      const body = (response as unknown as { body: { value: unknown[]; nextLink?: string } }).body;
      seen += body.value.length;
      pages += 1;
      path = body.nextLink
        ? (() => {
            const url = new URL(body.nextLink);
            return `${url.pathname}${url.search}`;
          })()
        : undefined;
    }
    expect(seen).toBe(OTHERS + 5);
  });
});

describe('History retention', () => {
  const VAULT = 'kv-history-kept';
  const clock = new ManualClock(T0);
  const pipeline = identity('Lease.Request');
  const reader = identity('Lease.Read');
  let broker: SecureBroker;

  beforeAll(() => {
    emulator.createVault(lockedVault(VAULT));
    broker = secureBroker({
      emulator,
      vaults: [VAULT],
      clock,
      env: { ...tenant.env(), LEASE_HISTORY_DAYS: '2' },
    });
  });

  async function grantAndRelease(ip: string): Promise<string> {
    const token = await tenant.token(pipeline);
    const granted = await broker.call('POST', '/api/leases', {
      body: { vault: VAULT },
      headers: { ...bearer(token), 'x-forwarded-for': ip },
    });
    expect(granted.status).toBe(201);
    const id = granted.body.id as string;
    expect(
      (await broker.call('DELETE', `/api/leases/${id}`, { headers: bearer(token) })).status,
    ).toBe(200);
    return id;
  }

  it('When ended leases are older than LEASE_HISTORY_DAYS, then the sweep removes them from the lease history, keeps younger ones, and the audit trail keeps every entry', async () => {
    const old = await grantAndRelease('52.44.0.1');
    clock.advance(DAY);
    const young = await grantAndRelease('52.44.0.2');
    clock.advance(DAY + DAY / 2); // old ended 2.5 days ago, young 1.5 days ago
    const swept = await broker.services.sweep('retention-1');
    expect(swept.pruned).toBe(1);

    const readToken = await tenant.token(reader);
    const ownToken = await tenant.token(pipeline);
    expect(
      (await broker.call('GET', `/api/leases/${old}`, { headers: bearer(readToken) })).status,
    ).toBe(404);
    expect(
      (await broker.call('GET', `/api/leases/${young}`, { headers: bearer(readToken) })).status,
    ).toBe(200);
    for (const token of [readToken, ownToken]) {
      const listed = await broker.call('GET', `/api/leases?vault=${VAULT}&status=released`, {
        headers: bearer(token),
      });
      expect(listed.body.value.map((l: { id: string }) => l.id)).toEqual([young]);
    }
    const audit = await broker.call('GET', `/api/audit?vault=${VAULT}&$top=1000`, {
      headers: bearer(readToken),
    });
    const oldEntries = audit.body.value.filter((e: { leaseId: string }) => e.leaseId === old);
    // Everything about the removed lease stays in the trail (its refused read above included).
    expect(oldEntries.map((e: { action: string }) => e.action)).toEqual(
      expect.arrayContaining(['grant', 'release', 'refused']),
    );
  });
});
