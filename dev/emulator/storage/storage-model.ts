/**
 * Storage accounts over Resource Manager: `GET` (`storageAccounts.getProperties`) and `PATCH`
 * (`storageAccounts.update`, synchronous) of one account. Writes on one account are serialised
 * as Azure does: one that overlaps another gets 409 `StorageAccountOperationInProgress`. Latency,
 * faults, throttling, refusals, hangs and late-applied writes come from the shared `ArmGate`.
 */
import { z } from 'zod';

import { ArmError, resourceNotFound } from '../arm-error';
import { type Exchange, parseJson, requireJsonContent } from '../arm-exchange';
import { throttleHeaders } from '../arm-gate';
import {
  type AdminRoutes,
  type ArmRequest,
  decodeSegments,
  methodNotAllowed,
  type ModelContext,
  parseSpec,
  refusalTargetFor,
  requiredQuery,
  type ResourceModel,
  StatsBook,
} from '../arm-model';
import { validateSubscriptionId } from '../vault-store';
import {
  type AccountCoordinates,
  accountKey,
  type AccountRecord,
  newAccountRecord,
  parseAccountResourceId,
  patchedAccount,
  renderAccount,
  STORAGE_TYPE,
  type StorageAccountSpec,
  withStorageAcls,
} from './account';
import { BLOB_PREFIX, BlobPlane, type BlobPlaneStats } from './blob-plane';
import { copyStorageAcls, type StorageNetworkAcls } from './network-rule-set';

const ACCOUNT_ROUTE =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Storage\/storageAccounts\/([^/]+)\/?$/i;

export const storageAccountSpecSchema = z.strictObject({
  subscriptionId: z.string().optional(),
  resourceGroup: z.string(),
  name: z.string(),
  location: z.string().optional(),
  // The rules themselves are validated later, with the resource provider's messages.
  networkAcls: z.record(z.string(), z.unknown()).optional(),
  publicNetworkAccess: z.enum(['Enabled', 'Disabled']).optional(),
  dataRights: z.boolean().optional(),
});

export interface StorageAccountStats {
  gets: number;
  patches: number;
  writesApplied: number;
  conflicts: number;
  /** Writes between arrival and answer now, doomed ones included. */
  writesInFlight: number;
  /** The most writes ever in flight at once since the last reset. */
  peakWritesInFlight: number;
}

type Counters = Omit<StorageAccountStats, 'writesInFlight'>;

function zeroCounters(): Counters {
  return { gets: 0, patches: 0, writesApplied: 0, conflicts: 0, peakWritesInFlight: 0 };
}

/** What tests and the local runner do with storage accounts without going through HTTP. */
export interface StorageAccountsApi {
  /** Returns the ARM resource id. Throws when the spec is invalid or the account exists. */
  create(spec: StorageAccountSpec): string;
  getNetworkAcls(resourceId: string): StorageNetworkAcls;
  /** "Someone else" edits the rules: applied at once; fields left out are kept. */
  setNetworkAcls(resourceId: string, acls: Partial<StorageNetworkAcls>): void;
  /** `https://127.0.0.1:<port>/blob/<name>/`, as `primaryEndpoints.blob` says. */
  blobEndpoint(name: string): string;
  stats(): Record<string, StorageAccountStats>;
  blobStats(): BlobPlaneStats;
}

function notFound(route: AccountCoordinates): ArmError {
  return resourceNotFound(`${STORAGE_TYPE}/${route.name}`, route.resourceGroup);
}

export class StorageModel implements ResourceModel {
  private readonly accounts = new Map<string, AccountRecord>();
  private readonly counters = new StatsBook(zeroCounters);
  readonly blob: BlobPlane;
  readonly dataPlanePrefix = BLOB_PREFIX;
  readonly adminRoutes: AdminRoutes;
  readonly api: StorageAccountsApi;

  constructor(private readonly context: ModelContext) {
    this.blob = new BlobPlane(context, (name) => this.byName(name));
    this.adminRoutes = {
      'storage-accounts': {
        GET: () => ({ status: 200, body: { value: this.list() } }),
        POST: (_url, body) => {
          return {
            status: 201,
            body: {
              id: this.create(parseSpec(storageAccountSpecSchema, body, 'storage account spec')),
            },
          };
        },
      },
      'storage-accounts/acls': {
        PUT: (url, body) => {
          const id = requiredQuery(url, 'id', 'the storage account resource id');
          this.setNetworkAcls(id, parseJson(body));
          return { status: 200, body: this.render(this.require(id)) };
        },
      },
      'storage-accounts/stats': {
        GET: () => ({ status: 200, body: { accounts: this.stats(), blob: this.blob.stats() } }),
      },
    };
    this.api = {
      create: (spec) => this.create(spec),
      getNetworkAcls: (id) => copyStorageAcls(this.require(id).networkAcls),
      setNetworkAcls: (id, acls) => this.setNetworkAcls(id, acls),
      blobEndpoint: (name) => this.blob.endpoint(name),
      stats: () => this.stats(),
      blobStats: () => this.blob.stats(),
    };
  }

  route(pathname: string): ((request: ArmRequest) => Promise<void>) | undefined {
    const match = ACCOUNT_ROUTE.exec(pathname);
    if (!match) return undefined;
    const [subscriptionId = '', resourceGroup = '', name = ''] = decodeSegments(
      pathname,
      match.slice(1),
    );
    const route = { subscriptionId, resourceGroup, name };
    return ({ exchange, body }) => {
      const method = exchange.req.method;
      validateSubscriptionId(subscriptionId);
      if (method === 'GET') return this.read(exchange, route);
      if (method === 'PATCH') return this.write(exchange, route, body);
      throw methodNotAllowed(['GET', 'PATCH'], method);
    };
  }

  answerDataPlane(exchange: Exchange, url: URL): void {
    this.blob.answer(exchange, url);
  }

  resetStats(): void {
    this.counters.reset();
    this.blob.resetStats();
  }

  create(spec: StorageAccountSpec): string {
    const record = newAccountRecord(spec, new Date(this.context.now()));
    if (this.accounts.has(record.key)) {
      throw new ArmError(409, 'Conflict', `The storage account ${record.id} already exists.`);
    }
    this.store(record);
    return record.id;
  }

  private store(record: AccountRecord): void {
    this.accounts.set(record.key, record);
    this.blob.recordVersion(record);
  }

  private setNetworkAcls(resourceId: string, acls: unknown): void {
    this.store(withStorageAcls(this.require(resourceId), acls));
  }

  private require(resourceId: string): AccountRecord {
    const coordinates = parseAccountResourceId(resourceId);
    const record = coordinates && this.accounts.get(accountKey(coordinates));
    if (!record) {
      throw new ArmError(
        404,
        'ResourceNotFound',
        `No storage account with resource id '${resourceId}'.`,
      );
    }
    return record;
  }

  private byName(name: string): AccountRecord | undefined {
    const lower = name.toLowerCase();
    return [...this.accounts.values()].find((record) => record.name === lower);
  }

  private list(): Record<string, unknown>[] {
    return [...this.accounts.values()].map((record) => this.render(record));
  }

  private render(record: AccountRecord): Record<string, unknown> {
    return renderAccount(record, this.blob.endpoint(record.name));
  }

  private stats(): Record<string, StorageAccountStats> {
    return Object.fromEntries(
      [...this.accounts.keys()].map((key) => [
        key,
        { ...this.counters.of(key), writesInFlight: this.context.gate.writesInFlight(key) },
      ]),
    );
  }

  private async read(exchange: Exchange, route: AccountCoordinates): Promise<void> {
    const key = accountKey(route);
    if (this.accounts.has(key)) this.counters.of(key).gets += 1;
    this.context.gate.maybeRefuse(refusalTargetFor(STORAGE_TYPE, route), 'GET');
    await this.context.gate.read();
    const record = this.accounts.get(key);
    if (!record) throw notFound(route);
    exchange.send(200, this.render(record));
  }

  private async write(exchange: Exchange, route: AccountCoordinates, body: Buffer): Promise<void> {
    const key = accountKey(route);
    const known = this.accounts.has(key);
    const counters = this.counters.of(key);
    if (known) counters.patches += 1;
    const gate = this.context.gate;
    gate.maybeRefuse(refusalTargetFor(STORAGE_TYPE, route), 'PATCH');
    const remaining = gate.takeWriteToken(route.subscriptionId);
    requireJsonContent(exchange);
    const inFlight = gate.writesInFlight(key) + 1;
    counters.peakWritesInFlight = Math.max(counters.peakWritesInFlight, inFlight);
    await gate.write(key, exchange, 'PATCH', {
      prepare: () => {
        const existing = this.accounts.get(key);
        if (!existing) throw notFound(route);
        return patchedAccount(existing, parseJson(body));
      },
      conflict: () => {
        counters.conflicts += 1;
        return new ArmError(
          409,
          'StorageAccountOperationInProgress',
          `An operation is currently performing on this storage account that requires exclusive access: a write operation for the storage account '${route.name}' is in progress. Retry after it completes.`,
        );
      },
      apply: (next) => {
        this.store(next);
        counters.writesApplied += 1;
        exchange.send(200, this.render(next), throttleHeaders(remaining));
      },
    });
  }
}
