/** A Key Vault the broker manages, as named in `BROKER_VAULTS`. */
export interface ManagedVault {
  /** Lower-case vault name: the API's handle for the vault. */
  name: string;
  resourceId: string;
  subscriptionId: string;
  resourceGroup: string;
}

/** Key Vault's documented limit of IPv4 rules per vault. */
export const MAX_RULES_PER_VAULT = 1000;

/**
 * A Key Vault name: 3-24 letters, digits and hyphens, starting with a letter,
 * ending with a letter or digit, no `--`. Names are case-insensitive; the
 * broker keeps them lower-case, so the pattern is tested on lower-cased text.
 */
export const VAULT_NAME = /^[a-z](?!.*--)[a-z0-9-]{1,22}[a-z0-9]$/;

export function isVaultName(text: string): boolean {
  return VAULT_NAME.test(text.toLowerCase());
}
