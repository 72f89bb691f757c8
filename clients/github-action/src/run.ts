import * as core from '@actions/core';

import {
  BrokerClient,
  DEFAULT_BROKER_SCOPE,
  type TokenProvider,
  tokenProvider,
  vaultScopeFor,
} from '../../lib/index.js';
import {
  brokerScope,
  clampReason,
  grantStep,
  masked,
  releaseStep,
  type StateStore,
  type StepLog,
} from '../../pipeline/lease-step.js';
import { flag, optionalSeconds, required, seconds, vaultName } from '../../pipeline/settings.js';

/**
 * The action's two entry points. `main` grants and waits; `post` (which the
 * runner runs at the end of the job, also after a failed or cancelled step)
 * releases. State goes through `core.saveState`, which the runner hands to
 * the post step as STATE_* variables.
 */

const USER_AGENT = 'kv-lease-github-action';

const state: StateStore = {
  save: (name, value) => core.saveState(name, value),
  get: (name) => core.getState(name),
};

const log: StepLog = {
  info: (message) => core.info(message),
  warning: (message) => core.warning(message),
};

/** The `token` input, else KV_LEASE_TOKEN, else DefaultAzureCredential (azure/login's az CLI session). */
function token(input: string, scope: string, envVar: string): TokenProvider {
  const explicit = core.getInput(input);
  if (explicit) {
    core.setSecret(explicit);
    return () => Promise.resolve(explicit);
  }
  return masked(tokenProvider({ scope, envVar }), (value) => core.setSecret(value));
}

const brokerToken = () =>
  token('token', brokerScope(core.getInput('scope') || DEFAULT_BROKER_SCOPE), 'KV_LEASE_TOKEN');
const vaultToken = (vaultUri: string) =>
  token('vault-token', vaultScopeFor(vaultUri), 'KV_LEASE_VAULT_TOKEN');

function defaultReason(env: NodeJS.ProcessEnv): string {
  const server = env.GITHUB_SERVER_URL ?? 'https://github.com';
  const run = `${server}/${env.GITHUB_REPOSITORY ?? ''}/actions/runs/${env.GITHUB_RUN_ID ?? ''}/attempts/${env.GITHUB_RUN_ATTEMPT ?? '1'}`;
  return `GitHub Actions ${run} (${env.GITHUB_JOB ?? 'job'})`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function main(): Promise<void> {
  // The runner sends SIGINT on cancel (SIGTERM 7.5 s later): stop waiting,
  // and leave the release to the post step, which knows the Idempotency-Key.
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    core.warning(
      `kv-lease: ${signal} during the grant; the post step releases whatever the broker granted`,
    );
    controller.abort(new Error(`cancelled (${signal})`));
    setTimeout(() => process.exit(1), 1000).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const url = required(
      'broker-url',
      core.getInput('broker-url'),
      'the base URL of the kv-lease broker',
    );
    const vault = vaultName(core.getInput('vault'));
    const vaultUri = core.getInput('vault-uri') || undefined;
    const ttlSeconds = optionalSeconds('ttl-seconds', core.getInput('ttl-seconds'));
    const client = new BrokerClient({ baseUrl: url, token: brokerToken(), userAgent: USER_AGENT });
    const lease = await grantStep(
      {
        brokerUrl: url,
        vault,
        ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
        reason: clampReason(core.getInput('reason') || defaultReason(process.env)),
        wait: flag('wait', core.getInput('wait'), true),
        waitTimeoutMs:
          seconds('wait-timeout-seconds', core.getInput('wait-timeout-seconds'), 300) * 1000,
        ...(vaultUri ? { vaultUri } : {}),
        release: flag('release', core.getInput('release'), true),
        grantDeadlineMs:
          seconds('grant-timeout-seconds', core.getInput('grant-timeout-seconds'), 120) * 1000,
      },
      { client, state, log, vaultToken, signal: controller.signal },
    );
    core.setOutput('lease-id', lease.id);
    core.setOutput('ip', lease.ip);
    core.setOutput('expires-at', lease.expiresAt);
    if (lease.vaultUri) core.setOutput('vault-uri', lease.vaultUri);
  } catch (error) {
    core.setFailed(`kv-lease: ${message(error)}`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

export async function post(): Promise<void> {
  try {
    const outcome = await releaseStep({
      client: (baseUrl) =>
        new BrokerClient({ baseUrl, token: brokerToken(), userAgent: USER_AGENT }),
      state,
      log,
      deadlineMs:
        seconds('release-timeout-seconds', core.getInput('release-timeout-seconds'), 60) * 1000,
    });
    if (outcome.kind === 'nothing') core.info(`kv-lease: nothing to release: ${outcome.why}`);
  } catch (error) {
    // A failed release does not fail the job: the lease still ends at its expiry.
    core.warning(
      `kv-lease: the lease could not be released (${message(error)}); it ends at its expiry`,
    );
  }
}
