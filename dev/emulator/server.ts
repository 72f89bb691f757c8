/**
 * A Key Vault Resource Manager emulator: the yardstick the project's tests measure the broker
 * against. It answers the real `@azure/arm-keyvault` client over https and is strict where Azure
 * is strict (rule validation, the 409 on overlapping writes, throttling) and where Azure's
 * behaviour is unverified it picks the answer that hurts a careless client (see `patchedVault`).
 * It keeps Azure's real weaknesses too: no ETags, so stale read-modify-writes silently lose updates.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { ArmError, badRequest, codeForStatus } from './arm-error';
import { certificateFor, isWildcard } from './certificate';
import { mulberry32, TokenBucket } from './chance';
import { DEFAULT_CONFIG, mergeConfig, vaultSpecSchema } from './config';
import { DATA_PLANE_PREFIX, EmulatedDataPlane } from './data-plane';
import { AZURE_DEFAULT_ACLS, copyAcls } from './network-acls';
import type {
  ArmMethod,
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
  type VaultCoordinates,
  vaultKey,
  VaultStore,
  withNetworkAcls,
} from './vault-store';

export type { DataPlaneConfig, DataPlanePatch, DataPlaneStats } from './data-plane';
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

const MAX_BODY_BYTES = 1024 * 1024;
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
] as const satisfies readonly (keyof EmulatorConfig)[];

const FAULT_MESSAGES: Readonly<Record<number, string>> = {
  429: 'Number of requests exceeded the limit. Please retry after the time given in Retry-After.',
  500: 'The server encountered an internal error. Please retry the request.',
  503: 'The service is temporarily unavailable. Please retry after the time given in Retry-After.',
};

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
    throttled: 0,
  };
}

function zeroVaultStats(): VaultStats {
  return { gets: 0, writes: 0, writesApplied: 0, conflicts: 0 };
}

/** One request and its answer, with the headers every Resource Manager answer carries. */
class Exchange {
  readonly startedAt = Date.now();
  readonly requestId = randomUUID();
  readonly correlationId: string;
  private closedEarly = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly log: ((line: string) => void) | undefined,
  ) {
    const correlation = req.headers['x-ms-correlation-request-id'];
    this.correlationId = typeof correlation === 'string' ? correlation : randomUUID();
    res.once('close', () => {
      if (!res.writableFinished) {
        this.closedEarly = true;
      }
    });
  }

  /** True once the client has hung up without waiting for the answer. */
  get clientGone(): boolean {
    return this.closedEarly || this.req.socket.destroyed;
  }

  send(status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (this.res.headersSent || this.res.destroyed) {
      return;
    }
    const payload = JSON.stringify(body);
    const clientRequestId = this.req.headers['x-ms-client-request-id'];
    this.res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(payload),
      'x-ms-request-id': this.requestId,
      'x-ms-correlation-request-id': this.correlationId,
      ...(typeof clientRequestId === 'string' ? { 'x-ms-client-request-id': clientRequestId } : {}),
      ...headers,
    });
    this.res.end(payload);
    this.log?.(
      `${this.req.method ?? '?'} ${this.req.url ?? '?'} -> ${status} (${Date.now() - this.startedAt} ms)`,
    );
  }

  fail(error: ArmError): void {
    this.send(error.status, error.body(), error.headers);
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) {
        reject(
          new ArmError(
            413,
            'RequestEntityTooLarge',
            `The request body exceeds ${MAX_BODY_BYTES} bytes.`,
          ),
        );
      } else {
        resolve(Buffer.concat(chunks));
      }
    });
    req.on('error', reject);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ArmError(
      400,
      'InvalidRequestContent',
      `The request content was invalid and could not be deserialized: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
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

function isArmMethod(method: string | undefined): method is ArmMethod {
  return method === 'GET' || method === 'PATCH' || method === 'PUT';
}

function notFound(route: VaultCoordinates): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource 'Microsoft.KeyVault/vaults/${route.name}' under resource group '${route.resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

function toArmError(error: unknown): ArmError {
  if (error instanceof ArmError) {
    return error;
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ArmError(500, 'InternalServerError', `The emulator failed: ${message}`);
}

type AdminHandler = (url: URL, body: Buffer) => { status: number; body: unknown };

class KeyVaultArmEmulator {
  private config: EmulatorConfig;
  /** The vaults' data plane at their `vaultUri`, following each stored version late. */
  readonly dataPlane = new EmulatedDataPlane();
  private readonly store = new VaultStore((record, created) =>
    this.dataPlane.recordVersion(record, created),
  );
  private counters = zeroCounters();
  private perVault = new Map<string, VaultStats>();
  /** Writes per vault key between arrival and answer, doomed ones included. */
  private readonly inFlight = new Map<string, number>();
  private buckets = new Map<string, TokenBucket>();
  private readonly random: () => number;
  private readonly lifetime = new AbortController();
  private readonly adminRoutes: Readonly<Record<string, Partial<Record<string, AdminHandler>>>>;

  constructor(
    config: EmulatorConfig,
    seed: number,
    private readonly requiredToken: string | undefined,
    private readonly log: ((line: string) => void) | undefined,
  ) {
    this.config = config;
    this.random = mulberry32(seed);
    this.adminRoutes = {
      health: { GET: () => ({ status: 200, body: { status: 'ok' } }) },
      vaults: {
        GET: () => ({
          status: 200,
          body: { value: this.store.list().map((record) => this.render(record)) },
        }),
        POST: (_url, body) => {
          const spec = vaultSpecSchema.safeParse(parseJson(body));
          if (!spec.success) {
            throw badRequest(
              `Invalid vault spec: ${spec.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
            );
          }
          return { status: 201, body: { id: this.createVault(spec.data) } };
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
      this.buckets = new Map();
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
    this.counters = zeroCounters();
    this.perVault = new Map(this.store.list().map((record) => [record.key, zeroVaultStats()]));
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const exchange = new Exchange(req, res, this.log);
    try {
      const url = new URL(req.url ?? '/', 'https://emulator.invalid');
      const body = await readBody(req);
      if (url.pathname.startsWith(ADMIN_PREFIX)) {
        this.handleAdmin(exchange, url, body);
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
    const route = matchVaultRoute(url.pathname);
    if (!route) {
      throw new ArmError(
        404,
        'NotFound',
        `The Key Vault ARM emulator has no route ${exchange.req.method ?? ''} ${url.pathname}.`,
      );
    }
    const method = exchange.req.method;
    if (!isArmMethod(method)) {
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
    await this.sleep(this.config.readLatencyMs);
    this.maybeFault('GET');
    const record = this.store.get(key);
    if (!record) {
      throw notFound(route);
    }
    exchange.send(200, this.render(record));
  }

  /**
   * A write holds its vault from arrival until it answers. One that arrives while another is in
   * flight is doomed to a 409 but still waits its own latency (a real one costs a round trip) and
   * still holds the vault meanwhile: Azure gives no promise that a rejected write is cheap.
   */
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

    const remaining = this.takeWriteToken(route.subscriptionId);
    const contentType = exchange.req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(contentType)) {
      throw new ArmError(
        415,
        'UnsupportedMediaType',
        `The content media type '${contentType}' is not supported. Only 'application/json' is supported.`,
      );
    }

    const conflicted = this.config.conflictOnOverlap && (this.inFlight.get(key) ?? 0) > 0;
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    try {
      await this.sleep(this.config.writeLatencyMs);
      this.maybeFault(method);
      const hang = this.config.hang;
      if (hang && this.random() < hang.rate) {
        await this.sleep(hang.ms);
        // NOTE: a client that gave up during the hang gets nothing applied: the hang models a
        // request stuck before Resource Manager acted on it. (Azure can also apply a write whose
        // client timed out; normal write latency keeps that behaviour, see below.)
        if (exchange.clientGone) {
          return;
        }
      }
      const existing = this.store.get(key);
      if (method === 'PATCH' && !existing) {
        throw notFound(route);
      }
      const now = new Date();
      const document = parseJson(body);
      const next =
        method === 'PATCH' && existing
          ? patchedVault(existing, document, now)
          : putVault(existing, route, document, now);
      if (conflicted) {
        this.counters.conflicts += 1;
        if (vaultStats) {
          vaultStats.conflicts += 1;
        }
        throw new ArmError(
          409,
          'ConflictError',
          `The resource was changed from the point the operation began. Another operation on vault '${route.name}' was in progress; serialize the operations on a vault and retry.`,
        );
      }
      // Applied even when the client has hung up during the write latency: Azure does not undo a
      // write because its caller stopped listening.
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
      exchange.send(
        200,
        this.render(next),
        remaining === undefined
          ? {}
          : { 'x-ms-ratelimit-remaining-subscription-writes': String(remaining) },
      );
    } finally {
      const count = (this.inFlight.get(key) ?? 1) - 1;
      if (count === 0) {
        this.inFlight.delete(key);
      } else {
        this.inFlight.set(key, count);
      }
    }
  }

  /** Returns the tokens left, undefined when throttling is off; throws 429 when none is left. */
  private takeWriteToken(subscriptionId: string): number | undefined {
    const throttle = this.config.writeThrottle;
    if (!throttle) {
      return undefined;
    }
    const bucketKey = subscriptionId.toLowerCase();
    let bucket = this.buckets.get(bucketKey);
    if (!bucket) {
      bucket = new TokenBucket(throttle.capacity, throttle.refillPerSecond, Date.now());
      this.buckets.set(bucketKey, bucket);
    }
    const taken = bucket.take(Date.now());
    if (!taken.ok) {
      this.counters.throttled += 1;
      throw new ArmError(
        429,
        'TooManyRequests',
        `Number of write requests for subscription '${subscriptionId}' exceeded the limit of ${throttle.capacity}, refilling at ${throttle.refillPerSecond} per second. Please retry after ${taken.retryAfterSeconds} second(s).`,
        {
          'Retry-After': String(taken.retryAfterSeconds),
          'x-ms-ratelimit-remaining-subscription-writes': '0',
        },
      );
    }
    return taken.remaining;
  }

  /** Decided after the latency and before anything is applied, so a faulted write changes nothing. */
  private maybeFault(method: ArmMethod): void {
    const faults = this.config.faults;
    if (!faults || (faults.methods && !faults.methods.includes(method))) {
      return;
    }
    if (this.random() >= faults.rate) {
      return;
    }
    const status = faults.statuses[Math.floor(this.random() * faults.statuses.length)] ?? 500;
    this.counters.faultsInjected += 1;
    const headers: Record<string, string> =
      status === 429 || status === 503
        ? { 'Retry-After': String(faults.retryAfterSeconds ?? 1) }
        : {};
    throw new ArmError(
      status,
      codeForStatus(status),
      `${FAULT_MESSAGES[status] ?? 'The request failed.'} (fault injected by the emulator)`,
      headers,
    );
  }

  private sleep(ms: number): Promise<void> {
    return ms > 0 ? delay(ms, undefined, { signal: this.lifetime.signal }) : Promise.resolve();
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
  const emulator = new KeyVaultArmEmulator(config, seed, options.requiredToken, options.log);
  if (options.dataPlane !== undefined) {
    emulator.configureDataPlane(options.dataPlane);
  }
  for (const spec of options.vaults ?? []) {
    emulator.createVault(spec);
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
  emulator.dataPlane.setBaseUrl(`https://${urlHost}:${address.port}`);

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
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        emulator.shutDown();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
  if (caPath !== undefined) {
    running.caPath = caPath;
  }
  return running;
}
