import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';

import type { SqlManagementClient } from '@azure/arm-sql';
import { Connection } from 'tedious';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type TdsLoginResult, tryTdsLogin } from '../../clients/lib/probes/sql-tds';
import { selfSignedCertificate } from '../../dev/emulator/certificate';
import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { rawRequest, sqlClient, uniqueName } from './helpers';

const RG = 'rg-sql-tds';
const CLIENT = '52.10.20.30';
/** Long enough that tedious' LOGIN7 spans two 4 KiB packets (UTF-16), like a real Entra token. */
const TOKEN = `eyJ0eXAiOiJKV1QifQ.${'c2VjcmV0'.repeat(320)}.sig`;

function listenTcp(server: TcpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

function closeTcp(server: TcpServer, sockets: Set<Socket> = new Set()): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

function failureText(result: TdsLoginResult): string {
  return result.result === 'failed' ? result.reason : '';
}

describe('Emulator: the SQL servers TDS endpoint, probed with tedious through tryTdsLogin', () => {
  let emulator: RunningEmulator;
  let client: SqlManagementClient;

  beforeEach(async () => {
    emulator = await startEmulator({ dataPlane: { clientAddress: CLIENT } });
    client = sqlClient(emulator);
  });

  afterEach(async () => {
    await emulator.close();
  });

  async function createServer(
    options: { publicNetworkAccess?: 'Enabled' | 'Disabled'; allowAzureServices?: boolean } = {},
  ): Promise<{ id: string; name: string; host: string; port: number }> {
    const name = uniqueName('sql');
    const id = emulator.sql.create({ resourceGroup: RG, name, ...options });
    const address = await emulator.sql.dataPlaneAddress(id);
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    // The host a broker would show: the server's fullyQualifiedDomainName.
    const host = (await client.servers.get(RG, name)).fullyQualifiedDomainName ?? '';
    return { id, name, host, port };
  }

  function probe(
    server: { host: string; port: number },
    extra: { trustedCa?: string | undefined; timeoutMs?: number } = {},
  ): Promise<TdsLoginResult> {
    return tryTdsLogin({
      host: server.host,
      port: server.port,
      token: TOKEN,
      trustedCa: 'trustedCa' in extra ? extra.trustedCa : emulator.caPem,
      timeoutMs: extra.timeoutMs ?? 5_000,
    });
  }

  it('When no rule admits the client, then the login is refused naming its address; a rule lets it through, and its deletion refuses it again', async () => {
    const server = await createServer({ allowAzureServices: true });

    const before = await probe(server);
    await client.firewallRules.createOrUpdate(RG, server.name, 'kvlease-52-10-20-0', {
      startIpAddress: '52.10.20.0',
      endIpAddress: '52.10.20.255',
    });
    const admitted = await probe(server);
    await client.firewallRules.delete(RG, server.name, 'kvlease-52-10-20-0');
    const after = await probe(server);

    expect(server.host).toBe('127.0.0.1');
    expect(before).toEqual({ result: 'refused', clientAddress: CLIENT });
    expect(admitted).toEqual({ result: 'through' });
    expect(after).toEqual({ result: 'refused', clientAddress: CLIENT });
    expect(emulator.sql.stats()[server.id.toLowerCase()]).toMatchObject({
      loginsRefused: 2,
      loginsThrough: 1,
    });
  });

  it('When tedious logs in with a token, then the emulator answers as Azure SQL does: 40615 naming the address, then 18456 for the token-identified principal', async () => {
    const server = await createServer();
    const login = (): Promise<{ number: number; message: string; code?: string }> =>
      new Promise((resolve) => {
        let first: { number: number; message: string } | undefined;
        const connection = new Connection({
          server: server.host,
          authentication: {
            type: 'azure-active-directory-access-token',
            options: { token: TOKEN },
          },
          options: {
            port: server.port,
            database: 'master',
            encrypt: 'strict',
            maxRetriesOnTransientErrors: 0,
            cryptoCredentialsDetails: { ca: emulator.caPem },
          },
        });
        connection.on('errorMessage', (token) => {
          first ??= { number: token.number, message: token.message };
        });
        connection.connect((error) => {
          connection.close();
          resolve({
            number: first?.number ?? 0,
            message: first?.message ?? '',
            code: (error as { code?: string } | undefined)?.code,
          });
        });
      });

    const refused = await login();
    emulator.sql.setFirewallRule(server.id, {
      name: 'kvlease-52-10-20-30',
      startIpAddress: CLIENT,
      endIpAddress: CLIENT,
    });
    const through = await login();

    expect(refused).toMatchObject({ number: 40615, code: 'ELOGIN' });
    expect(refused.message).toContain(
      `Cannot open server '${server.name}' requested by the login. Client with IP address '${CLIENT}' is not allowed to access the server.`,
    );
    expect(through).toEqual({
      number: 18456,
      message: "Login failed for user '<token-identified principal>'.",
      code: 'ELOGIN',
    });
  });

  it('When a rule admits another address only, then the login is still refused', async () => {
    const server = await createServer();
    emulator.sql.setFirewallRule(server.id, {
      name: 'office',
      startIpAddress: '52.10.20.31',
      endIpAddress: '52.10.20.40',
    });

    expect(await probe(server)).toEqual({ result: 'refused', clientAddress: CLIENT });
  });

  it('When no client address is configured, then the server names the TCP peer', async () => {
    emulator.configureDataPlane({ clientAddress: null });
    const server = await createServer();

    expect(await probe(server)).toEqual({ result: 'refused', clientAddress: '127.0.0.1' });
  });

  it('When the data plane lags the rules, then a new rule admits the client only after the propagation delay', async () => {
    const delayMs = 3_000;
    const server = await createServer();
    emulator.configureDataPlane({ propagationDelayMs: delayMs });

    await client.firewallRules.createOrUpdate(RG, server.name, 'kvlease-52-10-20-30', {
      startIpAddress: CLIENT,
      endIpAddress: CLIENT,
    });
    const written = Date.now();
    const early = await probe(server);
    const earlyElapsed = Date.now() - written;
    await new Promise((resolve) => setTimeout(resolve, written + delayMs + 100 - Date.now()));
    const late = await probe(server);

    expect(earlyElapsed).toBeLessThan(delayMs);
    expect(early).toEqual({ result: 'refused', clientAddress: CLIENT });
    expect(late).toEqual({ result: 'through' });
  });

  it('When the server has public network access disabled, then the probe fails for good and says why', async () => {
    const server = await createServer({ publicNetworkAccess: 'Disabled' });

    const result = await probe(server);

    expect(result).toMatchObject({ result: 'failed', permanent: true });
    expect(failureText(result)).toMatch(/public network access is disabled/);
  });

  it('When the client does not trust the server certificate, then the probe fails for good, pointing at NODE_EXTRA_CA_CERTS', async () => {
    const server = await createServer();

    const result = await probe(server, { trustedCa: undefined });

    expect(result).toMatchObject({ result: 'failed', permanent: true });
    expect(failureText(result)).toMatch(/NODE_EXTRA_CA_CERTS/);
    expect(emulator.sql.stats()[server.id.toLowerCase()]).toMatchObject({
      loginsRefused: 0,
      loginsThrough: 0,
    });
  });

  it('When the certificate names another host, then the probe fails for good before any login', async () => {
    const certificate = selfSignedCertificate(['sql-other.example'], 1);
    const logins: Buffer[] = [];
    const server = createTlsServer(
      { key: certificate.key, cert: certificate.cert, ALPNProtocols: ['tds/8.0'] },
      (socket) => socket.on('data', (bytes: Buffer) => logins.push(bytes)),
    );
    server.on('tlsClientError', () => undefined);
    const port = await listenTcp(server);
    try {
      const result = await probe({ host: '127.0.0.1', port }, { trustedCa: certificate.cert });

      expect(result).toMatchObject({ result: 'failed', permanent: true });
      expect(failureText(result)).toMatch(/does not name this host/);
      expect(logins).toEqual([]);
    } finally {
      await closeTcp(server);
    }
  });

  it('When nothing listens on the port, then the probe fails, worth retrying', async () => {
    const placeholder = createTcpServer();
    const port = await listenTcp(placeholder);
    await closeTcp(placeholder);

    const result = await probe({ host: '127.0.0.1', port });

    expect(result).toMatchObject({ result: 'failed', permanent: false });
    expect(failureText(result)).toMatch(/ECONNREFUSED/);
  });

  it('When the server accepts the connection and never answers, then the probe fails within timeoutMs, worth retrying', async () => {
    const sockets = new Set<Socket>();
    const hung = createTcpServer((socket) => sockets.add(socket));
    const port = await listenTcp(hung);
    try {
      const started = Date.now();
      const result = await probe({ host: '127.0.0.1', port }, { timeoutMs: 500 });
      const elapsed = Date.now() - started;

      expect(result).toMatchObject({ result: 'failed', permanent: false });
      expect(failureText(result)).toMatch(/within 500 ms/);
      expect(sockets.size).toBe(1);
      expect(elapsed).toBeGreaterThanOrEqual(450);
      expect(elapsed).toBeLessThan(1_500);
    } finally {
      await closeTcp(hung, sockets);
    }
  });

  it('When the caller aborts, then the probe answers at once without waiting for the server', async () => {
    const sockets = new Set<Socket>();
    const hung = createTcpServer((socket) => sockets.add(socket));
    const port = await listenTcp(hung);
    try {
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => controller.abort(), 100);
      const result = await tryTdsLogin({
        host: '127.0.0.1',
        port,
        token: TOKEN,
        signal: controller.signal,
        timeoutMs: 5_000,
      });

      expect(result).toEqual({ result: 'failed', reason: 'aborted', permanent: false });
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      await closeTcp(hung, sockets);
    }
  });

  it('When every kind of failure is reported, then no reason carries the token', async () => {
    const refusedServer = await createServer({ publicNetworkAccess: 'Disabled' });
    const placeholder = createTcpServer();
    const closedPort = await listenTcp(placeholder);
    await closeTcp(placeholder);

    const results = await Promise.all([
      probe(refusedServer),
      probe(refusedServer, { trustedCa: undefined }),
      probe({ host: '127.0.0.1', port: closedPort }),
      probe({ host: 'no-such-host.invalid', port: 1433 }),
    ]);

    expect(results.map((result) => result.result)).toEqual([
      'failed',
      'failed',
      'failed',
      'failed',
    ]);
    for (const result of results) {
      expect(JSON.stringify(result)).not.toContain(TOKEN.slice(0, 40));
    }
  });

  it('When the admin API lists SQL servers, then each shows its TDS endpoint as host:port', async () => {
    const server = await createServer();

    const listed = await rawRequest(emulator, 'GET', '/_emulator/sql-servers');
    const entry = (listed.json() as { value: { id: string; dataPlane?: string }[] }).value.find(
      (candidate) => candidate.id === server.id,
    );

    expect(entry?.dataPlane).toBe(`127.0.0.1:${server.port}`);
  });
});
