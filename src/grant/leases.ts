import { hasRole, type Principal, requireAnyRole, requireRole } from '../auth/principal';
import type { Config, ManagedVault } from '../config';
import type { Clock } from '../domain/clock';
import { DomainError } from '../domain/errors';
import { parseLeaseIp } from '../domain/ip';
import {
  isLive,
  isVisible,
  type Lease,
  newLeaseId,
  type PublicLeaseStatus,
  vaultOfLeaseId,
} from '../domain/lease';
import type { PassOutcome, VaultCoordinator } from '../reconcile/coordinator';
import type { LeaseStore, StoredLease } from '../store/port';

export interface GrantRequest {
  vault: string;
  ttlSeconds?: number | undefined;
  ip?: string | undefined;
  reason?: string | undefined;
  idempotencyKey?: string | undefined;
  /** The caller's address as the front end saw it (rightmost X-Forwarded-For). */
  clientAddress?: string | undefined;
}

export interface GrantResult {
  lease: Lease;
  /** false when an Idempotency-Key repeat returned an existing lease. */
  created: boolean;
}

export interface ListRequest {
  vault?: string | undefined;
  status: PublicLeaseStatus | 'all';
  top: number;
  /** Opaque token from a previous page. */
  skipToken?: string | undefined;
}

export interface ListResult {
  leases: Lease[];
  skipToken?: string | undefined;
}

export type LeasePolicy = Pick<
  Config,
  | 'LEASE_DEFAULT_TTL_SECONDS'
  | 'LEASE_MIN_TTL_SECONDS'
  | 'LEASE_MAX_TTL_SECONDS'
  | 'LEASE_MIN_PREFIX'
  | 'LEASE_APPLY_TIMEOUT_SECONDS'
>;

export interface LeaseServiceDeps {
  store: LeaseStore;
  coordinator: VaultCoordinator;
  clock: Clock;
  vaults: ManagedVault[];
  policy: LeasePolicy;
}

function stripEtag(lease: StoredLease | Lease): Lease {
  const { etag: _etag, ...rest } = lease as StoredLease;
  return rest;
}

/**
 * The lease lifecycle as pipelines and operators see it: grant, read, list,
 * renew, release. Every change is written to the store first (the desired
 * state); the answer waits until the vault's firewall reflects it.
 */
export class LeaseService {
  private readonly vaultNames: Set<string>;

  constructor(private readonly deps: LeaseServiceDeps) {
    this.vaultNames = new Set(deps.vaults.map((vault) => vault.name));
  }

  private managedVault(name: string): string {
    const vault = name.toLowerCase();
    if (!this.vaultNames.has(vault)) {
      throw new DomainError('VAULT.NOT_FOUND', `The vault "${name}" is not managed by this broker`);
    }
    return vault;
  }

  private ttlMs(ttlSeconds: number | undefined): number {
    const {
      LEASE_DEFAULT_TTL_SECONDS: fallback,
      LEASE_MIN_TTL_SECONDS: min,
      LEASE_MAX_TTL_SECONDS: max,
    } = this.deps.policy;
    const ttl = ttlSeconds ?? fallback;
    if (ttl < min || ttl > max) {
      const message = `ttlSeconds must be between ${min} and ${max}`;
      throw new DomainError('LEASE.TTL_OUT_OF_RANGE', message, {
        errors: [{ path: 'ttlSeconds', message }],
      });
    }
    return ttl * 1000;
  }

  private deadline(): number {
    return this.deps.clock.now() + this.deps.policy.LEASE_APPLY_TIMEOUT_SECONDS * 1000;
  }

  async grant(principal: Principal, request: GrantRequest): Promise<GrantResult> {
    requireRole(principal, 'Lease.Request', 'Requesting a lease');
    const vault = this.managedVault(request.vault);
    const ttl = this.ttlMs(request.ttlSeconds);
    let ip: string;
    if (request.ip !== undefined) {
      requireRole(principal, 'Lease.Admin', 'Naming an explicit ip');
      ip = parseLeaseIp(request.ip, this.deps.policy.LEASE_MIN_PREFIX);
    } else if (request.clientAddress !== undefined) {
      ip = parseLeaseIp(request.clientAddress, 32);
    } else {
      throw new DomainError(
        'LEASE.NO_CLIENT_IP',
        'The caller address is unknown: no X-Forwarded-For header. Call through the Functions front end, or (Lease.Admin) name an ip.',
      );
    }

    const now = this.deps.clock.now();
    const lease: Lease = {
      id: newLeaseId(vault, now),
      vault,
      ip,
      status: 'pending',
      principal: principal.id,
      appId: principal.appId,
      reason: request.reason,
      createdAt: now,
      expiresAt: now + ttl,
    };
    const recorded = await this.deps.store.createLease(lease, request.idempotencyKey);
    if (!recorded.created && recorded.lease.status === 'active') {
      return { lease: stripEtag(recorded.lease), created: false };
    }
    const applied = await this.waitApplied(recorded.lease);
    return { lease: stripEtag(applied), created: recorded.created };
  }

  /** Wait until the firewall holds the lease's rule; on timeout leave no live lease behind. */
  private async waitApplied(lease: StoredLease): Promise<StoredLease> {
    const deadline = this.deadline();
    let outcome: PassOutcome | undefined;
    for (;;) {
      try {
        outcome = await this.deps.coordinator.sync(lease.vault, deadline);
      } catch (error) {
        // Whatever stopped us (timeout, store outage), leave no live lease
        // behind; if the store is down too, the writer fails it later.
        const failure =
          error instanceof DomainError
            ? error
            : new DomainError('VAULT.UPDATE_TIMEOUT', 'The vault firewall could not be updated', { retryAfterSeconds: 5 });
        return this.abandon(lease, failure).catch((abandonError: unknown) => {
          throw abandonError instanceof DomainError && abandonError !== failure ? failure : abandonError;
        });
      }
      if (outcome?.refused.has(lease.id)) throw this.atCapacity(lease);
      const current = await this.deps.store.getLease(lease.id, lease.vault);
      if (!current)
        throw new DomainError('LEASE.NOT_FOUND', 'The lease disappeared while being granted');
      if (current.status === 'failed') {
        if (current.failure === 'capacity') throw this.atCapacity(lease);
        throw new DomainError(
          'VAULT.UPDATE_TIMEOUT',
          'The vault firewall could not be updated in time',
          {
            retryAfterSeconds: 5,
          },
        );
      }
      if (current.status !== 'pending') return current;
    }
  }

  private atCapacity(lease: Lease): DomainError {
    return new DomainError(
      'VAULT.AT_CAPACITY',
      `The vault ${lease.vault} holds the maximum number of IP rules; no rule can be added until one is removed`,
    );
  }

  private async abandon(lease: StoredLease, timeout: DomainError): Promise<StoredLease> {
    let current = await this.deps.store.getLease(lease.id, lease.vault);
    for (let attempt = 0; current && attempt < 5; attempt += 1) {
      if (current.status !== 'pending') break;
      const ended = await this.deps.store.endLease(
        current,
        'failed',
        this.deps.clock.now(),
        'timeout',
      );
      if (ended) throw timeout;
      current = await this.deps.store.getLease(lease.id, lease.vault);
    }
    // A writer marked it active just in time: the rule is there.
    if (current?.status === 'active') return current;
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
    requireAnyRole(principal, ['Lease.Request', 'Lease.Read'], 'Reading a lease');
    return stripEtag(await this.visibleLease(principal, id));
  }

  private async ownedLease(principal: Principal, id: string): Promise<StoredLease> {
    requireAnyRole(principal, ['Lease.Request', 'Lease.Admin'], 'Changing a lease');
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
    let lease = await this.ownedLease(principal, id);
    const ttl = this.ttlMs(ttlSeconds);
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
      if (renewed) return stripEtag(renewed);
      lease = await this.visibleLease(principal, id);
    }
    throw new DomainError('STORE.UNAVAILABLE', 'The lease kept changing; try again', {
      retryAfterSeconds: 1,
    });
  }

  /** `changed` is false when the lease had already ended (answered unchanged). */
  async release(principal: Principal, id: string): Promise<{ lease: Lease; changed: boolean }> {
    let lease = await this.ownedLease(principal, id);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      if (!isLive(lease)) return { lease: stripEtag(lease), changed: false };
      const ended = await this.deps.store.endLease(lease, 'released', this.deps.clock.now());
      if (ended) {
        // The rule must be gone before the answer (unless another lease holds the IP).
        await this.deps.coordinator.sync(lease.vault, this.deadline());
        return { lease: stripEtag(ended), changed: true };
      }
      const fresh = await this.deps.store.getLease(id, lease.vault);
      if (!fresh) throw new DomainError('LEASE.NOT_FOUND', `No lease with id "${id}"`);
      lease = fresh;
    }
    throw new DomainError('STORE.UNAVAILABLE', 'The lease kept changing; try again', {
      retryAfterSeconds: 1,
    });
  }

  async list(principal: Principal, request: ListRequest): Promise<ListResult> {
    requireAnyRole(principal, ['Lease.Request', 'Lease.Read'], 'Listing leases');
    const ownOnly = !hasRole(principal, 'Lease.Read');
    const vaults =
      request.vault === undefined
        ? this.deps.vaults.map((vault) => vault.name)
        : [this.managedVault(request.vault)];
    const cursor = decodeSkipToken(request.skipToken, vaults.length);
    const leases: Lease[] = [];
    let index = cursor.index;
    let continuation = cursor.continuation;
    while (index < vaults.length && leases.length < request.top) {
      const page = await this.deps.store.listLeases({
        vault: vaults[index] as string,
        status: request.status,
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
    const more = index < vaults.length;
    return { leases, skipToken: more ? encodeSkipToken({ index, continuation }) : undefined };
  }
}

interface Cursor {
  index: number;
  continuation?: string | undefined;
}

function encodeSkipToken(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeSkipToken(token: string | undefined, vaultCount: number): Cursor {
  if (token === undefined) return { index: 0 };
  try {
    const cursor = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Cursor;
    if (Number.isInteger(cursor.index) && cursor.index >= 0 && cursor.index < vaultCount) {
      if (cursor.continuation === undefined || typeof cursor.continuation === 'string')
        return cursor;
    }
  } catch {
    // fall through to the error below
  }
  const message = 'is not a token this API issued';
  throw new DomainError('REQUEST.INVALID', `$skiptoken ${message}`, {
    errors: [{ path: '$skiptoken', message }],
  });
}
