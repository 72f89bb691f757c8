import type { EventSink } from '../domain/events';
import type { Logger } from '../domain/logger';
import type { Authenticator } from '../domain/principal';
import type { UseCase } from '../domain/use-case';
import type { LeaseUseCases } from '../leases/use-cases';
import type { TargetSummary } from '../overview/targets';
import type { AuditEntry, AuditQueryOptions } from '../ports/audit-log';
import type { SweepResult } from '../sweep/sweep';

/**
 * What the entry points (HTTP routes and the sweep timer) need, built once by
 * the composition root (src/app/composition.ts).
 */
export interface Services {
  auth: Authenticator;
  /** The audit trail, for refusals and failures recorded by `perform`. */
  events: EventSink;
  leases: LeaseUseCases;
  targets: UseCase<void, TargetSummary[]>;
  audit: UseCase<AuditQueryOptions, { entries: AuditEntry[]; continuation?: string | undefined }>;
  /** Resolves when the lease store answers. */
  health(): Promise<void>;
  /**
   * One sweep. Its audit entries (expiries, firewall writes) carry
   * `invocationId`: the timer's, when the caller passes it, else a generated
   * `sweep:<uuid>` that the sweep's first log line names.
   */
  sweep(invocationId?: string): Promise<SweepResult>;
  /**
   * Graceful shutdown: release the writer locks this instance holds, so
   * another instance takes its vaults over at once (host `appTerminate`,
   * SIGTERM/SIGINT of the local runner).
   */
  shutdown(): Promise<void>;
  logger: Logger;
}
