import { mapWithLimit } from '../../src/domain/concurrency';
import type { ManagedTarget } from '../../src/domain/target';
import {
  FirewallError,
  type FirewallRules,
  type FirewallWrite,
  type TargetFirewall,
} from '../../src/ports/target-firewall';
import {
  refuseBeforeSending,
  SQL_WRITES_IN_FLIGHT,
  writeFailure,
} from '../../src/targets/sql/firewall';
import {
  callsWritten,
  listing,
  type RuleCall,
  ruleCalls,
  type SqlListing,
  type SqlRule,
  summary,
} from '../../src/targets/sql/rule-calls';
import type { Random } from './world';

/**
 * A per-rule firewall (an Azure SQL server) for the writer's model test, as
 * Resource Manager is assumed to keep one (docs/architecture.md, "SQL: per-rule writes"):
 *
 * - each rule is its own resource; calls on different rules never conflict,
 *   and, unlike Key Vault's whole-list PATCH, calls on the *same* rule are not
 *   refused when they overlap either: a later success proves nothing about an
 *   earlier call;
 * - a call may be carried out long after its client gave up (up to
 *   `lateMs`), a DELETE as well as a PUT;
 * - the rule limit is enforced at the instant a PUT lands (40611).
 *
 * The adapter's decisions (which rules are the broker's, which calls a write
 * sends, in which rounds, which failure it reports) are the real ones
 * (`rule-calls.ts`, `writeFailure`); only the transport is modelled. Each
 * call's effect happens at one instant, so a test can check the contract
 * between any two steps. `hold` lets a scenario decide when one call lands.
 */

export interface RuleFirewallFaults {
  /** Most a request or an answer travels. */
  travelMs: number;
  /** Most Resource Manager takes to carry a call out, normally. */
  workMs: number;
  /** Probability a call is carried out late (up to `lateMs`): its client usually gave up. */
  late: number;
  lateMs: number;
  /** Probability a call fails with 500 before changing anything. */
  fail: number;
  /** Probability a call is applied but answered 500. */
  failAfter: number;
}

export const CALM: RuleFirewallFaults = {
  travelMs: 0,
  workMs: 0,
  late: 0,
  lateMs: 0,
  fail: 0,
  failAfter: 0,
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A call to hold at "Resource Manager" until the scenario lets it land. */
interface Hold {
  method: RuleCall['method'];
  /** Lower-cased. */
  name: string;
  arrive: () => void;
  gate: Promise<void>;
}

/** One effect on the server, in order: what a checker replays. */
export interface Landing {
  method: RuleCall['method'];
  name: string;
  /** Whether the client that sent it had given up by then. */
  late: boolean;
}

export class ModelRuleFirewall implements TargetFirewall {
  /** By lower-cased name, as Azure SQL compares rule names. */
  readonly rules = new Map<string, SqlRule>();
  readonly landings: Landing[] = [];
  /** Calls sent and not yet carried out or dropped. */
  inFlight = 0;
  private readonly holds: Hold[] = [];

  constructor(
    private readonly random: Random,
    public faults: RuleFirewallFaults,
    initial: SqlRule[] = [],
    private readonly maxRules = 128,
  ) {
    for (const rule of initial) this.rules.set(rule.name.toLowerCase(), { ...rule });
  }

  /** The broker's rules now, by CIDR they correctly hold (what the checks compare with the live leases). */
  brokerCidrs(): string[] {
    return summary(listing([...this.rules.values()])).rules;
  }

  /**
   * The next call of `method` on `name` waits at "Resource Manager", before
   * its effect, until `release()`; `arrived` resolves once it is waiting.
   */
  hold(method: RuleCall['method'], name: string): { arrived: Promise<void>; release: () => void } {
    let release = (): void => undefined;
    let arrive = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    this.holds.push({ method, name: name.toLowerCase(), arrive, gate });
    return { arrived, release: () => release() };
  }

  private takeHold(call: RuleCall): Promise<void> | undefined {
    const index = this.holds.findIndex(
      (hold) => hold.method === call.method && hold.name === call.name.toLowerCase(),
    );
    if (index < 0) return undefined;
    const [hold] = this.holds.splice(index, 1);
    hold?.arrive();
    return hold?.gate;
  }

  private delay(maxMs: number): Promise<void> {
    return maxMs <= 0 ? Promise.resolve() : sleep(Math.floor(this.random() * maxMs));
  }

  /** The client's view: rejected at once when its signal fires, whatever the server does. */
  private client<T>(signal: AbortSignal | undefined, server: Promise<T>): Promise<T> {
    server.catch(() => undefined);
    return new Promise<T>((resolve, reject) => {
      const abort = () => reject(new FirewallError('timeout', 'model: the client gave up'));
      if (signal?.aborted) {
        abort();
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
      server.then(resolve, reject).finally(() => signal?.removeEventListener('abort', abort));
    });
  }

  read(_target: ManagedTarget, signal?: AbortSignal): Promise<FirewallRules> {
    const server = (async () => {
      await this.delay(this.faults.travelMs);
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', 'model: 500 on list', undefined, { status: 500 });
      const base: SqlListing = listing([...this.rules.values()]);
      await this.delay(this.faults.travelMs);
      const { rules, dirty } = summary(base);
      return { rules, owned: rules, reserved: base.others, dirty, base };
    })();
    return this.client(signal, server);
  }

  async write(
    _target: ManagedTarget,
    current: FirewallRules,
    next: string[],
    signal?: AbortSignal,
  ): Promise<FirewallWrite> {
    const base = current.base as SqlListing;
    refuseBeforeSending(next, current.reserved ?? base.others);
    const calls = ruleCalls(base, current.rules, next, this.maxRules);
    const failures: FirewallError[] = [];
    for (const round of calls.rounds) {
      await mapWithLimit(round, SQL_WRITES_IN_FLIGHT, async (call) => {
        try {
          await this.client(signal, this.call(call, signal));
        } catch (error) {
          failures.push(
            error instanceof FirewallError ? error : new FirewallError('transient', String(error)),
          );
        }
      });
    }
    if (failures.length > 0) throw writeFailure(failures, calls.puts.length + calls.deletes.length);
    return callsWritten(base, calls);
  }

  /** One PUT or DELETE at "Resource Manager": travels, waits, lands (maybe late), answers. */
  private async call(call: RuleCall, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw new FirewallError('timeout', 'model: aborted before sending');
    // From the moment it is sent until it lands or dies, a call may still change the server.
    this.inFlight += 1;
    try {
      await this.delay(this.faults.travelMs);
      const held = this.takeHold(call);
      if (held) await held;
      else {
        const late = this.random() < this.faults.late;
        await this.delay(late ? this.faults.lateMs : this.faults.workMs);
      }
      if (this.random() < this.faults.fail)
        throw new FirewallError('transient', 'model: 500 on a rule call', undefined, {
          status: 500,
        });
      this.land(call, signal?.aborted ?? false);
    } finally {
      this.inFlight -= 1;
    }
    if (this.random() < this.faults.failAfter)
      throw new FirewallError('transient', 'model: applied, answered 500', undefined, {
        status: 500,
      });
    await this.delay(this.faults.travelMs);
  }

  private land(call: RuleCall, late: boolean): void {
    const key = call.name.toLowerCase();
    if (call.method === 'DELETE') {
      this.rules.delete(key);
    } else {
      const existing = this.rules.get(key);
      if (!existing && this.rules.size >= this.maxRules)
        throw new FirewallError('rejected', 'model: 40611, the rule limit', undefined, {
          status: 400,
        });
      this.rules.set(key, {
        name: existing?.name ?? call.name,
        startIpAddress: call.startIpAddress,
        endIpAddress: call.endIpAddress,
      });
    }
    this.landings.push({ method: call.method, name: call.name, late });
  }
}
