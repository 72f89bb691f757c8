import { z } from 'zod';

import type { Principal } from '../domain/principal';
import { isTargetName } from '../domain/target';

/**
 * `LEASE_POLICY`: who may lease which vault, and for how long.
 *
 * A JSON array of rules. Without the setting, any Lease.Request caller may
 * lease any managed vault within the global TTL bounds. With it, a lease needs
 * a rule that names its vault (or `"*"`) and its holder: by `oid` (the token's
 * object id) or by `appId` (the token's `appid`/`azp`, app-only tokens only:
 * see `holderOf`), or `"*"` for anyone with the role. Lease.Admin is not
 * exempt: an operator who wants admins everywhere says so with a rule.
 *
 * ```json
 * [
 *   { "name": "prod pipelines", "vaults": ["kv-prod"], "appIds": ["<guid>"], "maxTtlSeconds": 1800 },
 *   { "name": "everyone on dev", "vaults": ["kv-dev", "kv-test"], "oids": ["*"] }
 * ]
 * ```
 *
 * Several matching rules add up: the largest `maxTtlSeconds` among them
 * applies (a rule without one allows `LEASE_MAX_TTL_SECONDS`).
 */

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const principalIds = (what: string) =>
  z
    .array(
      z
        .string()
        .trim()
        .refine(
          (value) => value === '*' || GUID.test(value),
          `must be a GUID (the token's ${what}) or "*"`,
        )
        .transform((value) => value.toLowerCase()),
    )
    .min(1, 'must not be empty (leave the field out instead)')
    .max(500);

export const PolicyRuleSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(64).optional(),
    vaults: z
      .array(
        z
          .string()
          .trim()
          .refine(
            (value) => value === '*' || isTargetName(value),
            'must be a target name from BROKER_TARGETS or BROKER_VAULTS, or "*"',
          )
          .transform((value) => value.toLowerCase()),
      )
      .min(1, 'must name at least one vault (or "*")')
      .max(500),
    oids: principalIds('oid').optional(),
    appIds: principalIds('appid/azp').optional(),
    maxTtlSeconds: z.number().int().positive().optional(),
  })
  .refine((rule) => rule.oids !== undefined || rule.appIds !== undefined, {
    message: 'a rule must name "oids" or "appIds" (or both)',
  });

export type PolicyRule = z.output<typeof PolicyRuleSchema>;

export const PolicyRulesSchema = z.array(PolicyRuleSchema).max(200);

/** The display name of a rule in messages: its `name`, else its position. */
export function ruleLabel(rules: readonly PolicyRule[], rule: PolicyRule): string {
  return rule.name === undefined ? `#${rules.indexOf(rule) + 1}` : `"${rule.name}"`;
}

/** The holder a rule is matched against: a principal, or the owner recorded on a lease. */
export type Holder = Pick<Principal, 'id' | 'appId'>;

/**
 * The holder of what `principal` leases: its `oid`, and its application id
 * only when the application calls as itself (app-only token). A user's
 * delegated token names the client program the user ran (the Azure CLI, the
 * console) in `azp`/`appid`; anyone in the tenant can run that program, so
 * matching it against `appIds` would hand a pipeline's rights to every user.
 * Users are matched by `oids` alone; a lease records the holder this returns,
 * so a renewal is matched the same way.
 */
export function holderOf(principal: Principal): Holder {
  return { id: principal.id, appId: principal.delegated ? undefined : principal.appId };
}

function names(ids: readonly string[] | undefined, value: string | undefined): boolean {
  if (ids === undefined) return false;
  if (ids.includes('*')) return true;
  return value !== undefined && ids.includes(value.toLowerCase());
}

export function ruleMatches(rule: PolicyRule, vault: string, holder: Holder): boolean {
  const vaultMatches = rule.vaults.includes('*') || rule.vaults.includes(vault);
  return vaultMatches && (names(rule.oids, holder.id) || names(rule.appIds, holder.appId));
}

/** What the policy allows a holder on one vault. */
export type PolicyDecision =
  { allowed: true; maxTtlSeconds: number; rules: string[] } | { allowed: false };

/**
 * Decide for one vault and holder. `globalMax` is `LEASE_MAX_TTL_SECONDS`;
 * without a policy every holder is allowed up to it.
 */
export function decide(
  rules: readonly PolicyRule[] | undefined,
  vault: string,
  holder: Holder,
  globalMax: number,
): PolicyDecision {
  if (rules === undefined) return { allowed: true, maxTtlSeconds: globalMax, rules: [] };
  const matching = rules.filter((rule) => ruleMatches(rule, vault, holder));
  if (matching.length === 0) return { allowed: false };
  const maxTtlSeconds = Math.min(
    globalMax,
    Math.max(...matching.map((rule) => rule.maxTtlSeconds ?? globalMax)),
  );
  return { allowed: true, maxTtlSeconds, rules: matching.map((rule) => ruleLabel(rules, rule)) };
}
