import * as tl from 'azure-pipelines-task-lib/task';

import {
  BrokerClient,
  DEFAULT_BROKER_SCOPE,
  type TokenProvider,
  tokenProvider,
  vaultScopeFor,
} from '../../../lib/index';
import {
  brokerScope,
  clampReason,
  grantStep,
  masked,
  releaseStep,
  type StateStore,
  type StepLog,
} from '../../../pipeline/lease-step';
import { flag, optionalSeconds, required, seconds, vaultName } from '../../../pipeline/settings';
import { chooseCredential, credentialFor } from './credential';

/**
 * The task's two handlers: `execution` grants and waits; `postjobexecution`,
 * which the agent runs at the end of the job by itself (also after a failed
 * step or a cancel), releases. State goes through task variables
 * (`##vso[task.settaskvariable]`), which the agent hands to the post-job
 * handler of the same task instance as VSTS_TASKVARIABLE_* variables.
 */

const USER_AGENT = 'kv-lease-azure-pipelines-task';

const state: StateStore = {
  save: (name, value) => tl.setTaskVariable(name, value),
  get: (name) => tl.getTaskVariable(name) ?? '',
};

const log: StepLog = {
  info: (message) => console.log(message),
  warning: (message) => tl.warning(message),
};

const input = (name: string) => tl.getInput(name, false) ?? '';

/**
 * The service connection's identity when `azureSubscription` names one;
 * else KV_LEASE_TOKEN / KV_LEASE_VAULT_TOKEN, else DefaultAzureCredential
 * (an agent's managed identity).
 */
function tokens(scope: string, envVar: string): TokenProvider {
  const connectionId = input('azureSubscription');
  const setSecret = (value: string) => tl.setSecret(value);
  if (!connectionId) return masked(tokenProvider({ scope, envVar }), setSecret);
  const choice = chooseCredential({
    id: connectionId,
    scheme: tl.getEndpointAuthorizationScheme(connectionId, true) ?? '',
    parameter: (name) => tl.getEndpointAuthorizationParameter(connectionId, name, true),
  });
  const credential = credentialFor(
    choice,
    tl.getEndpointAuthorizationParameter('SystemVssConnection', 'AccessToken', true),
  );
  return masked(async () => {
    const token = await credential.getToken(scope);
    if (!token) throw new Error(`no token for ${scope} from service connection ${connectionId}`);
    return token.token;
  }, setSecret);
}

function defaultReason(): string {
  const collection = tl.getVariable('System.CollectionUri') ?? '';
  const project = tl.getVariable('System.TeamProject') ?? '';
  const build = tl.getVariable('Build.BuildId') ?? '';
  const job = tl.getVariable('System.JobDisplayName') ?? tl.getVariable('System.JobName') ?? 'job';
  return `Azure Pipelines ${collection}${encodeURIComponent(project)}/_build/results?buildId=${build} (${job})`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function execution(): Promise<void> {
  // A cancel reaches the task as SIGINT: stop waiting; the post-job handler releases.
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    tl.warning(
      `kv-lease: ${signal} during the grant; the post-job step releases whatever the broker granted`,
    );
    controller.abort(new Error(`cancelled (${signal})`));
    setTimeout(() => process.exit(1), 1000).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const url = required('brokerUrl', input('brokerUrl'), 'the base URL of the kv-lease broker');
    const vault = vaultName(input('vault'));
    const vaultUri = input('vaultUri') || undefined;
    const ttlSeconds = optionalSeconds('ttlSeconds', input('ttlSeconds'));
    const scope = brokerScope(input('scope') || DEFAULT_BROKER_SCOPE);
    const client = new BrokerClient({
      baseUrl: url,
      token: tokens(scope, 'KV_LEASE_TOKEN'),
      userAgent: USER_AGENT,
    });
    const lease = await grantStep(
      {
        brokerUrl: url,
        vault,
        ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
        reason: clampReason(input('reason') || defaultReason()),
        wait: flag('wait', input('wait'), true),
        waitTimeoutMs: seconds('waitTimeoutSeconds', input('waitTimeoutSeconds'), 300) * 1000,
        ...(vaultUri ? { vaultUri } : {}),
        release: flag('release', input('release'), true),
        grantDeadlineMs: 120_000,
      },
      {
        client,
        state,
        log,
        vaultToken: (uri) => tokens(vaultScopeFor(uri), 'KV_LEASE_VAULT_TOKEN'),
        signal: controller.signal,
      },
    );
    tl.setVariable('leaseId', lease.id, false, true);
    tl.setVariable('ip', lease.ip, false, true);
    tl.setVariable('expiresAt', lease.expiresAt, false, true);
    tl.setResult(tl.TaskResult.Succeeded, `lease ${lease.id}`);
  } catch (error) {
    tl.setResult(tl.TaskResult.Failed, `kv-lease: ${message(error)}`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

export async function post(): Promise<void> {
  try {
    const scope = brokerScope(input('scope') || DEFAULT_BROKER_SCOPE);
    const outcome = await releaseStep({
      client: (baseUrl) =>
        new BrokerClient({
          baseUrl,
          token: tokens(scope, 'KV_LEASE_TOKEN'),
          userAgent: USER_AGENT,
        }),
      state,
      log,
      deadlineMs: 60_000,
    });
    if (outcome.kind === 'nothing') console.log(`kv-lease: nothing to release: ${outcome.why}`);
    tl.setResult(tl.TaskResult.Succeeded, outcome.kind);
  } catch (error) {
    // A failed release does not fail the job: the lease still ends at its expiry.
    tl.setResult(
      tl.TaskResult.SucceededWithIssues,
      `kv-lease: the lease could not be released (${message(error)}); it ends at its expiry`,
    );
  }
}
