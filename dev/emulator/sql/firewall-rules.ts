/**
 * Server-level firewall rules of an Azure SQL logical server, each its own child resource
 * (`firewallRules/{name}`, `{ startIpAddress, endIpAddress }`), validated as Azure SQL does:
 * names of at most 128 characters without `< > * % & : \ / ?` or control characters, IPv4
 * start and end with start ≤ end, and at most 128 rules per server (error 40611).
 */
import ipaddr from 'ipaddr.js';

import { ArmError, badRequest } from '../arm-error';

export const MAX_SQL_FIREWALL_RULES = 128;
export const MAX_RULE_NAME_LENGTH = 128;
/** "Allow Azure services and resources to access this server": every Azure customer's traffic. */
export const ALLOW_AZURE_RULE_NAME = 'AllowAllWindowsAzureIps';

export interface SqlFirewallRule {
  name: string;
  startIpAddress: string;
  endIpAddress: string;
}

// eslint-disable-next-line no-control-regex
const FORBIDDEN_NAME = /[<>*%&:\\/?\u0000-\u001f\u007f]/;

export function validateRuleName(name: string): void {
  if (name === '' || name.length > MAX_RULE_NAME_LENGTH || FORBIDDEN_NAME.test(name)) {
    throw new ArmError(
      400,
      'InvalidResourceName',
      `The firewall rule name '${name}' is invalid: 1 to ${MAX_RULE_NAME_LENGTH} characters, none of < > * % & : \\ / ? or control characters.`,
    );
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toNumber(address: string): number {
  return ipaddr.IPv4.parse(address)
    .toByteArray()
    .reduce((sum, byte) => sum * 256 + byte, 0);
}

/** Validates `{ startIpAddress, endIpAddress }` (the bare fields, or inside `properties`). */
export function parseRuleAddresses(name: string, input: unknown): SqlFirewallRule {
  const properties = isRecord(input) && isRecord(input['properties']) ? input['properties'] : input;
  if (!isRecord(properties)) {
    throw new ArmError(
      400,
      'InvalidRequestContent',
      'The request content must be a JSON object with properties.',
    );
  }
  const start = properties['startIpAddress'];
  const end = properties['endIpAddress'];
  for (const [field, value] of [
    ['startIpAddress', start],
    ['endIpAddress', end],
  ] as const) {
    if (typeof value !== 'string' || !ipaddr.IPv4.isValidFourPartDecimal(value)) {
      throw new ArmError(
        400,
        'FirewallRuleNotIPv4Address',
        `The firewall rule ${field} '${String(value)}' is not a valid IPv4 address.`,
      );
    }
  }
  const startText = start as string;
  const endText = end as string;
  if (toNumber(startText) > toNumber(endText)) {
    throw badRequest(
      `The firewall rule '${name}' has startIpAddress ${startText} above endIpAddress ${endText}.`,
    );
  }
  return { name, startIpAddress: startText, endIpAddress: endText };
}

export function ruleLimitReached(): ArmError {
  // NOTE: the number and message are those Azure SQL reports (40611); the ARM error code that
  // carries them is unverified, so clients should branch on the status and the rule count.
  return new ArmError(
    400,
    '40611',
    `Windows Azure SQL Database supports a maximum of ${MAX_SQL_FIREWALL_RULES} firewall rules.`,
  );
}

export function denyPublicEndpoint(): ArmError {
  return new ArmError(
    400,
    'DenyPublicEndpointEnabled',
    'Unable to create or update firewall rules when public network interface for the server is disabled. To manage server or database level firewall rules, please enable the public network interface.',
  );
}
