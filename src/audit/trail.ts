import type { Clock } from '../domain/clock';
import { isDomainError } from '../domain/errors';
import type { Attempt, BrokerEvent, EventSink } from '../domain/events';
import type { Lease } from '../domain/lease';
import type { Principal } from '../domain/principal';
import { currentInvocationId } from '../observability/invocation';
import { redact } from '../observability/redact';
import type { AuditEntry, AuditLog } from '../ports/audit-log';

/** The principal of entries the broker writes on its own behalf (expiry, firewall writes). */
export const BROKER_ACTOR = 'kv-lease';

const iso = (ms: number) => new Date(ms).toISOString();

type EntryBody = Omit<AuditEntry, 'at' | 'invocationId'>;

function leaseFields(lease: Lease): Pick<EntryBody, 'vault' | 'ip' | 'leaseId'> {
  return { vault: lease.vault, ip: lease.ip, leaseId: lease.id };
}

function byPrincipal(principal: Principal | undefined): Pick<EntryBody, 'principal' | 'appId'> {
  return { principal: principal?.id ?? 'anonymous', appId: principal?.appId };
}

/** An entry the broker writes about a lease (its expiry, a withdrawn grant) names the lease's holder. */
function heldBy(lease: Lease): Pick<EntryBody, 'principal' | 'appId'> {
  return { principal: lease.principal, appId: lease.appId };
}

function attemptFields(attempt: Attempt): Omit<EntryBody, 'action' | 'outcome' | 'detail'> {
  return {
    ...byPrincipal(attempt.principal),
    vault: attempt.vault,
    ip: attempt.ip,
    leaseId: attempt.leaseId,
  };
}

/** Why a request was refused or failed, as the first words of an entry's detail. */
function why(attempt: string, error: unknown): string {
  const reason = isDomainError(error) ? `${error.code}: ${error.message}` : 'internal error';
  return redact(`${attempt}: ${reason}`).slice(0, 1024);
}

/** The one mapping from what happened to what the audit trail says. */
export function auditEntryFor(event: BrokerEvent): EntryBody {
  switch (event.type) {
    case 'lease-granted':
      return {
        action: 'grant',
        ...byPrincipal(event.by),
        ...leaseFields(event.lease),
        outcome: 'success',
        detail: `expires ${iso(event.lease.expiresAt)}`,
      };
    case 'lease-renewed':
      return {
        action: 'renew',
        ...byPrincipal(event.by),
        ...leaseFields(event.lease),
        outcome: 'success',
        detail: `expires ${iso(event.lease.expiresAt)}`,
      };
    case 'lease-released':
      return {
        action: 'release',
        ...byPrincipal(event.by),
        ...leaseFields(event.lease),
        outcome: 'success',
        detail: `released, was due to expire ${iso(event.lease.expiresAt)}`,
      };
    case 'lease-expired':
      return {
        action: 'expire',
        ...heldBy(event.lease),
        ...leaseFields(event.lease),
        outcome: event.outcome,
        detail: `expired, ended by ${BROKER_ACTOR}; ${event.detail}`.slice(0, 1024),
      };
    case 'grant-withdrawn':
      return {
        action: 'grant',
        ...heldBy(event.lease),
        ...leaseFields(event.lease),
        outcome: 'failure',
        detail: redact(event.detail).slice(0, 1024),
      };
    case 'firewall-written': {
      // What was written against what the pass read: the entry alone tells
      // which rules the write changed, and the whole list it left.
      const list = (rules: string[]) => `[${rules.join(', ')}]`;
      const unchanged = event.added.length === 0 && event.removed.length === 0;
      return {
        action: 'firewall-write',
        principal: BROKER_ACTOR,
        vault: event.vault,
        outcome: event.outcome,
        detail:
          `read ${list(event.read)}; ${event.outcome === 'success' ? 'wrote' : 'tried to write'} ${list(event.written)}: added ${list(event.added)} removed ${list(event.removed)}${unchanged ? ' (unchanged, rewritten while an earlier write might still land)' : ''}${event.detail ? `: ${event.detail}` : ''}`.slice(
            0,
            4096,
          ),
      };
    }
    case 'request-refused':
      return {
        action: 'refused',
        ...attemptFields(event),
        outcome: 'refused',
        detail: why(event.attempt, event.error),
      };
    case 'request-failed':
      return {
        action: event.action ?? 'refused',
        ...attemptFields(event),
        outcome: 'failure',
        detail: why(event.attempt, event.error),
      };
  }
}

/**
 * The audit trail as the use cases see it: events in, append-only entries
 * out, each stamped with the broker's clock and the invocation it ran in.
 */
export function auditTrail(
  log: AuditLog,
  clock: Clock,
  kindOfTarget: (name: string) => string | undefined = () => undefined,
): EventSink {
  return {
    emit: (event) => {
      const entry = auditEntryFor(event);
      return log.append({
        ...entry,
        kind: entry.vault === undefined ? undefined : kindOfTarget(entry.vault),
        at: clock.now(),
        invocationId: currentInvocationId(),
      });
    },
  };
}
