import { setTimeout as delay } from 'node:timers/promises';

import type { Clock } from '../domain/clock';
import { DomainError } from '../domain/errors';
import type { Attempt, EventSink } from '../domain/events';
import { callerLeaseIp, canonicalRule, parseLeaseIp } from '../domain/ip';
import {
  isLive,
  isVisible,
  type Lease,
  newLeaseId,
  type PublicLeaseStatus,
  vaultOfLeaseId,
} from '../domain/lease';
import { hasRole, type Principal, requireAnyRole } from '../domain/principal';
import type { ManagedTarget } from '../domain/target';
import { holderOf } from '../policy/lease-policy';
import { type Allowance, allowance, type LeaseTerms, leaseTtlSeconds } from '../policy/terms';
import type { LeaseStore, ListQuery, StoredLease } from '../ports/lease-store';
import type { TargetFirewall } from '../ports/target-firewall';
import { kindOf } from '../targets/kinds';
import type { PassOutcome, TargetCoordinator } from '../writer/coordinator';

/** How long a grant past its deadline may spend marking its lease failed. */
const ABANDON_GRACE_MS = 2000;

/** Retries of a slot claim refused while the caller's own requests raced. */
const SLOT_CLAIM_RETRIES = 3;
const SLOT_RETRY_BASE_MS = 25;
/** How long a grant's answer may wait for its warnings (they come from a cache; the first fill may be slow). */
const WARNING_TIMEOUT_MS = 2000;

/** What the capacity pre-check needs of a firewall read. */
interface CurrentRules {
  rules: Set<string>;
  /** The broker's rules, when the kind marks them itself. */
  owned: Set<string> | undefined;
  reserved: number;
}

export interface GrantRequest {
  vault: string;
  ttlSeconds?: number | undefined;
  ip?: string | undefined;
  reason?: string | undefined;
  idempotencyKey?: string | undefined;
  /** The caller's address as the front end saw it (`callerAddress`: rightmost X-Forwarded-For). */
  clientAddress?: string | undefined;
}

export interface GrantResult {
  lease: Lease;
  /** false when an Idempotency-Key repeat returned an existing lease. */
  created: boolean;
}

export interface ListRequest {
  vault?: string | undefined;
  /** Only leases on targets of this kind. */
  kind?: string | undefined;
  status: PublicLeaseStatus | 'all';
  top: number;
  /** Opaque token from a previous page. */
  skipToken?: string | undefined;
}

export interface ListResult {
  leases: Lease[];
  skipToken?: string | undefined;
}

export interface LeaseServiceDeps {
  store: LeaseStore;
  coordinator: TargetCoordinator;
  clock: Clock;
  vaults: ManagedTarget[];
  terms: LeaseTerms;
  /** Where grants, renewals and releases are reported (the audit trail). */
  events: EventSink;
  /**
   * Read (never written) by the capacity pre-check when the store does not
   * know a target's rule count or believes it full. Without it the pre-check
   * trusts the store alone and the writer pass has the last word.
   */
  firewall?: TargetFirewall | undefined;
  /** A limit of rules for every target (tests); by default each kind's own (`TargetKind.maxRules`). */
  maxRules?: number | undefined;
}

function stripEtag(lease: StoredLease | Lease): Lease {
  const { etag: _etag, ...rest } = lease as StoredLease;
  return rest;
}

/**
 * The lease lifecycle as pipelines and operators see it: grant, read, list,
 * renew, release. Every change is written to the store first (the desired
 * state); the answer waits until the target's firewall reflects it.
 */
export class LeaseService {
  private readonly vaultNames: Set<string>;
  private readonly byName: Map<string, ManagedTarget>;
  private readonly ruleReads = new Map<
    string,
    { at: number; rules: Promise<CurrentRules | undefined> }
  >();

  constructor(private readonly deps: LeaseServiceDeps) {
    this.vaultNames = new Set(deps.vaults.map((vault) => vault.name));
    this.byName = new Map(deps.vaults.map((vault) => [vault.name, vault]));
  }

  private managedVault(name: string): string {
    const vault = name.toLowerCase();
    if (!this.vaultNames.has(vault)) {
      throw new DomainError(
        'VAULT.NOT_FOUND',
        `The target "${name}" is not managed by this broker (see GET /api/targets)`,
      );
    }
    return vault;
  }

  /** The limit of rules on a target: its kind's, unless the deployment sets one for all. */
  private maxRules(vault: string): number {
    return this.deps.maxRules ?? kindOf(this.byName.get(vault)).maxRules;
  }

  private label(vault: string): string {
    return `${kindOf(this.byName.get(vault)).label} ${vault}`;
  }

  /** The lease duration for a requested TTL, within the holder's allowance when known. */
  private ttlMs(ttlSeconds: number | undefined, allowed?: Allowance): number {
    return leaseTtlSeconds(this.deps.terms, ttlSeconds, allowed) * 1000;
  }

  private deadline(): number {
    return this.deps.clock.now() + this.deps.terms.applyTimeoutMs;
  }

  /**
   * Grant a lease: every check that needs no I/O first (role, vault, policy,
   * TTL, IP), then the per-principal cap and the target's capacity from the
   * store, and only then the lease is written. A refused grant writes nothing.
   */
  async grant(
    principal: Principal,
    request: GrantRequest,
    attempt: Partial<Attempt> = {},
  ): Promise<GrantResult> {
    const vault = this.managedVault(request.vault);
    const holder = holderOf(principal);
    const allowed = allowance(this.deps.terms, vault, holder, 'Requesting a lease');
    const ttl = this.ttlMs(request.ttlSeconds, allowed);
    let ip: string;
    if (request.ip !== undefined) {
      requireAnyRole(principal, ['Lease.Admin'], 'Naming an explicit ip');
      ip = parseLeaseIp(request.ip, this.deps.terms.minPrefix);
    } else {
      ip = callerLeaseIp(request.clientAddress);
    }

    const now = this.deps.clock.now();
    const lease: Lease = {
      id: newLeaseId(vault, now),
      vault,
      kind: kindOf(this.byName.get(vault)).name,
      ip,
      status: 'pending',
      principal: holder.id,
      appId: holder.appId,
      reason: request.reason,
      createdAt: now,
      expiresAt: now + ttl,
    };
    const { store } = this.deps;
    if (request.idempotencyKey !== undefined) {
      // A repeat of a live lease gets it back (200), whatever the cap or capacity say now.
      const previous = await store.findIdempotentLease(vault, principal.id, request.idempotencyKey);
      if (previous && isLive(previous)) return this.repeat(previous);
    }
    const cap = this.deps.terms.maxActivePerPrincipal;
    const capped = Number.isFinite(cap);
    if (capped) {
      lease.slot = true;
      await this.claimSlot(lease, principal, cap, now);
    }
    let recorded: { lease: StoredLease; created: boolean };
    try {
      await this.checkCapacity(vault, ip);
      recorded = await store.createLease(lease, request.idempotencyKey);
    } catch (error) {
      if (capped) await store.releaseSlot(lease).catch(() => undefined);
      throw error;
    }
    if (!recorded.created) {
      if (capped) await store.releaseSlot(lease).catch(() => undefined);
      return this.repeat(recorded.lease);
    }
    attempt.leaseId = recorded.lease.id;
    const applied = stripEtag(await this.waitApplied(recorded.lease));
    await this.deps.events.emit({ type: 'lease-granted', by: principal, lease: applied });
    const warnings = await this.warnings(applied);
    return { lease: warnings.length > 0 ? { ...applied, warnings } : applied, created: true };
  }

  /** An Idempotency-Key repeat: the same lease, once its rule is on the target. */
  private async repeat(previous: StoredLease): Promise<GrantResult> {
    const lease = previous.status === 'active' ? previous : await this.waitApplied(previous);
    return { lease: stripEtag(lease), created: false };
  }

  /** Wait until the firewall holds the lease's rule; on timeout leave no live lease behind. */
  private async waitApplied(lease: StoredLease): Promise<StoredLease> {
    const deadline = this.deadline();
    let outcome: PassOutcome | undefined;
    for (;;) {
      try {
        outcome = await this.deps.coordinator.sync(lease.vault, deadline, lease.id);
      } catch (error) {
        // Whatever stopped us (timeout, store outage), leave no live lease
        // behind; if the store is down too, the writer fails it later.
        const failure =
          error instanceof DomainError
            ? error
            : new DomainError(
                'VAULT.UPDATE_TIMEOUT',
                'No firewall write completed before the deadline',
                {
                  retryAfterSeconds: 5,
                },
              );
        // NOTE: the caller's deadline has passed: marking the lease failed gets a
        // short grace, not a store timeout per try. A lease left pending is
        // failed by the next writer pass (it never activates a lease past it).
        let answered503 = false;
        const abandoned = this.abandon(lease, failure, () => answered503);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const grace = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            answered503 = true;
            reject(failure);
          }, ABANDON_GRACE_MS);
        });
        return Promise.race([abandoned, grace])
          .catch((abandonError: unknown) => {
            throw abandonError instanceof DomainError && abandonError !== failure
              ? failure
              : abandonError;
          })
          .finally(() => {
            clearTimeout(timer);
            abandoned.catch(() => undefined); // settles later on its own
          });
      }
      if (outcome?.refused.has(lease.id)) throw this.refusedByWriter(lease);
      // The pass ran in this process and activated it: no need to read it back.
      if (outcome?.activated.has(lease.id)) return { ...lease, status: 'active' };
      const current = await this.deps.store.getLease(lease.id, lease.vault);
      if (!current)
        throw new DomainError('LEASE.NOT_FOUND', 'The lease disappeared while being granted');
      if (current.status === 'failed') {
        if (current.failure === 'capacity') throw this.refusedByWriter(lease);
        throw new DomainError(
          'VAULT.UPDATE_TIMEOUT',
          'The writer gave up on this lease before a write carried its rule',
          {
            retryAfterSeconds: 5,
          },
        );
      }
      if (current.status !== 'pending') return current;
    }
  }

  private refusedByWriter(lease: Lease): DomainError {
    return new DomainError(
      'VAULT.AT_CAPACITY',
      `The ${this.label(lease.vault)} holds the maximum of ${this.maxRules(lease.vault)} IP rules; no rule can be added until one is removed`,
    );
  }

  /**
   * Claims one of the caller's `cap` slots, or refuses. Claim-then-count is
   * strict (of any two claims, the later one's count sees the earlier), but
   * callers racing each other can all count each other and all step back; so
   * a refused claim is retried a few times after a random pause, and a burst
   * from one caller ends with up to `cap` grants instead of none.
   */
  private async claimSlot(
    lease: Lease,
    principal: Principal,
    cap: number,
    now: number,
  ): Promise<void> {
    const { store } = this.deps;
    let fewestOthers = Number.POSITIVE_INFINITY;
    for (let attempt = 0; ; attempt += 1) {
      const held = await store.claimSlot(lease, now);
      if (held <= cap) return;
      await store.releaseSlot(lease);
      fewestOthers = Math.min(fewestOthers, held - 1);
      if (attempt === SLOT_CLAIM_RETRIES) throw this.limitReached(principal, fewestOthers);
      await delay(SLOT_RETRY_BASE_MS * 2 ** attempt * (0.5 + Math.random()));
    }
  }

  private limitReached(principal: Principal, active: number): DomainError {
    const cap = this.deps.terms.maxActivePerPrincipal;
    return new DomainError(
      'LEASE.LIMIT_REACHED',
      `${principal.id} holds ${active} active leases, the most one caller may hold (LEASE_MAX_ACTIVE_PER_PRINCIPAL = ${cap}); release one first`,
    );
  }

  /**
   * The cheap capacity pre-check: Key Vault holds at most `maxRules` rules,
   * counting the ones the broker did not add. The store's rule count after the
   * last pass decides almost every grant with one point read. Only when the
   * count is unknown (no pass yet) or the target looks full is it settled from
   * the live leases and one firewall read, shared by concurrent grants. The
   * writer pass stays the authority: this only spares a full vault the lease
   * row and the pass.
   */
  private async checkCapacity(vault: string, ip: string): Promise<void> {
    // In a burst, the row this process just read or wrote is fresh enough.
    const state = await this.deps.coordinator.approximateState(vault, 2000);
    const maxRules = this.maxRules(vault);
    const rulesFor = kindOf(this.byName.get(vault)).rulesFor;
    const wanted = rulesFor(ip);
    const owned = new Set(state.owned);
    if (wanted.every((rule) => owned.has(rule))) return;
    if (state.totalRules >= 0 && state.totalRules + wanted.length <= maxRules) return;
    const now = this.deps.clock.now();
    const live = (await this.deps.store.liveLeases(vault)).filter((lease) => lease.expiresAt > now);
    const liveRules = new Set(live.flatMap((lease) => rulesFor(lease.ip)));
    const missing = wanted.filter((rule) => !liveRules.has(rule));
    if (missing.length === 0) return; // no new rule needed
    const current = await this.currentRules(vault);
    if (!current) {
      // Resource Manager does not answer (or no firewall here): trust the store's count.
      if (state.totalRules < 0) return;
      const notOwned = Math.max(0, state.totalRules - owned.size);
      if (notOwned + liveRules.size + missing.length > maxRules)
        throw this.atCapacity(vault, notOwned + liveRules.size, missing.length);
      return;
    }
    const adding = missing.filter((rule) => !current.rules.has(rule));
    if (adding.length === 0) return;
    const mine = current.owned ?? owned;
    const needed = new Set([...current.rules].filter((rule) => !mine.has(rule)));
    for (const leased of liveRules) needed.add(leased);
    if (needed.size + current.reserved + adding.length > maxRules)
      throw this.atCapacity(vault, needed.size + current.reserved, adding.length);
  }

  /** Canonical rules on the target, read at most once per target per two seconds by this process. */
  private currentRules(vault: string): Promise<CurrentRules | undefined> {
    const now = this.deps.clock.now();
    const cached = this.ruleReads.get(vault);
    if (cached && now - cached.at < 2000) return cached.rules;
    const managed = this.byName.get(vault);
    const rules =
      this.deps.firewall && managed
        ? this.deps.firewall
            .read(managed, AbortSignal.timeout(10_000))
            .then((read) => ({
              rules: new Set(read.rules.map((rule) => canonicalRule(rule) ?? rule)),
              owned: read.owned === undefined ? undefined : new Set(read.owned),
              reserved: read.reserved ?? 0,
            }))
            .catch(() => undefined)
        : Promise.resolve(undefined);
    this.ruleReads.set(vault, { at: now, rules });
    return rules;
  }

  private atCapacity(vault: string, rules: number, adding: number): DomainError {
    const kind = kindOf(this.byName.get(vault));
    return new DomainError(
      'VAULT.AT_CAPACITY',
      `The ${kind.label} ${vault} would need ${rules + adding} IP rules, more than the limit of ${this.maxRules(vault)} for a ${kind.label} (counting rules the broker did not add); no lease can be granted until rules are removed`,
    );
  }

  /**
   * Why the granted rule may not do what the caller expects (the kind's
   * adapter knows: a storage account in the caller's own region); none when
   * it cannot tell in time. The grant is answered either way.
   */
  private async warnings(lease: Lease): Promise<string[]> {
    const target = this.byName.get(lease.vault);
    const firewall = this.deps.firewall;
    if (!target || !firewall?.warnings) return [];
    return firewall
      .warnings(target, lease.ip, AbortSignal.timeout(WARNING_TIMEOUT_MS))
      .catch(() => []);
  }

  /**
   * A grant past its deadline: mark its lease failed (conditional, so it
   * races the writer's activation fairly). A writer that activated it first
   * makes it a late success, if the caller is still waiting; once the caller
   * has been answered 503 (`answered()`), an activation found afterwards is
   * withdrawn: the lease is ended as failed, the audit trail says so, and a
   * pass removes its rule. The answer never contradicts the firewall for long.
   */
  private async abandon(
    lease: StoredLease,
    timeout: DomainError,
    answered: () => boolean,
  ): Promise<StoredLease> {
    let current = await this.deps.store.getLease(lease.id, lease.vault);
    for (let attempt = 0; current && attempt < 5; attempt += 1) {
      if (current.status === 'active' && !answered()) return current; // just in time
      if (current.status !== 'pending' && current.status !== 'active') break;
      const wasActive = current.status === 'active';
      const ended = await this.deps.store.endLease(
        current,
        'failed',
        this.deps.clock.now(),
        'timeout',
      );
      if (ended) {
        if (wasActive) {
          await this.deps.events.emit({
            type: 'grant-withdrawn',
            lease: stripEtag(ended),
            detail: `its grant was answered 503 (no answer within the apply timeout) and the writer activated it afterwards; ended as failed, its rule ${ended.ip} is removed by the next pass`,
          });
          void this.deps.coordinator
            .sync(ended.vault, this.deps.clock.now() + 50_000)
            .catch(() => undefined);
        }
        throw timeout;
      }
      current = await this.deps.store.getLease(lease.id, lease.vault);
    }
    throw timeout;
  }

  private async visibleLease(principal: Principal, id: string): Promise<StoredLease> {
    const vault = vaultOfLeaseId(id);
    const notFound = new DomainError('LEASE.NOT_FOUND', `No lease with id "${id}"`);
    if (vault === undefined || !this.vaultNames.has(vault)) throw notFound;
    const lease = await this.deps.store.getLease(id, vault);
    if (!lease || !isVisible(lease)) throw notFound;
    // Another caller's lease is a 404, not a 403: its existence is not disclosed.
    if (lease.principal !== principal.id && !hasRole(principal, 'Lease.Read')) throw notFound;
    return lease;
  }

  async get(principal: Principal, id: string): Promise<Lease> {
    return stripEtag(await this.visibleLease(principal, id));
  }

  /** A lease the caller may change: its own, or any as Lease.Admin. */
  private async ownedLease(principal: Principal, id: string): Promise<StoredLease> {
    const lease = await this.visibleLease(principal, id);
    if (lease.principal !== principal.id && !hasRole(principal, 'Lease.Admin')) {
      if (hasRole(principal, 'Lease.Read')) {
        throw new DomainError(
          'AUTH.FORBIDDEN',
          'Only the owner or a Lease.Admin may change this lease',
        );
      }
      throw new DomainError('LEASE.NOT_FOUND', `No lease with id "${id}"`);
    }
    return lease;
  }

  async renew(principal: Principal, id: string, ttlSeconds: number | undefined): Promise<Lease> {
    // The global bounds need no I/O; the policy cap depends on the lease's holder.
    this.ttlMs(ttlSeconds);
    let lease = await this.ownedLease(principal, id);
    const holder = { id: lease.principal, appId: lease.appId };
    const allowed = allowance(this.deps.terms, lease.vault, holder, 'Renewing this lease');
    const ttl = this.ttlMs(ttlSeconds, allowed);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      if (lease.status !== 'active' || lease.expiresAt <= this.deps.clock.now()) {
        throw new DomainError(
          'LEASE.NOT_ACTIVE',
          `The lease is ${lease.status === 'active' ? 'expired' : lease.status}; only an active lease can be renewed`,
        );
      }
      const renewed = await this.deps.store.updateLiveLease(lease, {
        expiresAt: this.deps.clock.now() + ttl,
      });
      if (renewed) {
        const result = stripEtag(renewed);
        await this.deps.events.emit({ type: 'lease-renewed', by: principal, lease: result });
        return result;
      }
      lease = await this.visibleLease(principal, id);
    }
    throw new DomainError('STORE.UNAVAILABLE', 'The lease kept changing; try again', {
      retryAfterSeconds: 1,
    });
  }

  /**
   * Release: the lease ends in the store (recorded as released at once), and
   * the answer waits until the rule is gone from the target (unless another
   * lease holds the IP). A lease that had already ended is answered
   * unchanged, once its rule is surely gone too: a repeat of a release whose
   * firewall write timed out must not answer 200 while the rule is still there.
   */
  async release(principal: Principal, id: string): Promise<Lease> {
    let lease = await this.ownedLease(principal, id);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      if (!isLive(lease)) {
        const state = await this.deps.store.getVaultState(lease.vault);
        if (state.owned.includes(lease.ip))
          await this.deps.coordinator.sync(lease.vault, this.deadline());
        return stripEtag(lease);
      }
      const ended = await this.deps.store.endLease(lease, 'released', this.deps.clock.now());
      if (ended) {
        const released = stripEtag(ended);
        await this.deps.events.emit({ type: 'lease-released', by: principal, lease: released });
        await this.deps.coordinator.sync(lease.vault, this.deadline());
        return released;
      }
      const fresh = await this.deps.store.getLease(id, lease.vault);
      if (!fresh) throw new DomainError('LEASE.NOT_FOUND', `No lease with id "${id}"`);
      lease = fresh;
    }
    throw new DomainError('STORE.UNAVAILABLE', 'The lease kept changing; try again', {
      retryAfterSeconds: 1,
    });
  }

  /**
   * A Lease.Request caller sees its own leases; Lease.Read sees all. The list
   * walks segments (a target's live leases, then its history) one store page
   * at a time, and stops after `MAX_LIST_CALLS` pages whatever they held (a
   * filter that matches nothing in a long history still costs a bounded
   * amount): the rest is behind `nextLink`. A caller's own history is read
   * from its own index in the store, never by scanning other callers'.
   */
  async list(principal: Principal, request: ListRequest): Promise<ListResult> {
    const ownOnly = !hasRole(principal, 'Lease.Read');
    const vaults = (
      request.vault === undefined
        ? this.deps.vaults.map((vault) => vault.name)
        : [this.managedVault(request.vault)]
    ).filter(
      (vault) => request.kind === undefined || kindOf(this.byName.get(vault)).name === request.kind,
    );
    // An own list of every status is two reads per target: live rows, then own history.
    const parts: ListQuery['status'][] =
      ownOnly && request.status === 'all' ? ['active', 'ended'] : [request.status];
    const segments = vaults.flatMap((vault) => parts.map((status) => ({ vault, status })));
    const cursor = decodeSkipToken(request.skipToken, segments.length);
    const leases: Lease[] = [];
    let index = cursor.index;
    let continuation = cursor.continuation;
    for (
      let calls = 0;
      calls < MAX_LIST_CALLS && index < segments.length && leases.length < request.top;
      calls += 1
    ) {
      const segment = segments[index] as (typeof segments)[number];
      const page = await this.deps.store.listLeases({
        vault: segment.vault,
        status: segment.status,
        principal: ownOnly ? principal.id : undefined,
        top: request.top - leases.length,
        continuation,
      });
      leases.push(...page.items.filter(isVisible).map(stripEtag));
      if (page.continuation) {
        continuation = page.continuation;
      } else {
        index += 1;
        continuation = undefined;
      }
    }
    const more = index < segments.length;
    return { leases, skipToken: more ? encodeSkipToken({ index, continuation }) : undefined };
  }
}

/**
 * Most store calls (pages) one list request makes; then it answers what it
 * has with a `nextLink`. Enough to fill a page across a few targets in the
 * usual case, small enough that no request scans a long history.
 */
export const MAX_LIST_CALLS = 4;

interface Cursor {
  index: number;
  continuation?: string | undefined;
}

function encodeSkipToken(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeSkipToken(token: string | undefined, segments: number): Cursor {
  if (token === undefined) return { index: 0 };
  try {
    const cursor = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Cursor;
    if (Number.isInteger(cursor.index) && cursor.index >= 0 && cursor.index < segments) {
      // The store checks its own continuation's shape (a forged one is a 400 too).
      if (cursor.continuation === undefined || typeof cursor.continuation === 'string')
        return { index: cursor.index, continuation: cursor.continuation };
    }
  } catch {
    // fall through to the error below
  }
  const message = 'is not a token this API issued';
  throw new DomainError('REQUEST.INVALID', `$skiptoken ${message}`, {
    errors: [{ path: '$skiptoken', message }],
  });
}
