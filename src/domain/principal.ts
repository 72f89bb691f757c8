import { DomainError } from './errors';

export const ROLES = ['Lease.Request', 'Lease.Read', 'Lease.Admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, as established by an Authenticator. */
export interface Principal {
  /** The token's `oid`, or `local-dev` when auth is disabled. */
  id: string;
  /** The calling application (`appid`/`azp`), when known. */
  appId?: string | undefined;
  /**
   * A user's token obtained through the application `appId` (delegated, `scp`), as opposed to
   * the application calling as itself (app-only). LEASE_POLICY's `appIds` match app-only callers.
   */
  delegated?: boolean | undefined;
  roles: ReadonlySet<Role>;
}

/** Lease.Admin implies the other two roles. */
export function hasRole(principal: Principal, role: Role): boolean {
  return principal.roles.has(role) || principal.roles.has('Lease.Admin');
}

/** `AUTH.FORBIDDEN` unless the principal holds one of `roles`; `action` names the request. */
export function requireAnyRole(principal: Principal, roles: Role[], action: string): void {
  if (!roles.some((role) => hasRole(principal, role))) {
    const needs =
      roles.length === 1 ? `the ${roles[0]} role` : `one of the roles ${roles.join(', ')}`;
    throw new DomainError('AUTH.FORBIDDEN', `${action} needs ${needs}`);
  }
}

/** The headers an authenticator may look at. */
export interface RequestHeaders {
  get(name: string): string | null;
}

/**
 * Establishes the caller of a request. Throws `AUTH.UNAUTHENTICATED` (401) for
 * a missing or bad credential and `AUTH.UNAVAILABLE` (503) when it cannot
 * decide (e.g. the key set cannot be fetched).
 */
export interface Authenticator {
  authenticate(headers: RequestHeaders): Promise<Principal>;
}

/** `AUTH_MODE=disabled`: every caller is `local-dev` with all roles. */
export const disabledAuthenticator: Authenticator = {
  authenticate: () =>
    Promise.resolve({
      id: 'local-dev',
      roles: new Set<Role>(['Lease.Request', 'Lease.Read', 'Lease.Admin']),
    }),
};
