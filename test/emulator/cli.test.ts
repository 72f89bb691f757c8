import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  armClient,
  networkClient,
  rawRequest,
  restErrorOf,
  sqlClient,
  storageClient,
} from './helpers';

const REPO = resolve(__dirname, '../..');
const SOURCES = join(REPO, 'dev/emulator');
const DIST = join(REPO, 'dist/dev/emulator');
const VAULT_ID =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-cli/providers/Microsoft.KeyVault/vaults/kv-cli';

interface Entry {
  script: string;
  env: Record<string, string>;
  cleanup: () => void;
}

/**
 * The CLI as `node dist/dev/emulator/cli.js` runs it. When `npm run build` has not compiled the
 * current sources (vitest alone does not build), the emulator's sources are transpiled into a
 * temporary directory instead, so the test never exercises stale code.
 */
async function cliEntry(): Promise<Entry> {
  // Recursive: the Storage and SQL models live in subdirectories.
  const sources = readdirSync(SOURCES, { recursive: true, encoding: 'utf8' }).filter((file) =>
    file.endsWith('.ts'),
  );
  const distIsFresh = sources.every((file) => {
    const compiled = join(DIST, file.replace(/\.ts$/, '.js'));
    return (
      existsSync(compiled) && statSync(compiled).mtimeMs >= statSync(join(SOURCES, file)).mtimeMs
    );
  });
  if (distIsFresh) {
    return { script: join(DIST, 'cli.js'), env: {}, cleanup: () => undefined };
  }
  const ts = (await import('typescript')).default;
  const out = mkdtempSync(join(tmpdir(), 'kv-emulator-cli-'));
  for (const file of sources) {
    const { outputText } = ts.transpileModule(readFileSync(join(SOURCES, file), 'utf8'), {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2022,
        esModuleInterop: true,
      },
    });
    mkdirSync(dirname(join(out, file)), { recursive: true });
    writeFileSync(join(out, file.replace(/\.ts$/, '.js')), outputText);
  }
  return {
    script: join(out, 'cli.js'),
    env: { NODE_PATH: join(REPO, 'node_modules') },
    cleanup: () => rmSync(out, { recursive: true, force: true }),
  };
}

interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The parsed ready line. */
  ready: Promise<{ ready: boolean; url: string; caPath: string }>;
}

describe('Key Vault ARM emulator CLI', () => {
  let entry: Entry;
  const running: Cli[] = [];
  const tempDirs: string[] = [];

  beforeAll(async () => {
    entry = await cliEntry();
  });

  afterEach(async () => {
    for (const cli of running.splice(0)) {
      if (cli.child.exitCode === null && cli.child.signalCode === null) {
        cli.child.kill('SIGTERM');
        await cli.exited;
      }
    }
  });

  afterAll(() => {
    entry.cleanup();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'kv-emulator-certs-'));
    tempDirs.push(dir);
    return dir;
  }

  function startCli(args: string[]): Cli {
    const child = spawn(process.execPath, [entry.script, ...args], {
      env: { ...process.env, ...entry.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
      child.once('exit', (code, signal) => done({ code, signal }));
    });
    const ready = new Promise<{ ready: boolean; url: string; caPath: string }>((done, fail) => {
      child.stdout.on('data', (chunk: string) => {
        out += chunk;
        const newline = out.indexOf('\n');
        if (newline !== -1) {
          done(
            JSON.parse(out.slice(0, newline)) as { ready: boolean; url: string; caPath: string },
          );
        }
      });
      void exited.then(({ code }) =>
        fail(new Error(`the CLI exited with ${code} before it was ready: ${err}`)),
      );
    });
    // Tests of refused arguments never await readiness: keep its rejection from going unhandled.
    ready.catch(() => undefined);
    child.stderr.on('data', (chunk: string) => {
      err += chunk;
    });
    const cli = { child, stdout: () => out, stderr: () => err, exited, ready };
    running.push(cli);
    return cli;
  }

  it('When started with vaults and static IPs, then it prints one ready line, serves the vaults, and exits 0 on SIGTERM', async () => {
    const certDir = tempDir();
    const cli = startCli([
      '--vault',
      VAULT_ID,
      '--vault',
      VAULT_ID.replace('kv-cli', 'kv-cli-two'),
      '--static-ip',
      '52.1.2.3',
      '--static-ip',
      '52.9.0.0/16',
      '--cert-dir',
      certDir,
    ]);

    const ready = await cli.ready;
    expect(Object.keys(ready)).toEqual(['ready', 'url', 'caPath']);
    expect(ready.ready).toBe(true);
    expect(ready.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.caPath).toBe(join(certDir, 'ca.pem'));
    const caPem = readFileSync(ready.caPath, 'utf8');
    const client = armClient({ url: ready.url, caPem });
    for (const name of ['kv-cli', 'kv-cli-two']) {
      const vault = await client.vaults.get('rg-cli', name);
      expect(vault.properties.networkAcls).toEqual({
        bypass: 'AzureServices',
        defaultAction: 'Deny',
        ipRules: [{ value: '52.1.2.3/32' }, { value: '52.9.0.0/16' }],
        virtualNetworkRules: [],
      });
    }

    cli.child.kill('SIGTERM');

    expect(await cli.exited).toEqual({ code: 0, signal: null });
    expect(cli.stdout()).toBe(`${JSON.stringify(ready)}\n`);
  });

  it('When started with latency flags and no static IP or cert dir, then the vault has no rules, the config shows the flags, and SIGINT exits 0 and removes its temporary CA', async () => {
    const cli = startCli([
      '--vault',
      VAULT_ID,
      '--write-latency',
      '40',
      '--read-latency',
      '10',
      '--no-conflict',
    ]);

    const ready = await cli.ready;
    const caPem = readFileSync(ready.caPath, 'utf8');
    const config = await rawRequest({ url: ready.url, caPem }, 'GET', '/_emulator/config');
    const vault = await armClient({ url: ready.url, caPem }).vaults.get('rg-cli', 'kv-cli');

    expect(config.json()).toMatchObject({
      writeLatencyMs: 40,
      readLatencyMs: 10,
      conflictOnOverlap: false,
    });
    expect(vault.properties.networkAcls?.ipRules).toEqual([]);
    expect(existsSync(ready.caPath)).toBe(true);
    cli.child.kill('SIGINT');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(ready.caPath)).toBe(false);
  });

  it('When started with --token, then only that bearer token is accepted', async () => {
    const cli = startCli(['--vault', VAULT_ID, '--token', 'cli-secret']);

    const ready = await cli.ready;
    const target = { url: ready.url, caPem: readFileSync(ready.caPath, 'utf8') };
    const refused = await restErrorOf(
      armClient(target, { token: 'other' }).vaults.get('rg-cli', 'kv-cli'),
    );
    const vault = await armClient(target, { token: 'cli-secret' }).vaults.get('rg-cli', 'kv-cli');

    expect(refused.statusCode).toBe(401);
    expect(vault.name).toBe('kv-cli');
  });

  it('When started with storage accounts, SQL servers and service tags, then the SDKs see them', async () => {
    const sub =
      '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-cli/providers';
    const cli = startCli([
      '--storage-account',
      `${sub}/Microsoft.Storage/storageAccounts/sacli`,
      '--sql-server',
      `${sub}/Microsoft.Sql/servers/sql-cli`,
      '--allow-azure-services',
      '--location',
      'northeurope',
      '--service-tag',
      'northeurope=20.38.64.0/19',
      '--service-tag',
      'northeurope=52.164.0.0/16',
    ]);

    const ready = (await cli.ready) as Awaited<typeof cli.ready> & {
      sqlServers?: Record<string, string>;
    };
    const target = { url: ready.url, caPem: readFileSync(ready.caPath, 'utf8') };
    const server = await sqlClient(target).servers.get('rg-cli', 'sql-cli');
    const account = await storageClient(target).storageAccounts.getProperties('rg-cli', 'sacli');
    const rules = [];
    for await (const rule of sqlClient(target).firewallRules.listByServer('rg-cli', 'sql-cli')) {
      rules.push(rule);
    }
    const tags = await networkClient(target).serviceTags.list('northeurope');

    expect(account.location).toBe('northeurope');
    expect(account.networkRuleSet).toMatchObject({ defaultAction: 'Deny', ipRules: [] });
    expect(account.primaryEndpoints?.blob).toBe(`${ready.url}/blob/sacli/`);
    expect(rules).toMatchObject([{ name: 'AllowAllWindowsAzureIps', startIpAddress: '0.0.0.0' }]);
    expect(ready.sqlServers?.[`${sub}/Microsoft.Sql/servers/sql-cli`]).toMatch(
      new RegExp(`^${server.fullyQualifiedDomainName ?? '-'}:\\d+$`),
    );
    expect(
      tags.values?.find((tag) => tag.name === 'AzureCloud.northeurope')?.properties,
    ).toMatchObject({
      region: 'northeurope',
      addressPrefixes: ['20.38.64.0/19', '52.164.0.0/16'],
    });
  });

  it('When a storage account id or a service tag is malformed, then the CLI exits 2 naming the flag', async () => {
    const badAccount = startCli(['--storage-account', '/subscriptions/x/storageAccounts/sa']);
    const badTag = startCli(['--service-tag', 'westeurope']);

    expect((await badAccount.exited).code).toBe(2);
    expect((await badTag.exited).code).toBe(2);
    expect(badAccount.stderr()).toContain('--storage-account expects');
    expect(badTag.stderr()).toContain('--service-tag expects');
  });

  it('When another Node process trusts the CA through NODE_EXTRA_CA_CERTS, then the SDK reaches the emulator without tlsOptions', async () => {
    const cli = startCli(['--vault', VAULT_ID]);
    const ready = await cli.ready;
    const script = `
      const { KeyVaultManagementClient } = require('@azure/arm-keyvault');
      const credential = { getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3600e3 }) };
      new KeyVaultManagementClient(credential, '00000000-0000-0000-0000-000000000000', { endpoint: process.env.ARM_URL })
        .vaults.get('rg-cli', 'kv-cli')
        .then((vault) => { process.stdout.write(vault.properties.networkAcls.defaultAction); })
        .catch((error) => { process.stderr.write(String(error)); process.exit(1); });`;

    const probe = spawn(process.execPath, ['-e', script], {
      cwd: REPO,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: ready.caPath, ARM_URL: ready.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let errors = '';
    probe.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    probe.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    const code = await new Promise<number | null>((done) => probe.once('exit', done));

    expect({ code, output, errors }).toEqual({ code: 0, output: 'Deny', errors: '' });
  });

  it.each([
    [['--unknown-flag']],
    [['--static-ip', '52.1.2.3']],
    [['--vault', '/subscriptions/x/not-a-vault']],
    [['--write-latency', 'fast']],
  ])(
    'When started with the bad arguments %j, then it exits 2 and prints nothing on stdout',
    async (args) => {
      const cli = startCli(args);

      const { code } = await cli.exited;

      expect(code).toBe(2);
      expect(cli.stdout()).toBe('');
      expect(cli.stderr()).toContain('Usage:');
    },
  );
});
