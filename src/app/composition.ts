import { randomUUID } from 'node:crypto';

import type { AccessToken, TokenCredential } from '@azure/core-auth';

import { createEntraAuthenticator } from '../adapters/entra/authenticator';
import { TableAuditLog } from '../adapters/tables/audit-log';
import { createTableClient, TableLeaseStore } from '../adapters/tables/lease-store';
import type { Services } from '../api/services';
import { readAuditUseCase } from '../audit/read';
import { auditTrail } from '../audit/trail';
import { type Clock, systemClock } from '../domain/clock';
import type { Logger } from '../domain/logger';
import { type Authenticator, disabledAuthenticator } from '../domain/principal';
import { LeaseService } from '../leases/leases';
import { leaseUseCases } from '../leases/use-cases';
import { currentInvocationId, runInInvocation } from '../observability/invocation';
import { jsonLogger } from '../observability/json-logger';
import { redactingLogger } from '../observability/redact';
import { dataPlaneLookup, withDataPlanes } from '../overview/data-plane';
import { FirewallView, summariseTargets, targetsUseCase } from '../overview/targets';
import type { AuditLog } from '../ports/audit-log';
import type { LeaseStore } from '../ports/lease-store';
import type { TargetFirewall } from '../ports/target-firewall';
import { sweep } from '../sweep/sweep';
import { armFirewalls } from '../targets/firewalls';
import { TargetCoordinator } from '../writer/coordinator';
import { type Config, leaseTerms, loadConfig, managedTargets } from './config';

/** A fixed bearer token for an emulator (`AZURE_ARM_TOKEN`); never for Azure. */
function staticCredential(token: string): TokenCredential {
  return {
    getToken: (): Promise<AccessToken> =>
      Promise.resolve({ token, expiresOnTimestamp: Date.now() + 3600_000 }),
  };
}

let defaultCredential: TokenCredential | undefined;

/**
 * DefaultAzureCredential, created once and only when a setting needs it; the
 * SDK is loaded on first use, so emulator runs never pay for it.
 */
function azureCredential(): TokenCredential {
  if (!defaultCredential) {
    let loaded: Promise<TokenCredential> | undefined;
    const load = () => {
      loaded ??= import('@azure/identity').then(
        ({ DefaultAzureCredential }) => new DefaultAzureCredential(),
      );
      return loaded;
    };
    defaultCredential = {
      getToken: async (scopes, options) => (await load()).getToken(scopes, options),
    };
  }
  return defaultCredential;
}

export interface Overrides {
  clock?: Clock;
  logger?: Logger;
  store?: LeaseStore;
  firewall?: TargetFirewall;
  audit?: AuditLog;
  auth?: Authenticator;
}

/** The one composition root: SDK clients and ports are built here, from validated config only. */
export function createServices(config: Config, overrides: Overrides = {}): Services {
  const clock = overrides.clock ?? systemClock;
  // Every log line passes through redaction, whichever logger is plugged in.
  const logger = redactingLogger(overrides.logger ?? jsonLogger);
  const connectionString = config.LEASE_STORAGE_CONNECTION_STRING;
  const store =
    overrides.store ??
    new TableLeaseStore({
      tableName: config.LEASE_TABLE_NAME,
      connectionString,
      tableServiceUri: config.LEASE_STORAGE__tableServiceUri,
      credential: connectionString ? undefined : azureCredential(),
    });
  const audit =
    overrides.audit ??
    new TableAuditLog(
      createTableClient({
        tableName: `${config.LEASE_TABLE_NAME}audit`,
        connectionString,
        tableServiceUri: config.LEASE_STORAGE__tableServiceUri,
        credential: connectionString ? undefined : azureCredential(),
      }),
      logger,
    );
  const firewall =
    overrides.firewall ??
    armFirewalls({
      endpoint: config.AZURE_ARM_ENDPOINT,
      credential: config.AZURE_ARM_TOKEN
        ? staticCredential(config.AZURE_ARM_TOKEN)
        : azureCredential(),
    });
  const vaults = managedTargets(config);
  const kinds = new Map(vaults.map((target) => [target.name, target.kind]));
  const events = auditTrail(audit, clock, (name) => kinds.get(name));
  const terms = leaseTerms(config);
  // Resource Manager reads for GET /api/vaults, shared by every request of this instance.
  const view = new FirewallView(firewall, clock);
  const coordinator = new TargetCoordinator(vaults, {
    store,
    firewall,
    clock,
    logger,
    // A grant gives up after its apply timeout; a writer never activates it after that.
    pendingTimeoutMs: terms.applyTimeoutMs + 2000,
    // What the writer did goes to the audit trail as events; the trail words them.
    observer: {
      leaseExpired: (lease, result) => events.emit({ type: 'lease-expired', lease, ...result }),
      grantWithdrawn: (lease, detail) => events.emit({ type: 'grant-withdrawn', lease, detail }),
      firewallWritten: (written) => {
        if (written.outcome === 'success')
          view.written(written.vault, written.written, written.reserved);
        return events.emit({ type: 'firewall-written', ...written });
      },
    },
  });
  const auth =
    overrides.auth ??
    (config.AUTH_MODE === 'disabled'
      ? disabledAuthenticator
      : createEntraAuthenticator({
          tenantId: config.AUTH_TENANT_ID ?? '',
          audiences: config.AUTH_AUDIENCE,
          issuer: config.AUTH_ISSUER,
          jwksUri: config.AUTH_JWKS_URI,
        }));
  const leases = new LeaseService({
    store,
    coordinator,
    clock,
    vaults,
    terms,
    events,
    firewall,
  });
  return {
    auth,
    events,
    // Leases are answered with their target's data-plane address (additive, for waiting clients).
    leases: withDataPlanes(leaseUseCases(leases), dataPlaneLookup(vaults, firewall)),
    targets: targetsUseCase(() => summariseTargets({ store, view, firewall, vaults })),
    audit: readAuditUseCase(audit, (kind) =>
      vaults.filter((target) => target.kind === kind).map((target) => target.name),
    ),
    logger,
    health: () => store.ensureReady(),
    sweep: (invocationId) => {
      const id = invocationId ?? currentInvocationId() ?? `sweep:${randomUUID()}`;
      if (invocationId === undefined) logger.info('Sweep started', { invocationId: id });
      return runInInvocation(id, () =>
        sweep({
          coordinator,
          clock,
          logger,
          vaults,
          history: { store, keepMs: config.LEASE_HISTORY_DAYS * 86_400_000 },
        }),
      );
    },
    shutdown: () => coordinator.shutdown(),
  };
}

let instance: Services | undefined;

/** The process-wide services, built on first use from the environment. */
export function services(): Services {
  instance ??= createServices(loadConfig());
  return instance;
}
