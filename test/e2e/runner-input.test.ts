import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import { lockedVault, publicIp, rulesOf, STATIC_RULE, testEmulator } from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';

/**
 * Input that only the HTTP front reaches: malformed percent-encoding in a
 * path, odd X-Forwarded-For values and foreign Host headers, sent over a real
 * socket to the local runner.
 */
const VAULT = 'kv-runner-input';
let emulator: RunningEmulator;
let broker: BrokerProcess;

beforeAll(async () => {
  emulator = await testEmulator();
  emulator.createVault(lockedVault(VAULT));
  [broker] = (await startBrokers({ count: 1, emulator, vaults: [VAULT] })) as [BrokerProcess];
});

afterAll(async () => {
  await broker.child.stop();
  await emulator.close();
});

describe('The local runner at its front door', () => {
  for (const path of ['/api/leases/%zz', '/api/leases/kv-a.%E0%A4%A', '/api/leases/%/renew']) {
    it(`When a path has malformed percent-encoding (${path}), then 400 problem+json, not 500`, async () => {
      const method = path.endsWith('/renew') ? 'POST' : 'GET';
      const response = await http(method, `${broker.url}${path}`);
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(response.body.type).toBe('urn:kv-lease:problem:invalid-request');
    });
  }

  it('When X-Forwarded-For ends in an address with a non-breaking space before or after it, then 400 no-client-ip and no rule', async () => {
    for (const last of [`${publicIp(7)}\u00a0`, `\u00a0${publicIp(8)}`]) {
      const response = await fetch(`${broker.url}/api/leases`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-forwarded-for': `203.0.113.1, ${last}`,
        },
        body: JSON.stringify({ vault: VAULT }),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { type: string }).type).toBe(
        'urn:kv-lease:problem:no-client-ip',
      );
    }
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });

  it('When a grant comes with no X-Forwarded-For, then the problem says the address is unknown once: the detail adds why, and the CLI prints it once', async () => {
    const response = await http('POST', `${broker.url}/api/leases`, { vault: VAULT });
    expect(response.status).toBe(400);
    const problem = response.body as { type: string; title: string; detail: string };
    expect(problem.type).toBe('urn:kv-lease:problem:no-client-ip');
    expect(problem.detail.toLowerCase()).not.toContain(problem.title.toLowerCase());
    expect(problem.detail).toContain('X-Forwarded-For');

    const cli = spawnSync(
      process.execPath,
      [
        join(__dirname, '..', '..', 'clients', 'cli', 'dist', 'kv-lease.js'),
        'grant',
        '--vault',
        VAULT,
      ],
      {
        env: { PATH: process.env.PATH ?? '', KV_LEASE_BROKER: broker.url, KV_LEASE_AUTH: 'none' },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(cli.status, cli.stderr).toBe(4);
    expect(cli.stderr.split(problem.title).length - 1).toBe(1);
    expect(cli.stderr).toContain(`${problem.title}: ${problem.detail}`);
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });

  it('When an admin names an ip with surrounding spaces, then 400 ip-not-allowed and no rule', async () => {
    const response = await http('POST', `${broker.url}/api/leases`, {
      vault: VAULT,
      ip: ` ${publicIp(9)} `,
    });
    expect(response.status).toBe(400);
    expect(response.body.type).toBe('urn:kv-lease:problem:ip-not-allowed');
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });
});

/** One request to the runner's socket with exactly this Host header (fetch would set its own). */
function withHost(
  url: string,
  method: string,
  path: string,
  host: string,
  body?: unknown,
): Promise<{ status: number; type: string | undefined; json: any }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        method,
        path,
        headers: {
          host,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            type: response.headers['content-type'],
            json: text ? JSON.parse(text) : undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('The local runner and the Host header (DNS rebinding)', () => {
  const port = () => new URL(broker.url).port;

  it('When the Host is a name a web page controls, then 400 problem+json naming the Host, and a grant changes nothing', async () => {
    const foreign = [
      'evil.example',
      `evil.example:${port()}`,
      'localhost.evil.example',
      '127.0.0.1.nip.io',
      '10.0.0.1',
      `192.168.1.10:${port()}`,
      '0.0.0.0',
      '[::ffff:7f00:1]',
      '[2001:db8::1]:80',
    ];
    for (const host of foreign) {
      const answer = await withHost(broker.url, 'GET', '/api/health', host);
      expect(answer.status, host).toBe(400);
      expect(answer.type).toBe('application/problem+json');
      expect(answer.json.type).toBe('urn:kv-lease:problem:invalid-request');
      expect(answer.json.detail).toContain(JSON.stringify(host));
      expect(answer.json.errors).toEqual([
        { path: 'Host header', message: 'is not a loopback name or address' },
      ]);
    }
    const grant = await withHost(broker.url, 'POST', '/api/leases', 'evil.example', {
      vault: VAULT,
      ip: publicIp(11),
    });
    expect(grant.status).toBe(400);
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });

  it('When the Host is a loopback name or address, with or without a port, then the request is served', async () => {
    const loopback = [
      'localhost',
      `localhost:${port()}`,
      `LOCALHOST:${port()}`,
      `localhost.:${port()}`,
      `console.localhost:${port()}`,
      '127.0.0.1',
      `127.0.0.1:${port()}`,
      `127.10.20.30:${port()}`,
      '[::1]',
      `[::1]:${port()}`,
      `[0:0:0:0:0:0:0:1]:${port()}`,
    ];
    for (const host of loopback) {
      const answer = await withHost(broker.url, 'GET', '/api/health', host);
      expect(answer.status, host).toBe(200);
      expect(answer.json).toEqual({ status: 'ok' });
    }
  });
});

describe('Methods and bodies the API does not take, at the runner', () => {
  it.each([
    ['PUT', '/api/leases', 'GET, POST'],
    ['PATCH', `/api/leases/${VAULT}.${'a'.repeat(24)}`, 'GET, DELETE'],
    ['GET', `/api/leases/${VAULT}.${'a'.repeat(24)}/renew`, 'POST'],
    ['DELETE', '/api/health', 'GET'],
    // No definition names this one: the runner hands it to the route's 405 definition.
    ['PROPFIND', '/api/vaults', 'GET'],
  ])('When %s %s is sent, then 405 problem+json with Allow: %s', async (method, path, allow) => {
    const response = await fetch(`${broker.url}${path}`, { method });
    expect(response.status).toBe(405);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.headers.get('allow')).toBe(allow);
    expect(((await response.json()) as { type: string }).type).toBe(
      'urn:kv-lease:problem:method-not-allowed',
    );
  });

  it('When a body over 16 KiB comes chunked (no Content-Length), then 413 and no rule', async () => {
    const chunk = new TextEncoder().encode(' '.repeat(1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode(`{"vault":"${VAULT}"}`));
        if (sent++ < 17) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await fetch(`${broker.url}/api/leases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': publicIp(10) },
      body,
      duplex: 'half',
    });
    expect(response.status).toBe(413);
    expect(((await response.json()) as { type: string }).type).toBe(
      'urn:kv-lease:problem:body-too-large',
    );
    expect(rulesOf(emulator, VAULT)).toEqual([STATIC_RULE]);
  });
});
