import ipaddr from 'ipaddr.js';

import { type ArmError, badRequest } from './arm-error';
import type { Bypass, DefaultAction, IpRule, NetworkAcls, VirtualNetworkRule } from './types';

/** What Key Vault assumes for a field it was never given. */
export const AZURE_DEFAULT_ACLS: Readonly<NetworkAcls> = Object.freeze({
  bypass: 'AzureServices',
  defaultAction: 'Allow',
  ipRules: [],
  virtualNetworkRules: [],
});

export const MAX_IP_RULES = 1000;
export const MAX_VIRTUAL_NETWORK_RULES = 200;

const BYPASS_VALUES: readonly Bypass[] = ['AzureServices', 'None'];
const DEFAULT_ACTION_VALUES: readonly DefaultAction[] = ['Allow', 'Deny'];

interface ForbiddenRange {
  network: ipaddr.IPv4;
  prefix: number;
  label: string;
}

/**
 * Ranges Key Vault refuses in `ipRules`. The facts file confirms the private ranges; the others
 * are not routable from the public internet either, so a rule for them can only be a client bug.
 */
const FORBIDDEN_RANGES: readonly ForbiddenRange[] = (
  [
    ['0.0.0.0/8', '"this" network'],
    ['10.0.0.0/8', 'private IP addresses'],
    ['127.0.0.0/8', 'loopback addresses'],
    ['169.254.0.0/16', 'link-local addresses'],
    ['172.16.0.0/12', 'private IP addresses'],
    ['192.168.0.0/16', 'private IP addresses'],
    ['224.0.0.0/4', 'multicast addresses'],
    ['240.0.0.0/4', 'reserved addresses, including broadcast'],
  ] as const
).map(([cidr, label]) => {
  const [network, prefix] = ipaddr.IPv4.parseCIDR(cidr);
  return { network, prefix, label };
});

const STRICT_PREFIX = /^(?:0|[1-9]\d?)$/;
const SUBNET_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i;

function invalid(path: string, detail: string): ArmError {
  return badRequest(`Invalid value found at ${path}: ${detail}`);
}

function rangeText(range: ForbiddenRange): string {
  const cidr = `${range.network.toString()}/${range.prefix}`;
  const last = ipaddr.IPv4.broadcastAddressFromCIDR(cidr).toString();
  return `${range.network.toString()}–${last} (${range.label})`;
}

/**
 * Canonicalises one `ipRules[].value` the way Key Vault stores it (`1.2.3.4` → `1.2.3.4/32`), or
 * throws a 400 `ArmError`. Only strict dotted-quad decimal is accepted: `ipaddr.js` alone would also
 * take `1.2.3` or `0x7f.1`, which Key Vault does not.
 */
export function canonicalIpRule(value: string, path: string): string {
  const slash = value.indexOf('/');
  const addressText = slash === -1 ? value : value.slice(0, slash);
  const prefixText = slash === -1 ? '32' : value.slice(slash + 1);

  if (!ipaddr.IPv4.isValidFourPartDecimal(addressText) || !STRICT_PREFIX.test(prefixText)) {
    const looksV6 = addressText.includes(':');
    throw invalid(
      path,
      looksV6
        ? `${value} is an IPv6 address or range; Key Vault firewall rules accept IPv4 only.`
        : `${value} is not a valid IPv4 address (a.b.c.d) or IPv4 CIDR range (a.b.c.d/n).`,
    );
  }
  const prefix = Number(prefixText);
  if (prefix > 32) {
    throw invalid(path, `${value} has a prefix length above 32.`);
  }

  const address = ipaddr.IPv4.parse(addressText);
  const canonical = `${addressText}/${prefix}`;
  const network = ipaddr.IPv4.networkAddressFromCIDR(canonical);
  if (network.toString() !== address.toString()) {
    throw invalid(
      path,
      `${value} has host bits set; the range it names is ${network.toString()}/${prefix}.`,
    );
  }

  for (const range of FORBIDDEN_RANGES) {
    // Two CIDR blocks overlap exactly when they agree on the shorter of the two prefixes.
    if (address.match(range.network, Math.min(prefix, range.prefix))) {
      throw invalid(path, `${value} belongs to forbidden range ${rangeText(range)}`);
    }
  }
  return canonical;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseEnum<T extends string>(value: unknown, allowed: readonly T[], path: string): T {
  const match = allowed.find((candidate) => candidate === value);
  if (match === undefined) {
    throw invalid(path, `${JSON.stringify(value)}. Allowed values: ${allowed.join(', ')}.`);
  }
  return match;
}

function parseIpRules(input: unknown, path: string): IpRule[] {
  if (!Array.isArray(input)) {
    throw invalid(path, 'expected an array.');
  }
  if (input.length > MAX_IP_RULES) {
    throw badRequest(
      `${path} has ${input.length} entries; a vault allows at most ${MAX_IP_RULES} IP rules.`,
    );
  }
  const firstIndexOf = new Map<string, number>();
  return input.map((rule: unknown, index) => {
    const valuePath = `${path}[${index}].value`;
    if (!isRecord(rule) || typeof rule['value'] !== 'string') {
      throw invalid(valuePath, 'expected an object with a string "value".');
    }
    const value = rule['value'];
    const canonical = canonicalIpRule(value, valuePath);
    const earlier = firstIndexOf.get(canonical);
    if (earlier !== undefined) {
      // NOTE: strict on purpose: a client that sends both `1.2.3.4` and `1.2.3.4/32` compares
      // rules without canonicalising, and would later fail to remove its own rule.
      throw invalid(
        valuePath,
        `${value} duplicates ${path}[${earlier}].value (both are ${canonical}).`,
      );
    }
    firstIndexOf.set(canonical, index);
    return { value: canonical };
  });
}

function parseVirtualNetworkRules(input: unknown, path: string): VirtualNetworkRule[] {
  if (!Array.isArray(input)) {
    throw invalid(path, 'expected an array.');
  }
  if (input.length > MAX_VIRTUAL_NETWORK_RULES) {
    throw badRequest(
      `${path} has ${input.length} entries; a vault allows at most ${MAX_VIRTUAL_NETWORK_RULES} virtual network rules.`,
    );
  }
  const seen = new Set<string>();
  return input.map((rule: unknown, index) => {
    const rulePath = `${path}[${index}]`;
    if (!isRecord(rule) || typeof rule['id'] !== 'string' || !SUBNET_ID.test(rule['id'])) {
      throw invalid(`${rulePath}.id`, 'expected the resource id of a virtual network subnet.');
    }
    // The official example shows Key Vault storing subnet ids lower-cased.
    const id = rule['id'].toLowerCase();
    if (seen.has(id)) {
      throw invalid(`${rulePath}.id`, `${rule['id']} is listed twice.`);
    }
    seen.add(id);
    const ignore = rule['ignoreMissingVnetServiceEndpoint'];
    if (ignore === undefined) {
      return { id };
    }
    if (typeof ignore !== 'boolean') {
      throw invalid(`${rulePath}.ignoreMissingVnetServiceEndpoint`, 'expected a boolean.');
    }
    return { id, ignoreMissingVnetServiceEndpoint: ignore };
  });
}

/**
 * Validates and canonicalises a `networkAcls` object from a request, all or nothing: it throws a
 * 400 `ArmError` on the first problem. A field absent from `input` is taken from `base`; the
 * caller decides whether that means "keep what the vault has" or "reset to the Azure default".
 */
export function parseNetworkAcls(
  input: unknown,
  base: Readonly<NetworkAcls>,
  path: string,
): NetworkAcls {
  if (!isRecord(input)) {
    throw invalid(path, 'expected an object.');
  }
  const acls = copyAcls(base);
  if (input['bypass'] !== undefined) {
    acls.bypass = parseEnum(input['bypass'], BYPASS_VALUES, `${path}.bypass`);
  }
  if (input['defaultAction'] !== undefined) {
    acls.defaultAction = parseEnum(
      input['defaultAction'],
      DEFAULT_ACTION_VALUES,
      `${path}.defaultAction`,
    );
  }
  if (input['ipRules'] !== undefined) {
    acls.ipRules = parseIpRules(input['ipRules'], `${path}.ipRules`);
  }
  if (input['virtualNetworkRules'] !== undefined) {
    acls.virtualNetworkRules = parseVirtualNetworkRules(
      input['virtualNetworkRules'],
      `${path}.virtualNetworkRules`,
    );
  }
  return acls;
}

export function copyAcls(acls: Readonly<NetworkAcls>): NetworkAcls {
  return {
    bypass: acls.bypass,
    defaultAction: acls.defaultAction,
    ipRules: acls.ipRules.map((rule) => ({ value: rule.value })),
    virtualNetworkRules: acls.virtualNetworkRules.map((rule) => ({ ...rule })),
  };
}
