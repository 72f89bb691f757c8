import type { ManagedTarget } from '../../domain/target';
import type { TargetKind } from '../kind';
import { resourceIdParser } from '../resource-id';

/**
 * A Key Vault name: 3-24 letters, digits and hyphens, starting with a letter,
 * ending with a letter or digit, no `--` (tested on lower-cased text).
 */
const VAULT_NAME = /^[a-z](?!.*--)[a-z0-9-]{1,22}[a-z0-9]$/;

/**
 * Key Vault (`Microsoft.KeyVault/vaults`): `properties.networkAcls.ipRules`,
 * one list replaced as a whole by a PATCH; a single address as `a.b.c.d/32`;
 * at most 1000 IPv4 rules.
 */
export const keyVaultKind: TargetKind = {
  name: 'keyvault',
  label: 'Key Vault',
  resourceType: 'Microsoft.KeyVault/vaults',
  maxRules: 1000,
  model: 'whole-list',
  parseId: resourceIdParser(
    'keyvault',
    'Microsoft.KeyVault/vaults',
    VAULT_NAME,
    'a Key Vault name is 3-24 letters, digits and hyphens, starting with a letter',
  ),
  rulesFor: (cidr) => [cidr],
};

export type KeyVaultTarget = ManagedTarget & { kind: 'keyvault' };
