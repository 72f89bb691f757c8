import { randomUUID } from 'node:crypto';

import {
  type BrokerClient,
  brokerDataPlane,
  DataPlaneEndpoint,
  dataPlaneKind,
  type Lease,
  ProblemError,
  type TokenProvider,
  waitForDataPlane,
} from '../lib/index';

/**
 * The pipeline step both CI clients run (the GitHub action and the Azure
 * Pipelines task): grant and wait in the job's first step, release at the
 * end of the job. Each CI system brings its own state store (GitHub:
 * `core.saveState`; Azure Pipelines: task variables) and log.
 *
 * Why the state is written before the grant request: a job cancelled while
 * the request is in flight never learns the lease id, yet the broker may
 * finish the grant. The end step then repeats the grant with the saved
 * Idempotency-Key: the broker answers a repeat of a live lease (pending or
 * active) with that same lease once its rule is on the vault, and the end
 * step releases it. Listing the caller's active leases instead would miss a
 * grant still pending at the broker (it turns active after the list) and
 * could not tell this job's lease from another job's on the same vault and
 * principal. When the first request never reached the broker, the repeat
 * grants a lease that is released straight away: one needless rule write,
 * nothing left behind.
 */

/** Names of the saved state; values are single-line strings. */
export const STATE = {
  broker: 'kv_lease_broker',
  request: 'kv_lease_request',
  key: 'kv_lease_key',
  phase: 'kv_lease_phase',
  leaseId: 'kv_lease_id',
  release: 'kv_lease_release',
} as const;

/**
 * `granting`: the request went out, its outcome is unknown (cancelled,
 * network error, a 5xx): the end step repeats it to learn the lease.
 * `refused`: the broker answered 4xx, so no lease exists. `granted`: the
 * lease id is saved.
 */
export type Phase = 'granting' | 'refused' | 'granted';

export interface StateStore {
  save(name: string, value: string): void;
  /** '' when not saved. */
  get(name: string): string;
}

export interface StepLog {
  info(message: string): void;
  warning(message: string): void;
}

export interface GrantSettings {
  brokerUrl: string;
  /** The target's name, and the grant body's fields that carry it (`targetOf`). */
  target: { name: string; body: { target?: string; vault?: string } };
  ttlSeconds?: number;
  reason?: string;
  /** Wait for the target's data plane to let this address in. */
  wait: boolean;
  waitTimeoutMs: number;
  /** The configured data-plane address: wins over the broker's `dataPlane` / `vaultUri`. */
  dataPlane?: string;
  /** The explicit opt-in for a loopback data plane (the local emulator). */
  allowLoopbackDataPlane?: boolean;
  /** false: the end step leaves the lease to its expiry. */
  release: boolean;
  grantDeadlineMs: number;
}

interface SavedRequest {
  target?: string;
  vault?: string;
  ttlSeconds?: number;
  reason?: string;
}

export async function grantStep(
  settings: GrantSettings,
  deps: {
    client: BrokerClient;
    state: StateStore;
    log: StepLog;
    /** A data-plane token provider for the endpoint (its scope follows the DNS suffix). */
    vaultToken: (endpoint: DataPlaneEndpoint) => TokenProvider;
    signal?: AbortSignal;
    newKey?: () => string;
  },
): Promise<Lease> {
  const { client, state, log } = deps;
  const key = (deps.newKey ?? randomUUID)();
  const request: SavedRequest = {
    ...settings.target.body,
    ...(settings.ttlSeconds === undefined ? {} : { ttlSeconds: settings.ttlSeconds }),
    ...(settings.reason ? { reason: settings.reason } : {}),
  };
  // Everything the end step needs, saved before the request leaves.
  state.save(STATE.broker, settings.brokerUrl);
  state.save(STATE.request, JSON.stringify(request));
  state.save(STATE.key, key);
  state.save(STATE.release, String(settings.release));
  state.save(STATE.phase, 'granting' satisfies Phase);

  let lease: Lease;
  try {
    lease = await client.grant(
      { ...request, idempotencyKey: key },
      { deadlineMs: settings.grantDeadlineMs, ...(deps.signal ? { signal: deps.signal } : {}) },
    );
  } catch (error) {
    if (error instanceof ProblemError && error.status >= 400 && error.status < 500) {
      state.save(STATE.phase, 'refused' satisfies Phase);
    }
    throw error;
  }
  state.save(STATE.leaseId, lease.id);
  state.save(STATE.phase, 'granted' satisfies Phase);
  const name = lease.target ?? lease.vault;
  log.info(`kv-lease: lease ${lease.id} opens ${name} to ${lease.ip} until ${lease.expiresAt}`);
  for (const warning of lease.warnings ?? []) log.warning(`kv-lease: ${warning}`);

  if (settings.wait) {
    // A refused address fails the step like any failed wait: the end step releases the lease.
    const endpoint = DataPlaneEndpoint.resolve({
      vault: settings.target.name,
      kind: dataPlaneKind(lease.kind),
      brokerUri: brokerDataPlane(lease),
      configuredUri: settings.dataPlane,
      allowLoopback: settings.allowLoopbackDataPlane,
    });
    const address = endpoint.uri;
    const waited = await waitForDataPlane({
      endpoint,
      leasedIp: lease.ip,
      token: deps.vaultToken(endpoint),
      timeoutMs: settings.waitTimeoutMs,
      ...(deps.signal ? { signal: deps.signal } : {}),
      onProgress: ({ attempt, elapsedMs, clientAddress }) =>
        log.info(
          `kv-lease: ${address} still refuses this address (attempt ${attempt}, ${Math.round(elapsedMs / 1000)} s${clientAddress ? `, the ${endpoint.what} sees ${clientAddress}` : ''})`,
        ),
    });
    log.info(
      `kv-lease: the data plane of ${name} lets this address in after ${(waited.elapsedMs / 1000).toFixed(1)} s`,
    );
  }
  return lease;
}

export type ReleaseOutcome =
  | { kind: 'released'; leaseId: string }
  | { kind: 'kept'; leaseId?: string }
  | { kind: 'nothing'; why: string };

/**
 * The end-of-job step: release the lease the grant step saved, or, when the
 * grant's outcome is unknown, repeat the grant with its Idempotency-Key to
 * learn the lease and release that. Throws when the broker cannot be reached
 * or refuses; the caller reports it as a warning (the lease ends at expiry).
 */
export async function releaseStep(deps: {
  client: (brokerUrl: string) => BrokerClient;
  state: StateStore;
  log: StepLog;
  deadlineMs: number;
}): Promise<ReleaseOutcome> {
  const { state, log } = deps;
  const brokerUrl = state.get(STATE.broker);
  const phase = state.get(STATE.phase) as Phase | '';
  let leaseId = state.get(STATE.leaseId);
  if (!brokerUrl || !phase) return { kind: 'nothing', why: 'the grant step did not run' };
  if (phase === 'refused') return { kind: 'nothing', why: 'the broker refused the grant' };
  if (state.get(STATE.release) === 'false') {
    log.info(
      `kv-lease: release is off; ${leaseId ? `lease ${leaseId}` : 'the lease'} ends at its expiry`,
    );
    return { kind: 'kept', ...(leaseId ? { leaseId } : {}) };
  }
  const client = deps.client(brokerUrl);
  if (!leaseId) {
    const request = JSON.parse(state.get(STATE.request)) as SavedRequest;
    log.info(
      'kv-lease: the grant did not finish (cancelled or failed in flight); repeating it with its Idempotency-Key to find the lease',
    );
    try {
      const lease = await client.grant(
        { ...request, idempotencyKey: state.get(STATE.key) },
        { deadlineMs: deps.deadlineMs },
      );
      leaseId = lease.id;
    } catch (error) {
      if (error instanceof ProblemError && error.status >= 400 && error.status < 500) {
        return { kind: 'nothing', why: `the repeated grant was refused (${error.message})` };
      }
      throw error;
    }
  }
  const released = await client.release(leaseId, { deadlineMs: deps.deadlineMs });
  log.info(`kv-lease: lease ${leaseId} is ${released.status}`);
  return { kind: 'released', leaseId };
}

/** A TokenProvider that registers every token it hands out as a secret of the CI log. */
export function masked(provider: TokenProvider, setSecret: (value: string) => void): TokenProvider {
  return async () => {
    const token = await provider();
    setSecret(token);
    return token;
  };
}

/** A job-readable reason for the audit trail (the broker caps it at 256 characters). */
export function clampReason(reason: string): string {
  return reason.length <= 256 ? reason : `${reason.slice(0, 253)}...`;
}

/** `api://kv-lease` and `api://kv-lease/.default` both name the broker's scope. */
export function brokerScope(value: string): string {
  const trimmed = value.trim().replace(/\/+$/, '');
  return trimmed.endsWith('/.default') ? trimmed : `${trimmed}/.default`;
}
