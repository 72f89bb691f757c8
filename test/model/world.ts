import { mulberry32 } from '../../dev/emulator/chance';
import { DomainError } from '../../src/domain/errors';
import { isLive, type Lease, type LeaseStatus } from '../../src/domain/lease';
import type { ManagedTarget } from '../../src/domain/target';
import {
  type LeasePage,
  type LeaseStore,
  type ListQuery,
  type StoredLease,
  type VaultState,
} from '../../src/ports/lease-store';
import {
  FirewallError,
  type FirewallRules,
  type FirewallWrite,
  type TargetFirewall,
} from '../../src/ports/target-firewall';
import {
  callsWritten,
  listing,
  ruleCalls,
  type SqlListing,
  summary,
} from '../../src/targets/sql/rule-calls';
import { heldCidr } from '../../src/targets/sql/rule-names';
import { wholeListWrite } from '../../src/targets/whole-list';
import { InMemoryLeaseStore } from '../fakes/lease-store';

/**
 * The world of the writer model test: one lease store and one vault firewall,
 * both in memory, whose every call takes a random time (fake timers), may fail
 * before or after its effect, and answers in any order. Each effect happens at
 * one instant, so the test can check the contract between any two steps.
 *
 * What the firewall assumes of Resource Manager (docs/architecture.md):
 * a request reaches it within `travelMs` of being sent; a write arriving while
 * another is in flight is refused with 409; a write may be carried out long
 * after its client gave up (up to `lateMs`).
 */

export type Random = () => number;

/** KV_LEASE_MODEL_TRACE=1 prints every effect, for replaying a failing seed. */
const trace = (line: string) => {
  if (process.env.KV_LEASE_MODEL_TRACE) process.stderr.write(`${Date.now() % 100000} ${line}\n`);
};

export function seeded(seed: number): Random {
  return mulberry32(seed);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function unavailable(): DomainError {
  return new DomainError('STORE.UNAVAILABLE', 'model: the store failed', {
    retryAfterSeconds: 1,
  });
}

export interface StoreFaults {
  /** Most a call waits before and after its effect. */
  maxDelayMs: number;
  /** Probability a call stalls `stallMs` first (a heartbeat misses its turn; the lock may expire). */
  stall: number;
  stallMs: number;
  /** Probability a call fails before its effect. */
  failBefore: number;
  /** Probability a call fails after its effect (the caller cannot tell it happened). */
  failAfter: number;
}

/**
 * The lease store of the model: the in-memory fake (which passes the table
 * adapter's contract suite) behind calls that take a random time and may
 * fail before or after their effect. The fake's effect happens at the instant
 * of the call, so each call's effect is one instant between two delays.
 */
export class ModelStore implements LeaseStore {
  /** The store itself, read by the checks without delay or fault. */
  private readonly truth = new InMemoryLeaseStore();
  /** When each lease stopped being live, by the store's clock (the instant of the effect). */
  readonly endedEffectAt = new Map<string, number>();

  constructor(
    private readonly random: Random,
    public faults: StoreFaults,
    /** Told when a lease row comes to exist (at the instant of the effect). */
    private readonly onCreate: (lease: Lease) => void = () => undefined,
  ) {}

  /** One call: a delay, maybe a failure, the effect at one instant, a delay, maybe a failure. */
  private async op<T>(effect: () => Promise<T>): Promise<T> {
    if (this.random() < this.faults.stall) await sleep(this.faults.stallMs);
    await sleep(Math.floor(this.random() * this.faults.maxDelayMs));
    if (this.random() < this.faults.failBefore) throw unavailable();
    const result = structuredClone(await effect());
    await sleep(Math.floor(this.random() * this.faults.maxDelayMs));
    if (this.random() < this.faults.failAfter) throw unavailable();
    return result;
  }

  private ended(leases: StoredLease[]): void {
    for (const lease of leases) {
      this.endedEffectAt.set(lease.id, Date.now());
      trace(`lease ${lease.id.slice(-3)} ${lease.ip} -> ${lease.status}`);
    }
  }

  /** Ground truth, for the checks (no delay, no fault). */
  get leases(): ReadonlyMap<string, StoredLease> {
    return this.truth.snapshot();
  }

  vaultState(vault: string): VaultState {
    return this.truth.vaultStateNow(vault);
  }

  liveNow(vault: string): StoredLease[] {
    return [...this.truth.snapshot().values()].filter(
      (lease) => lease.vault === vault && isLive(lease),
    );
  }

  ensureReady(): Promise<void> {
    return this.op(() => this.truth.ensureReady());
  }

  getLease(id: string, vault: string): Promise<StoredLease | undefined> {
    return this.op(() => this.truth.getLease(id, vault));
  }

  createLease(lease: Lease): Promise<{ lease: StoredLease; created: boolean }> {
    return this.op(async () => {
      const created = await this.truth.createLease(lease);
      this.onCreate(lease);
      trace(`lease ${lease.id.slice(-3)} ${lease.ip} created`);
      return created;
    });
  }

  liveLeases(vault: string): Promise<StoredLease[]> {
    return this.op(async () => {
      const live = await this.truth.liveLeases(vault);
      trace(`liveLeases ${live.map((l) => `${l.id.slice(-3)}:${l.ip}:${l.status}`).join(' ')}`);
      return live;
    });
  }

  endLease(
    lease: StoredLease,
    status: Extract<LeaseStatus, 'released' | 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<StoredLease | undefined> {
    return this.op(async () => {
      const ended = await this.truth.endLease(lease, status, endedAt, failure);
      if (ended) this.ended([ended]);
      return ended;
    });
  }

  endLeases(
    leases: StoredLease[],
    status: Extract<LeaseStatus, 'expired' | 'failed'>,
    endedAt: number,
    failure?: string,
  ): Promise<{ ended: StoredLease[]; changed: StoredLease[] }> {
    if (leases.length === 0) return Promise.resolve({ ended: [], changed: [] });
    return this.op(async () => {
      const result = await this.truth.endLeases(leases, status, endedAt, failure);
      this.ended(result.ended);
      return result;
    });
  }

  updateLiveLease(
    lease: StoredLease,
    patch: Partial<Pick<Lease, 'status' | 'expiresAt'>>,
  ): Promise<StoredLease | undefined> {
    return this.op(() => this.truth.updateLiveLease(lease, patch));
  }

  markActive(leases: StoredLease[]): Promise<Set<string>> {
    if (leases.length === 0) return Promise.resolve(new Set());
    return this.op(async () => {
      const marked = await this.truth.markActive(leases);
      trace(`markActive ${leases.map((lease) => lease.id.slice(-3)).join(',')}`);
      return marked;
    });
  }

  getVaultState(vault: string): Promise<VaultState> {
    return this.op(() => this.truth.getVaultState(vault));
  }

  putVaultState(vault: string, state: VaultState): Promise<VaultState | undefined> {
    return this.op(async () => {
      const next = await this.truth.putVaultState(vault, state);
      if (next)
        trace(
          `row pass=${next.pass} applied=${next.applied} lock=${next.lockHolder}@${next.lockUntil % 100000} owned=${next.owned.join(',')} U=${next.unsettledUntil % 100000}`,
        );
      return next;
    });
  }

  findIdempotentLease(vault: string, principal: string, key: string) {
    return this.op(() => this.truth.findIdempotentLease(vault, principal, key));
  }

  claimSlot(lease: Pick<Lease, 'id' | 'vault' | 'principal' | 'expiresAt'>, now: number) {
    return this.op(() => this.truth.claimSlot(lease, now));
  }

  releaseSlot(lease: Pick<Lease, 'id' | 'principal'>) {
    return this.op(() => this.truth.releaseSlot(lease));
  }

  pruneHistory(vault: string, endedBefore: number): Promise<number> {
    return this.op(() => this.truth.pruneHistory(vault, endedBefore));
  }

  listLeases(query: ListQuery): Promise<LeasePage> {
    return this.op(() => this.truth.listLeases(query));
  }
}

export interface FirewallFaults {
  /** Most a request or an answer travels. */
  travelMs: number;
  /** Most Resource Manager takes to carry a write out, normally. */
  workMs: number;
  /** Probability a write is carried out late (up to `lateMs`): its client usually gave up. */
  late: number;
  lateMs: number;
  /** Probability a call fails with 500 before changing anything. */
  fail: number;
  /** Probability a write is applied but answered 500. */
  failAfter: number;
}

/** One in-flight write at "Resource Manager". */
export interface InFlight {
  rules: string[];
  doomed: boolean;
}

/** A Key Vault firewall as Resource Manager keeps it: no ETag, 409 on overlapping writes. */
export class ModelFirewall implements TargetFirewall {
  rules: string[];
  readonly inFlight = new Set<InFlight>();
  writes = 0;
  lateLandings = 0;

  constructor(
    private readonly random: Random,
    public faults: FirewallFaults,
    initial: string[],
  ) {
    this.rules = [...initial];
  }

  private delay(maxMs: number): Promise<void> {
    return sleep(Math.floor(this.random() * maxMs));
  }

  /** The client's view: rejected at once when its signal fires, whatever the server does. */
  private client<T>(signal: AbortSignal | undefined, server: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const abort = () =>
        reject(new FirewallError('timeout', 'model: the client gave up', undefined));
      if (signal?.aborted) {
        abort();
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
      server.then(resolve, reject).finally(() => signal?.removeEventListener('abort', abort));
    });
  }

  read(_vault: ManagedTarget, signal?: AbortSignal): Promise<FirewallRules> {
    const server = (async () => {
      await this.delay(this.faults.travelMs);
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', 'model: 500 on read', undefined, { status: 500 });
      const snapshot = [...this.rules];
      trace(`read ${this.rules.join(',')}`);
      await this.delay(this.faults.travelMs);
      return { rules: snapshot, base: undefined };
    })();
    server.catch(() => undefined);
    return this.client(signal, server);
  }

  write(
    _vault: ManagedTarget,
    current: FirewallRules,
    ipRules: string[],
    signal?: AbortSignal,
  ): Promise<FirewallWrite> {
    if (signal?.aborted)
      return Promise.reject(new FirewallError('timeout', 'model: aborted before sending'));
    const server = (async () => {
      await this.delay(this.faults.travelMs);
      const write: InFlight = { rules: [...ipRules], doomed: this.inFlight.size > 0 };
      trace(`write arrives ${write.rules.join(',')}${write.doomed ? ' (doomed)' : ''}`);
      this.inFlight.add(write);
      const late = this.random() < this.faults.late;
      await this.delay(late ? this.faults.lateMs : this.faults.workMs);
      this.inFlight.delete(write);
      if (write.doomed)
        throw new FirewallError('conflict', 'model: 409 ConflictError', undefined, {
          status: 409,
        });
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', 'model: 500 on write', undefined, { status: 500 });
      this.rules = [...write.rules];
      this.writes += 1;
      trace(`write lands ${write.rules.join(',')}${signal?.aborted ? ' LATE' : ''}`);
      if (signal?.aborted) this.lateLandings += 1;
      if (this.random() < this.faults.failAfter)
        throw new FirewallError('transient', 'model: applied, answered 500', undefined, {
          status: 500,
        });
      await this.delay(this.faults.travelMs);
      return wholeListWrite(current.rules, ipRules);
    })();
    server.catch(() => undefined);
    return this.client(signal, server);
  }
}

/** A rule of the per-rule firewall: a named child resource holding one address range. */
export interface ModelNamedRule {
  start: string;
  end: string;
}

/** One PUT or DELETE of a per-rule firewall still on its way or being carried out. */
export interface RuleCallInFlight {
  method: 'PUT' | 'DELETE';
  name: string;
  /** The range the call's rule holds (a DELETE of a malformed rule: none). */
  cidr?: string | undefined;
  rule?: ModelNamedRule;
}

/** The broker's namespace on a per-rule firewall. */
export const RULE_PREFIX = 'kvlease-';

/**
 * A per-rule firewall (an Azure SQL server) as Resource Manager keeps it: a map
 * of named rules, each PUT or DELETEd by its own call. Unlike the whole-list
 * firewall nothing refuses overlapping calls (Azure SQL is not known to), so a
 * call carried out after its client gave up (up to `lateMs`) may land after
 * later calls on the same rule. A DELETE may also be refused with 409
 * `OperationInterrupted` (`fail` covers it, changing nothing).
 *
 * It is also the adapter (the `TargetFirewall` of a per-rule kind), deciding
 * with the SQL adapter's own pure code (`src/targets/sql/rule-calls.ts`):
 * `read` reports the broker's rules (named with the prefix) as canonical
 * CIDRs, all of them owned, the others as `reserved`; `write` sends the calls
 * `ruleCalls` decides (fresh generation names while `current.reassert`), round
 * by round, and when any call failed reports the failure whose outcome is
 * unknown if there is one.
 */
export class ModelRuleFirewall implements TargetFirewall {
  readonly rules = new Map<string, ModelNamedRule>();
  readonly inFlight = new Set<RuleCallInFlight>();
  calls = 0;
  lateLandings = 0;
  /** Ranges (canonical CIDRs) whose rule a DELETE removed after its client gave up: when. */
  readonly lateDeleted = new Map<string, number>();
  private generations = 0;

  constructor(
    private readonly random: Random,
    public faults: FirewallFaults,
    /** Rules the broker did not add (any names without the prefix). */
    initial: Record<string, ModelNamedRule>,
  ) {
    for (const [name, rule] of Object.entries(initial)) this.rules.set(name, { ...rule });
  }

  private delay(maxMs: number): Promise<void> {
    return sleep(Math.floor(this.random() * maxMs));
  }

  private client<T>(signal: AbortSignal | undefined, server: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const abort = () =>
        reject(new FirewallError('timeout', 'model: the client gave up', undefined));
      if (signal?.aborted) {
        abort();
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
      server.then(resolve, reject).finally(() => signal?.removeEventListener('abort', abort));
    });
  }

  /** The broker's rules now, as canonical CIDRs (one per rule, duplicates kept), sorted. */
  brokerRules(): string[] {
    return this.listed()
      .broker.map((rule) => heldCidr(rule) ?? rule.name)
      .sort();
  }

  private listed(): SqlListing {
    return listing(
      [...this.rules.entries()].map(([name, rule]) => ({
        name,
        startIpAddress: rule.start,
        endIpAddress: rule.end,
      })),
    );
  }

  /** The rules without the prefix, as `name=start-end`, sorted. */
  foreignRules(): string[] {
    return [...this.rules.entries()]
      .filter(([name]) => !name.startsWith(RULE_PREFIX))
      .map(([name, rule]) => `${name}=${rule.start}-${rule.end}`)
      .sort();
  }

  read(_target: ManagedTarget, signal?: AbortSignal): Promise<FirewallRules> {
    const server = (async () => {
      await this.delay(this.faults.travelMs);
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', 'model: 500 on list', undefined, { status: 500 });
      const base = this.listed();
      const { rules, dirty } = summary(base);
      trace(`list ${rules.join(',')} (+${base.others})`);
      await this.delay(this.faults.travelMs);
      return { rules, owned: rules, reserved: base.others, dirty, base };
    })();
    server.catch(() => undefined);
    return this.client(signal, server);
  }

  /** One call: it travels, may fail before its effect, is carried out (maybe late), may fail after. */
  private call(call: RuleCallInFlight, signal?: AbortSignal): Promise<void> {
    const server = (async () => {
      await this.delay(this.faults.travelMs);
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', `model: 500 on ${call.method}`, undefined, {
          status: 500,
        });
      this.inFlight.add(call);
      const late = this.random() < this.faults.late;
      await this.delay(late ? this.faults.lateMs : this.faults.workMs);
      this.inFlight.delete(call);
      if (call.method === 'PUT' && call.rule) this.rules.set(call.name, { ...call.rule });
      else this.rules.delete(call.name);
      this.calls += 1;
      trace(`${call.method} ${call.name} lands${signal?.aborted ? ' LATE' : ''}`);
      if (signal?.aborted) this.lateLandings += 1;
      const cidr = call.rule ? undefined : call.cidr;
      if (cidr !== undefined && signal?.aborted) this.lateDeleted.set(cidr, Date.now());
      else if (call.cidr !== undefined) this.lateDeleted.delete(call.cidr);
      if (this.random() < this.faults.failAfter)
        throw new FirewallError(
          'transient',
          `model: ${call.method} applied, answered 500`,
          undefined,
          {
            status: 500,
          },
        );
      await this.delay(this.faults.travelMs);
    })();
    server.catch(() => undefined);
    return this.client(signal, server);
  }

  async write(
    _target: ManagedTarget,
    current: FirewallRules,
    next: string[],
    signal?: AbortSignal,
  ): Promise<FirewallWrite> {
    if (signal?.aborted) throw new FirewallError('timeout', 'model: aborted before sending');
    this.generations += 1;
    const calls = ruleCalls(
      current.base as SqlListing,
      current.reassert ? [] : current.rules,
      next,
      128,
      current.reassert ? `m${this.generations}` : undefined,
    );
    const failures: FirewallError[] = [];
    for (const round of calls.rounds) {
      const settled = await Promise.allSettled(
        round.map((call) =>
          this.call(
            call.method === 'PUT'
              ? {
                  method: 'PUT',
                  name: call.name,
                  cidr: call.cidr,
                  rule: { start: call.startIpAddress, end: call.endIpAddress },
                }
              : { method: 'DELETE', name: call.name, cidr: heldCidr(call.rule) },
            signal,
          ),
        ),
      );
      for (const result of settled) {
        if (result.status === 'rejected')
          failures.push(
            result.reason instanceof FirewallError
              ? result.reason
              : new FirewallError('transient', String(result.reason)),
          );
      }
    }
    const chosen = failures.find((failure) => failure.outcomeUnknown) ?? failures[0];
    if (chosen) throw chosen;
    return callsWritten(current.base as SqlListing, calls);
  }
}
