import { KeyVaultManagementClient, type NetworkRuleSet } from '@azure/arm-keyvault';
import type { TokenCredential } from '@azure/core-auth';
import { RestError } from '@azure/core-rest-pipeline';

import type { ManagedVault } from '../../domain/vault';
import { FirewallError, type NetworkAcls, type VaultFirewall } from '../../ports/vault-firewall';

export interface ArmFirewallOptions {
  endpoint: string;
  credential: TokenCredential;
  /** Retries of the SDK's own policy (429 with Retry-After, 5xx, network). */
  maxRetries?: number;
  /**
   * Extra TLS trust for an in-process test emulator only. Not reachable from
   * configuration: a configured endpoint is trusted through NODE_EXTRA_CA_CERTS.
   */
  tlsCa?: string;
}

const ARM_SCOPE = 'https://management.azure.com/.default';
const VAULT_URI_RETRY_MS = 30_000;

function retryAfterMs(error: RestError): number | undefined {
  const header = error.response?.headers.get('retry-after');
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Map whatever the SDK threw to a FirewallError; never leak the SDK's error body. */
export function classifyArmError(error: unknown, signal?: AbortSignal): FirewallError {
  if (signal?.aborted || (error instanceof Error && error.name === 'AbortError')) {
    return new FirewallError('timeout', 'The Key Vault write did not finish in time', undefined, {
      cause: error,
    });
  }
  if (error instanceof RestError) {
    const status = error.statusCode;
    const code = error.code ?? '';
    if (status === 409)
      return new FirewallError('conflict', `Conflict (${code || '409'})`, undefined, {
        cause: error,
      });
    if (status === 429)
      return new FirewallError(
        'throttled',
        'Resource Manager throttled the call',
        retryAfterMs(error),
        { cause: error },
      );
    if (status === 404)
      return new FirewallError('not-found', 'The vault was not found', undefined, { cause: error });
    if (status !== undefined && status >= 400 && status < 500 && status !== 408) {
      return new FirewallError(
        'rejected',
        `Resource Manager refused the call (${status} ${code})`,
        undefined,
        { cause: error },
      );
    }
    return new FirewallError(
      'transient',
      `Resource Manager failed (${status ?? error.code ?? 'network'})`,
      retryAfterMs(error),
      { cause: error },
    );
  }
  return new FirewallError('transient', 'Resource Manager call failed', undefined, {
    cause: error,
  });
}

function toAcls(set: NetworkRuleSet | undefined): NetworkAcls {
  return {
    bypass: set?.bypass,
    defaultAction: set?.defaultAction,
    ipRules: (set?.ipRules ?? []).map((rule) => ({ value: rule.value })),
    virtualNetworkRules: (set?.virtualNetworkRules ?? []).map((rule) => ({
      id: rule.id,
      ignoreMissingVnetServiceEndpoint: rule.ignoreMissingVnetServiceEndpoint,
    })),
  };
}

/** The firewall through `@azure/arm-keyvault`: a GET, then a PATCH of the complete networkAcls. */
export class ArmVaultFirewall implements VaultFirewall {
  private readonly clients = new Map<string, KeyVaultManagementClient>();
  /** `properties.vaultUri` by vault resource id: fixed for a vault's life, so kept once seen. */
  private readonly vaultUris = new Map<string, string>();
  private readonly vaultUriFailedAt = new Map<string, number>();

  constructor(private readonly options: ArmFirewallOptions) {}

  private client(subscriptionId: string): KeyVaultManagementClient {
    let client = this.clients.get(subscriptionId);
    if (!client) {
      client = new KeyVaultManagementClient(this.options.credential, subscriptionId, {
        endpoint: this.options.endpoint,
        // NOTE: the SDK derives the token scope from the endpoint; an emulator
        // or sovereign endpoint still wants the Resource Manager audience.
        credentials: { scopes: [ARM_SCOPE] },
        retryOptions: {
          maxRetries: this.options.maxRetries ?? 3,
          retryDelayInMs: 200,
          maxRetryDelayInMs: 4000,
        },
        ...(this.options.tlsCa ? { tlsOptions: { ca: this.options.tlsCa } } : {}),
      });
      this.clients.set(subscriptionId, client);
    }
    return client;
  }

  async read(vault: ManagedVault, signal?: AbortSignal): Promise<NetworkAcls> {
    try {
      const result = await this.client(vault.subscriptionId).vaults.get(
        vault.resourceGroup,
        vault.name,
        {
          abortSignal: signal,
        },
      );
      if (result.properties.vaultUri)
        this.vaultUris.set(vault.resourceId, result.properties.vaultUri);
      return toAcls(result.properties.networkAcls);
    } catch (error) {
      throw classifyArmError(error, signal);
    }
  }

  /** From the last GET of the vault (every writer pass makes one), else one GET now. */
  async vaultUri(vault: ManagedVault, signal?: AbortSignal): Promise<string | undefined> {
    const known = this.vaultUris.get(vault.resourceId);
    if (known) return known;
    // NOTE: while Resource Manager fails, answers go without vaultUri rather than each waiting
    // for another failing GET: one try per vault every 30 s.
    if (Date.now() - (this.vaultUriFailedAt.get(vault.resourceId) ?? 0) < VAULT_URI_RETRY_MS) {
      return undefined;
    }
    try {
      await this.read(vault, signal);
    } catch (error) {
      this.vaultUriFailedAt.set(vault.resourceId, Date.now());
      throw error;
    }
    return this.vaultUris.get(vault.resourceId);
  }

  async writeIpRules(
    vault: ManagedVault,
    base: NetworkAcls,
    ipRules: string[],
    signal?: AbortSignal,
  ): Promise<NetworkAcls> {
    const networkAcls: NetworkRuleSet = {
      bypass: base.bypass,
      defaultAction: base.defaultAction,
      ipRules: ipRules.map((value) => ({ value })),
      virtualNetworkRules: base.virtualNetworkRules ?? [],
    };
    try {
      const result = await this.client(vault.subscriptionId).vaults.update(
        vault.resourceGroup,
        vault.name,
        { properties: { networkAcls } },
        { abortSignal: signal },
      );
      return toAcls(result.properties?.networkAcls);
    } catch (error) {
      throw classifyArmError(error, signal);
    }
  }
}
