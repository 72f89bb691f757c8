import { randomBytes } from 'node:crypto';

import { odata, TableClient } from '@azure/data-tables';

import type { Logger } from '../../domain/logger';
import { errorFields } from '../../observability/error-fields';
import type { AuditEntry, AuditLog, AuditQueryOptions } from '../../ports/audit-log';
import { checkContinuation } from './continuation';
import { isTableNotFound, storeCall } from './table-errors';

/**
 * Keys sort newest first: PartitionKey is the reversed UTC day, RowKey the
 * reversed epoch ms plus a random suffix. A plain query therefore returns the
 * trail newest first, and `since` prunes whole days.
 */
const MAX_MS = 9_999_999_999_999;

function reversedDay(ms: number): string {
  const day = Number(new Date(ms).toISOString().slice(0, 10).replaceAll('-', ''));
  return String(99_999_999 - day).padStart(8, '0');
}

type AuditRow = Record<string, unknown> & { partitionKey: string; rowKey: string };

function reversedMs(ms: number): string {
  return String(MAX_MS - ms).padStart(13, '0');
}

/**
 * Append-only: the only writes create new, randomly suffixed row keys
 * (`createEntity`, or a transaction of `create` actions); no code path
 * updates, upserts or deletes an entry.
 */
export class TableAuditLog implements AuditLog {
  private ready: Promise<unknown> | undefined;

  constructor(
    private readonly client: TableClient,
    private readonly logger: Logger,
  ) {}

  private async ensureTable(): Promise<void> {
    this.ready ??= this.client.createTable().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    await this.ready;
  }

  /**
   * Entries appended in the same turn of the event loop (a burst of grants
   * answered by one writer pass) are written together: one transaction of up
   * to 100 `create` actions per day partition, so the trail costs the store a
   * handful of calls, not one per request. Each caller still waits for its
   * own entry to be written.
   */
  append(entry: AuditEntry): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({ entry, done: resolve });
      this.flushing ??= new Promise<void>((scheduled) => setImmediate(scheduled)).then(() =>
        this.flush(),
      );
    });
  }

  private queue: { entry: AuditEntry; done: () => void }[] = [];
  private flushing: Promise<void> | undefined;

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0);
    this.flushing = undefined;
    const rows = batch.map(({ entry }): AuditRow => ({
      partitionKey: reversedDay(entry.at),
      rowKey: `${reversedMs(entry.at)}_${randomBytes(6).toString('hex')}`,
      ...Object.fromEntries(Object.entries(entry).filter(([, value]) => value !== undefined)),
    }));
    try {
      await this.withTable(() => this.write(rows));
    } catch (error) {
      this.lost(rows, error);
    } finally {
      for (const { done } of batch) done();
    }
  }

  /**
   * Runs `work` once the table exists. A store that came back empty (a
   * restarted emulator, a recreated account) has lost the table: create it
   * again and retry once, as the lease store does.
   */
  private async withTable<T>(work: () => Promise<T>): Promise<T> {
    await this.ensureTable();
    try {
      return await work();
    } catch (error) {
      if (!isTableNotFound(error)) throw error;
      this.ready = undefined;
      await this.ensureTable();
      return work();
    }
  }

  private async write(rows: AuditRow[]): Promise<void> {
    const byDay = new Map<string, typeof rows>();
    for (const row of rows)
      byDay.set(row.partitionKey, [...(byDay.get(row.partitionKey) ?? []), row]);
    const chunks = [...byDay.values()].flatMap((day) =>
      Array.from({ length: Math.ceil(day.length / 100) }, (_, n) =>
        day.slice(n * 100, n * 100 + 100),
      ),
    );
    await Promise.all(
      chunks.map(async (chunk) => {
        if (chunk.length === 1) return this.writeOne(chunk[0] as AuditRow);
        try {
          await this.client.submitTransaction(chunk.map((row) => ['create', row]));
        } catch (error) {
          if (isTableNotFound(error)) throw error;
          await Promise.all(chunk.map((row) => this.writeOne(row)));
        }
      }),
    );
  }

  private async writeOne(row: AuditRow): Promise<void> {
    try {
      await this.client.createEntity(row);
    } catch (error) {
      if (isTableNotFound(error)) throw error;
      this.lost([row], error);
    }
  }

  /**
   * NOTE: the action already happened; losing its audit line is logged
   * loudly rather than turned into a failed request.
   */
  private lost(rows: Record<string, unknown>[], error: unknown): void {
    for (const row of rows) {
      this.logger.error('Audit entry could not be written', {
        action: row.action,
        leaseId: row.leaseId,
        ...errorFields(error),
      });
    }
  }

  async query(
    options: AuditQueryOptions,
  ): Promise<{ entries: AuditEntry[]; continuation?: string | undefined }> {
    const continuation =
      options.continuation === undefined ? undefined : checkContinuation(options.continuation);
    // A hung or unreachable store is a 503 with Retry-After, like the lease store's.
    return storeCall(() => this.withTable(() => this.page(options, continuation)));
  }

  private async page(
    options: AuditQueryOptions,
    continuation: string | undefined,
  ): Promise<{ entries: AuditEntry[]; continuation?: string | undefined }> {
    const filters: string[] = [];
    if (options.since !== undefined) {
      filters.push(
        odata`PartitionKey le ${reversedDay(options.since)}`,
        odata`RowKey le ${`${reversedMs(options.since)}~`}`,
      );
    }
    if (options.vault !== undefined) filters.push(odata`vault eq ${options.vault}`);
    if (options.vaults !== undefined) {
      // An empty list matches nothing: no target of that kind is managed.
      filters.push(
        options.vaults.length === 0
          ? odata`vault eq ${'~none~'}`
          : `(${options.vaults.map((name) => odata`vault eq ${name}`).join(' or ')})`,
      );
    }
    if (options.principal !== undefined) filters.push(odata`principal eq ${options.principal}`);
    const pages = this.client
      .listEntities<Record<string, unknown>>({
        queryOptions: filters.length ? { filter: filters.join(' and ') } : {},
      })
      .byPage({ maxPageSize: options.top, continuationToken: continuation });
    const first = await pages.next();
    if (first.done) return { entries: [] };
    const entries = first.value.map((entity): AuditEntry => {
      const text = (name: string) => (typeof entity[name] === 'string' ? entity[name] : undefined);
      return {
        at: Number(entity.at),
        action: text('action') as AuditEntry['action'],
        principal: text('principal') ?? '',
        appId: text('appId'),
        vault: text('vault'),
        kind: text('kind'),
        ip: text('ip'),
        leaseId: text('leaseId'),
        outcome: text('outcome') as AuditEntry['outcome'],
        detail: text('detail'),
        invocationId: text('invocationId'),
      };
    });
    return { entries, continuation: first.value.continuationToken };
  }
}
