import { createHash } from 'node:crypto';

import type { TokenCredential } from '@azure/core-auth';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import {
  odata,
  RestError,
  TableClient,
  type TableEntity,
  type TransactionAction,
} from '@azure/data-tables';

import type { Lease, LeaseStatus } from '../../domain/lease';
import { isLive, newLeaseId } from '../../domain/lease';
import {
  EMPTY_VAULT_STATE,
  type LeasePage,
  type LeaseStore,
  type ListQuery,
  type StoredLease,
  type VaultState,
} from '../../ports/lease-store';
import { checkContinuation } from './continuation';
import {
  isTableNotFound,
  storeCall as guard,
  storeUnavailable as unavailable,
} from './table-errors';

/**
 * Table layout, one partition per vault (PartitionKey = vault name):
 *
 * | RowKey             | what                                               |
 * |--------------------|----------------------------------------------------|
 * | `V`                | vault state: writer lock, pass counters, owned rules |
 * | `A_<lease id>`     | a live lease (pending or active)                   |
 * | `I_<sha256>`       | idempotency key (principal + key) → lease id       |
 * | `L_<lease id>`     | an ended lease (history)                           |
 *
 * and two partitions per principal:
 * - `~p~<sha256(principal)>`, RowKey = lease id: the slots that count a
 *   caller's live leases across vaults in one small query;
 * - `~h~<sha256(principal)>~<vault>`, RowKey = lease id: the caller's own
 *   history of that vault, a copy of each of its `L_` rows, so that a
 *   Lease.Request caller's list of ended leases reads its own rows only,
 *   never other callers' history. One partition per principal and vault,
 *   not per principal: pipelines often share one principal, and a sweep that
 *   ends thousands of its leases at once would otherwise write them all into
 *   one hot partition (measured: the bench's 10k sweep took 52 s instead of
 *   21 s, and 4 of 100 vaults missed the sweep's budget).
 *
 * A lease is a point read (its id names its vault); the live leases of a vault
 * are one range query on `A_`, so neither grants nor the sweep ever read the
 * history that accumulates under `L_`.
 *
 * Ending a lease: (1) the conditional update of its `A_` row (the decision),
 * (2) the upsert of its `~h~` copy, (3) one transaction that deletes `A_` and
 * writes `L_`. A crash after (1) or (2) leaves an ended `A_` row, which
 * `liveLeases()` finishes (2 and 3 are idempotent), so every `L_` row has its
 * copy. Retention (`pruneHistory`) deletes the copy first and the `L_` row
 * after it: a crash between leaves an `L_` row the next prune removes, never
 * a copy nothing points to.
 */

const VAULT_ROW = 'V';
const LIVE = 'A_';
const ENDED = 'L_';
const IDEMPOTENCY = 'I_';
/** Most history rows one prune removes per vault: a sweep's work stays bounded. */
const PRUNE_LIMIT = 1000;
/** Transactions hold at most 100 operations. */
const TRANSACTION_LIMIT = 100;

type LeaseEntity = TableEntity<{
  /** The target's kind; absent on rows written before targets (Key Vault). */
  kind?: string;
  ip: string;
  status: LeaseStatus;
  principal: string;
  appId?: string;
  reason?: string;
  createdAt: number;
  expiresAt: number;
  endedAt?: number;
  failure?: string;
  slot?: boolean;
}>;

export interface TableStoreOptions {
  tableName: string;
  /**
   * Most one Table Storage call may take, its retries included; then it fails
   * as `STORE.UNAVAILABLE`. A store that accepts connections and answers
   * nothing must not hang a caller (or the health probe) past its deadline.
   */
  callTimeoutMs?: number | undefined;
  connectionString?: string | undefined;
  tableServiceUri?: string | undefined;
  credential?: TokenCredential | undefined;
}

function statusOf(error: unknown): number | undefined {
  return error instanceof RestError ? error.statusCode : undefined;
}

function isConflict(error: unknown): boolean {
  const status = statusOf(error);
  return !isTableNotFound(error) && (status === 404 || status === 409 || status === 412);
}

function toEntity(lease: Lease, rowPrefix: string): LeaseEntity {
  const entity: LeaseEntity = {
    partitionKey: lease.vault,
    rowKey: `${rowPrefix}${lease.id}`,
    ip: lease.ip,
    status: lease.status,
    principal: lease.principal,
    createdAt: lease.createdAt,
    expiresAt: lease.expiresAt,
  };
  if (lease.kind !== undefined) entity.kind = lease.kind;
  if (lease.appId !== undefined) entity.appId = lease.appId;
  if (lease.reason !== undefined) entity.reason = lease.reason;
  if (lease.endedAt !== undefined) entity.endedAt = lease.endedAt;
  if (lease.failure !== undefined) entity.failure = lease.failure;
  if (lease.slot) entity.slot = true;
  return entity;
}

function fromEntity(entity: LeaseEntity & { etag?: string }): StoredLease {
  return {
    id: entity.rowKey.slice(2),
    vault: entity.partitionKey,
    ...(entity.kind === undefined ? {} : { kind: entity.kind }),
    ip: entity.ip,
    status: entity.status,
    principal: entity.principal,
    appId: entity.appId,
    reason: entity.reason,
    createdAt: Number(entity.createdAt),
    expiresAt: Number(entity.expiresAt),
    endedAt: entity.endedAt === undefined ? undefined : Number(entity.endedAt),
    failure: entity.failure,
    slot: entity.slot === true ? true : undefined,
    etag: entity.etag ?? '',
  };
}

function withoutEtag(lease: StoredLease): Lease {
  const { etag: _etag, ...rest } = lease;
  return rest;
}

function idempotencyRow(principal: string, key: string): string {
  return `${IDEMPOTENCY}${createHash('sha256').update(`${principal}\n${key}`).digest('hex')}`;
}

function slotPartition(principal: string): string {
  return `~p~${createHash('sha256').update(principal).digest('hex').slice(0, 40)}`;
}

function historyPartition(principal: string, vault: string): string {
  return `~h~${createHash('sha256').update(principal).digest('hex').slice(0, 40)}~${vault}`;
}

/** The copy of an ended lease in its principal's history partition. */
function historyCopy(lease: Lease): LeaseEntity & { vault: string } {
  return {
    ...toEntity(lease, ''),
    partitionKey: historyPartition(lease.principal, lease.vault),
    rowKey: lease.id,
    vault: lease.vault,
  };
}

function fromHistoryCopy(entity: LeaseEntity & { vault?: string; etag?: string }): StoredLease {
  return {
    ...fromEntity({ ...entity, rowKey: `${ENDED}${entity.rowKey}` }),
    vault: String(entity.vault),
  };
}

/** The first key of ids created at or before `at`: ids sort newest first (see newLeaseId). */
function idsFrom(vault: string, at: number): string {
  return newLeaseId(vault, at).slice(0, vault.length + 1 + 12);
}

function chunks<T>(items: T[], size: number): T[][] {
  const result: T[][] = [];
  for (let index = 0; index < items.length; index += size)
    result.push(items.slice(index, index + size));
  return result;
}

/** Default bound of one Table Storage call (retries included). */
export const STORE_CALL_TIMEOUT_MS = 10_000;
/** The health probe answers sooner: a hung store is a 503 within a few seconds. */
const HEALTH_PROBE_TIMEOUT_MS = 2500;

/**
 * A per-call deadline: the abort signal of every request the client sends
 * (once per call, before the SDK's retries) also fires after `ms`.
 */
function callTimeoutPolicy(ms: number): PipelinePolicy {
  return {
    name: 'kvLeaseCallTimeout',
    sendRequest: (request, next) => {
      const deadline = AbortSignal.timeout(ms);
      const given = request.abortSignal;
      if (given instanceof AbortSignal) request.abortSignal = AbortSignal.any([given, deadline]);
      else if (given === undefined) request.abortSignal = deadline;
      else {
        // A caller's signal-like object: follow it by hand.
        const controller = new AbortController();
        const abort = () => controller.abort();
        if (given.aborted) abort();
        given.addEventListener('abort', abort);
        deadline.addEventListener('abort', abort);
        request.abortSignal = controller.signal;
      }
      return next(request);
    },
  };
}

/**
 * A client for one table: from a connection string (azurite's plain-http
 * endpoint allowed), or from a table service URI and a credential. The lease
 * store and the audit trail both use it; few retries and a deadline on every
 * call, so an outage or a hung store becomes a prompt 503 rather than a hung
 * request.
 */
export function createTableClient(options: TableStoreOptions): TableClient {
  const clientOptions = {
    retryOptions: { maxRetries: 2, retryDelayInMs: 100, maxRetryDelayInMs: 1000 },
    additionalPolicies: [
      {
        policy: callTimeoutPolicy(options.callTimeoutMs ?? STORE_CALL_TIMEOUT_MS),
        position: 'perCall' as const,
      },
    ],
  };
  if (options.connectionString) {
    return TableClient.fromConnectionString(options.connectionString, options.tableName, {
      ...clientOptions,
      allowInsecureConnection:
        /DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true|TableEndpoint=http:/i.test(
          options.connectionString,
        ),
    });
  }
  if (options.tableServiceUri && options.credential) {
    return new TableClient(
      options.tableServiceUri,
      options.tableName,
      options.credential,
      clientOptions,
    );
  }
  throw new Error(
    'A table client needs a connection string or a table service URI and a credential',
  );
}

export class TableLeaseStore implements LeaseStore {
  /** Every public operation: the table exists, then store failures become 503s. */
  private run<T>(work: () => Promise<T>): Promise<T> {
    return guard(async () => {
      await this.table();
      try {
        return await work();
      } catch (error) {
        // A store that came back empty (a restarted emulator, a recreated
        // account) has lost the table: create it again and retry once.
        if (!isTableNotFound(error)) throw error;
        this.ready = undefined;
        await this.table();
        return work();
      }
    });
  }

  private readonly client: TableClient;
  private ready: Promise<void> | undefined;

  constructor(options: TableStoreOptions) {
    this.client = createTableClient(options);
  }

  /** Create the table once per process; memoise success only, so a store down at start is retried. */
  private async table(): Promise<void> {
    this.ready ??= guard(() => this.client.createTable()).catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    await this.ready;
  }

  async ensureReady(): Promise<void> {
    await this.table();
    // Health must reflect the store now, not at start: one cheap point read.
    await guard(() =>
      this.readEntity<TableEntity>('~health', 'ping', AbortSignal.timeout(HEALTH_PROBE_TIMEOUT_MS)),
    );
  }

  private async readEntity<T extends object>(
    partitionKey: string,
    rowKey: string,
    abortSignal?: AbortSignal,
  ): Promise<(TableEntity<T> & { etag: string }) | undefined> {
    try {
      return (await this.client.getEntity<T>(partitionKey, rowKey, {
        abortSignal,
      })) as TableEntity<T> & {
        etag: string;
      };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async getLease(id: string, vault: string): Promise<StoredLease | undefined> {
    return this.run(async () => {
      // Live first: the rows read most (a grant reading back its lease) are live.
      const entity =
        (await this.readEntity<LeaseEntity>(vault, `${LIVE}${id}`)) ??
        (await this.readEntity<LeaseEntity>(vault, `${ENDED}${id}`));
      return entity ? fromEntity(entity) : undefined;
    });
  }

  async createLease(
    lease: Lease,
    idempotencyKey?: string,
  ): Promise<{ lease: StoredLease; created: boolean }> {
    return this.run(async () => {
      const liveEntity = toEntity(lease, LIVE);
      if (idempotencyKey === undefined) {
        const response = await this.client.createEntity(liveEntity);
        return { lease: { ...lease, etag: response.etag ?? '' }, created: true };
      }
      const keyRow = idempotencyRow(lease.principal, idempotencyKey);
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const existing = await this.readEntity<{ leaseId: string }>(lease.vault, keyRow);
        if (existing) {
          const previous = await this.getLease(existing.leaseId, lease.vault);
          if (previous && isLive(previous)) return { lease: previous, created: false };
        }
        const keyEntity = { partitionKey: lease.vault, rowKey: keyRow, leaseId: lease.id };
        const actions: TransactionAction[] = [
          existing
            ? ['update', keyEntity, 'Replace', { etag: existing.etag }]
            : ['create', keyEntity],
          ['create', liveEntity],
        ];
        try {
          await this.client.submitTransaction(actions);
        } catch (error) {
          // A twin request won the key: loop and answer with its lease.
          if (isConflict(error) || statusOf(error) === 400) continue;
          throw error;
        }
        const stored = await this.getLease(lease.id, lease.vault);
        return { lease: stored ?? { ...lease, etag: '' }, created: true };
      }
      throw unavailable(new Error('idempotency key contention'));
    });
  }

  async findIdempotentLease(
    vault: string,
    principal: string,
    key: string,
  ): Promise<StoredLease | undefined> {
    return this.run(async () => {
      const row = await this.readEntity<{ leaseId: string }>(vault, idempotencyRow(principal, key));
      return row ? this.getLease(row.leaseId, vault) : undefined;
    });
  }

  async claimSlot(
    lease: Pick<Lease, 'id' | 'vault' | 'principal' | 'expiresAt'>,
    now: number,
  ): Promise<number> {
    return this.run(async () => {
      const partitionKey = slotPartition(lease.principal);
      await this.client.upsertEntity(
        { partitionKey, rowKey: lease.id, vault: lease.vault, expiresAt: lease.expiresAt },
        'Replace',
      );
      let held = 0;
      const filter = odata`PartitionKey eq ${partitionKey}`;
      const entities = this.client.listEntities<{ expiresAt: number }>({
        queryOptions: { filter, select: ['expiresAt'] },
      });
      for await (const entity of entities) {
        if (Number(entity.expiresAt) > now) held += 1;
        // Slots of leases long past expiry whose release was lost: tidy up.
        else
          void this.client.deleteEntity(partitionKey, entity.rowKey ?? '').catch(() => undefined);
      }
      return held;
    });
  }

  async releaseSlot(lease: Pick<Lease, 'id' | 'principal'>): Promise<void> {
    await this.run(async () => {
      try {
        await this.client.deleteEntity(slotPartition(lease.principal), lease.id);
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
    });
  }

  async liveLeases(vault: string): Promise<StoredLease[]> {
    return this.run(async () => {
      const filter = odata`PartitionKey eq ${vault} and RowKey ge ${LIVE} and RowKey lt ${'A`'}`;
      const leases: StoredLease[] = [];
      const stale: StoredLease[] = [];
      for await (const entity of this.client.listEntities<LeaseEntity>({
        queryOptions: { filter },
      })) {
        const lease = fromEntity(entity);
        if (isLive(lease)) leases.push(lease);
        else stale.push(lease);
      }
      // Ended leases whose move to history was interrupted: finish it now.
      await Promise.all(
        stale.flatMap((lease) => [
          this.moveToHistory(lease).catch(() => undefined),
          ...(lease.slot ? [this.releaseSlot(lease).catch(() => undefined)] : []),
        ]),
      );
      return leases;
    });
  }

  async listLeases(query: ListQuery): Promise<LeasePage> {
    // A forged continuation is the caller's error, answered before any store call.
    const continuationToken =
      query.continuation === undefined ? undefined : checkContinuation(query.continuation);
    return this.run(async () => {
      const statuses =
        query.status === 'all'
          ? ['active', 'released', 'expired']
          : query.status === 'ended'
            ? ['released', 'expired']
            : [query.status];
      const statusFilter = `(${statuses.map((status) => odata`status eq ${status}`).join(' or ')})`;
      let filter: string;
      let fromCopy = false;
      if (query.principal !== undefined && query.status !== 'active' && query.status !== 'all') {
        // A caller's own history of this vault: its own partition.
        fromCopy = true;
        filter = odata`PartitionKey eq ${historyPartition(query.principal, query.vault)}`;
        filter += ` and ${statusFilter}`;
      } else {
        // Live rows sort before history; idempotency rows in between carry no
        // status. Each status reads only its own key range: listing active
        // leases never scans history.
        const [from, to] =
          query.status === 'active'
            ? [LIVE, 'A`']
            : query.status === 'all'
              ? [LIVE, 'L`']
              : [ENDED, 'L`'];
        filter = odata`PartitionKey eq ${query.vault} and RowKey ge ${from} and RowKey lt ${to}`;
        filter += ` and ${statusFilter}`;
        if (query.principal !== undefined)
          filter += ` and ${odata`principal eq ${query.principal}`}`;
      }
      // One page is one store call: the caller decides how many it makes.
      const pages = this.client
        .listEntities<LeaseEntity & { vault?: string }>({ queryOptions: { filter } })
        .byPage({ maxPageSize: query.top, continuationToken });
      const first = await pages.next();
      if (first.done) return { items: [] };
      const page = first.value;
      return {
        items: page.map((entity) =>
          fromCopy
            ? fromHistoryCopy(entity as LeaseEntity & { vault?: string; etag: string })
            : fromEntity(entity as LeaseEntity & { etag: string }),
        ),
        continuation: page.continuationToken,
      };
    });
  }

  async pruneHistory(vault: string, endedBefore: number): Promise<number> {
    return this.run(async () => {
      // Ids sort newest first: leases created after the cutoff cannot have
      // ended before it, so the query starts at the cutoff's key.
      const filter =
        odata`PartitionKey eq ${vault} and RowKey ge ${`${ENDED}${idsFrom(vault, endedBefore)}`} and RowKey lt ${'L`'}` +
        ` and ${odata`endedAt lt ${endedBefore}`}`;
      const old: StoredLease[] = [];
      for await (const page of this.client
        .listEntities<LeaseEntity>({ queryOptions: { filter } })
        .byPage({ maxPageSize: TRANSACTION_LIMIT })) {
        old.push(...page.map((entity) => fromEntity(entity as LeaseEntity & { etag: string })));
        if (old.length >= PRUNE_LIMIT) break;
      }
      const byPrincipal = new Map<string, StoredLease[]>();
      for (const lease of old)
        byPrincipal.set(lease.principal, [...(byPrincipal.get(lease.principal) ?? []), lease]);
      // The copies first, then the vault's rows (see the layout above).
      await Promise.all(
        [...byPrincipal.entries()].flatMap(([principal, leases]) =>
          chunks(leases, TRANSACTION_LIMIT).map((chunk) =>
            this.deleteAll(
              historyPartition(principal, vault),
              chunk.map((lease) => lease.id),
            ),
          ),
        ),
      );
      await Promise.all(
        chunks(old, TRANSACTION_LIMIT).map((chunk) =>
          this.deleteAll(
            vault,
            chunk.map((lease) => `${ENDED}${lease.id}`),
          ),
        ),
      );
      return old.length;
    });
  }

  /** Delete rows of one partition in a transaction; one by one (a row already gone is fine) if it fails. */
  private async deleteAll(partitionKey: string, rowKeys: string[]): Promise<void> {
    if (rowKeys.length === 0) return;
    try {
      await this.client.submitTransaction(
        rowKeys.map((rowKey) => ['delete', { partitionKey, rowKey }]),
      );
    } catch (error) {
      if (!isConflict(error) && statusOf(error) !== 400) throw error;
      await Promise.all(
        rowKeys.map((rowKey) =>
          this.client.deleteEntity(partitionKey, rowKey).catch((failure: unknown) => {
            if (statusOf(failure) !== 404) throw failure;
          }),
        ),
      );
    }
  }

  async endLease(
    lease: StoredLease,
    status: 'released' | 'expired' | 'failed',
    endedAt: number,
    failure?: string,
  ): Promise<StoredLease | undefined> {
    return this.run(async () => {
      const ended: Lease = { ...withoutEtag(lease), status, endedAt, failure };
      // Step 1, the decision: a conditional update of the live row. Step 2
      // moves it to history; a crash between them is finished by liveLeases().
      try {
        await this.client.updateEntity(toEntity(ended, LIVE), 'Replace', { etag: lease.etag });
      } catch (error) {
        if (isConflict(error)) return undefined;
        throw error;
      }
      const stored = { ...ended, etag: '' };
      await Promise.all([
        this.moveToHistory(stored).catch(() => undefined),
        stored.slot ? this.releaseSlot(stored).catch(() => undefined) : undefined,
      ]);
      return stored;
    });
  }

  async endLeases(
    leases: StoredLease[],
    status: 'expired' | 'failed',
    endedAt: number,
    failure?: string,
  ): Promise<{ ended: StoredLease[]; changed: StoredLease[] }> {
    const result = { ended: [] as StoredLease[], changed: [] as StoredLease[] };
    if (leases.length === 0) return result;
    await this.run(async () => {
      for (const chunk of chunks(leases, TRANSACTION_LIMIT)) {
        const endedChunk = chunk.map((lease) => ({
          ...withoutEtag(lease),
          status,
          endedAt,
          failure,
          etag: '',
        }));
        try {
          // The decision, all or nothing for the chunk: conditional on each row's version.
          await this.client.submitTransaction(
            chunk.map((lease, index) => [
              'update',
              toEntity(endedChunk[index] as Lease, LIVE),
              'Replace',
              { etag: lease.etag },
            ]),
          );
          result.ended.push(...endedChunk);
        } catch (error) {
          if (!isConflict(error) && statusOf(error) !== 400) throw error;
          // One of them changed: decide them one by one.
          for (const lease of chunk) {
            const ended = await this.endLease(lease, status, endedAt, failure);
            if (ended) result.ended.push(ended);
            else result.changed.push(lease);
          }
          continue;
        }
      }
      await this.tidyEnded(result.ended);
    });
    return result;
  }

  /** Move ended leases to history and free their slots, in transactions; best effort. */
  private async tidyEnded(leases: StoredLease[]): Promise<void> {
    const byPrincipal = new Map<string, StoredLease[]>();
    for (const lease of leases)
      byPrincipal.set(lease.principal, [...(byPrincipal.get(lease.principal) ?? []), lease]);
    // The principals' copies first; a lease whose copy failed stays an ended
    // `A_` row, which liveLeases() moves later (copy included).
    const copied: StoredLease[] = [];
    await Promise.all(
      [...byPrincipal.values()].flatMap((owned) =>
        chunks(owned, TRANSACTION_LIMIT).map((chunk) =>
          this.client
            .submitTransaction(
              chunk.map((lease) => ['upsert', historyCopy(withoutEtag(lease)), 'Replace']),
            )
            .then(
              () => copied.push(...chunk),
              () => undefined,
            ),
        ),
      ),
    );
    const moves = chunks(copied, TRANSACTION_LIMIT / 2).map((chunk) =>
      this.client
        .submitTransaction(
          chunk.flatMap((lease): TransactionAction[] => [
            ['delete', { partitionKey: lease.vault, rowKey: `${LIVE}${lease.id}` }],
            ['upsert', toEntity(withoutEtag(lease), ENDED), 'Replace'],
          ]),
        )
        .catch(() =>
          Promise.all(chunk.map((lease) => this.moveToHistory(lease).catch(() => undefined))),
        ),
    );
    const slots = [...byPrincipal.entries()].flatMap(([principal, owned]) =>
      chunks(owned, TRANSACTION_LIMIT).map((chunk) =>
        this.client
          .submitTransaction(
            chunk.map((lease) => [
              'delete',
              { partitionKey: slotPartition(principal), rowKey: lease.id },
            ]),
          )
          .catch(() =>
            Promise.all(chunk.map((lease) => this.releaseSlot(lease).catch(() => undefined))),
          ),
      ),
    );
    await Promise.all([...moves, ...slots]);
  }

  private async moveToHistory(lease: StoredLease): Promise<void> {
    // The principal's copy before the move: every `L_` row has its copy.
    await this.client.upsertEntity(historyCopy(withoutEtag(lease)), 'Replace');
    try {
      await this.client.submitTransaction([
        ['delete', { partitionKey: lease.vault, rowKey: `${LIVE}${lease.id}` }],
        ['upsert', toEntity(withoutEtag(lease), ENDED), 'Replace'],
      ]);
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  }

  async updateLiveLease(
    lease: StoredLease,
    patch: Partial<Pick<Lease, 'status' | 'expiresAt'>>,
  ): Promise<StoredLease | undefined> {
    return this.run(async () => {
      const next: Lease = { ...withoutEtag(lease), ...patch };
      try {
        const response = await this.client.updateEntity(toEntity(next, LIVE), 'Replace', {
          etag: lease.etag,
        });
        if (patch.expiresAt !== undefined && next.slot) {
          // Keep the caller's slot alive as long as the lease (best effort).
          await this.client
            .upsertEntity(
              {
                partitionKey: slotPartition(next.principal),
                rowKey: next.id,
                vault: next.vault,
                expiresAt: next.expiresAt,
              },
              'Replace',
            )
            .catch(() => undefined);
        }
        return { ...next, etag: response.etag ?? '' };
      } catch (error) {
        if (isConflict(error)) return undefined;
        throw error;
      }
    });
  }

  /**
   * Mark pending leases active in transactions of up to 100; a chunk that
   * loses a race (a lease released meanwhile) falls back to one by one.
   */
  async markActive(leases: StoredLease[]): Promise<Set<string>> {
    return this.run(async () => {
      const marked = new Set<string>();
      for (const chunk of chunks(leases, TRANSACTION_LIMIT)) {
        const actions: TransactionAction[] = chunk.map((lease) => [
          'update',
          { partitionKey: lease.vault, rowKey: `${LIVE}${lease.id}`, status: 'active' },
          'Merge',
          { etag: lease.etag },
        ]);
        try {
          await this.client.submitTransaction(actions);
          for (const lease of chunk) marked.add(lease.id);
        } catch (error) {
          if (!isConflict(error) && statusOf(error) !== 400) throw error;
          const one = await Promise.all(
            chunk.map((lease) => this.updateLiveLease(lease, { status: 'active' })),
          );
          for (const updated of one) if (updated) marked.add(updated.id);
        }
      }
      return marked;
    });
  }

  async getVaultState(vault: string): Promise<VaultState> {
    return this.run(async () => {
      const entity = await this.readEntity<Record<string, unknown>>(vault, VAULT_ROW);
      if (!entity) return { ...EMPTY_VAULT_STATE };
      return {
        pass: Number(entity.pass ?? 0),
        applied: Number(entity.applied ?? 0),
        lockHolder: typeof entity.lockHolder === 'string' ? entity.lockHolder : '',
        lockUntil: Number(entity.lockUntil ?? 0),
        owned: JSON.parse(typeof entity.owned === 'string' ? entity.owned : '[]') as string[],
        totalRules: Number(entity.totalRules ?? -1),
        lastPassAt: Number(entity.lastPassAt ?? 0),
        unsettledUntil: Number(entity.unsettledUntil ?? 0),
        lastError: typeof entity.lastError === 'string' ? entity.lastError : '',
        lastErrorAt: Number(entity.lastErrorAt ?? 0),
        etag: entity.etag,
      };
    });
  }

  async putVaultState(vault: string, state: VaultState): Promise<VaultState | undefined> {
    return this.run(async () => {
      const entity = {
        partitionKey: vault,
        rowKey: VAULT_ROW,
        pass: state.pass,
        applied: state.applied,
        lockHolder: state.lockHolder,
        lockUntil: state.lockUntil,
        owned: JSON.stringify(state.owned),
        totalRules: state.totalRules,
        lastPassAt: state.lastPassAt,
        unsettledUntil: state.unsettledUntil,
        lastError: state.lastError.slice(0, 1024),
        lastErrorAt: state.lastErrorAt,
      };
      try {
        const response =
          state.etag === undefined
            ? await this.client.createEntity(entity)
            : await this.client.updateEntity(entity, 'Replace', { etag: state.etag });
        return { ...state, etag: response.etag };
      } catch (error) {
        if (isConflict(error)) return undefined;
        throw error;
      }
    });
  }
}
