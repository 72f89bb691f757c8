/**
 * The behaviour knobs every emulated resource kind shares (latency, injected faults, the write
 * throttle, permanent refusals, hangs, late-applied writes and the writes-in-flight count behind
 * a 409 on overlap), so a Storage account or SQL server misbehaves exactly as a vault does.
 * What differs per kind (the resource, its validation, its 409 code) stays with the kind.
 */
import { setTimeout as delay } from 'node:timers/promises';

import { ArmError, badRequest, codeForStatus } from './arm-error';
import type { Exchange } from './arm-exchange';
import { TokenBucket } from './chance';
import type { ArmMethod, EmulatorConfig } from './types';

const FAULT_MESSAGES: Readonly<Record<number, string>> = {
  429: 'Number of requests exceeded the limit. Please retry after the time given in Retry-After.',
  500: 'The server encountered an internal error. Please retry the request.',
  503: 'The service is temporarily unavailable. Please retry after the time given in Retry-After.',
};

/** The header Resource Manager sends with a write when the throttle is on. */
export function throttleHeaders(remaining: number | undefined): Record<string, string> {
  return remaining === undefined
    ? {}
    : { 'x-ms-ratelimit-remaining-subscription-writes': String(remaining) };
}

/** The counters the gate itself moves; they are global across kinds. */
export interface GateCounters {
  faultsInjected: number;
  lateApplied: number;
  refused: number;
  throttled: number;
}

/** What a refusal needs to know of the resource it refuses. */
export interface RefusalTarget {
  name: string;
  /** Lower-case resource id. */
  key: string;
  id: string;
  /** e.g. `Microsoft.Storage/storageAccounts`, for the 403 message. */
  type: string;
  notFound: () => ArmError;
}

export interface WriteSteps<T> {
  /** Validates and computes the result; may throw a 4xx. Runs after latency and faults. */
  prepare: () => T;
  /**
   * The kind's 409 for an overlapping write (it counts its own stats); undefined when the kind
   * does not serialise writes on this key.
   */
  conflict?: () => ArmError;
  /** Stores the result and answers; runs even when the client has gone (Azure does not undo). */
  apply: (prepared: T) => void;
}

export class ArmGate {
  private buckets = new Map<string, TokenBucket>();
  /** Writes per key between arrival and answer, doomed ones included. */
  private readonly inFlight = new Map<string, number>();

  constructor(
    private readonly config: () => EmulatorConfig,
    private readonly random: () => number,
    private readonly signal: AbortSignal,
    private readonly counters: GateCounters,
    private readonly log: ((line: string) => void) | undefined,
  ) {}

  /** Writes currently held on `key` (a lower-case resource id). */
  writesInFlight(key: string): number {
    return this.inFlight.get(key) ?? 0;
  }

  /** A throttle change starts every bucket afresh. */
  resetThrottle(): void {
    this.buckets = new Map();
  }

  sleep(ms: number): Promise<void> {
    return ms > 0 ? delay(ms, undefined, { signal: this.signal }) : Promise.resolve();
  }

  /** A read: the configured latency, then a possible fault. */
  async read(method: ArmMethod = 'GET'): Promise<void> {
    await this.sleep(this.config().readLatencyMs);
    this.maybeFault(method);
  }

  /**
   * A write holds its key from arrival until it answers. One that arrives while another is in
   * flight is doomed to the kind's 409 but still waits its own latency (a real one costs a round
   * trip) and still holds the key meanwhile: Azure gives no promise that a rejected write is cheap.
   */
  async write<T>(
    key: string,
    exchange: Exchange,
    method: ArmMethod,
    steps: WriteSteps<T>,
  ): Promise<void> {
    const config = this.config();
    const conflicted =
      steps.conflict !== undefined && config.conflictOnOverlap && this.writesInFlight(key) > 0;
    this.inFlight.set(key, this.writesInFlight(key) + 1);
    try {
      await this.sleep(config.writeLatencyMs);
      this.maybeFault(method);
      const late = this.config().lateApply;
      if (late && this.random() < late.rate) {
        // Held, then applied below whether or not the client is still waiting.
        await this.sleep(late.ms);
      }
      const hang = this.config().hang;
      if (hang && this.random() < hang.rate) {
        await this.sleep(hang.ms);
        // NOTE: a client that gave up during the hang gets nothing applied: the hang models a
        // request stuck before Resource Manager acted on it. (Azure can also apply a write whose
        // client timed out; normal write latency keeps that behaviour, see below.)
        if (exchange.clientGone) {
          return;
        }
      }
      const prepared = steps.prepare();
      if (conflicted && steps.conflict) {
        throw steps.conflict();
      }
      // Applied even when the client has hung up during the write latency: Azure does not undo a
      // write because its caller stopped listening.
      steps.apply(prepared);
      if (exchange.clientGone) {
        this.counters.lateApplied += 1;
        this.log?.(`${method} ${exchange.req.url ?? '?'} applied after its client gave up`);
      }
    } finally {
      const count = this.writesInFlight(key) - 1;
      if (count <= 0) {
        this.inFlight.delete(key);
      } else {
        this.inFlight.set(key, count);
      }
    }
  }

  /** Returns the tokens left, undefined when throttling is off; throws 429 when none is left. */
  takeWriteToken(subscriptionId: string): number | undefined {
    const throttle = this.config().writeThrottle;
    if (!throttle) {
      return undefined;
    }
    const bucketKey = subscriptionId.toLowerCase();
    let bucket = this.buckets.get(bucketKey);
    if (!bucket) {
      bucket = new TokenBucket(throttle.capacity, throttle.refillPerSecond, Date.now());
      this.buckets.set(bucketKey, bucket);
    }
    const taken = bucket.take(Date.now());
    if (!taken.ok) {
      this.counters.throttled += 1;
      throw new ArmError(
        429,
        'TooManyRequests',
        `Number of write requests for subscription '${subscriptionId}' exceeded the limit of ${throttle.capacity}, refilling at ${throttle.refillPerSecond} per second. Please retry after ${taken.retryAfterSeconds} second(s).`,
        {
          'Retry-After': String(taken.retryAfterSeconds),
          'x-ms-ratelimit-remaining-subscription-writes': '0',
        },
      );
    }
    return taken.remaining;
  }

  /**
   * A configured permanent refusal of the resource (matched by name or resource id), answered at
   * once: Resource Manager checks authorization and the resource before the provider sees it.
   */
  maybeRefuse(target: RefusalTarget, method: ArmMethod): void {
    const refusal = this.config().refusals.find(
      (candidate) =>
        (candidate.vault.toLowerCase() === target.key ||
          candidate.vault.toLowerCase() === target.name.toLowerCase()) &&
        (!candidate.methods || candidate.methods.includes(method)),
    );
    if (!refusal) {
      return;
    }
    this.counters.refused += 1;
    if (refusal.status === 404) {
      throw target.notFound();
    }
    if (refusal.status === 403) {
      const action = method === 'GET' ? 'read' : method === 'DELETE' ? 'delete' : 'write';
      throw new ArmError(
        403,
        'AuthorizationFailed',
        `The client 'kv-lease' with object id '00000000-0000-0000-0000-0000000000b0' does not have authorization to perform action '${target.type}/${action}' over scope '${target.id}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
      );
    }
    throw badRequest(
      `The request for '${target.name}' is invalid (refusal configured in the emulator).`,
    );
  }

  /** Decided after the latency and before anything is applied, so a faulted write changes nothing. */
  maybeFault(method: ArmMethod): void {
    const faults = this.config().faults;
    if (!faults || (faults.methods && !faults.methods.includes(method))) {
      return;
    }
    if (this.random() >= faults.rate) {
      return;
    }
    const status = faults.statuses[Math.floor(this.random() * faults.statuses.length)] ?? 500;
    this.counters.faultsInjected += 1;
    const headers: Record<string, string> =
      status === 429 || status === 503
        ? { 'Retry-After': String(faults.retryAfterSeconds ?? 1) }
        : {};
    throw new ArmError(
      status,
      codeForStatus(status),
      `${FAULT_MESSAGES[status] ?? 'The request failed.'} (fault injected by the emulator)`,
      headers,
    );
  }

  /**
   * Azure SQL may answer a rule delete with 409 `OperationInterrupted` (another operation on the
   * server got in the way); the `interruptedDeletes` knob injects it. Nothing is deleted then.
   */
  interruptDelete(): ArmError | undefined {
    const knob = this.config().interruptedDeletes;
    if (!knob || this.random() >= knob.rate) {
      return undefined;
    }
    this.counters.faultsInjected += 1;
    return new ArmError(
      409,
      'OperationInterrupted',
      'The operation on the resource could not be completed because it was interrupted by another operation on the same resource. (injected by the emulator)',
    );
  }
}
