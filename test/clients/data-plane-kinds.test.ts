import { describe, expect, it } from 'vitest';

import {
  aliased,
  brokerDataPlane,
  checkConfiguredUri,
  CredentialError,
  DataPlaneEndpoint,
  dataPlaneKind,
  DeadlineError,
  defaultWaitMs,
  exitCodeFor,
  targetOf,
  type TdsLogin,
  UntrustedDataPlaneError,
  UsageError,
  VaultRefusedError,
  vaultScopeFor,
  waitForDataPlane,
  WrongAddressError,
} from '../../clients/lib';

/**
 * The data-plane rules of the other target kinds (contract §4): where a storage or SQL token may
 * go, which scope it is for, which probe a lease's kind picks, and how the SQL probe reads the
 * TDS login's verdicts. Pure rules: the TDS login is a fake here (the real one is tested with its
 * own module); the storage probe runs against the emulator in targets.test.ts.
 */

function catching(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('data-plane endpoints of storage accounts and SQL servers', () => {
  it('When a blob endpoint or SQL host lies under a known suffix of its kind, then its scope follows the cloud (Storage: one scope in every cloud)', () => {
    const cases: [string, 'storage' | 'sql', string][] = [
      ['https://stdemo.blob.core.windows.net/', 'storage', 'https://storage.azure.com/.default'],
      [
        'https://stdemo.blob.core.chinacloudapi.cn/',
        'storage',
        'https://storage.azure.com/.default',
      ],
      [
        'https://stdemo.blob.core.usgovcloudapi.net/',
        'storage',
        'https://storage.azure.com/.default',
      ],
      ['sql-demo.database.windows.net:1433', 'sql', 'https://database.windows.net/.default'],
      [
        'sql-demo.database.chinacloudapi.cn:1433',
        'sql',
        'https://database.chinacloudapi.cn/.default',
      ],
      [
        'sql-demo.database.usgovcloudapi.net:1433',
        'sql',
        'https://database.usgovcloudapi.net/.default',
      ],
    ];
    for (const [address, kind, scope] of cases) {
      const name = kind === 'storage' ? 'stdemo' : 'sql-demo';
      const endpoint = DataPlaneEndpoint.resolve({ vault: name, kind, brokerUri: address });
      expect(endpoint, address).toMatchObject({ kind, scope, source: 'broker' });
      expect(vaultScopeFor(address, kind)).toBe(scope);
    }
    expect(
      DataPlaneEndpoint.resolve({
        vault: 'sql-demo',
        kind: 'sql',
        brokerUri: 'SQL-Demo.database.windows.net:1433',
      }),
    ).toMatchObject({
      uri: 'sql-demo.database.windows.net:1433',
      host: 'sql-demo.database.windows.net',
      port: 1433,
    });
  });

  it.each([
    ['http://stdemo.blob.core.windows.net/', /only sent over https, not http/],
    [
      'https://evil.example/',
      /not stdemo\.<suffix> for a known Storage blob DNS suffix \(blob\.core\.windows\.net, blob\.core\.chinacloudapi\.cn, blob\.core\.usgovcloudapi\.net\)/,
    ],
    ['https://stdemo.blob.core.windows.net.evil.example/', /not stdemo\.<suffix>/],
    [
      'https://stother.blob.core.windows.net/',
      /names storage account 'stother', not the lease's storage account 'stdemo'/,
    ],
    ['https://stdemo.blob.core.windows.net@evil.example/', /user name or password/],
    ['https://stdemo.blob.core.windows.net:8443/', /port 443, not 8443/],
    ['https://stdemo.file.core.windows.net/', /not stdemo\.<suffix>/],
    ['https://stdemo.vault.azure.net/', /not stdemo\.<suffix>/],
    ['https://127.0.0.1:8443/blob/stdemo/', /loopback.*--allow-loopback-data-plane/],
    ['stdemo.blob.core.windows.net:443', /not a URL|only sent over https/],
  ])(
    'When the broker answers the storage data plane %s, then no storage token may go there',
    (address, reason) => {
      const resolve = () =>
        DataPlaneEndpoint.resolve({ vault: 'stdemo', kind: 'storage', brokerUri: address });
      expect(resolve).toThrow(UntrustedDataPlaneError);
      expect(resolve).toThrow(/refusing to send a storage token to /);
      expect(resolve).toThrow(reason);
      expect(exitCodeFor(catching(resolve))).toBe(4);
    },
  );

  it.each([
    [
      'evil.example:1433',
      /not sql-demo\.<suffix> for a known Azure SQL DNS suffix \(database\.windows\.net, database\.chinacloudapi\.cn, database\.usgovcloudapi\.net\)/,
    ],
    ['sql-demo.database.windows.net.evil.example:1433', /not sql-demo\.<suffix>/],
    [
      'sql-other.database.windows.net:1433',
      /names SQL server 'sql-other', not the lease's SQL server 'sql-demo'/,
    ],
    ['sql-demo.database.windows.net:1434', /port 1433, not 1434/],
    ['https://sql-demo.database.windows.net/', /not a SQL server address/],
    ['tcp:sql-demo.database.windows.net,1433', /not a SQL server address/],
    ['user@sql-demo.database.windows.net:1433', /not a SQL server address/],
    ['sql-demo.database.windows.net/x:1433', /not a SQL server address/],
    ['sql-demo.vault.azure.net:1433', /not sql-demo\.<suffix>/],
    ['127.0.0.1:14330', /loopback.*--allow-loopback-data-plane/],
    ['[::1]:1433', /loopback/],
    ['sql-demo.database.windows.net:99999', /not a TCP port/],
  ])(
    'When the broker answers the SQL data plane %s, then no SQL token may go there',
    (address, reason) => {
      const resolve = () =>
        DataPlaneEndpoint.resolve({ vault: 'sql-demo', kind: 'sql', brokerUri: address });
      expect(resolve).toThrow(UntrustedDataPlaneError);
      expect(resolve).toThrow(/refusing to send a SQL token to /);
      expect(resolve).toThrow(reason);
      expect(exitCodeFor(catching(resolve))).toBe(4);
    },
  );

  it("When the broker names no data plane, then the public cloud host of the target is probed; a name that cannot be the kind's is refused", () => {
    expect(DataPlaneEndpoint.resolve({ vault: 'stdemo', kind: 'storage' })).toMatchObject({
      uri: 'https://stdemo.blob.core.windows.net/',
      scope: 'https://storage.azure.com/.default',
      source: 'default',
    });
    expect(DataPlaneEndpoint.resolve({ vault: 'sql-demo', kind: 'sql' })).toMatchObject({
      uri: 'sql-demo.database.windows.net:1433',
      scope: 'https://database.windows.net/.default',
      source: 'default',
    });
    expect(() => DataPlaneEndpoint.resolve({ vault: 'st-demo', kind: 'storage' })).toThrow(
      /'st-demo' is not a storage account name/,
    );
    expect(() => DataPlaneEndpoint.resolve({ vault: '-sql', kind: 'sql' })).toThrow(
      /not a SQL server name/,
    );
  });

  it('When the loopback opt-in is given, then a loopback blob endpoint or TDS address is probed with no Azure scope', () => {
    expect(
      DataPlaneEndpoint.resolve({
        vault: 'stdemo',
        kind: 'storage',
        brokerUri: 'https://127.0.0.1:8443/blob/stdemo/',
        allowLoopback: true,
      }),
    ).toMatchObject({ scope: undefined, host: '127.0.0.1', port: 8443 });
    expect(
      DataPlaneEndpoint.resolve({
        vault: 'sql-demo',
        kind: 'sql',
        brokerUri: '127.0.0.1:14330',
        allowLoopback: true,
      }),
    ).toMatchObject({ scope: undefined, uri: '127.0.0.1:14330', host: '127.0.0.1', port: 14330 });
  });

  it('When an address is configured, then it wins for every kind; a SQL one is host:port and is checked before the grant', () => {
    expect(
      DataPlaneEndpoint.resolve({
        vault: 'sql-demo',
        kind: 'sql',
        brokerUri: 'evil.example:1433',
        configuredUri: 'sql-demo.privatelink.database.windows.net',
      }),
    ).toMatchObject({
      uri: 'sql-demo.privatelink.database.windows.net:1433',
      source: 'configured',
      scope: undefined,
    });
    expect(() =>
      checkConfiguredUri('sql-demo.database.windows.net:1433', '--data-plane'),
    ).not.toThrow();
    expect(() =>
      checkConfiguredUri('https://stdemo.blob.core.windows.net/', '--data-plane'),
    ).not.toThrow();
    expect(() =>
      checkConfiguredUri('http://stdemo.blob.core.windows.net/', '--data-plane'),
    ).toThrow(/--data-plane 'http:.*' is refused: .*only sent over https/);
    expect(() => checkConfiguredUri('tcp://sql-demo:1433', '--data-plane')).toThrow(UsageError);
    expect(() =>
      DataPlaneEndpoint.resolve({
        vault: 'sql-demo',
        kind: 'sql',
        configuredUri: 'https://sql-demo.database.windows.net/',
      }),
    ).toThrow(/refusing to send a SQL token to .*not a SQL server address/);
  });

  it("When a lease names its kind and data plane, then they pick the probe and address; a v1 lease is a Key Vault's at its vaultUri", () => {
    expect(dataPlaneKind(undefined)).toBe('keyvault');
    expect([defaultWaitMs('keyvault'), defaultWaitMs('storage'), defaultWaitMs('sql')]).toEqual([
      180_000, 180_000, 360_000,
    ]);
    expect(dataPlaneKind('storage')).toBe('storage');
    expect(() => dataPlaneKind('cosmos')).toThrow(/kind 'cosmos', which this client does not know/);
    expect(brokerDataPlane({ vaultUri: 'https://kv.vault.azure.net/' })).toBe(
      'https://kv.vault.azure.net/',
    );
    expect(
      brokerDataPlane({ kind: 'keyvault', vaultUri: 'https://a/', dataPlane: 'https://b/' }),
    ).toBe('https://b/');
    expect(
      brokerDataPlane({ kind: 'storage', vaultUri: 'https://kv.vault.azure.net/' }),
    ).toBeUndefined();
  });
});

describe('target and vault, data-plane and vault-uri: one setting under two names', () => {
  const target = (value?: string) => ({ label: '--target', value });
  const vault = (value?: string) => ({ label: '--vault', value });

  it('When --target is given, then the body says target; --vault, vault; both naming the same target, both', () => {
    expect(targetOf(target('st-a'), vault())).toEqual({ name: 'st-a', body: { target: 'st-a' } });
    expect(targetOf(target(), vault('kv-a'))).toEqual({ name: 'kv-a', body: { vault: 'kv-a' } });
    expect(targetOf(target('KV-A'), vault('kv-a')).body).toEqual({ target: 'KV-A', vault: 'kv-a' });
  });

  it('When both name different targets or neither is given, then a usage error says what to give', () => {
    expect(() => targetOf(target('st-a'), vault('kv-b'))).toThrow(
      /--target 'st-a' and --vault 'kv-b' differ: give one of them \(--vault is the older name of --target\)/,
    );
    expect(() => targetOf(target(''), vault(' '))).toThrow(
      /no target: set --target \(or its older name --vault\)/,
    );
    expect(exitCodeFor(catching(() => targetOf(target(), vault())))).toBe(2);
    expect(() =>
      aliased(
        { label: 'data-plane', value: 'https://a/' },
        { label: 'vault-uri', value: 'https://b/' },
      ),
    ).toThrow(/data-plane 'https:\/\/a\/' and vault-uri 'https:\/\/b\/' differ/);
  });
});

describe("the SQL probe: the TDS login's verdicts in the shared wait loop", () => {
  const endpoint = DataPlaneEndpoint.resolve({
    vault: 'sql-demo',
    kind: 'sql',
    brokerUri: 'sql-demo.database.windows.net:1433',
  });
  const fast = { intervalMs: 5, maxIntervalMs: 10, token: () => Promise.resolve('sql-token') };

  /** A TDS login that answers the given verdicts in turn (the last one again), recording calls. */
  function scripted(...verdicts: Awaited<ReturnType<TdsLogin>>[]) {
    const calls: { host: string; port: number; token: string }[] = [];
    const login: TdsLogin = (options) => {
      calls.push({ host: options.host, port: options.port, token: options.token });
      return Promise.resolve(verdicts[Math.min(calls.length - 1, verdicts.length - 1)]!);
    };
    return { login, calls };
  }

  it('When the server refuses with 40615 and then lets the login through, then the wait ends, having logged in to the endpoint with the SQL token', async () => {
    const { login, calls } = scripted(
      { result: 'refused', clientAddress: '52.10.20.30' },
      { result: 'refused', clientAddress: '52.10.20.30' },
      { result: 'through' },
    );

    const waited = await waitForDataPlane({
      ...fast,
      endpoint,
      leasedIp: '52.10.20.30/32',
      tdsLogin: login,
    });

    expect(waited.attempts).toBe(3);
    expect(calls[0]).toEqual({
      host: 'sql-demo.database.windows.net',
      port: 1433,
      token: 'sql-token',
    });
  });

  it('When the server keeps seeing another address than the lease, then the wait stops naming both (exit 8)', async () => {
    const { login } = scripted({ result: 'refused', clientAddress: '198.51.100.7' });

    const error = await waitForDataPlane({
      ...fast,
      endpoint,
      leasedIp: '52.10.20.30/32',
      tdsLogin: login,
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(WrongAddressError);
    expect((error as Error).message).toMatch(
      /^the SQL server sees this client as 198\.51\.100\.7, but the lease is for 52\.10\.20\.30\/32/,
    );
    expect(exitCodeFor(error)).toBe(8);
  });

  it('When the login fails for good, then the wait stops at once saying why (exit 4); a passing failure is probed again until the deadline (exit 7)', async () => {
    const permanent = scripted({
      result: 'failed',
      reason: 'the server closed TLS: no such host',
      permanent: true,
    });
    const passing = scripted({ result: 'failed', reason: 'ECONNRESET', permanent: false });

    const stopped = await waitForDataPlane({
      ...fast,
      endpoint,
      leasedIp: '52.10.20.30/32',
      tdsLogin: permanent.login,
    }).catch((e: unknown) => e);
    const timedOut = await waitForDataPlane({
      ...fast,
      endpoint,
      leasedIp: '52.10.20.30/32',
      tdsLogin: passing.login,
      timeoutMs: 200,
    }).catch((e: unknown) => e);

    expect(stopped).toBeInstanceOf(VaultRefusedError);
    expect((stopped as Error).message).toContain(
      'the SQL server sql-demo.database.windows.net:1433 cannot be probed: the server closed TLS',
    );
    expect(permanent.calls).toHaveLength(1);
    expect(timedOut).toBeInstanceOf(DeadlineError);
    expect((timedOut as Error).message).toMatch(
      /the SQL server's data plane did not let 52\.10\.20\.30\/32 in .*last answer: ECONNRESET/,
    );
    expect(passing.calls.length).toBeGreaterThan(1);
  });

  it('When the login itself throws (not built, a defect), then the wait stops at once instead of retrying it', async () => {
    const login: TdsLogin = () => Promise.reject(new Error('not built'));

    const error = await waitForDataPlane({
      ...fast,
      endpoint,
      leasedIp: '52.10.20.30/32',
      tdsLogin: login,
      timeoutMs: 5000,
    }).catch((e: unknown) => e);

    expect((error as Error).message).toBe(
      'the SQL probe of sql-demo.database.windows.net:1433 failed: not built',
    );
    expect(exitCodeFor(error)).toBe(1);
  });

  it('When no token can be had for the SQL scope, then no login is tried', async () => {
    const { login, calls } = scripted({ result: 'through' });
    const noToken = () =>
      Promise.reject(
        new CredentialError('no credential for https://database.windows.net/.default'),
      );

    await expect(
      waitForDataPlane({
        ...fast,
        endpoint,
        leasedIp: '52.10.20.30/32',
        tdsLogin: login,
        token: noToken,
      }),
    ).rejects.toThrow(CredentialError);
    expect(calls).toEqual([]);
  });
});
