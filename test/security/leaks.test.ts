import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunningEmulator } from '../../dev/emulator/types';
import type { Logger } from '../../src/domain/logger';
import { redact, redactingLogger } from '../../src/observability/redact';
import { lockedVault, publicIp, testEmulator } from '../support/harness';
import {
  b64url,
  bearer,
  type CallResult,
  type CapturedLine,
  identity,
  type SecureBroker,
  secureBroker,
  startTenant,
  type Tenant,
} from './support';

/**
 * No response carries a stack, an SDK error body or a token, and no log line
 * (the broker's logger or the invocation's log handler) carries the
 * Authorization header, on success paths, refusals, firewall failures and a
 * bug that puts a token into an error message.
 */

const VAULT = 'kv-leaks';
const FAILING = 'kv-leaks-down';

let emulator: RunningEmulator;
let tenant: Tenant;
let broker: SecureBroker;
const lines: CapturedLine[] = [];
const responses: CallResult[] = [];
/** Every token sent in this file, valid or not. */
const sent: string[] = [];

beforeAll(async () => {
  emulator = await testEmulator();
  emulator.createVault(lockedVault(VAULT));
  emulator.createVault(lockedVault(FAILING));
  tenant = await startTenant();
  broker = secureBroker({
    emulator,
    vaults: [VAULT, FAILING],
    env: { ...tenant.env(), LEASE_APPLY_TIMEOUT_SECONDS: '1' },
    capture: lines,
  });
});
afterAll(async () => {
  await tenant.close();
  await emulator.close();
});

/** The parts of a token that identify it: anything but its (public) JOSE header. */
function secretsOf(token: string): string[] {
  return token.split('.').filter((part) => part.length >= 8 && !part.startsWith('eyJhbGci'));
}

function expectClean(text: string, where: string): void {
  for (const token of sent) {
    for (const secret of secretsOf(token)) expect(text, where).not.toContain(secret);
  }
  expect(text, where).not.toMatch(/Bearer\s+ey/i);
}

async function send(
  method: string,
  path: string,
  token: string | undefined,
  init: { body?: object; headers?: Record<string, string> } = {},
): Promise<CallResult> {
  if (token) sent.push(token);
  const response = await broker.call(method, path, {
    ...init,
    headers: { ...(token ? bearer(token) : {}), ...init.headers },
  });
  responses.push(response);
  return response;
}

describe('When tokens travel through every kind of request', () => {
  it('then no response and no log line carries one, nor a stack or an SDK error body', async () => {
    const pipeline = identity('Lease.Request');
    const admin = identity('Lease.Admin');
    const good = await tenant.token(pipeline);
    const adminToken = await tenant.token(admin);

    // Success paths.
    const granted = await send('POST', '/api/leases', good, {
      body: { vault: VAULT, reason: 'run 1' },
      headers: { 'x-forwarded-for': publicIp(1) },
    });
    expect(granted.status).toBe(201);
    await send('GET', `/api/leases/${granted.body.id}`, good);
    await send('POST', `/api/leases/${granted.body.id}/renew`, good, { body: { ttlSeconds: 600 } });
    await send('GET', '/api/leases?status=all', adminToken);
    await send('GET', '/api/vaults', adminToken);
    await send('GET', '/api/audit', adminToken);
    await send('DELETE', `/api/leases/${granted.body.id}`, good);

    // Refusals of every kind, with tokens good and bad.
    const [header, payload] = good.split('.');
    const tampered = `${header}.${b64url({ ...JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()), roles: ['Lease.Admin'] })}.${good.split('.')[2]}`;
    const expired = await tenant.token(pipeline, { exp: Math.floor(Date.now() / 1000) - 3600 });
    const foreign = await tenant.token(pipeline, { aud: 'api://someone-else' });
    for (const token of [
      tampered,
      expired,
      foreign,
      `${good}x`,
      good.split('.').reverse().join('.'),
    ]) {
      const response = await send('POST', '/api/leases', token, {
        body: { vault: VAULT },
        headers: { 'x-forwarded-for': publicIp(2) },
      });
      expect(response.status).toBe(401);
    }
    // A token where a token does not belong: in a body field, a header, a query.
    await send('POST', '/api/leases', good, {
      body: { vault: VAULT, ip: good.slice(0, 64) },
    });
    await send('POST', '/api/leases', good, {
      body: { vault: VAULT },
      headers: { 'x-forwarded-for': good, 'idempotency-key': good },
    });
    await send('GET', `/api/audit?principal=${good.slice(0, 128)}`, adminToken);
    await send('GET', `/api/leases/${good.slice(0, 60)}`, good);

    // The firewall fails: Resource Manager answers 500 with its error body.
    emulator.configure({ faults: { rate: 1, statuses: [500], methods: ['PATCH', 'PUT'] } });
    try {
      const failed = await send('POST', '/api/leases', good, {
        body: { vault: FAILING },
        headers: { 'x-forwarded-for': publicIp(3) },
      });
      expect(failed.status).toBe(503);
      expect(failed.body.type).toBe('urn:kv-lease:problem:vault-update-timeout');
    } finally {
      emulator.configure({ faults: null });
    }

    for (const response of responses) {
      const where = `${response.status} ${response.text.slice(0, 80)}`;
      expectClean(response.text, where);
      expect(response.text, where).not.toMatch(
        /\bat .+:\d+:\d+|\.js:\d+|\.ts:\d+|"stack"|RestError|statusCode|fault injected|InternalServerError|"error":\s*\{/,
      );
      for (const [name, value] of response.headers) expectClean(`${name}: ${value}`, where);
    }
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expectClean(line.text, `${line.source} ${line.level}`);
    expect(lines.map((line) => line.text).join('\n')).not.toMatch(/authorization/i);
    for (const entry of await broker.auditTrail()) expectClean(JSON.stringify(entry), 'audit');
  });
});

describe('When a bug puts the Authorization header into an error', () => {
  it('then the answer is a bare 500 and the logged error has the token redacted', async () => {
    const captured: CapturedLine[] = [];
    const buggy = secureBroker({
      emulator,
      vaults: [VAULT],
      env: tenant.env(),
      capture: captured,
      auth: {
        authenticate: (headers) =>
          Promise.reject(
            new TypeError(
              `cannot parse ${headers.get('authorization') ?? ''} (bearer: ${headers.get('authorization')?.slice(7) ?? ''})`,
            ),
          ),
      },
    });
    const token = await tenant.token(identity('Lease.Request'));
    sent.push(token);
    const response = await buggy.call('POST', '/api/leases', {
      body: { vault: VAULT },
      headers: { ...bearer(token), 'x-forwarded-for': publicIp(4) },
    });
    expect(response.status).toBe(500);
    expect(response.body).toEqual({
      type: 'urn:kv-lease:problem:internal',
      title: 'Something went wrong',
      status: 500,
      detail: 'An unexpected error occurred; it has been logged.',
    });
    const logged = captured.map((line) => `${line.source}: ${line.text}`).join('\n');
    expect(logged).toContain('TypeError: cannot parse');
    expect(logged).toContain('[redacted]');
    expect(logged).toContain(response.invocationId);
    expectClean(logged, 'logs');
    for (const entry of await buggy.auditTrail()) expectClean(JSON.stringify(entry), 'audit');
  });
});

describe('redact', () => {
  it('When text holds a JWT or a bearer value, then both are replaced and the rest is kept', async () => {
    const token = await tenant.token(identity());
    expect(redact(`got ${token} here`)).toBe('got [redacted] here');
    expect(redact(`Authorization: Bearer ${token}`)).toBe('Authorization: Bearer [redacted]');
    expect(redact('Authorization: bearer opaque-token-value-123')).toBe(
      'Authorization: bearer [redacted]',
    );
    expect(redact('lease kv-a.0123456789abcdefghijklmn for 52.1.2.3/32')).toBe(
      'lease kv-a.0123456789abcdefghijklmn for 52.1.2.3/32',
    );
  });

  it('When a logger is wrapped, then messages and nested properties are scrubbed, headers by name', async () => {
    const token = await tenant.token(identity());
    const seen: string[] = [];
    const inner: Logger = {
      info: (message, properties) => seen.push(`${message} ${JSON.stringify(properties)}`),
      warn: () => undefined,
      error: () => undefined,
    };
    redactingLogger(inner).info(`a ${token}`, {
      headers: { Authorization: 'Basic dXNlcjpwYXNz', 'x-trace': token },
      list: [{ deep: `Bearer ${token}` }],
      count: 3,
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).not.toContain(token.split('.')[1]);
    expect(seen[0]).not.toContain('dXNlcjpwYXNz');
    expect(seen[0]).toContain('"count":3');
  });
});
