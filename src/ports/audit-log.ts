/** One line of the append-only audit trail (contract guarantee 6). */
export interface AuditEntry {
  at: number;
  action: 'grant' | 'renew' | 'release' | 'expire' | 'firewall-write' | 'read' | 'refused';
  principal: string;
  appId?: string | undefined;
  /** The target's name (v1 calls every target a vault). */
  vault?: string | undefined;
  /** The target's kind (`TargetKind.name`), when the entry names a target. */
  kind?: string | undefined;
  ip?: string | undefined;
  leaseId?: string | undefined;
  outcome: 'success' | 'failure' | 'refused';
  detail?: string | undefined;
  /** The Functions invocation id, to correlate with logs. */
  invocationId?: string | undefined;
}

export interface AuditQueryOptions {
  vault?: string | undefined;
  /** Only entries naming one of these targets (a kind's targets). */
  vaults?: string[] | undefined;
  principal?: string | undefined;
  since?: number | undefined;
  top: number;
  continuation?: string | undefined;
}

/**
 * Append-only by construction: the port has no update and no delete, and
 * the table implementation only ever creates entities.
 */
export interface AuditLog {
  append(entry: AuditEntry): Promise<void>;
  query(
    options: AuditQueryOptions,
  ): Promise<{ entries: AuditEntry[]; continuation?: string | undefined }>;
}
