import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import {
  BrokerClient,
  DataPlaneEndpoint,
  DeadlineError,
  exitCodeFor,
  ProblemError,
  type RetryInfo,
  UnreachableError,
  UntrustedDataPlaneError,
  waitForDataPlane,
  WrongAddressError,
} from '../../clients/lib';
import { freePort } from '../../dev/local/processes';
import { rulesOf } from '../support/harness';
import { startBrokers } from '../support/processes';
import { startFakeBroker } from './hostile';
import { type ClientWorld, LEASED_IP, startWorld, trustingFetch } from './support';

const vaultToken = () => Promise.resolve('data-plane-token');

describe('client library against the local broker, azurite and the emulator', () => {
  let world: ClientWorld;
  let client: BrokerClient;

  beforeAll(async () => {
    world = await startWorld('kv-lib');
    client = new BrokerClient({ baseUrl: world.broker.url });
  });

  afterAll(async () => {
    await world?.close();
  });

  it('When a lease is granted, then it is active, names the vault URI and the vault holds the rule', async () => {
    const [vault] = world.vaults;

    const lease = await client.grant({ vault: vault!, ip: LEASED_IP, ttlSeconds: 600 });

    expect(lease).toMatchObject({ vault, ip: `${LEASED_IP}/32`, status: 'active' });
    expect(lease.vaultUri).toBe(world.emulator.vaultUri(vault!));
    expect(rulesOf(world.emulator, vault!)).toContain(`${LEASED_IP}/32`);
  });

  it('When a grant is repeated with the same Idempotency-Key, then the same lease comes back', async () => {
    const vault = world.vaults[1]!;
    const key = `run-${Date.now()}`;

    const first = await client.grant({ vault, ip: '52.10.20.31', idempotencyKey: key });
    const again = await client.grant({ vault, ip: '52.10.20.31', idempotencyKey: key });

    expect(again.id).toBe(first.id);
  });

  it('When a lease is renewed and released, then each answer is the lease in its new state', async () => {
    const vault = world.vaults[1]!;
    const lease = await client.grant({ vault, ip: '52.10.20.32', ttlSeconds: 120 });

    const renewed = await client.renew(lease.id, 900);
    const released = await client.release(lease.id);
    const again = await client.release(lease.id);

    expect(Date.parse(renewed.expiresAt)).toBeGreaterThan(Date.parse(lease.expiresAt));
    expect(released.status).toBe('released');
    expect(again).toEqual(released);
    expect(rulesOf(world.emulator, vault)).not.toContain('52.10.20.32/32');
  });

  it('When there are more leases than one page holds, then listLeases follows nextLink to all of them', async () => {
    const vault = world.vaults[2]!;
    const ips = Array.from(
      { length: 105 },
      (_, i) => `52.20.${Math.floor(i / 200)}.${(i % 200) + 1}`,
    );
    await Promise.all(ips.map((ip) => client.grant({ vault, ip, ttlSeconds: 600 })));

    const leases = await client.listLeases({ vault, status: 'active' });

    expect(leases).toHaveLength(105);
    expect(new Set(leases.map((lease) => lease.ip))).toEqual(new Set(ips.map((ip) => `${ip}/32`)));
  });

  it('When the vaults and the audit trail are read, then they show the managed vaults and what happened', async () => {
    const since = new Date(Date.now() - 60_000).toISOString();

    const vaults = await client.vaults();
    const audit = await client.audit({ vault: world.vaults[0], since });

    expect(vaults.map((v) => v.name).sort()).toEqual([...world.vaults].sort());
    expect(vaults[0]?.vaultUri).toBe(world.emulator.vaultUri(vaults[0]!.name));
    expect(audit.map((entry) => entry.action)).toContain('grant');
  });

  it('When the vault is not managed, then the error is a 404 problem with the broker title and exit code 5', async () => {
    const error = await client
      .grant({ vault: 'kv-nowhere', ip: LEASED_IP })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ProblemError);
    expect((error as ProblemError).kind).toBe('vault-not-found');
    expect((error as ProblemError).message).toMatch(/kv-nowhere/);
    expect(exitCodeFor(error)).toBe(5);
  });

  it('When the body is invalid, then the message carries each field error on its own line', async () => {
    const error = await client.grant({ vault: world.vaults[0]!, ttlSeconds: 1.5 }).then(
      () => undefined,
      (e: unknown) => e as ProblemError,
    );
    if (!error) throw new Error('the grant should have been refused');

    expect(error.status).toBe(400);
    expect(error.errors?.map((e) => e.path)).toContain('ttlSeconds');
    expect(error.message.split('\n')[1]).toMatch(/^ {2}ttlSeconds: /);
    expect(exitCodeFor(error)).toBe(4);
  });

  it('When the broker answers 503 with Retry-After, then the grant waits that long, retries with the same key and gets one lease', async () => {
    const vault = world.vaults[3]!;
    // A broker that gives up on the firewall after 1 s: 503 vault-update-timeout, Retry-After 5.
    const [impatient] = await startBrokers({
      count: 1,
      emulator: world.emulator,
      vaults: world.vaults,
      env: { LEASE_APPLY_TIMEOUT_SECONDS: '1' },
    });
    onTestFinished(() => impatient!.child.stop());
    world.emulator.configure({ faults: { rate: 1, statuses: [500], methods: ['PATCH'] } });
    const retries: RetryInfo[] = [];
    const retrying = new BrokerClient({
      baseUrl: impatient!.url,
      onRetry: (info) => {
        retries.push(info);
        world.emulator.configure({ faults: null });
      },
    });

    const started = Date.now();
    const lease = await retrying.grant({ vault, ip: '52.10.20.40' });
    const elapsed = Date.now() - started;

    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ attempt: 1, status: 503, delayMs: 5000 });
    expect(elapsed).toBeGreaterThanOrEqual(5000);
    expect(lease.status).toBe('active');
    const active = await retrying.listLeases({ vault });
    expect(active.map((l) => l.id)).toEqual([lease.id]);
  });

  it('When the broker cannot be reached, then retries stop at the deadline with an unavailable error', async () => {
    const port = await freePort();
    const retries: RetryInfo[] = [];
    const nowhere = new BrokerClient({
      baseUrl: `http://127.0.0.1:${port}`,
      onRetry: (info) => retries.push(info),
    });

    const error = await nowhere.vaults({ deadlineMs: 1500 }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnreachableError);
    expect(String(error)).toMatch(/ECONNREFUSED/);
    expect(retries.length).toBeGreaterThan(1);
    expect(exitCodeFor(error)).toBe(6);
  });

  it('When a token would go over plain http to another host, then the client refuses to start', () => {
    expect(
      () => new BrokerClient({ baseUrl: 'http://broker.example.com', token: vaultToken }),
    ).toThrow(/plain http/);
  });

  it('When the rule takes a while to reach the data plane, then waitForDataPlane returns once the vault answers', async () => {
    const vault = world.vaults[0]!;
    world.emulator.configureDataPlane({ vaults: { [vault]: { propagationDelayMs: 1500 } } });
    const progress: number[] = [];
    const lease = await client.grant({ vault, ip: '52.10.20.50', ttlSeconds: 600 });
    world.emulator.configureDataPlane({ vaults: { [vault]: { clientAddress: '52.10.20.50' } } });

    const result = await waitForDataPlane({
      endpoint: DataPlaneEndpoint.resolve({
        vault,
        brokerUri: lease.vaultUri,
        allowLoopback: true,
      }),
      leasedIp: lease.ip,
      token: vaultToken,
      fetch: trustingFetch(world.emulator),
      onProgress: (p) => progress.push(p.attempt),
    });

    expect(result.attempts).toBeGreaterThan(1);
    expect(progress.length).toBe(result.attempts - 1);
    expect(result.elapsedMs).toBeGreaterThan(500);
  });

  it('When the vault sees another address than the leased one, then the wait fails with both addresses', async () => {
    const vault = world.vaults[1]!;
    world.emulator.configureDataPlane({ vaults: { [vault]: { clientAddress: '20.30.40.50' } } });
    const lease = await client.grant({ vault, ip: '52.10.20.60', ttlSeconds: 600 });

    const error = await waitForDataPlane({
      endpoint: DataPlaneEndpoint.resolve({
        vault,
        brokerUri: lease.vaultUri,
        allowLoopback: true,
      }),
      leasedIp: lease.ip,
      token: vaultToken,
      fetch: trustingFetch(world.emulator),
      intervalMs: 50,
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(WrongAddressError);
    expect(error).toMatchObject({ clientAddress: '20.30.40.50', leasedIp: '52.10.20.60/32' });
    expect(exitCodeFor(error)).toBe(8);
  });

  it('When the rule never reaches the data plane in time, then the wait ends at its limit with a timeout', async () => {
    const vault = world.vaults[2]!;
    world.emulator.configureDataPlane({ vaults: { [vault]: { propagationDelayMs: 60_000 } } });
    const lease = await client.grant({ vault, ip: LEASED_IP, ttlSeconds: 600 });

    const error = await waitForDataPlane({
      endpoint: DataPlaneEndpoint.resolve({
        vault,
        brokerUri: lease.vaultUri,
        allowLoopback: true,
      }),
      leasedIp: lease.ip,
      token: vaultToken,
      fetch: trustingFetch(world.emulator),
      timeoutMs: 1200,
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DeadlineError);
    expect(String(error)).toMatch(/403 ForbiddenByFirewall/);
    expect(exitCodeFor(error)).toBe(7);
  });

  it("When the vault's certificate is not trusted (this process does not trust the emulator's CA), then the wait fails at once with what to trust", async () => {
    const vault = world.vaults[3]!;
    const lease = await client.grant({ vault, ip: LEASED_IP, ttlSeconds: 600 });
    const started = Date.now();
    const progress: number[] = [];

    const error = await waitForDataPlane({
      endpoint: DataPlaneEndpoint.resolve({
        vault,
        brokerUri: lease.vaultUri,
        allowLoopback: true,
      }),
      leasedIp: lease.ip,
      token: vaultToken,
      onProgress: (p) => progress.push(p.attempt),
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UntrustedDataPlaneError);
    expect(String(error)).toMatch(/NODE_EXTRA_CA_CERTS/);
    expect(progress).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(exitCodeFor(error)).toBe(4);
  });
});

describe('client library: whoami', () => {
  it('When the broker answers GET /api/whoami, then whoami resolves to the caller as the broker sees it', async () => {
    const broker = await startFakeBroker();
    onTestFinished(() => broker.close());
    const answer = { principal: 'oid-1', roles: ['Lease.Request'], ip: '52.1.2.3/32' };
    broker.answers.set('GET /api/whoami', { status: 200, body: answer });

    const me = await new BrokerClient({ baseUrl: broker.url, token: vaultToken }).whoami();

    expect(me).toEqual(answer);
    expect(broker.seen.map((s) => [s.method, s.path, s.authorization])).toEqual([
      ['GET', '/api/whoami', 'Bearer data-plane-token'],
    ]);
  });
});
