import type { AuditLog } from '../audit/port';
import type { Authenticator } from '../auth/principal';
import type { Logger } from '../domain/logger';
import type { LeaseService } from '../grant/leases';
import type { VaultSummary } from '../grant/vaults';
import type { SweepResult } from '../sweep/sweep';

/** What the function handlers need; built once by the composition root. */
export interface Services {
  auth: Authenticator;
  audit: AuditLog;
  leases: LeaseService;
  vaults(): Promise<VaultSummary[]>;
  /** Resolves when the lease store answers. */
  health(): Promise<void>;
  sweep(): Promise<SweepResult>;
  logger: Logger;
}
