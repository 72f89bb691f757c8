import * as tl from 'azure-pipelines-task-lib/task';

import { type TokenProvider, tokenProvider } from '../../../lib/index';
import { type PipelineHost, runGrant, runRelease } from '../../../pipeline/host';
import { masked } from '../../../pipeline/lease-step';
import { chooseCredential, credentialFor } from './credential';

/**
 * The task's two handlers: `execution` grants and waits; `postjobexecution`,
 * which the agent runs at the end of the job by itself (also after a failed
 * step or a cancel), releases. State goes through task variables
 * (`##vso[task.settaskvariable]`), which the agent hands to the post-job
 * handler of the same task instance as VSTS_TASKVARIABLE_* variables.
 */

const input = (name: string) => tl.getInput(name, false) ?? '';

/** `##vso[` as text, not a command: the agent only acts on the exact sequence. */
function inert(text: string): string {
  return text.replace(/##vso\[/gi, '##vso\\[');
}

/**
 * The service connection's identity when `azureSubscription` names one;
 * else KV_LEASE_TOKEN / KV_LEASE_VAULT_TOKEN, else DefaultAzureCredential
 * (an agent's managed identity). With no scope (a data plane whose host
 * implies none), the environment variable only: no identity is asked.
 */
function tokens(scope: string | undefined, envVar: string, destination?: string): TokenProvider {
  const connectionId = input('azureSubscription');
  const setSecret = (value: string) => tl.setSecret(value);
  if (!connectionId || scope === undefined) {
    return masked(
      tokenProvider({ scope, envVar, ...(destination ? { destination } : {}) }),
      setSecret,
    );
  }
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

const host: PipelineHost = {
  names: {
    brokerUrl: 'brokerUrl',
    target: 'target',
    vault: 'vault',
    dataPlane: 'dataPlane',
    vaultUri: 'vaultUri',
    allowLoopbackDataPlane: 'allowLoopbackDataPlane',
    scope: 'scope',
    ttlSeconds: 'ttlSeconds',
    reason: 'reason',
    wait: 'wait',
    waitTimeoutSeconds: 'waitTimeoutSeconds',
    release: 'release',
  },
  input,
  state: {
    save: (name, value) => tl.setTaskVariable(name, value),
    get: (name) => tl.getTaskVariable(name) ?? '',
  },
  // NOTE: the agent takes `##vso[` anywhere in a line as a logging command, so a plain log line
  // carrying the broker's words is made inert; a warning is a command itself (`tl.warning`
  // writes `##vso[task.issue type=warning]` first), after which the line is its message.
  log: {
    info: (message) => console.log(inert(message)),
    warning: (message) => tl.warning(message),
  },
  userAgent: 'kv-lease-azure-pipelines-task',
  brokerToken: (scope) => tokens(scope, 'KV_LEASE_TOKEN'),
  vaultToken: (endpoint) => tokens(endpoint.scope, 'KV_LEASE_VAULT_TOKEN', endpoint.uri),
  defaultReason: () => {
    const collection = tl.getVariable('System.CollectionUri') ?? '';
    const project = tl.getVariable('System.TeamProject') ?? '';
    const build = tl.getVariable('Build.BuildId') ?? '';
    const job =
      tl.getVariable('System.JobDisplayName') ?? tl.getVariable('System.JobName') ?? 'job';
    return `Azure Pipelines ${collection}${encodeURIComponent(project)}/_build/results?buildId=${build} (${job})`;
  },
  granted: (lease) => {
    tl.setVariable('leaseId', lease.id, false, true);
    tl.setVariable('ip', lease.ip, false, true);
    tl.setVariable('expiresAt', lease.expiresAt, false, true);
    tl.setVariable('target', lease.target ?? lease.vault, false, true);
    if (lease.kind) tl.setVariable('kind', lease.kind, false, true);
    if (lease.dataPlane) tl.setVariable('dataPlane', lease.dataPlane, false, true);
    tl.setResult(tl.TaskResult.Succeeded, `lease ${lease.id}`);
  },
  failed: (message) => tl.setResult(tl.TaskResult.Failed, message),
  // A failed release does not fail the job: the lease still ends at its expiry.
  released: ({ problem }) =>
    problem
      ? tl.setResult(tl.TaskResult.SucceededWithIssues, problem)
      : tl.setResult(tl.TaskResult.Succeeded, 'done'),
};

export const execution = (): Promise<void> => runGrant(host);
export const post = (): Promise<void> => runRelease(host);
