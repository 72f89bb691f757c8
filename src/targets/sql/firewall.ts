import { randomBytes } from 'node:crypto';

import { SqlManagementClient } from '@azure/arm-sql';
import { isRestError } from '@azure/core-rest-pipeline';

import { mapWithLimit } from '../../domain/concurrency';
import { canonicalRule } from '../../domain/ip';
import type { ManagedTarget } from '../../domain/target';
import {
  FirewallError,
  type FirewallRules,
  type FirewallWrite,
  type TargetFirewall,
} from '../../ports/target-firewall';
import {
  armClientOptions,
  type ArmFirewallOptions,
  classifyArmError,
  perSubscription,
} from '../arm';
import { DataPlaneCache } from '../data-plane-cache';
import { sqlKind } from './kind';
import {
  callsWritten,
  listing,
  type RuleCall,
  ruleCalls,
  type SqlListing,
  type SqlRule,
  summary,
} from './rule-calls';

const LABEL = 'the SQL server';
/** The port a SQL server's data plane (TDS) listens on. */
const TDS_PORT = 1433;
/** Rule PUTs and DELETEs of one write in flight at once. */
export const SQL_WRITES_IN_FLIGHT = 8;

/**
 * An Azure SQL logical server's firewall through `@azure/arm-sql`: each rule
 * is its own child resource, so there is no list to replace. The broker's rules
 * are those named `kvlease-<a.b.c.d>-<n>` (rule-names.ts): `read` reports only
 * them, `write` PUTs the missing ones and DELETEs its own unneeded or malformed
 * ones, a bounded number in parallel, and never touches any other rule
 * (`AllowAllWindowsAzureIps`, 0.0.0.0, included). The caller holds the
 * server's writer role: two passes never write one server at once.
 */
export class SqlFirewall implements TargetFirewall {
  private readonly client: (subscriptionId: string) => SqlManagementClient;
  /** `fullyQualifiedDomainName:1433`: fixed for a server's life, kept once seen. */
  private readonly hosts = new DataPlaneCache();

  constructor(
    options: ArmFirewallOptions,
    private readonly inFlight = SQL_WRITES_IN_FLIGHT,
  ) {
    this.client = perSubscription(
      (subscriptionId) =>
        new SqlManagementClient(options.credential, subscriptionId, armClientOptions(options)),
    );
  }

  async read(server: ManagedTarget, signal?: AbortSignal): Promise<FirewallRules> {
    const listed: SqlRule[] = [];
    try {
      for await (const rule of this.client(server.subscriptionId).firewallRules.listByServer(
        server.resourceGroup,
        server.name,
        { abortSignal: signal },
      )) {
        listed.push({
          name: rule.name ?? '',
          startIpAddress: rule.startIpAddress ?? '',
          endIpAddress: rule.endIpAddress ?? '',
        });
      }
    } catch (error) {
      throw classifySqlError(error, signal);
    }
    const base = listing(listed);
    const { rules, dirty } = summary(base);
    return { rules, owned: rules, reserved: base.others, dirty, base };
  }

  dataPlane(server: ManagedTarget, signal?: AbortSignal): Promise<string | undefined> {
    return this.hosts.lookup(server, async () => {
      try {
        const read = await this.client(server.subscriptionId).servers.get(
          server.resourceGroup,
          server.name,
          { abortSignal: signal },
        );
        const host = read.fullyQualifiedDomainName;
        this.hosts.seen(server, host ? `${host}:${TDS_PORT}` : undefined);
      } catch (error) {
        throw classifySqlError(error, signal);
      }
    });
  }

  /**
   * PUT a rule for each CIDR of `next` that no correct broker rule holds, and
   * DELETE each broker rule not needed (its CIDR not in `next`, malformed, or a
   * second one on a range). A CIDR that a correct rule holds but that is not in
   * `current.rules` is PUT again (idempotent): the caller's way to re-assert a
   * rule that an abandoned DELETE may still remove (docs/architecture.md, "SQL: per-rule writes").
   *
   * If some calls fail, the others' effects stand (the next pass reads them):
   * once all have settled, the most telling failure is thrown.
   */
  async write(
    server: ManagedTarget,
    current: FirewallRules,
    next: string[],
    signal?: AbortSignal,
  ): Promise<FirewallWrite> {
    const base = current.base as SqlListing;
    refuseBeforeSending(next, current.reserved ?? base.others);
    // A fresh generation per re-asserting write: no earlier call ever named its rules.
    const generation = current.reassert ? randomBytes(6).toString('hex') : undefined;
    const calls = ruleCalls(
      base,
      current.reassert ? [] : current.rules,
      next,
      sqlKind.maxRules,
      generation,
    );
    const failures: FirewallError[] = [];
    for (const round of calls.rounds) {
      await mapWithLimit(round, this.inFlight, async (call) => {
        try {
          await this.send(server, call, signal);
        } catch (error) {
          failures.push(classifySqlError(error, signal));
        }
      });
    }
    if (failures.length > 0) throw writeFailure(failures, calls.puts.length + calls.deletes.length);
    return callsWritten(base, calls);
  }

  private async send(server: ManagedTarget, call: RuleCall, signal?: AbortSignal): Promise<void> {
    const rules = this.client(server.subscriptionId).firewallRules;
    if (call.method === 'PUT') {
      const { startIpAddress, endIpAddress } = call;
      await rules.createOrUpdate(
        server.resourceGroup,
        server.name,
        call.name,
        { startIpAddress, endIpAddress },
        { abortSignal: signal },
      );
    } else {
      await rules.delete(server.resourceGroup, server.name, call.name, { abortSignal: signal });
    }
  }
}

const LIMIT_REACHED = `The SQL server would hold more than its maximum of ${sqlKind.maxRules} firewall rules: remove rules the broker did not add to make room`;

/**
 * A write the server would refuse whatever happens, refused before any call
 * is sent (nothing changes, the outcome is known): a value that is not IPv4
 * (a SQL rule is an IPv4 range), or more rules than the server may hold
 * beside the `reserved` ones that are not the broker's. The plan never asks
 * for either; a server that fills up after the read still answers 40611.
 */
export function refuseBeforeSending(next: readonly string[], reserved: number): void {
  const cidrs = new Set<string>();
  for (const value of next) {
    const cidr = canonicalRule(value);
    if (cidr === undefined)
      throw new FirewallError(
        'rejected',
        `"${value}" cannot be a rule of ${LABEL}: its firewall rules are IPv4 ranges`,
      );
    cidrs.add(cidr);
  }
  if (reserved + cidrs.size > sqlKind.maxRules)
    throw new FirewallError(
      'rejected',
      `${LIMIT_REACHED} (${reserved} rules not the broker's and ${cidrs.size} leased ranges)`,
    );
}

/**
 * Resource Manager's SQL-specific refusals, said plainly; everything else as
 * every kind classifies it (409 `OperationInterrupted` is a conflict: retried).
 */
export function classifySqlError(error: unknown, signal?: AbortSignal): FirewallError {
  if (isRestError(error) && !signal?.aborted) {
    const options = { cause: error, status: error.statusCode };
    if (error.code === 'DenyPublicEndpointEnabled') {
      return new FirewallError(
        'rejected',
        `Public network access is disabled on ${LABEL}: it refuses firewall rule writes (400 DenyPublicEndpointEnabled). Enable public network access, or reach it through a private endpoint instead of a lease`,
        undefined,
        options,
      );
    }
    if (error.code === '40611' || /\b40611\b|maximum of \d+ firewall rules/i.test(error.message)) {
      // NOTE: the pass's read showed room, so someone added rules since: retried with a
      // fresh read, whose plan refuses the newest grants (409 at capacity) and lets
      // releases through, rather than failing every waiter of the pass with a 502.
      return new FirewallError('conflict', `${LIMIT_REACHED} (error 40611)`, undefined, options);
    }
  }
  return classifyArmError(error, signal, LABEL);
}

/** The rank of a failure: the lowest is the one a write reports. */
const PRECEDENCE: FirewallError['kind'][] = [
  'rejected',
  'not-found',
  'throttled',
  'conflict',
  'timeout',
  'transient',
];

/**
 * Several rule calls of one write failed: reports the most telling failure
 * (a refusal before anything the caller may retry), and says the outcome is
 * unknown when any call's is, so the caller keeps waiting for a call that may
 * still land, whatever the reported failure.
 */
export class SqlWriteError extends FirewallError {
  constructor(
    chosen: FirewallError,
    readonly failures: readonly FirewallError[],
    total: number,
  ) {
    const retryAfter = Math.max(-1, ...failures.map((failure) => failure.retryAfterMs ?? -1));
    super(
      chosen.kind,
      total <= 1
        ? chosen.message
        : `${chosen.message} (${failures.length} of ${total} firewall rule writes failed)`,
      retryAfter < 0 ? undefined : retryAfter,
      { cause: chosen.cause, status: chosen.status },
    );
  }

  override get outcomeUnknown(): boolean {
    return this.failures.some((failure) => failure.outcomeUnknown);
  }
}

/** The one error a write whose calls failed throws (`failures` not empty), of `total` calls. */
export function writeFailure(failures: FirewallError[], total: number): SqlWriteError {
  const ranked = [...failures].sort(
    (a, b) => PRECEDENCE.indexOf(a.kind) - PRECEDENCE.indexOf(b.kind),
  );
  return new SqlWriteError(ranked[0] as FirewallError, failures, total);
}
