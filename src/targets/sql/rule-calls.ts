import { canonicalRule } from '../../domain/ip';
import { heldCidr, isBrokerRuleName, ruleName, ruleRange } from './rule-names';

/**
 * The pure half of the SQL adapter: what a listing of a server's rules says
 * (the broker's CIDRs, the others' count, whether a broker rule is malformed)
 * and which rule calls make the server hold a set of CIDRs. `SqlFirewall`
 * sends these calls to Resource Manager; the writer's model test sends them to
 * its in-memory server, so both decide alike.
 */

/** One server-level firewall rule as listed. */
export interface SqlRule {
  name: string;
  startIpAddress: string;
  endIpAddress: string;
}

/** A listing as the adapter keeps it between `read` and `write`. */
export interface SqlListing {
  /** The `kvlease-` rules, as listed. */
  broker: SqlRule[];
  /** How many rules are not the broker's (they count against the limit). */
  others: number;
}

export function listing(rules: readonly SqlRule[]): SqlListing {
  const broker = rules.filter((rule) => isBrokerRuleName(rule.name)).map((rule) => ({ ...rule }));
  return { broker, others: rules.length - broker.length };
}

/**
 * What `read` reports of a listing: the CIDRs correct broker rules hold
 * (sorted), and `dirty` when a broker rule is malformed: an unparsable name
 * (a second rule on a range always has one: a range has one name), or a range
 * that is not its name's CIDR.
 */
export function summary(list: SqlListing): { rules: string[]; dirty: boolean } {
  const held = list.broker.map(heldCidr);
  const correct = held.filter((cidr): cidr is string => cidr !== undefined);
  const rules = [...new Set(correct)].sort();
  // Malformed rules, and a range held twice (a re-asserted rule under a
  // fresh generation beside the one it guards), are cleaned up by a write.
  return { rules, dirty: rules.length < held.length };
}

export interface PutCall {
  method: 'PUT';
  name: string;
  cidr: string;
  startIpAddress: string;
  endIpAddress: string;
}
export interface DeleteCall {
  method: 'DELETE';
  name: string;
  rule: SqlRule;
}
export type RuleCall = PutCall | DeleteCall;

export interface RuleCalls {
  puts: PutCall[];
  deletes: DeleteCall[];
  /** The calls in the order to send them: each round's calls in parallel, a round once the one before has settled. */
  rounds: RuleCall[][];
}

/**
 * The calls that make a server listed as `list` hold exactly `next` among
 * its broker rules (IPv4 CIDRs or addresses, canonicalised: a bare address is
 * its /32): a PUT for each CIDR that no correct rule holds, or that is not in
 * `trusted` (the caller re-asserts it: an abandoned DELETE may still remove
 * it), and a DELETE for each broker rule not needed
 * (its CIDR not in `next`, malformed, or a second rule on a range). With a
 * `generation` (the writer re-asserts: an abandoned call may still land),
 * `reassertCalls` instead. Never a call on a rule without the prefix; never a
 * DELETE of a name a PUT targets.
 */
export function ruleCalls(
  list: SqlListing,
  trusted: readonly string[],
  next: readonly string[],
  maxRules: number,
  generation?: string,
): RuleCalls {
  const wanted = new Set(
    next.map((value) => {
      const cidr = canonicalRule(value);
      // The plan only ever asks a per-rule kind for lease ranges (IPv4).
      if (cidr === undefined) throw new Error(`Not an IPv4 address or CIDR: "${value}"`);
      return cidr;
    }),
  );
  if (generation !== undefined) return reassertCalls(list, wanted, generation);
  const trust = new Set(trusted);
  // The one rule kept per wanted range: the shortest name (the plain one when it is there).
  const kept = new Map<string, SqlRule>();
  for (const rule of [...list.broker].sort((a, b) => a.name.length - b.name.length)) {
    const cidr = heldCidr(rule);
    if (cidr !== undefined && wanted.has(cidr) && trust.has(cidr) && !kept.has(cidr))
      kept.set(cidr, rule);
  }
  const guarded = new Set(kept.values());
  const puts: PutCall[] = [...wanted]
    .filter((cidr) => !kept.has(cidr))
    .sort()
    .map((cidr) => putCall(cidr));
  const putNames = new Set(puts.map((call) => call.name.toLowerCase()));
  const deletes: DeleteCall[] = [];
  for (const rule of list.broker) {
    if (guarded.has(rule)) continue;
    // NOTE: names are case-insensitive; a PUT of the same name replaces this
    // rule, and a DELETE racing it could remove what the PUT wrote.
    if (putNames.has(rule.name.toLowerCase())) continue;
    deletes.push({ method: 'DELETE', name: rule.name, rule });
  }
  // NOTE: with too little room on the server for the new rules, a PUT sent
  // beside the DELETEs that make room for it could be refused (40611): then
  // the DELETEs go first, and the PUTs once they have settled.
  const listed = new Set(list.broker.map((rule) => rule.name.toLowerCase()));
  const creates = puts.filter((call) => !listed.has(call.name.toLowerCase())).length;
  const room = maxRules - list.others - list.broker.length;
  const rounds: RuleCall[][] =
    deletes.length > 0 && puts.length > 0 && creates > room
      ? [deletes, puts]
      : [[...deletes, ...puts]].filter((round) => round.length > 0);
  return { puts, deletes, rounds };
}

function putCall(cidr: string, generation?: string): PutCall {
  return { method: 'PUT', name: ruleName(cidr, generation), cidr, ...ruleRange(cidr) };
}

/**
 * While an abandoned call may still land: every wanted range is PUT under a
 * name of this write's fresh `generation` (no earlier call named it, so no
 * late DELETE can remove it), and once those have settled every other broker
 * rule is DELETEd. PUTs first: a range held before is never without a rule.
 */
function reassertCalls(list: SqlListing, wanted: Set<string>, generation: string): RuleCalls {
  const puts = [...wanted].sort().map((cidr) => putCall(cidr, generation));
  const putNames = new Set(puts.map((call) => call.name.toLowerCase()));
  const deletes: DeleteCall[] = list.broker
    .filter((rule) => !putNames.has(rule.name.toLowerCase()))
    .map((rule) => ({ method: 'DELETE', name: rule.name, rule }));
  return { puts, deletes, rounds: [puts, deletes].filter((round) => round.length > 0) };
}

/**
 * A broker rule as the audit trail shows it: the CIDR it holds, or, for a
 * malformed one, `name (start-end)`.
 */
export function describeRule(rule: SqlRule): string {
  return heldCidr(rule) ?? `${rule.name} (${rule.startIpAddress}-${rule.endIpAddress})`;
}

/**
 * What a write that sent `calls` did to `list`: `written` is the broker's
 * rules afterwards as canonical CIDRs (what the writer and the targets view
 * take as the target's rules, like every kind's list), `added` the CIDRs PUT,
 * `read` and `removed` the broker rules as `describeRule` shows them.
 */
export function callsWritten(
  list: SqlListing,
  calls: RuleCalls,
): { read: string[]; written: string[]; added: string[]; removed: string[] } {
  const deleted = new Set(calls.deletes.map((call) => call.name.toLowerCase()));
  const kept = list.broker
    .filter((rule) => !deleted.has(rule.name.toLowerCase()))
    .map(heldCidr)
    .filter((cidr): cidr is string => cidr !== undefined);
  const added = calls.puts.map((call) => call.cidr);
  return {
    read: list.broker.map(describeRule),
    written: [...new Set([...kept, ...added])].sort(),
    added,
    removed: calls.deletes.map((call) => describeRule(call.rule)),
  };
}
