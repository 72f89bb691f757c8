/**
 * A Key Vault Resource Manager emulator: the yardstick the project's tests measure the broker
 * against. It answers the real `@azure/arm-keyvault` client over https and is strict where Azure
 * is strict (rule validation, the 409 on overlapping writes, throttling) and where Azure's
 * behaviour is unverified it picks the answer that hurts a careless client (see `patchedVault`).
 * It keeps Azure's real weaknesses too: no ETags, so stale read-modify-writes silently lose updates.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { ArmError, badRequest, resourceNotFound } from './arm-error';
import { Exchange, parseJson, readBody, requireJsonContent } from './arm-exchange';
import { ArmGate, throttleHeaders } from './arm-gate';
import {
  type AdminRoutes,
  type ModelContext,
  parseSpec,
  refusalTargetFor,
  type ResourceModel,
} from './arm-model';
import { certificateFor, isWildcard } from './certificate';
import { mulberry32 } from './chance';
import { DEFAULT_CONFIG, mergeConfig, vaultSpecSchema } from './config';
import { DATA_PLANE_PREFIX, EmulatedDataPlane } from './data-plane';
import { AZURE_DEFAULT_ACLS, copyAcls } from './network-acls';
import { ServiceTagsModel } from './service-tags';
import { SqlModel } from './sql/sql-model';
import { StorageModel } from './storage/storage-model';
import type {
  EmulatorConfig,
  EmulatorStats,
  NetworkAcls,
  RunningEmulator,
  StartOptions,
  VaultSpec,
  VaultStats,
  WriteMethod,
} from './types';
import {
  newVaultRecord,
  patchedVault,
  putVault,
  renderVault,
  validateSubscriptionId,
  VAULT_TYPE,
  type VaultCoordinates,
  vaultKey,
  VaultStore,
  withNetworkAcls,
} from './vault-store';

export type { DataPlaneConfig, DataPlanePatch, DataPlaneStats } from './data-plane';
export type { ServiceTagsApi, ServiceTagsConfig } from './service-tags';
export type { SqlServersApi, SqlServerSpec, SqlServerStats } from './sql/sql-model';
export type { StorageAccountSpec } from './storage/account';
export type { BlobPlaneStats } from './storage/blob-plane';
export type { StorageNetworkAcls } from './storage/network-rule-set';
export type { StorageAccountsApi, StorageAccountStats } from './storage/storage-model';
export type {
  ArmMethod,
  Bypass,
  DefaultAction,
  EmulatorConfig,
  EmulatorStats,
  FaultConfig,
  IpRule,
  NetworkAcls,
  RunningEmulator,
  StartOptions,
  VaultSpec,
  VaultStats,
  VirtualNetworkRule,
} from './types';
export { DEFAULT_SUBSCRIPTION_ID } from './vault-store';

const ADMIN_PREFIX = '/_emulator/';
const VAULT_ROUTE =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)\/?$/i;
const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;
const CONFIG_KEYS = [
  'readLatencyMs',
  'writeLatencyMs',
  'conflictOnOverlap',
  'faults',
  'writeThrottle',
  'hang',
  'lateApply',
  'refusals',
  'interruptedDeletes',
] as const satisfies readonly (keyof EmulatorConfig)[];

/** The global counters of EmulatorStats. */
type Counters = Omit<EmulatorStats, 'perVault'>;

function zeroCounters(): Counters {
  return {
    gets: 0,
    patches: 0,
    puts: 0,
    writesApplied: 0,
    conflicts: 0,
    faultsInjected: 0,
    lateApplied: 0,
    refused: 0,
    throttled: 0,
  };
}

function zeroVaultStats(): VaultStats {
  return { gets: 0, writes: 0, writesApplied: 0, conflicts: 0 };
}

function matchVaultRoute(pathname: string): VaultCoordinates | undefined {
  const match = VAULT_ROUTE.exec(pathname);
  if (!match) {
    return undefined;
  }
  const [, subscriptionId = '', resourceGroup = '', name = ''] = match;
  try {
    return {
      subscriptionId: decodeURIComponent(subscriptionId),
      resourceGroup: decodeURIComponent(resourceGroup),
      name: decodeURIComponent(name),
    };
  } catch {
    throw badRequest(`The request path '${pathname}' is not correctly percent-encoded.`);
  }
}

function isVaultMethod(method: string | undefined): method is 'GET' | WriteMethod {
  return method === 'GET' || method === 'PATCH' || method === 'PUT';
}

function notFound(route: VaultCoordinates): ArmError {
  return resourceNotFound(`${VAULT_TYPE}/${route.name}`, route.resourceGroup);
}

function toArmError(error: unknown): ArmError {
  if (error instanceof ArmError) {
    return error;
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ArmError(500, 'InternalServerError', `The emulator failed: ${message}`);
}

class KeyVaultArmEmulator {
  private config: EmulatorConfig;
  /** The vaults' data plane at their `vaultUri`, following each stored version late. */
  readonly dataPlane = new EmulatedDataPlane();
  private readonly store = new VaultStore((record, created) =>
    this.dataPlane.recordVersion(record, created),
  );
  private readonly counters = zeroCounters();
  private perVault = new Map<string, VaultStats>();
  private readonly lifetime = new AbortController();
  /** Latency, faults, throttle, refusals and the writes in flight, shared by every kind. */
  readonly gate: ArmGate;
  /** The other kinds (Storage, SQL, service tags): each claims its own routes. */
  readonly storage: StorageModel;
  readonly sql: SqlModel;
  readonly serviceTags: ServiceTagsModel;
  private readonly models: readonly ResourceModel[];
  private readonly adminRoutes: Readonly<AdminRoutes>;
  private baseUrl: string | undefined;

  constructor(
    config: EmulatorConfig,
    seed: number,
    private readonly requiredToken: string | undefined,
    private readonly log: ((line: string) => void) | undefined,
    serviceTags?: StartOptions['serviceTags'],
  ) {
    this.config = config;
    this.gate = new ArmGate(
      () => this.config,
      mulberry32(seed),
      this.lifetime.signal,
      this.counters,
      log,
    );
    const context: ModelContext = {
      gate: this.gate,
      baseUrl: () => this.baseUrl,
      dataPlaneConfig: () => this.dataPlane.snapshot(),
      now: Date.now,
    };
    this.storage = new StorageModel(context);
    this.sql = new SqlModel(context);
    this.serviceTags = new ServiceTagsModel(context, serviceTags);
    this.models = [this.storage, this.sql, this.serviceTags];
    this.adminRoutes = {
      ...this.models.reduce<AdminRoutes>((all, model) => ({ ...all, ...model.adminRoutes }), {}),
      health: { GET: () => ({ status: 200, body: { status: 'ok' } }) },
      vaults: {
        GET: () => ({
          status: 200,
          body: { value: this.store.list().map((record) => this.render(record)) },
        }),
        POST: (_url, body) => {
          return {
            status: 201,
            body: { id: this.createVault(parseSpec(vaultSpecSchema, body, 'vault spec')) },
          };
        },
      },
      'vaults/acls': {
        PUT: (url, body) => {
          const id = url.searchParams.get('id');
          if (!id) {
            throw badRequest('The query parameter id (the vault resource id) is required.');
          }
          this.setNetworkAcls(id, parseJson(body) as Partial<NetworkAcls>);
          return { status: 200, body: this.render(this.store.require(id)) };
        },
      },
      config: {
        GET: () => ({ status: 200, body: this.config }),
        PATCH: (_url, body) => {
          this.configure(parseJson(body) as Partial<EmulatorConfig>);
          return { status: 200, body: this.config };
        },
      },
      stats: { GET: () => ({ status: 200, body: this.stats() }) },
      'data-plane': {
        GET: () => ({
          status: 200,
          body: { config: this.dataPlane.snapshot(), stats: this.dataPlane.stats() },
        }),
        PATCH: (_url, body) => ({ status: 200, body: this.configureDataPlane(parseJson(body)) }),
      },
      'stats/reset': {
        POST: () => {
          this.resetStats();
          return { status: 200, body: this.stats() };
        },
      },
    };
  }

  /** Throws a 400 ArmError naming every bad field, changing nothing. */
  configureDataPlane(patch: unknown): ReturnType<EmulatedDataPlane['snapshot']> {
    try {
      return this.dataPlane.configure(patch);
    } catch (error) {
      throw badRequest(error instanceof Error ? error.message : String(error));
    }
  }

  private render(record: Parameters<typeof renderVault>[0]): Record<string, unknown> {
    return renderVault(record, this.dataPlane.vaultUri(record.name));
  }

  shutDown(): void {
    this.lifetime.abort();
  }

  createVault(spec: VaultSpec): string {
    const record = newVaultRecord(spec, new Date());
    this.store.add(record);
    this.perVault.set(record.key, zeroVaultStats());
    return record.id;
  }

  getNetworkAcls(resourceId: string): NetworkAcls {
    return copyAcls(this.store.require(resourceId).networkAcls ?? AZURE_DEFAULT_ACLS);
  }

  setNetworkAcls(resourceId: string, acls: Partial<NetworkAcls>): void {
    const record = this.store.require(resourceId);
    this.store.replace(withNetworkAcls(record, acls, new Date()));
  }

  configure(patch: Partial<EmulatorConfig>): void {
    let next: EmulatorConfig;
    try {
      next = mergeConfig(this.config, patch);
    } catch (error) {
      throw badRequest(error instanceof Error ? error.message : String(error));
    }
    if (JSON.stringify(next.writeThrottle) !== JSON.stringify(this.config.writeThrottle)) {
      this.gate.resetThrottle();
    }
    this.config = next;
  }

  stats(): EmulatorStats {
    return {
      ...this.counters,
      perVault: Object.fromEntries([...this.perVault].map(([key, stats]) => [key, { ...stats }])),
    };
  }

  resetStats(): void {
    // In place: the gate holds this object.
    Object.assign(this.counters, zeroCounters());
    this.perVault = new Map(this.store.list().map((record) => [record.key, zeroVaultStats()]));
    for (const model of this.models) {
      model.resetStats();
    }
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const exchange = new Exchange(req, res, this.log);
    try {
      const url = new URL(req.url ?? '/', 'https://emulator.invalid');
      const body = await readBody(req);
      if (url.pathname.startsWith(ADMIN_PREFIX)) {
        this.handleAdmin(exchange, url, body);
      } else if (this.answerModelDataPlane(exchange, url)) {
        // A kind's data plane (a storage account's blob endpoint) answered.
      } else if (url.pathname.startsWith(DATA_PLANE_PREFIX)) {
        const answer = this.dataPlane.answer(
          {
            method: req.method ?? 'GET',
            url,
            authorization: req.headers.authorization,
            peer: req.socket.remoteAddress,
          },
          (name) => this.store.byName(name),
        );
        exchange.send(answer.status, answer.body, answer.headers);
      } else {
        await this.handleArm(exchange, url, body);
      }
    } catch (error) {
      if (this.lifetime.signal.aborted) {
        return;
      }
      exchange.fail(toArmError(error));
    }
  }

  /** The server's address, once it listens: data-plane endpoints are rendered from it. */
  setBaseUrl(url: string): void {
    this.baseUrl = url;
    this.dataPlane.setBaseUrl(url);
  }

  private answerModelDataPlane(exchange: Exchange, url: URL): boolean {
    const model = this.models.find(
      (candidate) =>
        candidate.dataPlanePrefix !== undefined &&
        url.pathname.startsWith(candidate.dataPlanePrefix),
    );
    if (!model?.answerDataPlane) {
      return false;
    }
    model.answerDataPlane(exchange, url);
    return true;
  }

  private handleAdmin(exchange: Exchange, url: URL, body: Buffer): void {
    const route = this.adminRoutes[url.pathname.slice(ADMIN_PREFIX.length)];
    if (!route) {
      throw new ArmError(404, 'NotFound', `The emulator admin API has no route ${url.pathname}.`);
    }
    const handler = route[exchange.req.method ?? ''];
    if (!handler) {
      const allowed = Object.keys(route).join(', ');
      throw new ArmError(405, 'MethodNotAllowed', `${url.pathname} allows ${allowed}.`, {
        Allow: allowed,
      });
    }
    const answer = handler(url, body);
    exchange.send(answer.status, answer.body);
  }

  private authenticate(header: string | undefined): void {
    const challenge = (description: string): Record<string, string> => ({
      'WWW-Authenticate': `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="${description}"`,
    });
    if (header === undefined) {
      throw new ArmError(
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is missing.",
        challenge("The authentication failed because of missing 'Authorization' header."),
      );
    }
    const match = /^Bearer (\S+)$/.exec(header);
    if (!match) {
      throw new ArmError(
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        challenge("The 'Authorization' header is not of the form 'Bearer <token>'."),
      );
    }
    if (this.requiredToken !== undefined && match[1] !== this.requiredToken) {
      throw new ArmError(
        401,
        'InvalidAuthenticationToken',
        'The access token is invalid.',
        challenge('The access token is invalid.'),
      );
    }
  }

  private handleArm(exchange: Exchange, url: URL, body: Buffer): Promise<void> {
    this.authenticate(exchange.req.headers.authorization);
    const apiVersion = [...url.searchParams].find(([name]) => name.toLowerCase() === 'api-version');
    if (!apiVersion || apiVersion[1] === '') {
      throw new ArmError(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      );
    }
    if (!API_VERSION.test(apiVersion[1])) {
      throw new ArmError(
        400,
        'InvalidApiVersionParameter',
        `The api-version '${apiVersion[1]}' is invalid. The supported versions look like '2026-02-01'.`,
      );
    }
    for (const model of this.models) {
      const handler = model.route(url.pathname);
      if (handler) {
        return handler({ exchange, url, body });
      }
    }
    const route = matchVaultRoute(url.pathname);
    if (!route) {
      throw new ArmError(
        404,
        'NotFound',
        `The Key Vault ARM emulator has no route ${exchange.req.method ?? ''} ${url.pathname}.`,
      );
    }
    const method = exchange.req.method;
    if (!isVaultMethod(method)) {
      throw new ArmError(
        405,
        'MethodNotAllowed',
        `The emulator supports GET, PATCH and PUT on a vault, not ${method ?? '(none)'}.`,
        { Allow: 'GET, PATCH, PUT' },
      );
    }
    validateSubscriptionId(route.subscriptionId);
    return method === 'GET'
      ? this.read(exchange, route)
      : this.write(exchange, method, route, body);
  }

  private vaultStatsFor(key: string): VaultStats | undefined {
    if (!this.store.get(key)) {
      return undefined;
    }
    let stats = this.perVault.get(key);
    if (!stats) {
      stats = zeroVaultStats();
      this.perVault.set(key, stats);
    }
    return stats;
  }

  private async read(exchange: Exchange, route: VaultCoordinates): Promise<void> {
    const key = vaultKey(route);
    this.counters.gets += 1;
    const vaultStats = this.vaultStatsFor(key);
    if (vaultStats) {
      vaultStats.gets += 1;
    }
    this.gate.maybeRefuse(refusalTargetFor(VAULT_TYPE, route), 'GET');
    await this.gate.read();
    const record = this.store.get(key);
    if (!record) {
      throw notFound(route);
    }
    exchange.send(200, this.render(record));
  }

  /** A write holds its vault from arrival until it answers (see `ArmGate.write`). */
  private async write(
    exchange: Exchange,
    method: WriteMethod,
    route: VaultCoordinates,
    body: Buffer,
  ): Promise<void> {
    const key = vaultKey(route);
    this.counters[method === 'PATCH' ? 'patches' : 'puts'] += 1;
    let vaultStats = this.vaultStatsFor(key);
    if (vaultStats) {
      vaultStats.writes += 1;
    }
    this.gate.maybeRefuse(refusalTargetFor(VAULT_TYPE, route), method);
    const remaining = this.gate.takeWriteToken(route.subscriptionId);
    requireJsonContent(exchange);

    await this.gate.write(key, exchange, method, {
      prepare: () => {
        const existing = this.store.get(key);
        if (method === 'PATCH' && !existing) {
          throw notFound(route);
        }
        const now = new Date();
        const document = parseJson(body);
        return method === 'PATCH' && existing
          ? patchedVault(existing, document, now)
          : putVault(existing, route, document, now);
      },
      conflict: () => {
        this.counters.conflicts += 1;
        if (vaultStats) {
          vaultStats.conflicts += 1;
        }
        return new ArmError(
          409,
          'ConflictError',
          `The resource was changed from the point the operation began. Another operation on vault '${route.name}' was in progress; serialize the operations on a vault and retry.`,
        );
      },
      apply: (next) => {
        this.store.replace(next);
        if (!vaultStats) {
          // A PUT that created the vault: count it now that the vault exists.
          vaultStats = this.vaultStatsFor(key);
          if (vaultStats) {
            vaultStats.writes += 1;
          }
        }
        this.counters.writesApplied += 1;
        if (vaultStats) {
          vaultStats.writesApplied += 1;
        }
        exchange.send(200, this.render(next), throttleHeaders(remaining));
      },
    });
  }
}

function pickConfig(options: StartOptions): Partial<EmulatorConfig> {
  const picked: Partial<EmulatorConfig> = {};
  for (const key of CONFIG_KEYS) {
    if (options[key] !== undefined) {
      Object.assign(picked, { [key]: options[key] });
    }
  }
  return picked;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Starts an emulator on `host:port` (default 127.0.0.1, an ephemeral port) and resolves once it
 * accepts connections.
 */
export async function startEmulator(options: StartOptions = {}): Promise<RunningEmulator> {
  const host = options.host ?? '127.0.0.1';
  const config = mergeConfig(DEFAULT_CONFIG, pickConfig(options));
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  const emulator = new KeyVaultArmEmulator(
    config,
    seed,
    options.requiredToken,
    options.log,
    options.serviceTags,
  );
  if (options.dataPlane !== undefined) {
    emulator.configureDataPlane(options.dataPlane);
  }
  for (const spec of options.vaults ?? []) {
    emulator.createVault(spec);
  }
  for (const spec of options.storageAccounts ?? []) {
    emulator.storage.create(spec);
  }
  for (const spec of options.sqlServers ?? []) {
    emulator.sql.create(spec);
  }

  const certificate = certificateFor(host);
  let caPath: string | undefined;
  if (options.certDir !== undefined) {
    mkdirSync(options.certDir, { recursive: true });
    caPath = join(options.certDir, 'ca.pem');
    writeFileSync(caPath, certificate.cert);
  }

  const server = createServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
    void emulator.handle(req, res);
  });
  const address = await listen(server, options.port ?? 0, host);
  const urlHost = isWildcard(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  emulator.setBaseUrl(`https://${urlHost}:${address.port}`);
  try {
    // Each SQL server's TDS endpoint, with the same certificate, beside the https server.
    await emulator.sql.startDataPlane({
      bindHost: host,
      host: isWildcard(host) ? '127.0.0.1' : host,
      certificate,
    });
  } catch (error) {
    server.close();
    await emulator.sql.closeDataPlane();
    throw error;
  }

  let closing: Promise<void> | undefined;
  const running: RunningEmulator = {
    url: `https://${urlHost}:${address.port}`,
    caPem: certificate.cert,
    createVault: (spec) => emulator.createVault(spec),
    getNetworkAcls: (resourceId) => emulator.getNetworkAcls(resourceId),
    setNetworkAcls: (resourceId, acls) => emulator.setNetworkAcls(resourceId, acls),
    configure: (patch) => emulator.configure(patch),
    stats: () => emulator.stats(),
    resetStats: () => emulator.resetStats(),
    vaultUri: (name) => emulator.dataPlane.vaultUri(name),
    configureDataPlane: (patch) => emulator.configureDataPlane(patch),
    dataPlaneStats: () => emulator.dataPlane.stats(),
    storage: emulator.storage.api,
    sql: emulator.sql.api,
    serviceTags: emulator.serviceTags.api,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        emulator.shutDown();
        const https = new Promise<void>((done) => server.close(() => done()));
        server.closeAllConnections();
        void Promise.all([https, emulator.sql.closeDataPlane()]).then(() => resolve());
      });
      return closing;
    },
  };
  if (caPath !== undefined) {
    running.caPath = caPath;
  }
  return running;
}
