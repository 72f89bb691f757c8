import { UntrustedDataPlaneError, UsageError } from './errors';

/**
 * Where a data-plane token may go. A Key Vault token reads every secret its identity may read,
 * so the probe sends one only over https to:
 * - the exact URI the user configured (`--vault-uri`, the `vault-uri` input), which wins over
 *   what the broker answers;
 * - else the broker's `vaultUri` when its host is `<the lease's vault>.<a known suffix>`;
 * - else, when the broker names none, `https://<vault>.vault.azure.net/`;
 * - a loopback host (the local emulator) only with the explicit opt-in
 *   (`--allow-loopback-data-plane`, KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE=1), never as a fallback.
 * Anything else is refused before any request.
 */

/** The data plane of one Azure cloud for one target kind: its DNS suffix and token scope. */
export interface KnownSuffix {
  cloud: string;
  suffix: string;
  scope: string;
}

/** The target kinds whose data plane a client probes (storage and sql come with targets). */
export type DataPlaneKind = 'keyvault';

/**
 * The known data-plane DNS suffixes, per target kind: the one list a token's destination and
 * scope are checked against. NOTE: Microsoft Cloud Germany (`vault.microsoftazure.de`) closed
 * on 29 October 2021 and is not listed.
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
};

export const ALLOW_LOOPBACK_ENV = 'KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE';

const LOOPBACK_HOST = /^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])$/i;
const VAULT_NAME = /^[a-z0-9-]{3,24}$/i;

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
 * The token scope of a data-plane URI: the scope of its known suffix
 * (`https://vault.azure.net/.default` for `https://kv-x.vault.azure.net/`); undefined for any
 * other host, for which no Azure credential is asked for a token.
 */
export function vaultScopeFor(uri: string, kind: DataPlaneKind = 'keyvault'): string | undefined {
  try {
    return suffixOf(new URL(uri).hostname, kind)?.known.scope;
  } catch {
    return undefined;
  }
}

function knownSuffixes(kind: DataPlaneKind): string {
  return DATA_PLANE_SUFFIXES[kind].map((known) => known.suffix).join(', ');
}

/** A URL, or why it cannot be one a token goes to (the reasons common to every source). */
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
    return 'it carries a user name or password (user@host), which no vault URI has';
  }
  url.search = '';
  url.hash = '';
  return url;
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
 * A configured data-plane URI, checked before anything is granted: https, no user info. Throws a
 * UsageError naming the setting.
 */
export function checkConfiguredUri(uri: string, setting: string): URL {
  const url = parse(uri);
  if (typeof url === 'string') throw new UsageError(`${setting} '${uri}' is refused: ${url}`);
  return url;
}

export interface ResolveOptions {
  /** The lease's vault: the name the grant asked for, or the lease's `vault` for a later wait. */
  vault: string;
  /** The lease's `vaultUri` as the broker answered it. */
  brokerUri?: string | undefined;
  /** `--vault-uri` / the `vault-uri` input: wins over the broker's. */
  configuredUri?: string | undefined;
  /** The explicit opt-in for a loopback data plane (the local emulator). */
  allowLoopback?: boolean | undefined;
  kind?: DataPlaneKind;
}

/**
 * A data-plane address a token may go to, with the token scope it implies. Only `resolve` makes
 * one: the probe takes nothing else.
 */
export class DataPlaneEndpoint {
  private constructor(
    /** The URI the probe uses. */
    readonly uri: string,
    /** The token scope its host implies; undefined: no Azure credential is asked (env token only). */
    readonly scope: string | undefined,
    /** Where the URI came from. */
    readonly source: 'configured' | 'broker' | 'default',
  ) {}

  /** Throws UntrustedDataPlaneError (naming the URI and why) for anything a token may not reach. */
  static resolve(options: ResolveOptions): DataPlaneEndpoint {
    const kind = options.kind ?? 'keyvault';
    if (options.configuredUri !== undefined && options.configuredUri.trim() !== '') {
      const url = parse(options.configuredUri);
      if (typeof url === 'string') throw new UntrustedDataPlaneError(options.configuredUri, url);
      return new DataPlaneEndpoint(
        url.toString(),
        suffixOf(url.hostname, kind)?.known.scope,
        'configured',
      );
    }
    const vault = options.vault.toLowerCase();
    if (!VAULT_NAME.test(vault)) {
      throw new UntrustedDataPlaneError(
        options.brokerUri ?? options.vault,
        `'${options.vault}' is not a Key Vault name, so no vault host can be checked`,
      );
    }
    if (options.brokerUri === undefined || options.brokerUri.trim() === '') {
      const uri = `https://${vault}.${DATA_PLANE_SUFFIXES[kind][0]!.suffix}/`;
      return new DataPlaneEndpoint(uri, vaultScopeFor(uri, kind), 'default');
    }
    const uri = options.brokerUri;
    const url = parse(uri);
    if (typeof url === 'string') throw new UntrustedDataPlaneError(uri, url);
    const under = suffixOf(url.hostname, kind);
    if (under && under.label === vault) {
      if (url.port !== '') {
        throw new UntrustedDataPlaneError(uri, `a vault answers on port 443, not ${url.port}`);
      }
      return new DataPlaneEndpoint(url.toString(), under.known.scope, 'broker');
    }
    if (LOOPBACK_HOST.test(url.hostname)) {
      if (options.allowLoopback) return new DataPlaneEndpoint(url.toString(), undefined, 'broker');
      throw new UntrustedDataPlaneError(
        uri,
        `${url.hostname} is a loopback address (the local emulator?): probe it only with ` +
          `--allow-loopback-data-plane or ${ALLOW_LOOPBACK_ENV}=1 (the allow-loopback-data-plane input)`,
      );
    }
    const configure = 'configure the vault URI yourself (--vault-uri, the vault-uri input)';
    if (under) {
      throw new UntrustedDataPlaneError(
        uri,
        `its host names vault '${under.label}', not the lease's vault '${vault}'; ${configure} if this is right`,
      );
    }
    throw new UntrustedDataPlaneError(
      uri,
      `its host is not ${vault}.<suffix> for a known Key Vault DNS suffix (${knownSuffixes(kind)}); ` +
        `${configure} to probe another address`,
    );
  }
}
