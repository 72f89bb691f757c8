import {
  aliased,
  BrokerClient,
  checkConfiguredUri,
  type DataPlaneEndpoint,
  DEFAULT_BROKER_SCOPE,
  type Lease,
  printable,
  printableLines,
  targetOf,
  type TokenProvider,
} from '../lib/index';
import {
  brokerScope,
  clampReason,
  grantStep,
  releaseStep,
  type StateStore,
  type StepLog,
} from './lease-step';
import { flag, optionalSeconds, required, seconds, targetName } from './settings';

/**
 * The two pipeline steps as both CI hosts run them: the GitHub action (main /
 * post) and the Azure Pipelines task (execution / postjobexecution). A host
 * brings its inputs, state, log, credentials and result reporting; the rest
 * (parsing, cancel handling, the grant and the release) is the same.
 */

/** The step's settings, named as each host spells them (`broker-url`, `brokerUrl`, ...). */
export type Setting =
  | 'brokerUrl'
  | 'target'
  | 'vault'
  | 'dataPlane'
  | 'vaultUri'
  | 'allowLoopbackDataPlane'
  | 'scope'
  | 'ttlSeconds'
  | 'reason'
  | 'wait'
  | 'waitTimeoutSeconds'
  | 'grantTimeoutSeconds'
  | 'release'
  | 'releaseTimeoutSeconds';

export interface PipelineHost {
  /** The host's name of each setting; a setting it does not offer takes its default. */
  names: Partial<Record<Setting, string>>;
  /** An input's value by the host's name, '' when not set. */
  input(name: string): string;
  state: StateStore;
  log: StepLog;
  userAgent: string;
  /** The broker's token for `scope` (masked in the log). */
  brokerToken(scope: string): TokenProvider;
  /** A data-plane token for the endpoint, for its scope (masked in the log). */
  vaultToken(endpoint: DataPlaneEndpoint): TokenProvider;
  defaultReason(): string;
  /** The grant step worked: publish the lease (outputs / output variables). */
  granted(lease: Lease): void;
  /** The grant step failed: fail the step with this one message. */
  failed(message: string): void;
  /** The end step is done (`outcome` for the log), or could not release (`problem`). */
  released(outcome: { problem?: string }): void;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The host's log, and its failure, with the broker's and the vault's words made printable: a
 * lease field with a newline or an escape sequence must not forge a CI logging command
 * (`::set-output`, `##vso[...]`) or rewrite the log on a terminal.
 */
function guarded(host: PipelineHost): PipelineHost {
  return {
    ...host,
    log: {
      info: (text) => host.log.info(printable(text)),
      warning: (text) => host.log.warning(printable(text)),
    },
    failed: (text) => host.failed(printableLines(text)),
    released: ({ problem }) =>
      host.released(problem === undefined ? {} : { problem: printable(problem) }),
  };
}

function setting(host: PipelineHost, name: Setting): { label: string; value: string } {
  const label = host.names[name];
  return { label: label ?? name, value: label ? host.input(label) : '' };
}

function scopeOf(host: PipelineHost): string {
  return brokerScope(setting(host, 'scope').value || DEFAULT_BROKER_SCOPE);
}

function secondsOf(host: PipelineHost, name: Setting, fallback: number): number {
  const { label, value } = setting(host, name);
  return seconds(label, value, fallback) * 1000;
}

function flagOf(host: PipelineHost, name: Setting, fallback: boolean): boolean {
  const { label, value } = setting(host, name);
  return flag(label, value, fallback);
}

/** The grant step: grant, wait for the data plane, publish the lease; any failure fails the step. */
export async function runGrant(unguarded: PipelineHost): Promise<void> {
  const host = guarded(unguarded);
  // A cancel reaches the step as SIGINT (SIGTERM later): stop waiting, and
  // leave the release to the end step, which knows the Idempotency-Key.
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    host.log.warning(
      `kv-lease: ${signal} during the grant; the end-of-job step releases whatever the broker granted`,
    );
    controller.abort(new Error(`cancelled (${signal})`));
    setTimeout(() => process.exit(1), 1000).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const broker = setting(host, 'brokerUrl');
    const url = required(broker.label, broker.value, 'the base URL of the kv-lease broker');
    // `target`, or `vault` (its v1 name): one of them, or both naming the same target.
    const [targetInput, vaultInput] = [setting(host, 'target'), setting(host, 'vault')];
    const target = targetOf(targetInput, vaultInput);
    targetName(target.body.target ? targetInput.label : vaultInput.label, target.name);
    // `data-plane`, or `vault-uri` (its v1 name). Checked before the grant: a configured
    // address no token may go to leaves no lease behind.
    const [dataPlaneInput, vaultUriInput] = [setting(host, 'dataPlane'), setting(host, 'vaultUri')];
    const configured = aliased(dataPlaneInput, vaultUriInput);
    const dataPlane = configured?.value;
    if (configured) {
      checkConfiguredUri(
        configured.value,
        configured.primary ? dataPlaneInput.label : vaultUriInput.label,
      );
    }
    const ttl = setting(host, 'ttlSeconds');
    const ttlSeconds = optionalSeconds(ttl.label, ttl.value);
    const client = new BrokerClient({
      baseUrl: url,
      token: host.brokerToken(scopeOf(host)),
      userAgent: host.userAgent,
    });
    const lease = await grantStep(
      {
        brokerUrl: url,
        target,
        ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
        reason: clampReason(setting(host, 'reason').value || host.defaultReason()),
        wait: flagOf(host, 'wait', true),
        waitTimeoutMs: secondsOf(host, 'waitTimeoutSeconds', 300),
        ...(dataPlane ? { dataPlane } : {}),
        allowLoopbackDataPlane: flagOf(host, 'allowLoopbackDataPlane', false),
        release: flagOf(host, 'release', true),
        grantDeadlineMs: secondsOf(host, 'grantTimeoutSeconds', 120),
      },
      {
        client,
        state: host.state,
        log: host.log,
        vaultToken: (endpoint) => host.vaultToken(endpoint),
        signal: controller.signal,
      },
    );
    host.granted(lease);
  } catch (error) {
    host.failed(`kv-lease: ${message(error)}`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** The end-of-job step: release (see `releaseStep`); a failure is reported, never thrown. */
export async function runRelease(unguarded: PipelineHost): Promise<void> {
  const host = guarded(unguarded);
  try {
    const outcome = await releaseStep({
      client: (baseUrl) =>
        new BrokerClient({
          baseUrl,
          token: host.brokerToken(scopeOf(host)),
          userAgent: host.userAgent,
        }),
      state: host.state,
      log: host.log,
      deadlineMs: secondsOf(host, 'releaseTimeoutSeconds', 60),
    });
    if (outcome.kind === 'nothing') host.log.info(`kv-lease: nothing to release: ${outcome.why}`);
    host.released({});
  } catch (error) {
    // A failed release does not fail the job: the lease still ends at its expiry.
    host.released({
      problem: `kv-lease: the lease could not be released (${message(error)}); it ends at its expiry`,
    });
  }
}
