/**
 * Azure SQL logical servers over Resource Manager: `GET` of a server (`servers.get`) and its
 * server-level firewall rules as child resources (`firewallRules.createOrUpdate / get / delete /
 * listByServer`). A rule write is synchronous and independent of writes of other rules, so there
 * is no 409 on overlap; what Azure does refuse is modelled: a server with
 * `publicNetworkAccess: Disabled` refuses rule writes (400 `DenyPublicEndpointEnabled`), the
 * 129th rule fails (40611), and a delete may be interrupted (409 `OperationInterrupted`, the
 * `interruptedDeletes` knob). Latency, faults, throttling, refusals and hangs come from `ArmGate`.
 */
import { z } from 'zod';

import { ArmError, badRequest, resourceNotFound } from '../arm-error';
import { parseJson, requireJsonContent } from '../arm-exchange';
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
  resourceId,
  type ResourceModel,
  StatsBook,
} from '../arm-model';
import type { ArmMethod } from '../types';
import { DEFAULT_LOCATION, specCoordinates, validateSubscriptionId } from '../vault-store';
import {
  ALLOW_AZURE_RULE_NAME,
  denyPublicEndpoint,
  MAX_SQL_FIREWALL_RULES,
  parseRuleAddresses,
  ruleLimitReached,
  type SqlFirewallRule,
  validateRuleName,
} from './firewall-rules';
import { SqlDataPlane, type SqlLoginStats } from './sql-data-plane';

export const SQL_SERVER_TYPE = 'Microsoft.Sql/servers';
const SERVER_PATH =
  '^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\\.Sql/servers/([^/]+)';
const SERVER_ROUTE = new RegExp(`${SERVER_PATH}/?$`, 'i');
const RULES_ROUTE = new RegExp(`${SERVER_PATH}/firewallRules/?$`, 'i');
const RULE_ROUTE = new RegExp(`${SERVER_PATH}/firewallRules/([^/]+)/?$`, 'i');
const SERVER_ID = new RegExp(`${SERVER_PATH}/?$`, 'i');
const SERVER_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const ruleSchema = z.strictObject({
  name: z.string(),
  startIpAddress: z.string(),
  endIpAddress: z.string(),
});

export const sqlServerSpecSchema = z.strictObject({
  subscriptionId: z.string().optional(),
  resourceGroup: z.string(),
  name: z.string(),
  location: z.string().optional(),
  publicNetworkAccess: z.enum(['Enabled', 'Disabled']).optional(),
  /** Seeds `AllowAllWindowsAzureIps` (0.0.0.0–0.0.0.0). */
  allowAzureServices: z.boolean().optional(),
  firewallRules: z.array(ruleSchema).optional(),
});
export type SqlServerSpec = z.infer<typeof sqlServerSpecSchema>;

interface ServerCoordinates {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

interface ServerRecord extends ServerCoordinates {
  id: string;
  key: string;
  location: string;
  publicNetworkAccess: 'Enabled' | 'Disabled';
  /** By lower-case name: Azure SQL rule names are case-insensitive. */
  rules: Map<string, SqlFirewallRule>;
}

export interface SqlServerStats extends SqlLoginStats {
  gets: number;
  lists: number;
  puts: number;
  deletes: number;
  writesApplied: number;
  /** Deletes answered 409 OperationInterrupted. */
  interrupted: number;
  /** Rule writes between arrival and answer now. */
  writesInFlight: number;
  peakWritesInFlight: number;
}

type Counters = Omit<SqlServerStats, 'writesInFlight' | keyof SqlLoginStats>;

function zeroCounters(): Counters {
  return {
    gets: 0,
    lists: 0,
    puts: 0,
    deletes: 0,
    writesApplied: 0,
    interrupted: 0,
    peakWritesInFlight: 0,
  };
}

/** What tests and the local runner do with SQL servers without going through HTTP. */
export interface SqlServersApi {
  /** Returns the ARM resource id. Throws when the spec is invalid or the server exists. */
  create(spec: SqlServerSpec): string;
  listFirewallRules(resourceId: string): SqlFirewallRule[];
  /** "Someone else" writes a rule (the 128-rule limit holds; public access is not checked). */
  setFirewallRule(resourceId: string, rule: SqlFirewallRule): void;
  deleteFirewallRule(resourceId: string, name: string): void;
  setPublicNetworkAccess(resourceId: string, value: 'Enabled' | 'Disabled'): void;
  /**
   * `host:port` of the server's TDS endpoint (`127.0.0.1:<port>`), once it listens; the host is
   * what `fullyQualifiedDomainName` says. Rejects before the emulator listens.
   */
  dataPlaneAddress(resourceId: string): Promise<string>;
  stats(): Record<string, SqlServerStats>;
}

function serverId(c: ServerCoordinates): string {
  return resourceId(SQL_SERVER_TYPE, c);
}

function notFound(route: ServerCoordinates, rule?: string): ArmError {
  const child = rule === undefined ? '' : `/firewallRules/${rule}`;
  return resourceNotFound(`${SQL_SERVER_TYPE}/${route.name}${child}`, route.resourceGroup);
}

export class SqlModel implements ResourceModel {
  private readonly servers = new Map<string, ServerRecord>();
  private readonly counters = new StatsBook(zeroCounters);
  private readonly inFlight = new Map<string, number>();
  /** The TDS endpoints, following the rules late. */
  private readonly dataPlane: SqlDataPlane;
  readonly adminRoutes: AdminRoutes;
  readonly api: SqlServersApi;

  constructor(private readonly context: ModelContext) {
    this.dataPlane = new SqlDataPlane(context, (key) => this.servers.get(key));
    this.adminRoutes = {
      'sql-servers': {
        GET: () => ({
          status: 200,
          body: { value: [...this.servers.values()].map((s) => this.renderWithRules(s)) },
        }),
        POST: (_url, body) => {
          return {
            status: 201,
            body: { id: this.create(parseSpec(sqlServerSpecSchema, body, 'SQL server spec')) },
          };
        },
        PATCH: (url, body) => {
          const id = requiredQuery(url, 'id', 'the SQL server resource id');
          const patch = z
            .strictObject({ publicNetworkAccess: z.enum(['Enabled', 'Disabled']) })
            .safeParse(parseJson(body));
          if (!patch.success)
            throw badRequest('Expected { "publicNetworkAccess": "Enabled" | "Disabled" }.');
          this.setPublicAccess(this.require(id), patch.data.publicNetworkAccess);
          return { status: 200, body: this.renderWithRules(this.require(id)) };
        },
      },
      'sql-servers/firewall-rules': {
        GET: (url) => ({
          status: 200,
          body: {
            value: this.api.listFirewallRules(
              requiredQuery(url, 'id', 'the SQL server resource id'),
            ),
          },
        }),
        PUT: (url, body) => {
          const id = requiredQuery(url, 'id', 'the SQL server resource id');
          const name = requiredQuery(url, 'name', 'the rule name');
          this.putRule(this.require(id), parseRuleAddresses(name, parseJson(body)));
          return { status: 200, body: { value: this.api.listFirewallRules(id) } };
        },
        DELETE: (url) => {
          const id = requiredQuery(url, 'id', 'the SQL server resource id');
          this.removeRule(this.require(id), requiredQuery(url, 'name', 'the rule name'));
          return { status: 200, body: { value: this.api.listFirewallRules(id) } };
        },
      },
      'sql-servers/stats': { GET: () => ({ status: 200, body: this.stats() }) },
    };
    this.api = {
      create: (spec) => this.create(spec),
      listFirewallRules: (id) => [...this.require(id).rules.values()].map((rule) => ({ ...rule })),
      setFirewallRule: (id, rule) => {
        this.putRule(this.require(id), parseRuleAddresses(rule.name, rule));
      },
      deleteFirewallRule: (id, name) => this.removeRule(this.require(id), name),
      setPublicNetworkAccess: (id, value) => this.setPublicAccess(this.require(id), value),
      dataPlaneAddress: async (id) => {
        const server = this.require(id);
        await this.dataPlane.open(server);
        const address = this.dataPlane.address(server.key);
        if (address === undefined) {
          throw new Error(
            `The SQL server ${server.id} has no TDS endpoint: the emulator does not listen.`,
          );
        }
        return address;
      },
      stats: () => this.stats(),
    };
  }

  route(pathname: string): ((request: ArmRequest) => Promise<void>) | undefined {
    for (const [pattern, handler] of [
      [
        RULE_ROUTE,
        (c: ServerCoordinates, rule: string, r: ArmRequest) => this.ruleRequest(r, c, rule),
      ],
      [RULES_ROUTE, (c: ServerCoordinates, _rule: string, r: ArmRequest) => this.listRequest(r, c)],
      [
        SERVER_ROUTE,
        (c: ServerCoordinates, _rule: string, r: ArmRequest) => this.serverRequest(r, c),
      ],
    ] as const) {
      const match = pattern.exec(pathname);
      if (!match) continue;
      const [subscriptionId = '', resourceGroup = '', name = '', rule = ''] = decodeSegments(
        pathname,
        match.slice(1),
      );
      return (request) => {
        validateSubscriptionId(subscriptionId);
        return handler({ subscriptionId, resourceGroup, name }, rule, request);
      };
    }
    return undefined;
  }

  resetStats(): void {
    this.counters.reset();
    this.dataPlane.resetStats();
  }

  /** Opens a TDS endpoint per server, now and for every server created later. */
  startDataPlane(endpoint: Parameters<SqlDataPlane['start']>[0]): Promise<void> {
    return this.dataPlane.start(endpoint, this.servers.values());
  }

  closeDataPlane(): Promise<void> {
    return this.dataPlane.close();
  }

  create(spec: SqlServerSpec): string {
    const coordinates: ServerCoordinates = specCoordinates(spec);
    if (!SERVER_NAME.test(coordinates.name)) {
      throw badRequest(
        `Invalid server name '${coordinates.name}': 1-63 lower-case letters, digits and hyphens, not starting or ending with a hyphen.`,
      );
    }
    const id = serverId(coordinates);
    const key = id.toLowerCase();
    if (this.servers.has(key)) {
      throw new ArmError(409, 'Conflict', `The SQL server ${id} already exists.`);
    }
    const record: ServerRecord = {
      ...coordinates,
      id,
      key,
      location: (spec.location ?? DEFAULT_LOCATION).toLowerCase().replace(/\s+/g, ''),
      publicNetworkAccess: spec.publicNetworkAccess ?? 'Enabled',
      rules: new Map(),
    };
    const seeds = [
      ...(spec.allowAzureServices
        ? [{ name: ALLOW_AZURE_RULE_NAME, startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' }]
        : []),
      ...(spec.firewallRules ?? []),
    ];
    for (const seed of seeds) {
      this.setRule(record, parseRuleAddresses(seed.name, seed));
    }
    this.servers.set(key, record);
    this.dataPlane.recordVersion(record);
    // A failure to listen shows in dataPlaneAddress, which waits for the same promise.
    this.dataPlane.open(record).catch(() => undefined);
    return id;
  }

  /** Adds or replaces a rule; a new one past the limit fails with 40611. */
  private setRule(server: ServerRecord, rule: SqlFirewallRule): boolean {
    validateRuleName(rule.name);
    const key = rule.name.toLowerCase();
    const existing = server.rules.get(key);
    if (!existing && server.rules.size >= MAX_SQL_FIREWALL_RULES) {
      throw ruleLimitReached();
    }
    // An update keeps the name as first written, as Azure keeps the resource's name.
    server.rules.set(key, { ...rule, name: existing?.name ?? rule.name });
    return existing === undefined;
  }

  /** A rule written out of band: the data plane follows. */
  private putRule(server: ServerRecord, rule: SqlFirewallRule): void {
    this.setRule(server, rule);
    this.dataPlane.recordVersion(server);
  }

  private removeRule(server: ServerRecord, name: string): boolean {
    const existed = server.rules.delete(name.toLowerCase());
    this.dataPlane.recordVersion(server);
    return existed;
  }

  private setPublicAccess(server: ServerRecord, value: 'Enabled' | 'Disabled'): void {
    server.publicNetworkAccess = value;
    this.dataPlane.recordVersion(server);
  }

  private require(resourceId: string): ServerRecord {
    const match = SERVER_ID.exec(resourceId);
    const record = match && this.servers.get(resourceId.replace(/\/$/, '').toLowerCase());
    if (!record) {
      throw new ArmError(
        404,
        'ResourceNotFound',
        `No SQL server with resource id '${resourceId}'.`,
      );
    }
    return record;
  }

  private stats(): Record<string, SqlServerStats> {
    return Object.fromEntries(
      [...this.servers.keys()].map((key) => [
        key,
        {
          ...this.counters.of(key),
          writesInFlight: this.inFlight.get(key) ?? 0,
          ...this.dataPlane.stats(key),
        },
      ]),
    );
  }

  private render(server: ServerRecord): Record<string, unknown> {
    return {
      id: server.id,
      name: server.name,
      type: SQL_SERVER_TYPE,
      location: server.location,
      kind: 'v12.0',
      tags: {},
      properties: {
        administratorLogin: 'sqladmin',
        version: '12.0',
        state: 'Ready',
        // Azure's name until the TDS endpoints listen, then the host they answer at.
        fullyQualifiedDomainName: this.dataPlane.host() ?? `${server.name}.database.windows.net`,
        publicNetworkAccess: server.publicNetworkAccess,
        minimalTlsVersion: '1.2',
        restrictOutboundNetworkAccess: 'Disabled',
      },
    };
  }

  private renderWithRules(server: ServerRecord): Record<string, unknown> {
    const dataPlane = this.dataPlane.address(server.key);
    return {
      ...this.render(server),
      firewallRules: [...server.rules.values()],
      ...(dataPlane === undefined ? {} : { dataPlane }),
    };
  }

  private renderRule(server: ServerRecord, rule: SqlFirewallRule): Record<string, unknown> {
    return {
      id: `${server.id}/firewallRules/${rule.name}`,
      name: rule.name,
      type: `${SQL_SERVER_TYPE}/firewallRules`,
      properties: { startIpAddress: rule.startIpAddress, endIpAddress: rule.endIpAddress },
    };
  }

  /** Counts the request, applies a configured refusal, and waits the read latency or fault. */
  private async readServer(
    route: ServerCoordinates,
    kind: 'gets' | 'lists',
  ): Promise<ServerRecord> {
    const key = serverId(route).toLowerCase();
    if (this.servers.has(key)) this.counters.of(key)[kind] += 1;
    this.context.gate.maybeRefuse(refusalTargetFor(SQL_SERVER_TYPE, route), 'GET');
    await this.context.gate.read();
    const server = this.servers.get(key);
    if (!server) throw notFound(route);
    return server;
  }

  private async serverRequest({ exchange }: ArmRequest, route: ServerCoordinates): Promise<void> {
    if (exchange.req.method !== 'GET') throw methodNotAllowed(['GET'], exchange.req.method);
    exchange.send(200, this.render(await this.readServer(route, 'gets')));
  }

  private async listRequest({ exchange }: ArmRequest, route: ServerCoordinates): Promise<void> {
    // NOTE: PUT on the collection (FirewallRules_Replace, every rule at once) is not emulated:
    // the broker must never use it (it replaces rules it does not own).
    if (exchange.req.method !== 'GET') throw methodNotAllowed(['GET'], exchange.req.method);
    const server = await this.readServer(route, 'lists');
    exchange.send(200, {
      value: [...server.rules.values()].map((rule) => this.renderRule(server, rule)),
    });
  }

  private async ruleRequest(
    request: ArmRequest,
    route: ServerCoordinates,
    ruleName: string,
  ): Promise<void> {
    const { exchange } = request;
    const method = exchange.req.method;
    if (method === 'GET') {
      const server = await this.readServer(route, 'gets');
      const rule = server.rules.get(ruleName.toLowerCase());
      if (!rule) throw notFound(route, ruleName);
      exchange.send(200, this.renderRule(server, rule));
      return;
    }
    if (method !== 'PUT' && method !== 'DELETE')
      throw methodNotAllowed(['GET', 'PUT', 'DELETE'], method);
    await this.writeRule(request, route, ruleName, method);
  }

  private async writeRule(
    { exchange, body }: ArmRequest,
    route: ServerCoordinates,
    ruleName: string,
    method: Extract<ArmMethod, 'PUT' | 'DELETE'>,
  ): Promise<void> {
    const key = serverId(route).toLowerCase();
    const counters = this.counters.of(key);
    if (this.servers.has(key)) counters[method === 'PUT' ? 'puts' : 'deletes'] += 1;
    const gate = this.context.gate;
    gate.maybeRefuse(refusalTargetFor(SQL_SERVER_TYPE, route), method);
    const remaining = gate.takeWriteToken(route.subscriptionId);
    if (method === 'PUT') requireJsonContent(exchange);
    const headers = throttleHeaders(remaining);
    const inFlight = (this.inFlight.get(key) ?? 0) + 1;
    this.inFlight.set(key, inFlight);
    counters.peakWritesInFlight = Math.max(counters.peakWritesInFlight, inFlight);
    try {
      await gate.write(`${key}/firewallrules/${ruleName.toLowerCase()}`, exchange, method, {
        prepare: () => {
          const server = this.servers.get(key);
          if (!server) throw notFound(route);
          if (server.publicNetworkAccess === 'Disabled') throw denyPublicEndpoint();
          if (method === 'DELETE') {
            const interrupted = this.context.gate.interruptDelete();
            if (interrupted) {
              counters.interrupted += 1;
              throw interrupted;
            }
            return { server, rule: undefined };
          }
          validateRuleName(ruleName);
          return { server, rule: parseRuleAddresses(ruleName, parseJson(body)) };
        },
        apply: ({ server, rule }) => {
          if (rule === undefined) {
            const existed = this.removeRule(server, ruleName);
            counters.writesApplied += existed ? 1 : 0;
            exchange.sendText(existed ? 200 : 204, '', '', headers);
            return;
          }
          const created = this.setRule(server, rule);
          this.dataPlane.recordVersion(server);
          counters.writesApplied += 1;
          const stored = server.rules.get(rule.name.toLowerCase()) ?? rule;
          exchange.send(created ? 201 : 200, this.renderRule(server, stored), headers);
        },
      });
    } finally {
      const left = (this.inFlight.get(key) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(key);
      else this.inFlight.set(key, left);
    }
  }
}
