import { checkContinuation } from '../../src/adapters/tables/continuation';
import type { AuditEntry, AuditLog, AuditQueryOptions } from '../../src/ports/audit-log';

/**
 * The audit trail in memory: append-only (no method changes an entry),
 * newest first, the API's filters. Passes the contract suite of the Table
 * Storage trail (test/contracts/audit-log.contract.ts).
 */
export class InMemoryAuditLog implements AuditLog {
  private readonly entries: AuditEntry[] = [];

  /** Everything appended, oldest first: what a test reads back. */
  all(): readonly AuditEntry[] {
    return this.entries;
  }

  append(entry: AuditEntry): Promise<void> {
    this.entries.push({ ...entry });
    return Promise.resolve();
  }

  // async: a token it did not issue rejects, as the adapter's does.
  async query(
    options: AuditQueryOptions,
  ): Promise<{ entries: AuditEntry[]; continuation?: string | undefined }> {
    const start =
      options.continuation === undefined
        ? 0
        : Number(
            (
              JSON.parse(
                Buffer.from(checkContinuation(options.continuation), 'base64').toString('utf8'),
              ) as { nextRowKey?: string }
            ).nextRowKey ?? 0,
          );
    const matching = this.entries
      .map((entry, index) => ({ entry, index }))
      .filter(
        ({ entry }) =>
          (options.vault === undefined || entry.vault === options.vault) &&
          (options.principal === undefined || entry.principal === options.principal) &&
          (options.since === undefined || entry.at >= options.since),
      )
      .sort((a, b) => b.entry.at - a.entry.at || b.index - a.index)
      .map(({ entry }) => ({ ...entry }));
    const entries = matching.slice(start, start + options.top);
    const more = start + options.top < matching.length;
    const continuation = more
      ? Buffer.from(
          JSON.stringify({ nextPartitionKey: 'audit', nextRowKey: String(start + options.top) }),
        ).toString('base64')
      : undefined;
    return { entries, continuation };
  }
}
