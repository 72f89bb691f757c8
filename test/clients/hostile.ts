import { mkdtempSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { selfSignedCertificate } from '../../dev/emulator/certificate';

/**
 * What a security review points a client at: a fake broker (a small local HTTP server) whose
 * answers the test sets (a hostile `vaultUri`, fields with terminal escapes, a whoami), and
 * listeners that play every host a token must never reach. With DNS_TO_LOOPBACK in a client's
 * NODE_OPTIONS, every host name resolves to 127.0.0.1, so a request to `evil.example:<port>`
 * or `kv-demo.vault.azure.net.evil.example:<port>` lands on a trap and is recorded.
 */

export const DNS_TO_LOOPBACK = join(__dirname, 'fixtures', 'resolve-to-loopback.cjs');

/** A request some listener received. */
export interface Seen {
  method: string;
  host: string;
  path: string;
  authorization: string | undefined;
  /** The request body (the fake broker records it: a grant's fields). */
  body?: string;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function record(request: IncomingMessage, into: Seen[]): void {
  into.push({
    method: request.method ?? '',
    host: request.headers.host ?? '',
    path: request.url ?? '',
    authorization: request.headers.authorization,
  });
}

/** A certificate that is its own CA, for these names (DNS names and IP addresses). */
export function certificate(names: string[]): { key: string; cert: string } {
  return selfSignedCertificate(names.length > 0 ? names : ['trap'], 2);
}

export interface Trap {
  /** `https://<name>:<port>` or `http://127.0.0.1:<port>`. */
  port: number;
  seen: Seen[];
  /** TCP connections accepted, whatever came over them (a TDS login is no HTTP request). */
  connections(): number;
  close(): Promise<void>;
}

/**
 * A listener that records every request and answers 200 `{ value: [] }` (what a vault's data
 * plane answers a probe that got in): a token that reaches it would make the wait succeed.
 */
export async function startTrap(tls?: { key: string; cert: string }): Promise<Trap> {
  const seen: Seen[] = [];
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    record(request, seen);
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end('{"value":[]}');
  };
  const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  let connections = 0;
  server.on('connection', () => (connections += 1));
  const port = await listen(server);
  return { port, seen, connections: () => connections, close: () => close(server) };
}

export interface FakeLease {
  id: string;
  vault: string;
  ip: string;
  status: string;
  principal: string;
  reason?: string;
  createdAt: string;
  expiresAt: string;
  vaultUri?: string;
  target?: string;
  kind?: 'keyvault' | 'storage' | 'sql';
  dataPlane?: string;
  warnings?: string[];
}

export interface FakeBroker {
  url: string;
  seen: Seen[];
  /** What the next grant (and GET of a lease) answers; `vaultUri` is the test's. */
  lease: FakeLease;
  /** Canned answers by `METHOD /path` (`GET /api/whoami`), before the lease routes. */
  answers: Map<string, { status: number; body: unknown }>;
  deletes(): string[];
  /** The bodies of the grants received, parsed. */
  grants(): Record<string, unknown>[];
  close(): Promise<void>;
}

export function fakeLease(overrides: Partial<FakeLease> = {}): FakeLease {
  const now = Date.now();
  return {
    id: `kv-demo.${Math.random().toString(36).slice(2, 14)}`,
    vault: 'kv-demo',
    ip: '52.10.20.30/32',
    status: 'active',
    principal: 'local-dev',
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 600_000).toISOString(),
    ...overrides,
  };
}

/**
 * A broker as a hostile or broken deployment could answer: grant (201 with `lease`), get and
 * release (200, `status: released`), and canned answers for anything else the test sets.
 */
export async function startFakeBroker(): Promise<FakeBroker> {
  const seen: Seen[] = [];
  const broker = {
    seen,
    lease: fakeLease(),
    answers: new Map<string, { status: number; body: unknown }>(),
  } as FakeBroker;
  const server = createHttpServer((request, response) => {
    const path = (request.url ?? '').split('?')[0] ?? '';
    const send = (status: number, body: unknown) => {
      const problem = status >= 400;
      response.writeHead(status, {
        'Content-Type': problem ? 'application/problem+json' : 'application/json',
      });
      response.end(JSON.stringify(body));
    };
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      record(request, seen);
      const body = Buffer.concat(chunks).toString('utf8');
      if (body !== '') seen[seen.length - 1]!.body = body;
      const canned = broker.answers.get(`${request.method} ${path}`);
      if (canned) return send(canned.status, canned.body);
      if (request.method === 'POST' && path === '/api/leases') return send(201, broker.lease);
      const lease = /^\/api\/leases\/([^/]+)$/.exec(path);
      if (lease && decodeURIComponent(lease[1] ?? '') === broker.lease.id) {
        if (request.method === 'GET') return send(200, broker.lease);
        if (request.method === 'DELETE') return send(200, { ...broker.lease, status: 'released' });
      }
      return send(404, {
        type: 'urn:kv-lease:problem:not-found',
        title: 'No such resource',
        status: 404,
      });
    });
  });
  const port = await listen(server);
  broker.url = `http://127.0.0.1:${port}`;
  broker.deletes = () =>
    seen
      .filter((s) => s.method === 'DELETE')
      .map((s) => decodeURIComponent(s.path.split('/').pop() ?? ''));
  broker.grants = () =>
    seen
      .filter((s) => s.method === 'POST' && s.path.split('?')[0] === '/api/leases')
      .map((s) => JSON.parse(s.body ?? '{}') as Record<string, unknown>);
  broker.close = () => close(server);
  return broker;
}

/** A file of PEM certificates for NODE_EXTRA_CA_CERTS, in a fresh temporary folder. */
export function caFile(...certs: string[]): string {
  const path = join(mkdtempSync(join(tmpdir(), 'kv-lease-ca-')), 'ca.pem');
  writeFileSync(path, certs.join('\n'));
  return path;
}

/** Every character no terminal, page or spreadsheet should receive raw. */
export const RAW_CONTROL =
  // eslint-disable-next-line no-control-regex -- control characters are what this looks for
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Text a hostile broker puts in any field: CSI clear, OSC 52 clipboard write, CR overwrite, C1 CSI, bidi override. */
export const HOSTILE_TEXT =
  'run 42\u001b[2J\u001b]52;c;ZWNobyBwd25lZA==\u0007\roverwritten\u009b31m\u202etxt.exe';
