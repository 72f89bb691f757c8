import type { DataPlaneConfig, DataPlanePatch, DataPlaneStats } from './data-plane';
import type { ServiceTagsApi, ServiceTagsConfig } from './service-tags';
import type { SqlServersApi, SqlServerSpec } from './sql/sql-model';
import type { StorageAccountSpec } from './storage/account';
import type { StorageAccountsApi } from './storage/storage-model';

/**
 * Public types of the Key Vault ARM emulator. They live apart from `server.ts` so the
 * helper modules can share them without importing the server; `server.ts` re-exports them.
 */

export type Bypass = 'AzureServices' | 'None';
export type DefaultAction = 'Allow' | 'Deny';

export interface IpRule {
  value: string;
}

export interface VirtualNetworkRule {
  id: string;
  ignoreMissingVnetServiceEndpoint?: boolean;
}

/** `properties.networkAcls` of a vault, every field present (the effective rule set). */
export interface NetworkAcls {
  bypass: Bypass;
  defaultAction: DefaultAction;
  ipRules: IpRule[];
  virtualNetworkRules: VirtualNetworkRule[];
}

export interface VaultSpec {
  /** Defaults to `00000000-0000-0000-0000-000000000000`. */
  subscriptionId?: string;
  resourceGroup: string;
  name: string;
  /** Defaults to `westeurope`. */
  location?: string;
  /**
   * Fields left out take their Azure defaults. When the whole object is left out the vault is
   * rendered without `networkAcls`, as Azure does for a vault that was never given network rules.
   */
  networkAcls?: Partial<NetworkAcls>;
}

export type WriteMethod = 'PATCH' | 'PUT';
/** DELETE exists for SQL firewall rules only; vaults and storage accounts answer 405. */
export type ArmMethod = 'GET' | WriteMethod | 'DELETE';

export interface FaultConfig {
  /** Probability 0..1 that a matching request fails with one of `statuses`. */
  rate: number;
  /** Picked uniformly, e.g. `[500, 429, 503]`. */
  statuses: number[];
  /** Default: all. */
  methods?: ArmMethod[];
  /** Sent as `Retry-After` with 429 and 503. Default 1. */
  retryAfterSeconds?: number;
}

/**
 * A vault Resource Manager refuses for good: the broker's identity lost its role (403),
 * the vault was deleted (404), or every request for it is invalid (400).
 */
export interface VaultRefusal {
  /**
   * The resource's name or resource id (case-insensitive): a vault, a storage account, a SQL
   * server, or `serviceTags` for the Service Tag Discovery API. (Named `vault` since v1.)
   */
  vault: string;
  status: 400 | 403 | 404;
  /** Default: all. */
  methods?: ArmMethod[];
}

export interface EmulatorConfig {
  /** Default 0. */
  readLatencyMs: number;
  /** Default 0. A write holds its vault "in flight" for this long. */
  writeLatencyMs: number;
  /** Default true: a write arriving while another write on the same vault is in flight gets 409. */
  conflictOnOverlap: boolean;
  /** Default null. */
  faults: FaultConfig | null;
  /** Token bucket on writes per subscription, like Resource Manager. null = off. */
  writeThrottle: { capacity: number; refillPerSecond: number } | null;
  /** With probability `rate`, a write waits `ms` more before answering (timeout testing). null = off. */
  hang: { rate: number; ms: number } | null;
  /**
   * With probability `rate`, a write is held `ms` before it is applied, and it is applied even
   * when its client gave up meanwhile (the answer is lost). Models a write Resource Manager
   * carries out after its caller timed out, which Azure does not rule out. null = off.
   */
  lateApply: { rate: number; ms: number } | null;
  /** Resources answered with a permanent refusal. Default: none. */
  refusals: VaultRefusal[];
  /** With probability `rate`, a SQL firewall rule DELETE answers 409 `OperationInterrupted`. null = off. */
  interruptedDeletes: { rate: number } | null;
}

export interface VaultStats {
  gets: number;
  writes: number;
  writesApplied: number;
  conflicts: number;
}

/**
 * Counters since start or the last reset. `gets`, `patches` and `puts` count every
 * authenticated request that reached a vault route, whatever its outcome (throttled,
 * faulted, conflicting or refused as invalid); `writesApplied` counts the writes that changed
 * the stored vault.
 */
export interface EmulatorStats {
  gets: number;
  patches: number;
  puts: number;
  writesApplied: number;
  conflicts: number;
  faultsInjected: number;
  /** Writes applied after their client had gone (`lateApply`). */
  lateApplied: number;
  /** Requests answered with a configured refusal. */
  refused: number;
  throttled: number;
  /** Keyed by lower-case resource id. */
  perVault: Record<string, VaultStats>;
}

export interface StartOptions extends Partial<EmulatorConfig> {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** When set, `Authorization` must be exactly `Bearer <token>`, else 401. */
  requiredToken?: string;
  /** When set, the certificate is written there as `ca.pem`. */
  certDir?: string;
  vaults?: VaultSpec[];
  /** Seed of the fault and hang randomness; the same seed and request order give the same faults. */
  seed?: number;
  /** Receives one human-readable line per ARM request; silent when unset. */
  log?: (line: string) => void;
  /**
   * The emulated data planes (vaults' and storage accounts' blob endpoints): propagation delay
   * and the client address they see; the per-name overrides (`vaults`) apply to any kind.
   */
  dataPlane?: DataPlanePatch;
  storageAccounts?: StorageAccountSpec[];
  sqlServers?: SqlServerSpec[];
  /** The `AzureCloud.<region>` tags served; default: a few ranges for three regions. */
  serviceTags?: ServiceTagsConfig;
}

export interface RunningEmulator {
  /** `https://127.0.0.1:<port>` */
  url: string;
  caPem: string;
  /** Set when `certDir` was given. */
  caPath?: string;
  /** Returns the ARM resource id. Throws when the spec is invalid or the vault exists. */
  createVault(spec: VaultSpec): string;
  /** A copy of the effective rules (Azure defaults when the vault has none). Throws for an unknown vault. */
  getNetworkAcls(resourceId: string): NetworkAcls;
  /**
   * "Someone else" edits the firewall behind the broker's back: applied at once, no latency, no
   * conflict, no fault. Fields left out are kept. Validated like an ARM write (throws on refusal).
   */
  setNetworkAcls(resourceId: string, acls: Partial<NetworkAcls>): void;
  /** Throws on an invalid patch, changing nothing. */
  configure(patch: Partial<EmulatorConfig>): void;
  stats(): EmulatorStats;
  resetStats(): void;
  /** `https://127.0.0.1:<port>/data-plane/<name>/`, as the ARM GET returns it. */
  vaultUri(name: string): string;
  /** Merges a data-plane patch (validated; throws changing nothing) and returns the result. */
  configureDataPlane(patch: DataPlanePatch): DataPlaneConfig;
  dataPlaneStats(): DataPlaneStats;
  /** Storage accounts (`Microsoft.Storage/storageAccounts`) and their blob data plane. */
  storage: StorageAccountsApi;
  /** SQL servers (`Microsoft.Sql/servers`) and their firewall rules. */
  sql: SqlServersApi;
  /** The Service Tag Discovery API's content. */
  serviceTags: ServiceTagsApi;
  close(): Promise<void>;
}
