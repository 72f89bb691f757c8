import { randomUUID } from 'node:crypto';

import type { AccessToken, TokenCredential } from '@azure/core-auth';

import { ArmVaultFirewall } from '../adapters/arm/vault-firewall';
import { createEntraAuthenticator } from '../adapters/entra/authenticator';
import { TableAuditLog } from '../adapters/tables/audit-log';
import { createTableClient, TableLeaseStore } from '../adapters/tables/lease-store';
import { type Clock, systemClock } from '../domain/clock';
import type { Logger } from '../domain/logger';
import { type Authenticator, disabledAuthenticator } from '../domain/principal';
import { LeaseService } from '../leases/leases';
import type { LeaseStore } from '../ports/lease-store';
import type { VaultFirewall } from '../ports/vault-firewall';
import { sweep } from '../sweep/sweep';
import { summariseVaults } from '../vaults/vaults';
import { VaultCoordinator } from '../writer/coordinator';
import { type Config, loadConfig, runsInAzure } from './config';
import { currentInvocationId, runInInvocation } from './invocation';
import { jsonLogger } from './logging';
import { redactingLogger } from './redact';
import type { Services } from './services';

/** Key Vault's documented limit of IPv4 rules per vault. */
export const MAX_RULES = 1000;

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
  firewall?: VaultFirewall;
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
  const auditClient = createTableClient({
    tableName: `${config.LEASE_TABLE_NAME}audit`,
    connectionString,
    tableServiceUri: config.LEASE_STORAGE__tableServiceUri,
    credential: connectionString ? undefined : azureCredential(),
  });
  const audit = new TableAuditLog(auditClient, logger);
  const firewall =
    overrides.firewall ??
    new ArmVaultFirewall({
      endpoint: config.AZURE_ARM_ENDPOINT,
      credential: config.AZURE_ARM_TOKEN
        ? staticCredential(config.AZURE_ARM_TOKEN)
        : azureCredential(),
    });
  const vaults = config.BROKER_VAULTS;
  const brokerActor = 'kv-lease';
  const coordinator = new VaultCoordinator(vaults, {
    store,
    firewall,
    clock,
    logger,
    maxRules: MAX_RULES,
    // A grant gives up after LEASE_APPLY_TIMEOUT_SECONDS; a writer never activates it after that.
    pendingTimeoutMs: config.LEASE_APPLY_TIMEOUT_SECONDS * 1000 + 2000,
    observer: {
      leaseExpired: (lease) =>
        audit.append({
          at: clock.now(),
          action: 'expire',
          principal: lease.principal,
          appId: lease.appId,
          vault: lease.vault,
          ip: lease.ip,
          leaseId: lease.id,
          outcome: 'success',
          detail: `expired, ended by ${brokerActor}`,
          invocationId: currentInvocationId(),
        }),
      leaseRefused: (lease, why) =>
        audit.append({
          at: clock.now(),
          action: 'refused',
          principal: lease.principal,
          appId: lease.appId,
          vault: lease.vault,
          ip: lease.ip,
          leaseId: lease.id,
          outcome: 'refused',
          detail: `grant: VAULT.AT_CAPACITY: the writer refused the pending lease (${why}: ${MAX_RULES} rules)`,
          invocationId: currentInvocationId(),
        }),
      firewallWritten: (event) =>
        audit.append({
          at: clock.now(),
          action: 'firewall-write',
          principal: brokerActor,
          vault: event.vault,
          outcome: event.outcome,
          detail:
            `added [${event.added.join(', ')}] removed [${event.removed.join(', ')}]${event.detail ? `: ${event.detail}` : ''}`.slice(
              0,
              4096,
            ),
          invocationId: currentInvocationId(),
        }),
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
    policy: {
      ...config,
      // NOTE: the cap is per caller identity. With AUTH_MODE=disabled every caller is
      // the one local-dev principal, so a cap would be a global one: it does not apply.
      LEASE_MAX_ACTIVE_PER_PRINCIPAL:
        config.AUTH_MODE === 'disabled'
          ? Number.POSITIVE_INFINITY
          : config.LEASE_MAX_ACTIVE_PER_PRINCIPAL,
    },
    firewall,
    maxRules: MAX_RULES,
  });
  return {
    auth,
    audit,
    leases,
    logger,
    vaults: () => summariseVaults({ store, firewall, vaults, maxRules: MAX_RULES }),
    vaultUri: async (name) => {
      const vault = vaults.find((candidate) => candidate.name === name.toLowerCase());
      // Optional on the lease resource: a vault that cannot be read now just goes without it.
      return vault && firewall.vaultUri?.(vault, AbortSignal.timeout(5000)).catch(() => undefined);
    },
    health: () => store.ensureReady(),
    sweep: (invocationId) => {
      const id = invocationId ?? currentInvocationId() ?? `sweep:${randomUUID()}`;
      if (invocationId === undefined) logger.info('Sweep started', { invocationId: id });
      return runInInvocation(id, () => sweep({ coordinator, clock, logger, vaults }));
    },
    clock,
  };
}

let instance: Services | undefined;

// NOTE: in Azure the configuration is checked when the Functions host loads the
// app, not on the first request: a bad setting (AUTH_MODE=disabled above all)
// stops the worker with the message in the host's log, and no function is
// served. Outside Azure, the local runner and the tests load it themselves.
if (runsInAzure(process.env)) loadConfig(process.env);

/** The process-wide services, built on first use from the environment. */
export function services(): Services {
  instance ??= createServices(loadConfig());
  return instance;
}
