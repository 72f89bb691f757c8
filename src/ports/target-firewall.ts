import type { ManagedTarget } from '../domain/target';

export type FirewallFailure =
  'conflict' | 'throttled' | 'transient' | 'rejected' | 'not-found' | 'timeout';

/** A firewall call that did not succeed, classified so the writer knows whether to retry. */
export class FirewallError extends Error {
  /** The HTTP status Resource Manager answered, when it answered. */
  readonly status: number | undefined;

  constructor(
    readonly kind: FirewallFailure,
    message: string,
    readonly retryAfterMs: number | undefined = undefined,
    options?: { cause?: unknown; status?: number | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FirewallError';
    this.status = options?.status;
  }

  /**
   * Resource Manager refused the target itself (authorization removed, target
   * gone, request refused as invalid, public access disabled): retrying cannot
   * help, so the writer fails its waiters at once instead of retrying until
   * their deadline.
   */
  get permanent(): boolean {
    return this.kind === 'rejected' || this.kind === 'not-found';
  }

  /**
   * Whether the write may have been applied although it did not answer
   * success (a timeout, a 5xx, a broken connection). A refusal (4xx, 409,
   * 429) was answered before anything changed.
   */
  get outcomeUnknown(): boolean {
    return this.kind === 'transient' || this.kind === 'timeout';
  }
}

/**
 * A target's IP rules as one read found them, in the form the writer's plan
 * works on. Whatever else the adapter needs to write them back (the whole
 * `networkAcls` it read, the rules' names) it keeps in `base`, which only it
 * reads.
 */
export interface FirewallRules {
  /**
   * The rules the plan sees: canonical CIDRs (`a.b.c.d/32`) where the kind's
   * notation parses, otherwise the value verbatim (kept, never removed). A
   * per-rule kind lists only the rules in its own namespace.
   */
  rules: string[];
  /**
   * Which of `rules` are the broker's, for a kind whose rules say so themselves (SQL's
   * `kvlease-` names). Undefined for a whole-list kind: ownership is kept in the store.
   */
  owned?: string[] | undefined;
  /** Rules outside `rules` that still count against the kind's limit (SQL: rules without the prefix). */
  reserved?: number | undefined;
  /**
   * The broker's own rules need a write even if the plan changes nothing
   * (e.g. a `kvlease-` rule whose range no longer matches its name).
   */
  dirty?: boolean | undefined;
  /**
   * Set by the writer, not by `read`: a write abandoned earlier may still land
   * (the target is unsettled). A per-rule kind then makes every rule of `next`
   * hold again under a name no earlier call used, so a late DELETE cannot take
   * it (docs/architecture.md, "SQL: per-rule writes"); a whole-list kind writes
   * the complete list anyway.
   */
  reassert?: boolean | undefined;
  /** The adapter's own record of the read, handed back to `write`. */
  readonly base: unknown;
}

/** What `write` did, for the audit trail: in the kind's notation. */
export interface FirewallWrite {
  /** The rules as read (the kind's notation). */
  read: string[];
  /** The rules as written (the kind's notation): the complete list, or the per-rule outcome. */
  written: string[];
  added: string[];
  removed: string[];
}

/**
 * The management-plane firewall of the targets, one adapter per kind (the
 * composition root hands the writer one that dispatches on `target.kind`).
 * Only the writer's pass writes through it.
 */
export interface TargetFirewall {
  read(target: ManagedTarget, signal?: AbortSignal): Promise<FirewallRules>;
  /**
   * Make the target hold `next` (canonical CIDRs or verbatim values, as the plan gave them)
   * in the place of `current.rules`, leaving everything else on the target as it was.
   * A whole-list kind PATCHes the complete list built from `current.base`; a per-rule kind
   * PUTs the missing rules and DELETEs its own rules not in `next`.
   */
  write(
    target: ManagedTarget,
    current: FirewallRules,
    next: string[],
    signal?: AbortSignal,
  ): Promise<FirewallWrite>;
  /**
   * The address clients probe to see their rule take effect (a vault's `vaultUri`, a storage
   * account's blob endpoint, a SQL server's `host:1433`); fixed for a target's life, so an
   * adapter may keep it once seen; undefined when it cannot be read.
   */
  dataPlane?(target: ManagedTarget, signal?: AbortSignal): Promise<string | undefined>;
  /**
   * What the caller should be told about a lease on `cidr` (canonical) on this target although
   * the grant succeeds: texts saying why the rule may not have the effect they expect (Storage:
   * the address lies in the account's own Azure region, where IP rules do not apply). The grant
   * stores them on the lease's `warnings`. Never rejects and answers within a short bound
   * (about 2 s): what an adapter cannot find out in time (Resource Manager failing, a slow first
   * download) gives no warning rather than a failed or late grant. Absent: never any warning.
   */
  warnings?(target: ManagedTarget, cidr: string, signal?: AbortSignal): Promise<string[]>;
}
