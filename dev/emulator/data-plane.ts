/**
 * A minimal Key Vault data plane for the emulator: each vault answers at its `vaultUri`
 * (`https://<emulator>/data-plane/<name>/`, which the ARM GET returns) and applies the vault's
 * firewall the way Azure does, late: a management write takes effect on the data plane only
 * after a configurable propagation delay. Until then the old rules hold, and a caller whose
 * address they do not admit gets Key Vault's 403 `ForbiddenByFirewall` naming the
 * `Client address` the vault sees. That address is configurable (globally and per vault),
 * since every test caller really comes from 127.0.0.1.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

import { clientAddressFor } from './arm-model';
import type { NetworkAcls } from './types';
import type { VaultRecord } from './vault-store';

export const DATA_PLANE_PREFIX = '/data-plane/';

export interface VaultDataPlaneConfig {
  /** Overrides the global delay for this vault. */
  propagationDelayMs?: number;
  /** Overrides the global address for this vault; null: no override. */
  clientAddress?: string | null;
}

export interface DataPlaneConfig {
  /** Delay between a management write and its effect on the data plane. Default 0. */
  propagationDelayMs: number;
  /** The address the vault sees for every caller; null (default): the TCP peer. */
  clientAddress: string | null;
  /** Per vault, by lower-case vault name. */
  vaults: Record<string, VaultDataPlaneConfig>;
}

export interface DataPlaneStats {
  /** Answered 200 (or the firewall let through). */
  allowed: number;
  /** 403 ForbiddenByFirewall / ForbiddenByConnection. */
  refused: number;
  /** 401: no bearer token. */
  unauthenticated: number;
}

const MAX_DELAY_MS = 10 * 60 * 1000;
const ipv4 = z
  .string()
  .refine((text) => ipaddr.IPv4.isValidFourPartDecimal(text), 'must be an IPv4 address');
const vaultConfigSchema = z.strictObject({
  propagationDelayMs: z.number().int().min(0).max(MAX_DELAY_MS).optional(),
  clientAddress: ipv4.nullable().optional(),
});

/** The same schema checks start options, `PATCH /_emulator/data-plane` and `configureDataPlane`. */
export const dataPlanePatchSchema = z.strictObject({
  propagationDelayMs: z.number().int().min(0).max(MAX_DELAY_MS).optional(),
  clientAddress: ipv4.nullable().optional(),
  /** Merged per vault name; a vault set to null drops its overrides. */
  vaults: z.record(z.string(), vaultConfigSchema.nullable()).optional(),
});
export type DataPlanePatch = z.input<typeof dataPlanePatchSchema>;

interface FirewallState {
  networkAcls: NetworkAcls | undefined;
  publicNetworkAccess: unknown;
}

interface Version {
  /** Epoch ms from which this version is what the data plane enforces. */
  effectiveAt: number;
  state: FirewallState;
}

export interface DataPlaneRequest {
  method: string;
  url: URL;
  authorization: string | undefined;
  /** The TCP peer, as the socket reports it. */
  peer: string | undefined;
}

export interface DataPlaneAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

function vaultError(
  status: number,
  code: string,
  message: string,
  innerCode?: string,
  headers?: Record<string, string>,
): DataPlaneAnswer {
  return {
    status,
    body: { error: { code, message, ...(innerCode ? { innererror: { code: innerCode } } : {}) } },
    ...(headers ? { headers } : {}),
  };
}

function admits(acls: NetworkAcls, address: string): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) return false;
  const ip = ipaddr.IPv4.parse(address);
  return acls.ipRules.some((rule) => {
    try {
      const [network, prefix] = rule.value.includes('/')
        ? ipaddr.IPv4.parseCIDR(rule.value)
        : [ipaddr.IPv4.parse(rule.value), 32];
      return ip.match(network, prefix);
    } catch {
      return false;
    }
  });
}

export class EmulatedDataPlane {
  private config: DataPlaneConfig = { propagationDelayMs: 0, clientAddress: null, vaults: {} };
  private readonly versions = new Map<string, Version[]>();
  private counters: DataPlaneStats = { allowed: 0, refused: 0, unauthenticated: 0 };
  /** `https://127.0.0.1:<port>`, known once the server listens. */
  private baseUrl: string | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  setBaseUrl(url: string): void {
    this.baseUrl = url;
  }

  /** Where the vault's data plane answers; Azure's public-cloud form until the server listens. */
  vaultUri(name: string): string {
    return this.baseUrl === undefined
      ? `https://${name.toLowerCase()}.vault.azure.net/`
      : `${this.baseUrl}${DATA_PLANE_PREFIX}${encodeURIComponent(name.toLowerCase())}/`;
  }

  /** Throws an Error naming every bad field, changing nothing. */
  configure(patch: unknown): DataPlaneConfig {
    const parsed = dataPlanePatchSchema.safeParse(patch);
    if (!parsed.success) {
      throw new Error(`Invalid data-plane config: ${z.prettifyError(parsed.error)}`);
    }
    const next = structuredClone(this.config);
    const { vaults, ...globals } = parsed.data;
    for (const [key, value] of Object.entries(globals)) {
      if (value !== undefined) Object.assign(next, { [key]: value });
    }
    for (const [name, value] of Object.entries(vaults ?? {})) {
      const key = name.toLowerCase();
      if (value === null) delete next.vaults[key];
      else next.vaults[key] = { ...next.vaults[key], ...dropUndefined(value) };
    }
    this.config = next;
    return this.snapshot();
  }

  snapshot(): DataPlaneConfig {
    return structuredClone(this.config);
  }

  stats(): DataPlaneStats {
    return { ...this.counters };
  }

  resetStats(): void {
    this.counters = { allowed: 0, refused: 0, unauthenticated: 0 };
  }

  /**
   * Every stored version of a vault passes through here. A new vault's firewall holds at once;
   * a change holds from `now + propagation delay`; a write that changes nothing is no change.
   */
  recordVersion(record: VaultRecord, created: boolean): void {
    const state: FirewallState = {
      networkAcls: record.networkAcls,
      publicNetworkAccess: record.properties['publicNetworkAccess'],
    };
    const now = this.now();
    const history = this.versions.get(record.key) ?? [];
    const latest = history[history.length - 1];
    if (latest && JSON.stringify(latest.state) === JSON.stringify(state)) return;
    const delay = created && !latest ? 0 : this.delayFor(record.name);
    history.push({ effectiveAt: now + delay, state });
    // Versions older than the newest one already in force can never be enforced again.
    const inForce = this.inForceIndex(history, now);
    this.versions.set(record.key, inForce > 0 ? history.slice(inForce) : history);
  }

  /** The firewall the data plane enforces now: the last recorded version already in effect. */
  enforced(record: VaultRecord): FirewallState | undefined {
    const history = this.versions.get(record.key) ?? [];
    return history[this.inForceIndex(history, this.now())]?.state;
  }

  answer(
    request: DataPlaneRequest,
    find: (name: string) => VaultRecord | undefined,
  ): DataPlaneAnswer {
    const [name = '', ...rest] = request.url.pathname.slice(DATA_PLANE_PREFIX.length).split('/');
    const record = find(decodeURIComponent(name).toLowerCase());
    if (!record) {
      return vaultError(404, 'VaultNotFound', `No vault named '${name}' in this emulator.`);
    }
    if (!/^Bearer \S+$/.test(request.authorization ?? '')) {
      this.counters.unauthenticated += 1;
      return vaultError(
        401,
        'Unauthorized',
        'AKV10000: Request is missing a Bearer or PoP token.',
        undefined,
        {
          'WWW-Authenticate': `Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"`,
        },
      );
    }
    if (!request.url.searchParams.get('api-version')) {
      return vaultError(400, 'BadParameter', 'The api-version query parameter is required.');
    }
    const state = this.enforced(record);
    const address = clientAddressFor(this.config, record.name, request.peer);
    if (state?.publicNetworkAccess === 'Disabled') {
      this.counters.refused += 1;
      return vaultError(
        403,
        'Forbidden',
        `Public network access is disabled and request is not from a trusted service nor via an approved private link.\r\nCaller: appid=emulator\r\nVault: ${record.name};location=${record.location}`,
        'ForbiddenByConnection',
      );
    }
    const acls = state?.networkAcls;
    if (acls && acls.defaultAction === 'Deny' && !admits(acls, address)) {
      this.counters.refused += 1;
      return vaultError(
        403,
        'Forbidden',
        `Client address is not authorized and caller is not a trusted service.\r\nClient address: ${address}\r\nCaller: appid=emulator;oid=emulator\r\nVault: ${record.name};location=${record.location}`,
        'ForbiddenByFirewall',
      );
    }
    this.counters.allowed += 1;
    if (request.method === 'GET' && rest.join('/').replace(/\/$/, '') === 'secrets') {
      return { status: 200, body: { value: [], nextLink: null } };
    }
    return vaultError(
      404,
      'NotFound',
      `The emulated data plane serves only GET secrets, not ${request.method} /${rest.join('/')}.`,
    );
  }

  private inForceIndex(history: Version[], now: number): number {
    for (let index = history.length - 1; index >= 0; index -= 1) {
      if ((history[index]?.effectiveAt ?? Infinity) <= now) return index;
    }
    return -1;
  }

  private delayFor(name: string): number {
    return (
      this.config.vaults[name.toLowerCase()]?.propagationDelayMs ?? this.config.propagationDelayMs
    );
  }
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
