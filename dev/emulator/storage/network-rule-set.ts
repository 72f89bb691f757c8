/**
 * `properties.networkAcls` of a storage account (the spec's `NetworkRuleSet`), validated as the
 * Storage resource provider does. Where it differs from Key Vault: single addresses are written
 * bare and stay bare, /31 and /32 are refused as ranges (prefixes /0 to /30 only), every IP rule
 * carries `action: "Allow"`, `bypass` is a combination of `None`, `Logging`, `Metrics` and
 * `AzureServices`, there are `resourceAccessRules`, and the limit is 400 rules of each list.
 * A refusal is Azure's 400 `InvalidValuesForRequestParameters`, which names the field but not
 * the value; the emulator appends the value and the reason so a failing test says why.
 */
import ipaddr from 'ipaddr.js';

import { ArmError } from '../arm-error';
import { canonicalIpRule } from '../network-acls';

export type StorageDefaultAction = 'Allow' | 'Deny';

export interface StorageIpRule {
  value: string;
  action: 'Allow';
}

export interface StorageVirtualNetworkRule {
  id: string;
  action: 'Allow';
  state?: string;
}

export interface ResourceAccessRule {
  tenantId: string;
  resourceId: string;
}

export interface StorageNetworkAcls {
  bypass: string;
  defaultAction: StorageDefaultAction;
  ipRules: StorageIpRule[];
  virtualNetworkRules: StorageVirtualNetworkRule[];
  resourceAccessRules: ResourceAccessRule[];
}

export const STORAGE_DEFAULT_ACLS: Readonly<StorageNetworkAcls> = Object.freeze({
  bypass: 'AzureServices',
  defaultAction: 'Allow',
  ipRules: [],
  virtualNetworkRules: [],
  resourceAccessRules: [],
});

export const MAX_STORAGE_IP_RULES = 400;
export const MAX_STORAGE_VIRTUAL_NETWORK_RULES = 400;

const BYPASS_TOKENS = ['None', 'Logging', 'Metrics', 'AzureServices'] as const;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SUBNET_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i;
const MAX_STORAGE_PREFIX = 30;

/** Azure's refusal; `field` as Azure names it (e.g. `networkAcls.ipRule[*].value`). */
export function invalidValues(field: string, detail: string): ArmError {
  return new ArmError(
    400,
    'InvalidValuesForRequestParameters',
    `Values for request parameters are invalid: ${field}. For more information, see - https://aka.ms/storagenetworkruleset (emulator: ${detail})`,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseBypass(input: unknown): string {
  const tokens = typeof input === 'string' ? input.split(',').map((t) => t.trim()) : [];
  const parsed = tokens.map((token) =>
    BYPASS_TOKENS.find((known) => known.toLowerCase() === token.toLowerCase()),
  );
  if (parsed.length === 0 || parsed.some((token) => token === undefined)) {
    throw invalidValues(
      'networkAcls.bypass',
      `${JSON.stringify(input)} is not a combination of ${BYPASS_TOKENS.join(', ')}.`,
    );
  }
  return [...new Set(parsed)].join(', ');
}

/**
 * A rule value as Storage keeps it: a bare address stays bare; a range needs a prefix of at
 * most 30, zero host bits and no private, loopback or otherwise non-public address in it.
 */
export function storageIpRuleValue(value: string): string {
  const slash = value.indexOf('/');
  if (slash !== -1) {
    const prefix = value.slice(slash + 1);
    if (/^\d+$/.test(prefix) && Number(prefix) > MAX_STORAGE_PREFIX && Number(prefix) <= 32) {
      throw invalidValues(
        'networkAcls.ipRule[*].value',
        `${value}: ranges of prefix /31 and /32 are not supported; write single addresses bare (a.b.c.d).`,
      );
    }
  }
  try {
    const canonical = canonicalIpRule(value, 'networkAcls.ipRules');
    return slash === -1 ? canonical.slice(0, canonical.indexOf('/')) : canonical;
  } catch (error) {
    throw invalidValues(
      'networkAcls.ipRule[*].value',
      error instanceof Error ? error.message : String(error),
    );
  }
}

function parseIpRules(input: unknown): StorageIpRule[] {
  if (!Array.isArray(input)) {
    throw invalidValues('networkAcls.ipRules', 'expected an array.');
  }
  if (input.length > MAX_STORAGE_IP_RULES) {
    throw invalidValues(
      'networkAcls.ipRules[]',
      `${input.length} IP rules; a storage account allows at most ${MAX_STORAGE_IP_RULES}.`,
    );
  }
  const seen = new Map<string, number>();
  return input.map((rule: unknown, index) => {
    if (!isRecord(rule) || typeof rule['value'] !== 'string') {
      throw invalidValues('networkAcls.ipRule[*].value', `ipRules[${index}] has no string value.`);
    }
    if (rule['action'] !== undefined && rule['action'] !== 'Allow') {
      throw invalidValues(
        'networkAcls.ipRule[*].action',
        `ipRules[${index}].action is ${JSON.stringify(rule['action'])}; only "Allow" exists.`,
      );
    }
    const value = storageIpRuleValue(rule['value']);
    // NOTE: strict on purpose, as for vaults: a duplicate means a client compares rules badly.
    const canonical = value.includes('/') ? value : `${value}/32`;
    const earlier = seen.get(canonical);
    if (earlier !== undefined) {
      throw invalidValues(
        'networkAcls.ipRule[*].value',
        `ipRules[${index}] (${value}) duplicates ipRules[${earlier}].`,
      );
    }
    seen.set(canonical, index);
    return { value, action: 'Allow' };
  });
}

function parseVirtualNetworkRules(input: unknown): StorageVirtualNetworkRule[] {
  if (!Array.isArray(input)) {
    throw invalidValues('networkAcls.virtualNetworkRules', 'expected an array.');
  }
  if (input.length > MAX_STORAGE_VIRTUAL_NETWORK_RULES) {
    throw invalidValues(
      'networkAcls.virtualNetworkRules[]',
      `${input.length} rules; a storage account allows at most ${MAX_STORAGE_VIRTUAL_NETWORK_RULES}.`,
    );
  }
  return input.map((rule: unknown, index) => {
    if (!isRecord(rule) || typeof rule['id'] !== 'string' || !SUBNET_ID.test(rule['id'])) {
      throw invalidValues(
        'networkAcls.virtualNetworkRules[*].id',
        `virtualNetworkRules[${index}] is not the id of a subnet.`,
      );
    }
    const parsed: StorageVirtualNetworkRule = { id: rule['id'], action: 'Allow' };
    if (typeof rule['state'] === 'string') {
      parsed.state = rule['state'];
    }
    return parsed;
  });
}

function parseResourceAccessRules(input: unknown): ResourceAccessRule[] {
  if (!Array.isArray(input)) {
    throw invalidValues('networkAcls.resourceAccessRules', 'expected an array.');
  }
  return input.map((rule: unknown, index) => {
    if (
      !isRecord(rule) ||
      typeof rule['tenantId'] !== 'string' ||
      !GUID.test(rule['tenantId']) ||
      typeof rule['resourceId'] !== 'string' ||
      !rule['resourceId'].startsWith('/')
    ) {
      throw invalidValues(
        'networkAcls.resourceAccessRules[*].resourceId',
        `resourceAccessRules[${index}] needs a tenantId GUID and a resourceId.`,
      );
    }
    return { tenantId: rule['tenantId'], resourceId: rule['resourceId'] };
  });
}

/**
 * Validates a `networkAcls` object, all or nothing. A field absent from `input` comes from
 * `base`. `defaultAction` is required in an ARM write (the spec marks it required); the admin
 * API passes `requireDefaultAction: false` to edit fields one at a time.
 */
export function parseStorageNetworkAcls(
  input: unknown,
  base: Readonly<StorageNetworkAcls>,
  requireDefaultAction: boolean,
): StorageNetworkAcls {
  if (!isRecord(input)) {
    throw invalidValues('networkAcls', 'expected an object.');
  }
  const acls = copyStorageAcls(base);
  const defaultAction = input['defaultAction'];
  if (defaultAction === undefined) {
    if (requireDefaultAction) {
      throw invalidValues('networkAcls.defaultAction', 'the property is required.');
    }
  } else if (defaultAction === 'Allow' || defaultAction === 'Deny') {
    acls.defaultAction = defaultAction;
  } else {
    throw invalidValues(
      'networkAcls.defaultAction',
      `${JSON.stringify(defaultAction)}; allowed values: Allow, Deny.`,
    );
  }
  if (input['bypass'] !== undefined) acls.bypass = parseBypass(input['bypass']);
  if (input['ipRules'] !== undefined) acls.ipRules = parseIpRules(input['ipRules']);
  if (input['virtualNetworkRules'] !== undefined) {
    acls.virtualNetworkRules = parseVirtualNetworkRules(input['virtualNetworkRules']);
  }
  if (input['resourceAccessRules'] !== undefined) {
    acls.resourceAccessRules = parseResourceAccessRules(input['resourceAccessRules']);
  }
  return acls;
}

export function copyStorageAcls(acls: Readonly<StorageNetworkAcls>): StorageNetworkAcls {
  return structuredClone({ ...acls });
}

/** True when a rule admits `address`: a bare address is its own /32. */
export function ipRulesAdmit(rules: readonly StorageIpRule[], address: string): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) return false;
  const ip = ipaddr.IPv4.parse(address);
  return rules.some((rule) => {
    const [network, prefix] = rule.value.includes('/')
      ? ipaddr.IPv4.parseCIDR(rule.value)
      : [ipaddr.IPv4.parse(rule.value), 32];
    return ip.match(network, prefix);
  });
}
