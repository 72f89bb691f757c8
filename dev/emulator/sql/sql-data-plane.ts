/**
 * The SQL servers' data plane: a TDS endpoint per server (`TdsListener`) whose logins all fail,
 * with the error that tells a probe whether the firewall let it through. The firewall reaches
 * it late, as Azure's does ("It may take up to five minutes"): each change of the rules or of
 * `publicNetworkAccess` takes effect after the propagation delay shared with the other data
 * planes (`dataPlane.propagationDelayMs`, overridable per name), and the address a server sees
 * is theirs too (`dataPlane.clientAddress`, else the TCP peer; see `clientAddressFor`).
 *
 * Answers, as Azure SQL's:
 * - public network access disabled: 47073, "Connection was denied since Deny Public Network
 *   Access is set to Yes";
 * - no server-level rule admits the address: 40615, "Client with IP address 'a.b.c.d' is not
 *   allowed to access the server" (Azure/sql-action reads the address from this text);
 * - else 18456, "Login failed for user '<token-identified principal>'": the login got past the
 *   firewall to authentication, which is all a probe needs to know.
 */
import ipaddr from 'ipaddr.js';

import { clientAddressFor, dataPlaneSettings, type ModelContext, StatsBook } from '../arm-model';
import type { Certificate } from '../certificate';
import { Propagation } from '../propagation';
import { ALLOW_AZURE_RULE_NAME, type SqlFirewallRule } from './firewall-rules';
import { TdsListener } from './tds-listener';
import type { Login7, SqlError } from './tds-login';

/** What the data plane reads of a server record. */
export interface SqlServerView {
  key: string;
  name: string;
  publicNetworkAccess: 'Enabled' | 'Disabled';
  rules: ReadonlyMap<string, SqlFirewallRule>;
}

interface SqlFirewall {
  publicNetworkAccess: 'Enabled' | 'Disabled';
  /** Sorted `[start, end]` pairs as numbers; the names do not matter to a login. */
  ranges: [number, number][];
}

export interface SqlLoginStats {
  /** Logins answered 40615 or 47073. */
  loginsRefused: number;
  /** Logins answered 18456: past the firewall. */
  loginsThrough: number;
}

function zeroStats(): SqlLoginStats {
  return { loginsRefused: 0, loginsThrough: 0 };
}

function toNumber(address: string): number {
  return ipaddr.IPv4.parse(address)
    .toByteArray()
    .reduce((sum, byte) => sum * 256 + byte, 0);
}

function firewallOf(server: SqlServerView): SqlFirewall {
  const ranges = [...server.rules.values()]
    // "Allow Azure services" admits traffic from inside Azure, never an emulated caller.
    .filter((rule) => rule.name.toLowerCase() !== ALLOW_AZURE_RULE_NAME.toLowerCase())
    .map((rule): [number, number] => [toNumber(rule.startIpAddress), toNumber(rule.endIpAddress)])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return { publicNetworkAccess: server.publicNetworkAccess, ranges };
}

function admits(firewall: SqlFirewall, address: string): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) return false;
  const value = toNumber(address);
  return firewall.ranges.some(([start, end]) => start <= value && value <= end);
}

export class SqlDataPlane {
  private readonly propagation: Propagation<SqlFirewall>;
  private readonly listeners = new Map<string, TdsListener>();
  private readonly counters = new StatsBook(zeroStats);
  /** Set by `start`: where listeners bind, the host clients use, the certificate. */
  private endpoint: { bindHost: string; host: string; certificate: Certificate } | undefined;

  constructor(
    private readonly context: ModelContext,
    private readonly find: (key: string) => SqlServerView | undefined,
  ) {
    this.propagation = new Propagation(context.now);
  }

  /** Every change of a server's rules or public access passes through here. */
  recordVersion(server: SqlServerView): void {
    const { propagationDelayMs } = dataPlaneSettings(this.context.dataPlaneConfig(), server.name);
    this.propagation.record(server.key, firewallOf(server), propagationDelayMs);
  }

  /**
   * Opens the TDS endpoints of `servers` and of every server created later, on `bindHost`;
   * clients reach them at `host` (the emulator's host, 127.0.0.1 for a wildcard bind).
   */
  async start(
    endpoint: { bindHost: string; host: string; certificate: Certificate },
    servers: Iterable<SqlServerView>,
  ): Promise<void> {
    this.endpoint = endpoint;
    await Promise.all([...servers].map((server) => this.open(server)));
  }

  /** Opens a server's endpoint once the data plane has started; else does nothing. */
  open(server: SqlServerView): Promise<void> {
    if (this.endpoint === undefined) return Promise.resolve();
    let listener = this.listeners.get(server.key);
    if (!listener) {
      listener = new TdsListener(this.endpoint.certificate, server.name, (login, peer) =>
        this.judge(server.key, login, peer),
      );
      this.listeners.set(server.key, listener);
    }
    return listener.listen(this.endpoint.bindHost).then(() => undefined);
  }

  /** The host clients reach the endpoints at, once started (rendered as the server's FQDN). */
  host(): string | undefined {
    return this.endpoint?.host;
  }

  /** `host:port` of a server's TDS endpoint, once it listens. */
  address(key: string): string | undefined {
    const port = this.listeners.get(key)?.port();
    const host = this.endpoint?.host;
    if (port === undefined || host === undefined) return undefined;
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  stats(key: string): SqlLoginStats {
    return { ...this.counters.of(key) };
  }

  resetStats(): void {
    this.counters.reset();
  }

  async close(): Promise<void> {
    this.endpoint = undefined;
    await Promise.all([...this.listeners.values()].map((listener) => listener.close()));
    this.listeners.clear();
  }

  /** The error a login to this server ends with (see the file comment). */
  private judge(key: string, login: Login7, peer: string | undefined): SqlError {
    const server = this.find(key);
    // A server's first version holds from its creation, so there is always one in force.
    const firewall = this.propagation.enforced(key) ?? {
      publicNetworkAccess: 'Enabled',
      ranges: [],
    };
    const counters = this.counters.of(key);
    const name = server?.name ?? key;
    const address = clientAddressFor(this.context.dataPlaneConfig(), name, peer);
    if (firewall.publicNetworkAccess === 'Disabled') {
      counters.loginsRefused += 1;
      return {
        number: 47073,
        state: 1,
        class: 14,
        message:
          'Reason: An instance-specific error occurred while establishing a connection to SQL Server. Connection was denied since Deny Public Network Access is set to Yes (https://docs.microsoft.com/azure/azure-sql/database/connectivity-settings#deny-public-network-access). To connect to this server, use the Private Endpoint from inside your virtual network (https://docs.microsoft.com/azure/sql-database/sql-database-private-endpoint-overview#how-to-set-up-private-link-for-azure-sql-database).',
      };
    }
    if (!admits(firewall, address)) {
      counters.loginsRefused += 1;
      return {
        number: 40615,
        state: 1,
        class: 14,
        message: `Cannot open server '${name}' requested by the login. Client with IP address '${address}' is not allowed to access the server.  To enable access, use the Azure Management Portal or run sp_set_firewall_rule on the master database to create a firewall rule for this IP address or address range.  It may take up to five minutes for this change to take effect.`,
      };
    }
    counters.loginsThrough += 1;
    const user = login.accessToken ? '<token-identified principal>' : login.userName;
    return { number: 18456, state: 1, class: 14, message: `Login failed for user '${user}'.` };
  }
}
