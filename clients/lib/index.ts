/**
 * The kv-lease client library: the broker's HTTP API with retries within a deadline, tokens from
 * the environment or DefaultAzureCredential, and the wait for a vault's data plane. The CLI, the
 * GitHub action and the Azure Pipelines task are built on it.
 */
export { printable, printableJson, printableLines } from '../../src/contract/printable';
export { aliased, type Named, targetOf } from './aliases';
export {
  type AuditEntry,
  BrokerClient,
  type BrokerClientOptions,
  type CallOptions,
  DEFAULT_DEADLINE_MS,
  type GrantRequest,
  type Lease,
  type LeaseStatusFilter,
  normaliseBaseUrl,
  type TargetSummary,
  type TokenProvider,
  type VaultSummary,
  type WhoAmI,
} from './client';
export {
  addressInLease,
  clientAddressOf,
  type DataPlaneProgress,
  DEFAULT_DATA_PLANE_TIMEOUT_MS,
  DEFAULT_SQL_TIMEOUT_MS,
  defaultWaitMs,
  waitForDataPlane,
  type WaitForDataPlaneOptions,
} from './data-plane';
export {
  ALLOW_LOOPBACK_ENV,
  brokerDataPlane,
  checkConfiguredUri,
  DATA_PLANE_KINDS,
  DATA_PLANE_SUFFIXES,
  DataPlaneEndpoint,
  type DataPlaneKind,
  dataPlaneKind,
  kindNoun,
  type KnownSuffix,
  loopbackOptIn,
  type ResolveOptions,
  SQL_PORT,
  vaultScopeFor,
} from './data-plane-endpoint';
export { parseDuration, parseSince } from './duration';
export {
  CredentialError,
  DeadlineError,
  EXIT,
  exitCodeFor,
  type FieldError,
  ProblemError,
  UnreachableError,
  UntrustedDataPlaneError,
  UsageError,
  VaultRefusedError,
  WrongAddressError,
} from './errors';
export {
  type Probe,
  type ProbeAnswer,
  probeFor,
  STORAGE_API_VERSION,
  type TdsLogin,
} from './probes/index';
export { backoffMs, RETRYABLE_STATUSES, retryAfterMs, type RetryInfo, tlsFailure } from './retry';
export {
  DEFAULT_BROKER_SCOPE,
  DEFAULT_TOKEN_ENV,
  DEFAULT_VAULT_TOKEN_ENV,
  tokenProvider,
} from './token';
