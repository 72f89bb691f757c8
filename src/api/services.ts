import type { EventSink } from '../domain/events';
import type { Logger } from '../domain/logger';
import type { Authenticator } from '../domain/principal';
import type { UseCase } from '../domain/use-case';
import type { LeaseUseCases } from '../leases/use-cases';
import type { AuditEntry, AuditQueryOptions } from '../ports/audit-log';
import type { SweepResult } from '../sweep/sweep';
import type { VaultSummary } from '../vaults/vaults';

/**
 * What the entry points (HTTP routes and the sweep timer) need, built once by
 * the composition root (src/app/composition.ts).
 */
export interface Services {
  auth: Authenticator;
  /** The audit trail, for refusals and failures recorded by `perform`. */
  events: EventSink;
  leases: LeaseUseCases;
  vaults: UseCase<void, VaultSummary[]>;
  audit: UseCase<AuditQueryOptions, { entries: AuditEntry[]; continuation?: string | undefined }>;
  /** Resolves when the lease store answers. */
  health(): Promise<void>;
  /**
   * One sweep. Its audit entries (expiries, firewall writes) carry
   * `invocationId`: the timer's, when the caller passes it, else a generated
   * `sweep:<uuid>` that the sweep's first log line names.
   */
  sweep(invocationId?: string): Promise<SweepResult>;
  logger: Logger;
}
