import type { Clock } from '../domain/clock';
import { mapWithLimit } from '../domain/concurrency';
import { canonicalRule } from '../domain/ip';
import type { ManagedTarget } from '../domain/target';
import type { UseCase } from '../domain/use-case';
import type { LeaseStore } from '../ports/lease-store';
import type { TargetFirewall } from '../ports/target-firewall';
import { kindOf } from '../targets/kinds';

/** One managed target as `GET /api/targets` shows it (and, for Key Vaults, `GET /api/targets`). */
export interface TargetSummary {
  name: string;
  kind: string;
  resourceId: string;
  activeLeases: number;
  brokerRules: number;
  totalRules: number;
  maxRules: number;
  /**
   * false when the last writer pass failed or Resource Manager did not answer
   * the read made for this summary; `lastError` says why.
   */
  healthy: boolean;
  lastError?: string | undefined;
  /** ISO time of that failure. */
  lastErrorAt?: string | undefined;
  /** ISO time of the last completed writer pass, when there was one. */
  lastPassAt?: string | undefined;
  /** Where clients probe the data plane (`TargetFirewall.dataPlane`). */
  dataPlane?: string;
}

/** How long a Resource Manager read of a target serves `GET /api/targets` and `/api/targets`, for every caller. */
export const FIREWALL_VIEW_TTL_MS = 30_000;

/** What this instance last learnt about a target's firewall, and when. */
interface Observed {
  at: number;
  /** Canonical rules; absent when the read failed. */
  rules?: Set<string> | undefined;
  /** Every rule on the target (its own notation), the broker's or not. */
  total?: number | undefined;
  /** Rules outside the broker's view (a per-rule kind's other rules), from the last read. */
  reserved?: number | undefined;
  error?: string | undefined;
}

/**
 * The target firewalls as `GET /api/targets` shows them: Resource Manager is
 * read at most once per target per `FIREWALL_VIEW_TTL_MS` across all callers
 * of this instance (concurrent callers share the read; a failed read is kept
 * as long, so a failing Resource Manager is not hammered either). The writer
 * of this instance reports each list it wrote (`written`), the freshest view
 * there is, so an answer right after a grant or release shows its rule.
 */
export class FirewallView {
  private readonly observed = new Map<string, Observed>();
  private readonly reading = new Map<string, Promise<Observed>>();

  constructor(
    private readonly firewall: TargetFirewall,
    private readonly clock: Clock,
    private readonly ttlMs = FIREWALL_VIEW_TTL_MS,
  ) {}

  /** A write of this instance's writer succeeded: the target now holds `rules` (and the other rules it had). */
  written(vault: string, rules: string[], reserved?: number): void {
    reserved ??= this.observed.get(vault)?.reserved ?? 0;
    this.observed.set(vault, {
      at: this.clock.now(),
      rules: new Set(rules.map((rule) => canonicalRule(rule) ?? rule)),
      total: rules.length + reserved,
      reserved,
    });
  }

  read(vault: ManagedTarget): Promise<Observed> {
    const known = this.observed.get(vault.name);
    if (known && this.clock.now() - known.at < this.ttlMs) return Promise.resolve(known);
    let reading = this.reading.get(vault.name);
    if (!reading) {
      const at = this.clock.now();
      reading = this.firewall
        .read(vault, AbortSignal.timeout(5_000))
        .then(
          (acls): Observed => ({
            at,
            rules: new Set(acls.rules.map((rule) => canonicalRule(rule) ?? rule)),
            total: acls.rules.length + (acls.reserved ?? 0),
            reserved: acls.reserved ?? 0,
          }),
          (error: unknown): Observed => ({
            at,
            error: error instanceof Error ? error.message : 'Resource Manager did not answer',
          }),
        )
        .then((fresh) => {
          // A write reported meanwhile is newer than this read.
          const current = this.observed.get(vault.name);
          if (!current || current.at <= fresh.at) this.observed.set(vault.name, fresh);
          return this.observed.get(vault.name) ?? fresh;
        })
        .finally(() => this.reading.delete(vault.name));
      this.reading.set(vault.name, reading);
    }
    return reading;
  }
}

/**
 * Per managed vault: active leases and the target's health from the store
 * (the outcome of the last writer pass, recorded by whichever instance ran
 * it), and the rules from the shared firewall view. The counts follow
 * whichever is newer: the view (a Resource Manager read, or this instance's
 * own last write), or the store row of a pass completed since (by any
 * instance: its rule count and owned rules), so a change made through any
 * broker shows without another Resource Manager read.
 */
export async function summariseTargets(deps: {
  store: LeaseStore;
  view: FirewallView;
  firewall: TargetFirewall;
  vaults: ManagedTarget[];
  /** A limit for every target (tests); by default each kind's own. */
  maxRules?: number | undefined;
}): Promise<TargetSummary[]> {
  return mapWithLimit(deps.vaults, 8, async (vault) => {
    const [state, live, seen] = await Promise.all([
      deps.store.getVaultState(vault.name),
      deps.store.liveLeases(vault.name),
      deps.view.read(vault),
    ]);
    const current = seen.rules;
    const failedAt = seen.error ? seen.at : state.lastErrorAt;
    const lastError = seen.error ?? (state.lastError || undefined);
    const storeNewer = state.lastPassAt > seen.at && state.totalRules >= 0;
    // Known from the read made for the view (or an earlier one): no extra call.
    const dataPlane = current
      ? await deps.firewall.dataPlane?.(vault).catch(() => undefined)
      : undefined;
    return {
      name: vault.name,
      kind: vault.kind,
      resourceId: vault.resourceId,
      activeLeases: live.filter((lease) => lease.status === 'active').length,
      brokerRules:
        current && !storeNewer
          ? state.owned.filter((rule) => current.has(rule)).length
          : state.owned.length,
      totalRules:
        current && !storeNewer ? (seen.total ?? current.size) : Math.max(0, state.totalRules),
      maxRules: deps.maxRules ?? kindOf(vault).maxRules,
      healthy: lastError === undefined,
      ...(lastError === undefined
        ? {}
        : { lastError, lastErrorAt: failedAt > 0 ? new Date(failedAt).toISOString() : undefined }),
      ...(state.lastPassAt > 0 ? { lastPassAt: new Date(state.lastPassAt).toISOString() } : {}),
      ...(dataPlane ? { dataPlane } : {}),
    };
  });
}

/** The overview of every target: Lease.Read. */
export function targetsUseCase(
  summarise: () => Promise<TargetSummary[]>,
): UseCase<void, TargetSummary[]> {
  return {
    name: 'list-targets',
    roles: ['Lease.Read'],
    purpose: 'Listing targets',
    run: () => summarise(),
  };
}
