import { describe, expect, it } from 'vitest';

import { leaseTable, relative, table } from '../../clients/cli/src/output';
import {
  addressInLease,
  backoffMs,
  checkConfiguredUri,
  clientAddressOf,
  CredentialError,
  DataPlaneEndpoint,
  DeadlineError,
  exitCodeFor,
  loopbackOptIn,
  normaliseBaseUrl,
  parseDuration,
  parseSince,
  ProblemError,
  retryAfterMs,
  tokenProvider,
  UnreachableError,
  UntrustedDataPlaneError,
  UsageError,
  VaultRefusedError,
  vaultScopeFor,
  WrongAddressError,
} from '../../clients/lib';

function catching(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('client library: pure rules', () => {
  it('When a duration is given as seconds or units, then it is read as seconds', () => {
    expect(parseDuration('1200', '--ttl')).toBe(1200);
    expect(parseDuration('90s', '--ttl')).toBe(90);
    expect(parseDuration('20m', '--ttl')).toBe(1200);
    expect(parseDuration('1h30m', '--ttl')).toBe(5400);
    expect(parseDuration('2D', '--ttl')).toBe(172_800);
  });

  it.each(['', '20 minutes', '1.5h', '-5', 'm', '10x', '1h 30m'])(
    "When a duration is '%s', then it is a usage error naming the option",
    (text) => {
      expect(() => parseDuration(text, '--ttl')).toThrow(UsageError);
      expect(() => parseDuration(text, '--ttl')).toThrow(/--ttl/);
    },
  );

  it('When --since is a duration or an ISO date, then it becomes an ISO instant', () => {
    const now = Date.parse('2026-12-01T10:00:00.000Z');
    expect(parseSince('1h', now)).toBe('2026-12-01T09:00:00.000Z');
    expect(parseSince('2026-11-25', now)).toBe('2026-11-25T00:00:00.000Z');
    expect(parseSince('2026-11-25T10:00:00Z', now)).toBe('2026-11-25T10:00:00.000Z');
    expect(parseSince('2026-11-25T10:00', now)).toBe('2026-11-25T10:00:00.000Z');
    expect(parseSince('2026-11-25T10:00:00+02:00', now)).toBe('2026-11-25T08:00:00.000Z');
    expect(() => parseSince('yesterday', now)).toThrow(UsageError);
  });

  it('When Retry-After is seconds or an HTTP date, then it is read as a delay; otherwise ignored', () => {
    const now = Date.parse('2026-12-01T10:00:00.000Z');
    expect(retryAfterMs('5', now)).toBe(5000);
    expect(retryAfterMs('0', now)).toBe(0);
    expect(retryAfterMs('Tue, 01 Dec 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Tue, 01 Dec 2026 09:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  it('When backing off, then each pause is between half and all of a doubling ceiling, capped', () => {
    expect(backoffMs(1, 500, 10_000, () => 0)).toBe(250);
    expect(backoffMs(1, 500, 10_000, () => 1)).toBe(500);
    expect(backoffMs(3, 500, 10_000, () => 1)).toBe(2000);
    expect(backoffMs(20, 500, 10_000, () => 1)).toBe(10_000);
  });

  it('When the vault names a client address, then it is compared with the leased address or CIDR', () => {
    const message =
      'Client address is not authorized and caller is not a trusted service.\r\nClient address: 20.30.40.50\r\nCaller: appid=x';
    expect(clientAddressOf(message)).toBe('20.30.40.50');
    expect(clientAddressOf('Forbidden')).toBeUndefined();
    expect(addressInLease('52.10.20.30', '52.10.20.30/32')).toBe(true);
    expect(addressInLease('52.10.20.30', '52.10.20.30')).toBe(true);
    expect(addressInLease('52.10.20.99', '52.10.20.0/24')).toBe(true);
    expect(addressInLease('52.10.21.1', '52.10.20.0/24')).toBe(false);
    expect(addressInLease('::ffff:52.10.20.30', '52.10.20.30/32')).toBe(true);
    expect(addressInLease('2001:db8::1', '52.10.20.30/32')).toBe(false);
  });

  it('When a broker URL is given with or without /api, then calls go to <url>/api', () => {
    expect(normaliseBaseUrl('https://func-x.azurewebsites.net', true).toString()).toBe(
      'https://func-x.azurewebsites.net/api',
    );
    expect(normaliseBaseUrl('https://func-x.azurewebsites.net/api/', true).toString()).toBe(
      'https://func-x.azurewebsites.net/api',
    );
    expect(normaliseBaseUrl('https://apim.example.com/kv-lease?x=1', true).toString()).toBe(
      'https://apim.example.com/kv-lease/api',
    );
    expect(normaliseBaseUrl('http://127.0.0.1:7071', true).toString()).toBe(
      'http://127.0.0.1:7071/api',
    );
    expect(() => normaliseBaseUrl('http://broker.example.com', true)).toThrow(/plain http/);
    expect(() => normaliseBaseUrl('func-x', true)).toThrow(UsageError);
    expect(() => normaliseBaseUrl('ftp://x', false)).toThrow(UsageError);
  });

  it('When the vault lives in another cloud, then the data-plane scope follows its DNS suffix', () => {
    expect(vaultScopeFor('https://kv-prod.vault.azure.net/')).toBe(
      'https://vault.azure.net/.default',
    );
    expect(vaultScopeFor('https://kv-cn.vault.azure.cn/')).toBe('https://vault.azure.cn/.default');
    expect(vaultScopeFor('https://kv-gov.vault.usgovcloudapi.net/')).toBe(
      'https://vault.usgovcloudapi.net/.default',
    );
    expect(vaultScopeFor('https://127.0.0.1:8443/data-plane/kv/')).toBeUndefined();
    expect(vaultScopeFor('https://kv-prod.vault.azure.net.evil.example/')).toBeUndefined();
    expect(vaultScopeFor('https://vault.azure.net/')).toBeUndefined();
  });

  it.each([
    ['http://kv-demo.vault.azure.net/', /only sent over https, not http/],
    ['https://evil.example/', /not kv-demo\.<suffix> for a known Key Vault DNS suffix/],
    ['https://kv-demo.vault.azure.net.evil.example/', /not kv-demo\.<suffix>/],
    [
      'https://kv-other.vault.azure.net/',
      /names vault 'kv-other', not the lease's vault 'kv-demo'/,
    ],
    ['https://kv-demo.vault.azure.net@evil.example/', /user name or password/],
    ['https://evil.example\\@kv-demo.vault.azure.net/', /user name or password|not kv-demo/],
    ['https://x.kv-demo.vault.azure.net/', /not kv-demo\.<suffix>/],
    ['https://kv-demo.vault.azure.net:8443/', /port 443/],
    ['https://kv-demo.vault.azure.net./', /not kv-demo\.<suffix>/],
    ['https://127.0.0.1:8443/data-plane/kv-demo/', /loopback.*--allow-loopback-data-plane/],
    ['https://[::1]:8443/', /loopback/],
    ['https://localhost/', /loopback/],
    ['not a url', /not a URL/],
  ])('When the broker answers the vault URI %s, then no token may go there', (uri, reason) => {
    const resolve = () => DataPlaneEndpoint.resolve({ vault: 'kv-demo', brokerUri: uri });
    expect(resolve).toThrow(UntrustedDataPlaneError);
    expect(resolve).toThrow(reason);
    expect(exitCodeFor(catching(resolve))).toBe(4);
  });

  it('When the broker answers the vault host under a known suffix, then the token goes there with that suffix scope', () => {
    const cases = [
      ['https://kv-demo.vault.azure.net/', 'https://vault.azure.net/.default'],
      ['https://KV-DEMO.vault.azure.cn', 'https://vault.azure.cn/.default'],
      ['https://kv-demo.vault.usgovcloudapi.net/', 'https://vault.usgovcloudapi.net/.default'],
    ];
    for (const [uri, scope] of cases) {
      const endpoint = DataPlaneEndpoint.resolve({ vault: 'kv-demo', brokerUri: uri });
      expect(endpoint.scope).toBe(scope);
      expect(endpoint.source).toBe('broker');
    }
  });

  it('When a vault URI is configured, then it wins over the broker and its scope follows its host (none for an unknown host)', () => {
    const configured = DataPlaneEndpoint.resolve({
      vault: 'kv-demo',
      brokerUri: 'https://kv-demo.vault.azure.net/',
      configuredUri: 'https://kv-demo.privatelink.example.internal/',
    });
    const sovereign = DataPlaneEndpoint.resolve({
      vault: 'kv-demo',
      brokerUri: 'http://evil.example/',
      configuredUri: 'https://kv-demo.vault.azure.cn/',
    });
    expect(configured).toMatchObject({
      uri: 'https://kv-demo.privatelink.example.internal/',
      scope: undefined,
      source: 'configured',
    });
    expect(sovereign).toMatchObject({ scope: 'https://vault.azure.cn/.default' });
    expect(() => checkConfiguredUri('http://kv-demo.vault.azure.net/', '--vault-uri')).toThrow(
      UsageError,
    );
  });

  it('When the loopback opt-in is given, then a loopback https data plane is probed with no Azure scope, and never over http', () => {
    const local = DataPlaneEndpoint.resolve({
      vault: 'kv-demo',
      brokerUri: 'https://127.0.0.1:8443/data-plane/kv-demo/',
      allowLoopback: true,
    });
    expect(local).toMatchObject({ scope: undefined, source: 'broker' });
    expect(() =>
      DataPlaneEndpoint.resolve({
        vault: 'kv-demo',
        brokerUri: 'http://127.0.0.1:8443/data-plane/kv-demo/',
        allowLoopback: true,
      }),
    ).toThrow(/only sent over https/);
    expect(loopbackOptIn('1')).toBe(true);
    expect(loopbackOptIn(undefined)).toBe(false);
    expect(() => loopbackOptIn('yes')).toThrow(/must be 1/);
  });

  it('When the broker names no vault URI, then the public cloud host of the vault is probed', () => {
    expect(DataPlaneEndpoint.resolve({ vault: 'KV-Demo' })).toMatchObject({
      uri: 'https://kv-demo.vault.azure.net/',
      scope: 'https://vault.azure.net/.default',
      source: 'default',
    });
    expect(() => DataPlaneEndpoint.resolve({ vault: 'evil.example/x' })).toThrow(
      /not a Key Vault name/,
    );
  });

  it('When no token scope is known for a host and no token is in the environment, then no credential is asked and the message says what to set', async () => {
    const token = tokenProvider({
      scope: undefined,
      envVar: 'KV_LEASE_VAULT_TOKEN',
      env: {},
      destination: 'https://127.0.0.1:8443/',
    });
    await expect(token()).rejects.toThrow(
      /no token for https:\/\/127\.0\.0\.1:8443\/.*set KV_LEASE_VAULT_TOKEN/,
    );
  });

  it('When errors are mapped to exit codes, then each kind gets its documented code', () => {
    const problem = (status: number) => new ProblemError({ status, title: 't' });
    expect(exitCodeFor(new UsageError('x'))).toBe(2);
    expect(exitCodeFor(new CredentialError('x'))).toBe(3);
    expect(exitCodeFor(problem(401))).toBe(3);
    expect(exitCodeFor(problem(400))).toBe(4);
    expect(exitCodeFor(problem(403))).toBe(4);
    expect(exitCodeFor(problem(409))).toBe(4);
    expect(exitCodeFor(new VaultRefusedError('x'))).toBe(4);
    expect(exitCodeFor(problem(404))).toBe(5);
    expect(exitCodeFor(problem(503))).toBe(6);
    expect(exitCodeFor(problem(502))).toBe(6);
    expect(exitCodeFor(problem(429))).toBe(6);
    expect(exitCodeFor(new UnreachableError('x'))).toBe(6);
    expect(exitCodeFor(new DeadlineError('x'))).toBe(7);
    expect(exitCodeFor(new WrongAddressError('1.2.3.4', '5.6.7.8/32'))).toBe(8);
    expect(exitCodeFor(problem(500))).toBe(1);
    expect(exitCodeFor(new Error('x'))).toBe(1);
  });

  it('When a problem has field errors, then the message is title: detail and one line per field', () => {
    const error = new ProblemError({
      status: 400,
      type: 'urn:kv-lease:problem:invalid-request',
      title: 'Invalid request',
      detail: 'The request body is invalid',
      errors: [
        { path: 'ttlSeconds', message: 'must be a whole number of seconds' },
        { path: 'vault', message: 'is required' },
      ],
    });

    expect(error.message).toBe(
      'Invalid request: The request body is invalid\n  ttlSeconds: must be a whole number of seconds\n  vault: is required',
    );
    expect(error.kind).toBe('invalid-request');
  });

  it('When a detail already starts with its title, then the message says the title once', () => {
    const repeated = new ProblemError({
      status: 400,
      title: 'The caller address is unknown',
      detail: 'The caller address is unknown: no X-Forwarded-For header.',
    });
    expect(repeated.message).toBe('The caller address is unknown: no X-Forwarded-For header.');
    // A title that ends in punctuation, in another case, is still the same prefix.
    expect(
      new ProblemError({ status: 404, title: 'No such lease.', detail: 'no such lease: kv-a.x' })
        .message,
    ).toBe('no such lease: kv-a.x');
    // A detail that does not start with the title keeps it in front; the detail is kept whole.
    const other = new ProblemError({
      status: 404,
      title: 'No such lease',
      detail: 'No lease with id "kv-a.x"',
      errors: [{ path: 'id', message: 'is unknown' }],
    });
    expect(other.message).toBe('No such lease: No lease with id "kv-a.x"\n  id: is unknown');
    expect(other.detail).toBe('No lease with id "kv-a.x"');
  });
});

describe('kv-lease CLI: output', () => {
  it('When a table is printed, then columns line up and no line ends in blanks', () => {
    const text = table(
      ['A', 'LONGER'],
      [
        ['x', ''],
        ['yyy', 'z'],
      ],
    );
    expect(text).toBe('A    LONGER\nx\nyyy  z');
  });

  it('When times are shown for people, then they are relative to now', () => {
    const now = Date.parse('2026-12-01T10:00:00.000Z');
    expect(relative('2026-12-01T10:20:00.000Z', now)).toBe('in 20m');
    expect(relative('2026-12-01T09:59:30.000Z', now)).toBe('30s ago');
    expect(relative('2026-12-01T07:00:00.000Z', now)).toBe('3h ago');
    expect(relative('not a date', now)).toBe('not a date');
  });

  it('When an ended lease is listed, then its row says when it ended', () => {
    const now = Date.parse('2026-12-01T10:00:00.000Z');
    const text = leaseTable(
      [
        {
          id: 'kv-a.0123456789abcdefghijklmn',
          vault: 'kv-a',
          ip: '52.1.2.3/32',
          status: 'released',
          principal: 'p',
          createdAt: '2026-12-01T09:00:00.000Z',
          expiresAt: '2026-12-01T09:20:00.000Z',
          endedAt: '2026-12-01T09:10:00.000Z',
        },
      ],
      now,
    );
    expect(text.split('\n')[1]).toMatch(/released\s+ended 50m ago\s+p$/);
  });
});
