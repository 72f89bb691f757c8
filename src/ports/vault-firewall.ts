import type { ManagedVault } from '../domain/vault';

/** `properties.networkAcls` of a vault, as Resource Manager returns it. */
export interface NetworkAcls {
  bypass?: string | undefined;
  defaultAction?: string | undefined;
  ipRules: { value: string }[];
  virtualNetworkRules?:
    { id: string; ignoreMissingVnetServiceEndpoint?: boolean | undefined }[] | undefined;
}

export type FirewallFailure =
  'conflict' | 'throttled' | 'transient' | 'rejected' | 'not-found' | 'timeout';

/** A firewall call that did not succeed, classified so the writer knows whether to retry. */
export class FirewallError extends Error {
  /** The HTTP status Resource Manager answered, when it answered. */
  readonly status: number | undefined;

  constructor(
    readonly kind: FirewallFailure,
    message: string,
    readonly retryAfterMs: number | undefined = undefined,
    options?: { cause?: unknown; status?: number | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FirewallError';
    this.status = options?.status;
  }

  /**
   * Resource Manager refused the vault itself (authorization removed, vault
   * gone, request refused as invalid): retrying cannot help, so the writer
   * fails its waiters at once instead of retrying until their deadline.
   */
  get permanent(): boolean {
    return this.kind === 'rejected' || this.kind === 'not-found';
  }

  /**
   * Whether the write may have been applied although it did not answer
   * success (a timeout, a 5xx, a broken connection). A refusal (4xx, 409,
   * 429) was answered before anything changed.
   */
  get outcomeUnknown(): boolean {
    return this.kind === 'transient' || this.kind === 'timeout';
  }
}

/**
 * The management-plane firewall of a Key Vault. There is no add/remove of a
 * single rule and no ETag: a write replaces the whole `ipRules` list, so the
 * caller must hold the vault's writer role and send the complete `networkAcls`
 * it read, with only `ipRules` changed.
 */
export interface VaultFirewall {
  read(vault: ManagedVault, signal?: AbortSignal): Promise<NetworkAcls>;
  /** PATCH `networkAcls` = `base` with `ipRules` replaced; returns what the vault now holds. */
  writeIpRules(
    vault: ManagedVault,
    base: NetworkAcls,
    ipRules: string[],
    signal?: AbortSignal,
  ): Promise<NetworkAcls>;
}
