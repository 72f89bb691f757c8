import { addressesOf } from '../../domain/ip';
import type { TargetKind } from '../kind';
import { resourceIdParser } from '../resource-id';

/** A storage account name: 3-24 lower-case letters and digits. */
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

/**
 * Storage accounts (`Microsoft.Storage/storageAccounts`):
 * `properties.networkAcls.ipRules[] = { value, action: "Allow" }`, one list
 * replaced as a whole by a PATCH; at most 400 IP rules. Azure refuses /31 and
 * /32 as ranges: a single address is written bare, so a /31 lease takes its
 * two addresses as two rules.
 */
export const storageKind: TargetKind = {
  name: 'storage',
  label: 'storage account',
  resourceType: 'Microsoft.Storage/storageAccounts',
  maxRules: 400,
  model: 'whole-list',
  parseId: resourceIdParser(
    'storage',
    'Microsoft.Storage/storageAccounts',
    ACCOUNT_NAME,
    'a storage account name is 3-24 lower-case letters and digits',
  ),
  rulesFor: (cidr) => (cidr.endsWith('/31') ? (addressesOf(cidr) ?? [cidr]) : [cidr]),
};
