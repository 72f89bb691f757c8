import { randomBytes } from 'node:crypto';

import { TARGET_NAME } from './target';

/**
 * `pending`: recorded, its rule not yet confirmed on the vault (never shown by
 * the API). `failed`: never applied (timeout or capacity); hidden from the API
 * but kept for forensics. The public statuses are the contract's three.
 */
export type LeaseStatus = 'pending' | 'active' | 'released' | 'expired' | 'failed';
export type PublicLeaseStatus = 'active' | 'released' | 'expired';

export interface Lease {
  id: string;
  /** The target's name (v1 calls every target a vault). */
  vault: string;
  /** The target's kind (`TargetKind.name`); absent on rows written before targets: Key Vault. */
  kind?: string | undefined;
  /** Canonical CIDR, `a.b.c.d/32` for a single address. */
  ip: string;
  status: LeaseStatus;
  principal: string;
  appId?: string | undefined;
  reason?: string | undefined;
  createdAt: number;
  expiresAt: number;
  endedAt?: number | undefined;
  /** Why a lease failed, for operators (`capacity`, `timeout`). */
  failure?: string | undefined;
  /** Why its rule may not have the effect the caller expects (known at the grant, kept with the lease). */
  warnings?: string[] | undefined;
  /** Whether it holds a slot of its principal (LEASE_MAX_ACTIVE_PER_PRINCIPAL) to free when it ends. */
  slot?: boolean | undefined;
}

export function isLive(lease: Pick<Lease, 'status'>): boolean {
  return lease.status === 'pending' || lease.status === 'active';
}

export function isVisible(lease: Pick<Lease, 'status'>): boolean {
  return lease.status === 'active' || lease.status === 'released' || lease.status === 'expired';
}

const ID_TAIL = /^[a-z0-9]{24}$/;

/**
 * Lease ids are `<vault>.<24 chars>` so that a lease is a point read: the id
 * names its partition. The tail starts with a reversed timestamp, so a vault's
 * history lists newest first in key order.
 */
export function newLeaseId(vault: string, now: number): string {
  const reversed = (8_640_000_000_000_000 - now).toString(36).padStart(12, '0').slice(-12);
  const random = BigInt(`0x${randomBytes(8).toString('hex')}`)
    .toString(36)
    .padStart(13, '0')
    .slice(-12);
  return `${vault}.${reversed}${random}`;
}

/** Splits a lease id into its vault, or `undefined` when the shape is wrong. */
export function vaultOfLeaseId(id: string): string | undefined {
  const dot = id.indexOf('.');
  if (dot < 0) return undefined;
  const vault = id.slice(0, dot);
  const tail = id.slice(dot + 1);
  return TARGET_NAME.test(vault) && ID_TAIL.test(tail) ? vault : undefined;
}
