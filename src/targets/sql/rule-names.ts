import { canonicalRule, cidrBounds, cidrOfRange } from '../../domain/ip';

/**
 * The broker's namespace on a SQL server: a firewall rule is the broker's when
 * its name starts with this prefix (case-insensitively, as Azure SQL compares
 * rule names). Every other rule is never written or deleted.
 */
export const RULE_PREFIX = 'kvlease-';

/**
 * The name of the rule that holds `cidr` (canonical): `kvlease-a.b.c.d-n`,
 * e.g. `kvlease-52.10.20.30-32`, or with a `generation` (a write's fresh
 * token, see "SQL: per-rule writes" in docs/architecture.md)
 * `kvlease-52.10.20.30-32-g<token>`. At most 44 characters, only digits, dots,
 * letters and hyphens: within Azure SQL's name rules (128 characters, none of
 * `< > * % & : \ / ?` or control characters); `/` itself is refused, hence the
 * hyphen before the prefix length.
 */
export function ruleName(cidr: string, generation?: string): string {
  const canonical = canonicalRule(cidr);
  if (canonical === undefined || canonical !== cidr) {
    throw new Error(`"${cidr}" is not a canonical IPv4 CIDR`);
  }
  if (generation !== undefined && !GENERATION.test(generation)) {
    throw new Error(
      `"${generation}" is not a rule generation (1-16 lower-case letters and digits)`,
    );
  }
  const [address = '', prefix = ''] = cidr.split('/');
  const base = `${RULE_PREFIX}${address}-${prefix}`;
  return generation === undefined ? base : `${base}-g${generation}`;
}

const GENERATION = /^[a-z0-9]{1,16}$/;

/** Whether a rule of this name is the broker's (`kvlease-`, in any case). */
export function isBrokerRuleName(name: string): boolean {
  return name.toLowerCase().startsWith(RULE_PREFIX);
}

const NAME = /^kvlease-(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})(?:-g[a-z0-9]{1,16})?$/;

/**
 * The canonical CIDR a broker rule's name stands for, or `undefined` when the
 * name is not exactly `ruleName` of some CIDR (in any case, with or without a
 * generation): a non-canonical spelling (`kvlease-052.10.20.30-32`, host bits
 * set, another suffix) is not a name the broker writes, so such a rule is
 * malformed and is removed.
 */
export function cidrOfRuleName(name: string): string | undefined {
  const match = NAME.exec(name.toLowerCase());
  if (!match) return undefined;
  const cidr = `${match[1]}/${match[2]}`;
  return canonicalRule(cidr) === cidr ? cidr : undefined;
}

/** `startIpAddress` and `endIpAddress` of the rule that holds `cidr` (canonical). */
export function ruleRange(cidr: string): { startIpAddress: string; endIpAddress: string } {
  const { first, last } = cidrBounds(cidr);
  return { startIpAddress: first, endIpAddress: last };
}

/**
 * The CIDR a broker rule correctly holds: its name's CIDR when its range is
 * exactly that CIDR, else `undefined` (a malformed rule: an unparsable name,
 * or a range someone changed).
 */
export function heldCidr(rule: {
  name: string;
  startIpAddress: string;
  endIpAddress: string;
}): string | undefined {
  const named = cidrOfRuleName(rule.name);
  if (named === undefined) return undefined;
  return cidrOfRange(rule.startIpAddress, rule.endIpAddress) === named ? named : undefined;
}
