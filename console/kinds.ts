import type { AuditItem, Lease, Target, Vault } from '../src/contract';

/**
 * The kinds of target (contract §4) as the page shows them, and the v1
 * defaults of the fields a v1.1 broker adds: a lease or audit entry without
 * `kind` is about a Key Vault, one without `target` names it in `vault`.
 */

export type Kind = Target['kind'];

export const KINDS: readonly Kind[] = ['keyvault', 'storage', 'sql'];

export const KIND_LABELS: Readonly<Record<Kind, string>> = {
  keyvault: 'Key Vault',
  storage: 'Storage account',
  sql: 'SQL server',
};

/**
 * Each kind's limit of IP rules on one resource (contract §4).
 *
 * NOTE: the API's `maxRules` is what the bar is drawn against; this only
 * stands in when an answer carries none (0), so the bar is never against 1000
 * for a SQL server whose limit is 128.
 */
export const KIND_LIMITS: Readonly<Record<Kind, number>> = {
  keyvault: 1000,
  storage: 400,
  sql: 128,
};

export function isKind(text: string): text is Kind {
  return (KINDS as readonly string[]).includes(text);
}

export function leaseKind(lease: Pick<Lease, 'kind'>): Kind {
  return lease.kind ?? 'keyvault';
}

export function leaseTarget(lease: Pick<Lease, 'target' | 'vault'>): string {
  return lease.target ?? lease.vault;
}

/** An audit entry's kind; none when the entry names no target at all (refused before it was known). */
export function auditKind(item: Pick<AuditItem, 'kind' | 'vault' | 'target'>): Kind | undefined {
  if (item.kind) return item.kind;
  return (item.target ?? item.vault) ? 'keyvault' : undefined;
}

export function auditTarget(item: Pick<AuditItem, 'vault' | 'target'>): string {
  return item.target ?? item.vault ?? '';
}

/** The limit a target's capacity bar is drawn against. */
export function ruleLimit(target: Pick<Target, 'kind' | 'maxRules'>): number {
  return target.maxRules > 0 ? target.maxRules : KIND_LIMITS[target.kind];
}

/** A vault of `GET /api/vaults` (a v1 broker, without `GET /api/targets`) as a target. */
export function vaultAsTarget(vault: Vault): Target {
  return {
    name: vault.name,
    kind: 'keyvault',
    resourceId: vault.resourceId,
    activeLeases: vault.activeLeases,
    brokerRules: vault.brokerRules,
    totalRules: vault.totalRules,
    maxRules: vault.maxRules,
    healthy: vault.healthy,
    ...(vault.lastError === undefined ? {} : { lastError: vault.lastError }),
    ...(vault.lastErrorAt === undefined ? {} : { lastErrorAt: vault.lastErrorAt }),
    ...(vault.lastPassAt === undefined ? {} : { lastPassAt: vault.lastPassAt }),
    ...(vault.vaultUri === undefined ? {} : { dataPlane: vault.vaultUri }),
  };
}
