import { DomainError } from '../domain/errors';
import { decide, type Holder, type PolicyRule } from './lease-policy';

/**
 * The terms on which the broker grants leases, in domain names: how long a
 * lease may last, how wide an admin's CIDR may be, how long a grant waits for
 * the firewall, how many live leases one caller may hold and who may lease
 * which vault (`rules`). Built once from the settings (`leaseTerms` in
 * src/app/config.ts); every rule about TTLs and the policy lives here.
 */
export interface LeaseTerms {
  ttl: { minSeconds: number; maxSeconds: number; defaultSeconds: number };
  /** Widest CIDR prefix a Lease.Admin may lease. */
  minPrefix: number;
  /** How long a grant or release waits for the firewall. */
  applyTimeoutMs: number;
  /** Most live leases one caller may hold; `Infinity` when no cap applies. */
  maxActivePerPrincipal: number;
  /** Who may lease which vault; `undefined` lets any Lease.Request caller lease any vault. */
  rules?: readonly PolicyRule[] | undefined;
}

/** What the policy allows one holder on one vault. */
export interface Allowance {
  vault: string;
  /** The holder's cap, never above the global maximum. */
  maxTtlSeconds: number;
  /** The rules that allow it (labels), for messages. */
  rules: string[];
}

/**
 * What the terms let `holder` do on `vault` (everything within the global
 * bounds when there is no policy); `AUTH.FORBIDDEN` naming the holder and the
 * vault when no rule allows it.
 */
export function allowance(
  terms: LeaseTerms,
  vault: string,
  holder: Holder,
  attempt: string,
): Allowance {
  const decision = decide(terms.rules, vault, holder, terms.ttl.maxSeconds);
  if (!decision.allowed) {
    const who = holder.appId ? `${holder.id} (application ${holder.appId})` : holder.id;
    throw new DomainError(
      'AUTH.FORBIDDEN',
      `${attempt}: LEASE_POLICY has no rule that lets ${who} lease the vault ${vault}`,
    );
  }
  return { vault, maxTtlSeconds: decision.maxTtlSeconds, rules: decision.rules };
}

/**
 * The lease duration in seconds for a requested `ttlSeconds`: the default
 * (never above the holder's cap) when none is asked for; a whole number within
 * [min, cap] as is; anything else `LEASE.TTL_OUT_OF_RANGE`, naming the policy
 * rule when it, not the global bound, refused it. Without an allowance only
 * the global bounds apply (a check that needs no I/O, made before any read).
 */
export function leaseTtlSeconds(
  terms: LeaseTerms,
  requested: number | undefined,
  allowed?: Allowance,
): number {
  const { minSeconds: min, maxSeconds: globalMax, defaultSeconds } = terms.ttl;
  const max = Math.min(globalMax, allowed?.maxTtlSeconds ?? globalMax);
  if (requested === undefined) return Math.max(min, Math.min(defaultSeconds, max));
  if (Number.isInteger(requested) && requested >= min && requested <= max) return requested;
  let message = `ttlSeconds must be between ${min} and ${max}`;
  if (allowed && Number.isInteger(requested) && requested > max && requested <= globalMax) {
    message += `: LEASE_POLICY (rule ${allowed.rules.join(', ')}) caps leases on ${allowed.vault} for this caller at ${max} seconds`;
  }
  throw new DomainError('LEASE.TTL_OUT_OF_RANGE', message, {
    errors: [{ path: 'ttlSeconds', message }],
  });
}
