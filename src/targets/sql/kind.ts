import type { TargetKind } from '../kind';
import { resourceIdParser } from '../resource-id';

/** A SQL server name: 1-63 lower-case letters, digits and hyphens, no hyphen at either end. */
const SERVER_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Azure SQL logical servers (`Microsoft.Sql/servers`): each rule is a child
 * resource `firewallRules/{name}` `{ startIpAddress, endIpAddress }`, PUT and
 * DELETEd one at a time; at most 128 rules. The broker's rules are those named
 * with `kvlease-`; every other rule (`AllowAllWindowsAzureIps` included) is
 * never touched.
 */
export const sqlKind: TargetKind = {
  name: 'sql',
  label: 'SQL server',
  resourceType: 'Microsoft.Sql/servers',
  maxRules: 128,
  model: 'per-rule',
  parseId: resourceIdParser(
    'sql',
    'Microsoft.Sql/servers',
    SERVER_NAME,
    'a SQL server name is 1-63 lower-case letters, digits and hyphens, no hyphen at either end',
  ),
  rulesFor: (cidr) => [cidr],
};
