import type { Clock } from '../domain/clock';
import type { Logger } from '../domain/logger';
import type { Authenticator } from '../domain/principal';
import type { LeaseService } from '../leases/leases';
import type { AuditLog } from '../ports/audit-log';
import type { SweepResult } from '../sweep/sweep';
import type { VaultSummary } from '../vaults/vaults';

/** What the function handlers need; built once by the composition root. */
export interface Services {
  auth: Authenticator;
  audit: AuditLog;
  leases: LeaseService;
  vaults(): Promise<VaultSummary[]>;
  /** The data-plane URI of a managed vault (by name), when Resource Manager tells it. */
  vaultUri?(vault: string): Promise<string | undefined>;
  /** Resolves when the lease store answers. */
  health(): Promise<void>;
  /**
   * One sweep. Its audit entries (expiries, firewall writes) carry
   * `invocationId`: the timer's, when the caller passes it, else a generated
   * `sweep:<uuid>` that the sweep's first log line names.
   */
  sweep(invocationId?: string): Promise<SweepResult>;
  logger: Logger;
  /** The clock of every timestamp the broker writes, audit entries included. */
  clock: Clock;
}
