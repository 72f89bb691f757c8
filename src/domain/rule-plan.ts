import { canonicalRule } from './ip';
import type { Lease } from './lease';

/**
 * The pure heart of reconciliation: given what the vault holds now, which
 * rules the broker owns and which leases are live, decide the next `ipRules`.
 *
 * ipRules' = (rules the broker did not add) ∪ (IPs of live leases)
 *
 * A live lease whose IP is already present and not owned is a static rule:
 * the broker does not take ownership of it, so it is never removed.
 */
export interface PlanInput {
  /** `ipRules[].value` exactly as the vault returned them. */
  current: string[];
  /** Canonical rules the broker added and still answers for. */
  owned: string[];
  /** Live leases (pending or active) that have not expired. */
  live: Pick<Lease, 'id' | 'ip' | 'status' | 'createdAt'>[];
  maxRules: number;
  /** Rules outside `current` that count against `maxRules` (a per-rule kind's rules not its own). */
  reserved?: number;
  /** The canonical rules a lease's IP takes on the target's kind (`TargetKind.rulesFor`); default `[ip]`. */
  rulesFor?: (ip: string) => string[];
}

export interface Plan {
  /** The complete next `ipRules` values, in a stable order. */
  next: string[];
  /** Whether `next` differs from `current` as a set of canonical rules. */
  changed: boolean;
  /** Owned set to record before the write: old owned ∪ newly added (crash-safe). */
  ownedBeforeWrite: string[];
  /** Owned set once the write is confirmed. */
  ownedAfterWrite: string[];
  /** Pending leases refused because the vault would exceed its rule limit. */
  overCapacity: string[];
  /** Leases whose rule is on the vault once `next` is written. */
  applied: string[];
}

export function planRules(input: PlanInput): Plan {
  const owned = new Set(input.owned);
  const currentCanonical = new Map<string, string>();
  const verbatim: string[] = [];
  for (const value of input.current) {
    const canonical = canonicalRule(value);
    if (canonical === undefined) verbatim.push(value);
    else if (!currentCanonical.has(canonical)) currentCanonical.set(canonical, value);
  }
  const staticRules = [...currentCanonical.keys()].filter((rule) => !owned.has(rule));
  const staticSet = new Set(staticRules);

  // Active leases first (they already hold their rule), then pending ones in
  // the order they were asked for, so capacity refuses the newest requests.
  const ordered = [...input.live].sort(
    (a, b) =>
      Number(b.status === 'active') - Number(a.status === 'active') || a.createdAt - b.createdAt,
  );
  const desired = new Set<string>();
  const overCapacity: string[] = [];
  const applied: string[] = [];
  const rulesFor = input.rulesFor ?? ((ip: string) => [ip]);
  let count = staticRules.length + verbatim.length + (input.reserved ?? 0);
  for (const lease of ordered) {
    const missing = rulesFor(lease.ip).filter((rule) => !staticSet.has(rule) && !desired.has(rule));
    if (
      missing.length > 0 &&
      count + missing.length > input.maxRules &&
      lease.status === 'pending'
    ) {
      overCapacity.push(lease.id);
      continue;
    }
    for (const rule of missing) desired.add(rule);
    count += missing.length;
    applied.push(lease.id);
  }

  const added = [...desired].filter((rule) => !staticSet.has(rule));
  const nextSet = new Set([...staticRules, ...added]);
  const changed =
    nextSet.size !== currentCanonical.size ||
    [...nextSet].some((rule) => !currentCanonical.has(rule));
  const next = [
    ...verbatim,
    ...staticRules.map((rule) => currentCanonical.get(rule) ?? rule),
    ...added.map((rule) => currentCanonical.get(rule) ?? rule),
  ];
  return {
    next: dedupe(next),
    changed,
    ownedBeforeWrite: sortRules(new Set([...owned, ...added])),
    ownedAfterWrite: sortRules(new Set(added)),
    overCapacity,
    applied,
  };
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}

function sortRules(rules: Set<string>): string[] {
  return [...rules].sort();
}
