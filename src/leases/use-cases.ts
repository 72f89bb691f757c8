import type { Lease } from '../domain/lease';
import type { UseCase } from '../domain/use-case';
import type { GrantRequest, GrantResult, LeaseService, ListRequest, ListResult } from './leases';

/**
 * The lease use cases as callers see them: who may ask (roles, checked before
 * the input is read), and the service method that applies the finer rules
 * (owner or admin, LEASE_POLICY, limits) and reports what happened.
 */
export function leaseUseCases(leases: LeaseService) {
  const grant: UseCase<GrantRequest, GrantResult> = {
    name: 'grant',
    action: 'grant',
    roles: ['Lease.Request'],
    purpose: 'Requesting a lease',
    run: (principal, request, attempt) => leases.grant(principal, request, attempt),
  };
  const list: UseCase<ListRequest, ListResult> = {
    name: 'list-leases',
    roles: ['Lease.Request', 'Lease.Read'],
    purpose: 'Listing leases',
    run: (principal, request) => leases.list(principal, request),
  };
  const get: UseCase<{ id: string }, Lease> = {
    name: 'get-lease',
    roles: ['Lease.Request', 'Lease.Read'],
    purpose: 'Reading a lease',
    run: (principal, { id }) => leases.get(principal, id),
  };
  const renew: UseCase<{ id: string; ttlSeconds?: number | undefined }, Lease> = {
    name: 'renew',
    action: 'renew',
    roles: ['Lease.Request', 'Lease.Admin'],
    purpose: 'Changing a lease',
    run: (principal, { id, ttlSeconds }) => leases.renew(principal, id, ttlSeconds),
  };
  const release: UseCase<{ id: string }, Lease> = {
    name: 'release',
    action: 'release',
    roles: ['Lease.Request', 'Lease.Admin'],
    purpose: 'Changing a lease',
    run: (principal, { id }) => leases.release(principal, id),
  };
  return { grant, list, get, renew, release };
}

export type LeaseUseCases = ReturnType<typeof leaseUseCases>;
