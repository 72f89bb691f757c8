import { isDomainError } from '../domain/errors';
import { callerAddress, callerLeaseIp } from '../domain/ip';
import { type Principal, type Role, ROLES } from '../domain/principal';

/** What `GET /api/whoami` answers (contract section 5). */
export interface WhoAmI {
  principal: string;
  /** The roles the broker recognised, in the order of ROLES (Lease.Admin implies the others). */
  roles: Role[];
  /** The address a grant without `ip` would lease. */
  ip?: string | undefined;
  /** Why no address could be taken, when there is none: the detail a grant would answer. */
  ipProblem?: string | undefined;
}

/**
 * Who the caller is to the broker and which address a grant without `ip`
 * would lease for it, taken by the grant's own rule (`callerAddress`, then
 * `callerLeaseIp`), so the two cannot disagree. It reads nothing and changes
 * nothing: no store, no audit, no firewall.
 */
export function whoami(principal: Principal, forwardedFor: string | null): WhoAmI {
  const roles = ROLES.filter((role) => principal.roles.has(role));
  try {
    return { principal: principal.id, roles, ip: callerLeaseIp(callerAddress(forwardedFor)) };
  } catch (error) {
    if (
      isDomainError(error) &&
      (error.code === 'LEASE.NO_CLIENT_IP' || error.code === 'LEASE.IP_NOT_ALLOWED')
    ) {
      return { principal: principal.id, roles, ipProblem: error.message };
    }
    throw error;
  }
}
