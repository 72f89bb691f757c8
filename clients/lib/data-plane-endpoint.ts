import { UntrustedDataPlaneError, UsageError } from './errors';

/**
 * Where a data-plane token may go. A data-plane token reads whatever its identity may read (every
 * secret, every blob, every database), so the probe sends one only to:
 * - the exact address the user configured (`--data-plane` / `--vault-uri`, the `data-plane` /
 *   `vault-uri` input), which wins over what the broker answers;
 * - else the broker's address (the lease's `dataPlane`, for a Key Vault also its `vaultUri`) when
 *   its host is `<the lease's target>.<a known suffix of the target's kind>`;
 * - else, when the broker names none, the target's public cloud host;
 * - a loopback host (the local emulator) only with the explicit opt-in
 *   (`--allow-loopback-data-plane`, KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE=1), never as a fallback.
 * Key Vault and Storage are reached over https on 443; a SQL server over TDS on 1433 (the TDS
 * login of the SQL probe is encrypted, the token inside TLS). Anything else is refused before any
 * request.
 */

/** The data plane of one Azure cloud for one target kind: its DNS suffix and token scope. */
export interface KnownSuffix {
  cloud: string;
  suffix: string;
  scope: string;
}

/** The target kinds whose data plane a client probes (contract §4). */
export type DataPlaneKind = 'keyvault' | 'storage' | 'sql';

export const DATA_PLANE_KINDS: readonly DataPlaneKind[] = ['keyvault', 'storage', 'sql'];

/**
 * The known data-plane DNS suffixes, per target kind: the one list a token's destination and
 * scope are checked against. NOTE: Microsoft Cloud Germany (`vault.microsoftazure.de`,
 * `blob.core.cloudapi.de`, `database.cloudapi.de`) closed on 29 October 2021 and is not listed.
 * NOTE: Storage's Entra scope is `https://storage.azure.com/.default` in every cloud (the
 * resource id is the same in China and US Government); SQL's follows the cloud.
 */
export const DATA_PLANE_SUFFIXES: Readonly<Record<DataPlaneKind, readonly KnownSuffix[]>> = {
  keyvault: [
    { cloud: 'AzureCloud', suffix: 'vault.azure.net', scope: 'https://vault.azure.net/.default' },
    {
      cloud: 'AzureChinaCloud',
      suffix: 'vault.azure.cn',
      scope: 'https://vault.azure.cn/.default',
    },
    {
      cloud: 'AzureUSGovernment',
      suffix: 'vault.usgovcloudapi.net',
      scope: 'https://vault.usgovcloudapi.net/.default',
    },
  ],
  storage: [
    {
      cloud: 'AzureCloud',
      suffix: 'blob.core.windows.net',
      scope: 'https://storage.azure.com/.default',
    },
    {
      cloud: 'AzureChinaCloud',
      suffix: 'blob.core.chinacloudapi.cn',
      scope: 'https://storage.azure.com/.default',
    },
    {
      cloud: 'AzureUSGovernment',
      suffix: 'blob.core.usgovcloudapi.net',
      scope: 'https://storage.azure.com/.default',
    },
  ],
  sql: [
    {
      cloud: 'AzureCloud',
      suffix: 'database.windows.net',
      scope: 'https://database.windows.net/.default',
    },
    {
      cloud: 'AzureChinaCloud',
      suffix: 'database.chinacloudapi.cn',
      scope: 'https://database.chinacloudapi.cn/.default',
    },
    {
      cloud: 'AzureUSGovernment',
      suffix: 'database.usgovcloudapi.net',
      scope: 'https://database.usgovcloudapi.net/.default',
    },
  ],
};

/** The one port a SQL server's data plane is probed on (the gateway's TDS port). */
export const SQL_PORT = 1433;

/** How each kind is named to people, and which names its resources may have. */
const KINDS: Readonly<
  Record<DataPlaneKind, { what: string; token: string; name: RegExp; nameRule: string }>
> = {
  keyvault: {
    what: 'vault',
    token: 'vault token',
    name: /^[a-z0-9-]{3,24}$/,
    nameRule: 'a Key Vault name',
  },
  storage: {
    what: 'storage account',
    token: 'storage token',
    name: /^[a-z0-9]{3,24}$/,
    nameRule: 'a storage account name',
  },
  sql: {
    what: 'SQL server',
    token: 'SQL token',
    name: /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
    nameRule: 'a SQL server name',
  },
};

/** `vault`, `storage account`, `SQL server`: how messages name a target of this kind. */
export function kindNoun(kind: DataPlaneKind): string {
  return KINDS[kind].what;
}

/** A lease's `kind` as the probe reads it: absent (a v1 broker) is a Key Vault. */
export function dataPlaneKind(kind: string | undefined): DataPlaneKind {
  if (kind === undefined) return 'keyvault';
  if ((DATA_PLANE_KINDS as readonly string[]).includes(kind)) return kind as DataPlaneKind;
  throw new UntrustedDataPlaneError(
    kind,
    `the broker answered the target kind '${kind}', which this client does not know how to ` +
      `probe (${DATA_PLANE_KINDS.join(', ')}): update the client, or grant without --wait`,
    { what: 'data-plane token' },
  );
}

/**
 * The data-plane address the broker answered for a lease: its `dataPlane`, and for a Key Vault
 * (a v1 broker answers no `dataPlane`) its `vaultUri`.
 */
export function brokerDataPlane(lease: {
  kind?: string | undefined;
  dataPlane?: string | undefined;
  vaultUri?: string | undefined;
}): string | undefined {
  if (lease.dataPlane !== undefined && lease.dataPlane.trim() !== '') return lease.dataPlane;
  return dataPlaneKind(lease.kind) === 'keyvault' ? lease.vaultUri : undefined;
}

export const ALLOW_LOOPBACK_ENV = 'KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE';

const LOOPBACK_HOST = /^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|::1)$/i;

/** The known suffix a host name lies under (`<label>.<suffix>`, one label), if any. */
function suffixOf(
  hostname: string,
  kind: DataPlaneKind,
): { label: string; known: KnownSuffix } | undefined {
  const host = hostname.toLowerCase();
  for (const known of DATA_PLANE_SUFFIXES[kind]) {
    const tail = `.${known.suffix}`;
    if (!host.endsWith(tail)) continue;
    const label = host.slice(0, -tail.length);
    if (label !== '' && !label.includes('.')) return { label, known };
  }
  return undefined;
}

/**
 * The token scope of a data-plane address: the scope of its known suffix
 * (`https://vault.azure.net/.default` for `https://kv-x.vault.azure.net/`); undefined for any
 * other host, for which no Azure credential is asked for a token. `uri` is a URL, or `host:port`
 * for SQL.
 */
export function vaultScopeFor(uri: string, kind: DataPlaneKind = 'keyvault'): string | undefined {
  const parsed = kind === 'sql' ? parseSql(uri) : parse(uri);
  return typeof parsed === 'string' ? undefined : suffixOf(parsed.hostname, kind)?.known.scope;
}

function knownSuffixes(kind: DataPlaneKind): string {
  return DATA_PLANE_SUFFIXES[kind].map((known) => known.suffix).join(', ');
}

/** An https URL, or why it cannot be one a token goes to (the reasons common to every source). */
function parse(uri: string): URL | string {
  let url: URL;
  try {
    url = new URL(uri.trim());
  } catch {
    return 'it is not a URL';
  }
  if (url.protocol !== 'https:') {
    return `a token is only sent over https, not ${url.protocol.replace(/:$/, '')}`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'it carries a user name or password (user@host), which no data-plane URI has';
  }
  url.search = '';
  url.hash = '';
  return url;
}

/** A SQL server's address, `host` or `host:port` (1433 when absent). */
interface SqlAddress {
  hostname: string;
  port: number;
}

/**
 * `host:port` (the broker's form, `sql-x.database.windows.net:1433`), or why it is not one. A
 * URL (`https://...`, `tcp://...`), user info or a path is refused: a SQL address is nothing else.
 */
function parseSql(address: string): SqlAddress | string {
  const text = address.trim();
  const match = /^(\[[0-9a-f:]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d{1,5}))?$/i.exec(text);
  if (!match) {
    return `it is not a SQL server address (host:port, e.g. sql-x.database.windows.net:${SQL_PORT})`;
  }
  const port = match[2] === undefined ? SQL_PORT : Number(match[2]);
  if (port < 1 || port > 65_535) return `port ${match[2]} is not a TCP port`;
  return { hostname: (match[1] ?? '').toLowerCase(), port };
}

/** Whether an opt-in setting (flag or environment variable) is on: `1`/`true`, off: ''/`0`/`false`. */
export function loopbackOptIn(value: string | undefined, name = ALLOW_LOOPBACK_ENV): boolean {
  const text = (value ?? '').trim().toLowerCase();
  if (text === '1' || text === 'true') return true;
  if (text === '' || text === '0' || text === 'false') return false;
  throw new UsageError(
    `${name} must be 1 (or true) to allow a loopback data plane, got '${value}'`,
  );
}

/**
 * A configured data-plane address, checked before anything is granted (the kind is only known
 * from the lease): an https URL without user info (a vault, a blob endpoint), or a SQL server's
 * `host:port`. Throws a UsageError naming the setting.
 */
export function checkConfiguredUri(uri: string, setting: string): void {
  const url = parse(uri);
  if (typeof url !== 'string') return;
  // NOTE: `host:1433` parses as a URL of scheme `host:`; only `scheme://` is taken for a URL.
  if (!uri.includes('://') && typeof parseSql(uri) !== 'string') return;
  throw new UsageError(`${setting} '${uri}' is refused: ${url}`);
}

export interface ResolveOptions {
  /** The lease's target: the name the grant asked for, or the lease's own for a later wait. */
  vault: string;
  /** The data plane as the broker answered it (`brokerDataPlane(lease)`). */
  brokerUri?: string | undefined;
  /** `--data-plane` / `--vault-uri` / the `data-plane` input: wins over the broker's. */
  configuredUri?: string | undefined;
  /** The explicit opt-in for a loopback data plane (the local emulator). */
  allowLoopback?: boolean | undefined;
  /** The lease's kind; default `keyvault` (a v1 lease). */
  kind?: DataPlaneKind | undefined;
}

/**
 * A data-plane address a token may go to, with the token scope it implies. Only `resolve` makes
 * one: the probes take nothing else.
 */
export class DataPlaneEndpoint {
  private constructor(
    readonly kind: DataPlaneKind,
    /** What the probe uses: a URL (keyvault, storage), `host:port` (sql). */
    readonly uri: string,
    /** The host the token goes to (no brackets for IPv6) and its port. */
    readonly host: string,
    readonly port: number,
    /** The token scope its host implies; undefined: no Azure credential is asked (env token only). */
    readonly scope: string | undefined,
    /** Where the address came from. */
    readonly source: 'configured' | 'broker' | 'default',
  ) {}

  /** `vault`, `storage account` or `SQL server`. */
  get what(): string {
    return kindNoun(this.kind);
  }

  /** `vault token`, `storage token` or `SQL token`: how messages name the token. */
  get tokenName(): string {
    return KINDS[this.kind].token;
  }

  /** Throws UntrustedDataPlaneError (naming the address and why) for anything a token may not reach. */
  static resolve(options: ResolveOptions): DataPlaneEndpoint {
    const kind = options.kind ?? 'keyvault';
    const rules = KINDS[kind];
    const refuse = (uri: string, reason: string) =>
      new UntrustedDataPlaneError(uri, reason, { what: rules.token });
    const make = (
      address: URL | SqlAddress,
      scope: string | undefined,
      source: DataPlaneEndpoint['source'],
    ) => {
      const host = address.hostname.replace(/^\[(.*)\]$/, '$1');
      const text =
        'protocol' in address ? address.toString() : `${address.hostname}:${address.port}`;
      return new DataPlaneEndpoint(kind, text, host, portOf(address), scope, source);
    };
    const read = (uri: string) => (kind === 'sql' ? parseSql(uri) : parse(uri));

    if (options.configuredUri !== undefined && options.configuredUri.trim() !== '') {
      const uri = options.configuredUri;
      const address = read(uri);
      if (typeof address === 'string') throw refuse(uri, address);
      return make(address, suffixOf(address.hostname, kind)?.known.scope, 'configured');
    }
    const name = options.vault.toLowerCase();
    if (!rules.name.test(name)) {
      throw refuse(
        options.brokerUri ?? options.vault,
        `'${options.vault}' is not ${rules.nameRule}, so no ${rules.what} host can be checked`,
      );
    }
    const primary = DATA_PLANE_SUFFIXES[kind][0]!;
    if (options.brokerUri === undefined || options.brokerUri.trim() === '') {
      const uri =
        kind === 'sql'
          ? `${name}.${primary.suffix}:${SQL_PORT}`
          : `https://${name}.${primary.suffix}/`;
      const address = read(uri);
      if (typeof address === 'string') throw refuse(uri, address);
      return make(address, primary.scope, 'default');
    }
    const uri = options.brokerUri;
    const address = read(uri);
    if (typeof address === 'string') throw refuse(uri, address);
    const under = suffixOf(address.hostname, kind);
    const port = portOf(address);
    const expectedPort = kind === 'sql' ? SQL_PORT : 443;
    if (under && under.label === name) {
      if (port !== expectedPort) {
        throw refuse(uri, `a ${rules.what} answers on port ${expectedPort}, not ${port}`);
      }
      return make(address, under.known.scope, 'broker');
    }
    if (LOOPBACK_HOST.test(address.hostname)) {
      if (options.allowLoopback) return make(address, undefined, 'broker');
      throw refuse(
        uri,
        `${address.hostname} is a loopback address (the local emulator?): probe it only with ` +
          `--allow-loopback-data-plane or ${ALLOW_LOOPBACK_ENV}=1 (the allow-loopback-data-plane input)`,
      );
    }
    const configure =
      'configure the data-plane address yourself (--data-plane or --vault-uri, the data-plane or vault-uri input)';
    if (under) {
      throw refuse(
        uri,
        `its host names ${rules.what} '${under.label}', not the lease's ${rules.what} '${name}'; ${configure} if this is right`,
      );
    }
    throw refuse(
      uri,
      `its host is not ${name}.<suffix> for a known ${kindLabel(kind)} DNS suffix (${knownSuffixes(kind)}); ` +
        `${configure} to probe another address`,
    );
  }
}

function portOf(address: URL | SqlAddress): number {
  if (!('protocol' in address)) return address.port;
  return address.port === '' ? 443 : Number(address.port);
}

function kindLabel(kind: DataPlaneKind): string {
  return { keyvault: 'Key Vault', storage: 'Storage blob', sql: 'Azure SQL' }[kind];
}
