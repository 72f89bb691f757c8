import * as core from '@actions/core';

import { type TokenProvider, tokenProvider } from '../../lib/index.js';
import { type PipelineHost, runGrant, runRelease } from '../../pipeline/host.js';
import { masked } from '../../pipeline/lease-step.js';

/**
 * The action's two entry points. `main` grants and waits; `post` (which the
 * runner runs at the end of the job, also after a failed or cancelled step)
 * releases. State goes through `core.saveState`, which the runner hands to
 * the post step as STATE_* variables.
 */

/**
 * The `token` input, else KV_LEASE_TOKEN, else DefaultAzureCredential (azure/login's az CLI
 * session); with no scope (a data plane whose host implies none), the input or the variable only.
 */
function token(
  input: string,
  scope: string | undefined,
  envVar: string,
  destination?: string,
): TokenProvider {
  const explicit = core.getInput(input);
  if (explicit) {
    core.setSecret(explicit);
    return () => Promise.resolve(explicit);
  }
  return masked(
    tokenProvider({ scope, envVar, ...(destination ? { destination } : {}) }),
    (value) => core.setSecret(value),
  );
}

const host: PipelineHost = {
  names: {
    brokerUrl: 'broker-url',
    target: 'target',
    vault: 'vault',
    dataPlane: 'data-plane',
    vaultUri: 'vault-uri',
    allowLoopbackDataPlane: 'allow-loopback-data-plane',
    scope: 'scope',
    ttlSeconds: 'ttl-seconds',
    reason: 'reason',
    wait: 'wait',
    waitTimeoutSeconds: 'wait-timeout-seconds',
    grantTimeoutSeconds: 'grant-timeout-seconds',
    release: 'release',
    releaseTimeoutSeconds: 'release-timeout-seconds',
  },
  input: (name) => core.getInput(name),
  state: { save: (name, value) => core.saveState(name, value), get: (name) => core.getState(name) },
  log: { info: (message) => core.info(message), warning: (message) => core.warning(message) },
  userAgent: 'kv-lease-github-action',
  brokerToken: (scope) => token('token', scope, 'KV_LEASE_TOKEN'),
  vaultToken: (endpoint) =>
    token('vault-token', endpoint.scope, 'KV_LEASE_VAULT_TOKEN', endpoint.uri),
  defaultReason: () => {
    const env = process.env;
    const server = env.GITHUB_SERVER_URL ?? 'https://github.com';
    const run = `${server}/${env.GITHUB_REPOSITORY ?? ''}/actions/runs/${env.GITHUB_RUN_ID ?? ''}/attempts/${env.GITHUB_RUN_ATTEMPT ?? '1'}`;
    return `GitHub Actions ${run} (${env.GITHUB_JOB ?? 'job'})`;
  },
  granted: (lease) => {
    core.setOutput('lease-id', lease.id);
    core.setOutput('ip', lease.ip);
    core.setOutput('expires-at', lease.expiresAt);
    if (lease.vaultUri) core.setOutput('vault-uri', lease.vaultUri);
    core.setOutput('target', lease.target ?? lease.vault);
    if (lease.kind) core.setOutput('kind', lease.kind);
    if (lease.dataPlane) core.setOutput('data-plane', lease.dataPlane);
  },
  failed: (message) => core.setFailed(message),
  released: ({ problem }) => {
    if (problem) core.warning(problem);
  },
};

export const main = (): Promise<void> => runGrant(host);
export const post = (): Promise<void> => runRelease(host);
