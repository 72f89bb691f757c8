import type { UseCase } from '../domain/use-case';
import type { AuditEntry, AuditLog, AuditQueryOptions } from '../ports/audit-log';

/** Reading the audit trail, newest first: Lease.Read. */
export function readAuditUseCase(
  log: AuditLog,
): UseCase<AuditQueryOptions, { entries: AuditEntry[]; continuation?: string | undefined }> {
  return {
    name: 'read-audit',
    roles: ['Lease.Read'],
    purpose: 'Reading the audit trail',
    run: (_principal, query) => log.query(query),
  };
}
