import type { UseCase } from '../domain/use-case';
import type { AuditEntry, AuditLog, AuditQueryOptions } from '../ports/audit-log';

/** Reading the audit trail, newest first: Lease.Read. */
export function readAuditUseCase(
  log: AuditLog,
  targetsOfKind: (kind: string) => string[],
): UseCase<AuditQuery, { entries: AuditEntry[]; continuation?: string | undefined }> {
  return {
    name: 'read-audit',
    roles: ['Lease.Read'],
    purpose: 'Reading the audit trail',
    run: (_principal, { kind, ...query }) =>
      log.query(kind === undefined ? query : { ...query, vaults: targetsOfKind(kind) }),
  };
}

/** The audit trail's filters as the API takes them: `kind` selects the targets of one kind. */
export type AuditQuery = Omit<AuditQueryOptions, 'vaults'> & { kind?: string | undefined };
