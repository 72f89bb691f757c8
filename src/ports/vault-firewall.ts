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
  constructor(
    readonly kind: FirewallFailure,
    message: string,
    readonly retryAfterMs: number | undefined = undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FirewallError';
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
  /**
   * The vault's data-plane URI (`properties.vaultUri` of its GET), for clients that wait for the
   * data plane. It never changes for a vault, so an implementation may cache it; undefined when
   * it cannot be read.
   */
  vaultUri?(vault: ManagedVault, signal?: AbortSignal): Promise<string | undefined>;
  /** PATCH `networkAcls` = `base` with `ipRules` replaced; returns what the vault now holds. */
  writeIpRules(
    vault: ManagedVault,
    base: NetworkAcls,
    ipRules: string[],
    signal?: AbortSignal,
  ): Promise<NetworkAcls>;
}
