/* global AbortSignal, fetch, process, setTimeout -- Node.js globals */
// Shared helpers of the azd hooks (azure.yaml). Plain Node.js (20+, no
// dependencies), so the hooks run the same on Linux, macOS and Windows. azd
// passes the environment's values (the Bicep outputs among them) as
// environment variables.
import { spawnSync } from 'node:child_process';

/**
 * Input names of the clients (clients/github-action/action.yml and the Azure
 * Pipelines task KvLease@1). NOTE: names to align with the clients; the infra
 * tests check them against the clients' manifests when those exist.
 */
export const GITHUB_ACTION = {
  uses: '<org>/kv-lease/clients/github-action@v1',
  inputs: { brokerUrl: 'broker-url', scope: 'scope', vault: 'vault', ttlSeconds: 'ttl-seconds' },
};
export const PIPELINES_TASK = {
  task: 'KvLease@1',
  inputs: { brokerUrl: 'brokerUrl', scope: 'scope', vault: 'vault', ttlSeconds: 'ttlSeconds' },
};

export function options(argv = process.argv.slice(2)) {
  const flag = (name) => argv.includes(`--${name}`);
  const value = (name, fallback) => {
    const index = argv.indexOf(`--${name}`);
    return index >= 0 && index + 1 < argv.length ? argv[index + 1] : fallback;
  };
  return { dryRun: flag('dry-run'), flag, value };
}

/** An azd environment value; empty string when unset. */
export function envValue(name, env = process.env) {
  return (env[name] ?? '').trim();
}

/** KV_LEASE_VAULT_IDS: a JSON array (as azd takes it for the Bicep parameter) or a comma list. */
export function vaultIds(env = process.env) {
  return idList(envValue('KV_LEASE_VAULT_IDS', env));
}

/** KV_LEASE_TARGET_IDS (BROKER_TARGETS, any kind): read like KV_LEASE_VAULT_IDS. */
export function targetIds(env = process.env) {
  return idList(envValue('KV_LEASE_TARGET_IDS', env));
}

/** Whether a resource ID is a Storage account's (provider compared case-insensitively, as main.bicep does). */
export function isStorageAccount(id) {
  return /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Storage\/storageAccounts\/[^/]+$/i.test(
    id,
  );
}

function idList(text) {
  if (text === '') return [];
  try {
    const parsed = JSON.parse(text);
    if (Array.isArray(parsed)) return parsed.map((id) => String(id).trim()).filter(Boolean);
  } catch {
    // not JSON: a comma-separated list
  }
  return text
    .split(',')
    .map((id) => id.trim())
    .filter(Boolean);
}

export function vaultName(id) {
  return (id.split('/').pop() ?? '').toLowerCase();
}

export function log(line = '') {
  process.stdout.write(`${line}\n`);
}

export function warn(line) {
  process.stderr.write(`WARNING: ${line}\n`);
}

/**
 * Runs the Azure CLI, or in dry-run mode prints what it would run. Returns
 * { ok, stdout, stderr }. `az` is a .cmd on Windows, hence the shell there;
 * every argument is an ID or URL without spaces or shell metacharacters.
 */
export function az(args, { dryRun }) {
  if (dryRun) {
    log(`[dry-run] az ${args.join(' ')}`);
    return { ok: true, stdout: '', stderr: '' };
  }
  const result = spawnSync('az', args, {
    encoding: 'utf8',
    shell: process.platform === 'win32',
  });
  if (result.error) {
    return { ok: false, stdout: '', stderr: `az could not be started: ${result.error.message}` };
  }
  return { ok: result.status === 0, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/**
 * Polls GET {brokerUrl}/api/health until it answers 200 {"status":"ok"} or
 * `timeoutSeconds` pass. Returns { healthy, url, detail } (detail: the last
 * answer, or why there was none).
 */
export async function waitHealthy(brokerUrl, timeoutSeconds) {
  const url = `${brokerUrl}/api/health`;
  const probe = async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      const text = await response.text();
      let status;
      try {
        status = JSON.parse(text).status;
      } catch {
        status = undefined;
      }
      return {
        healthy: response.status === 200 && status === 'ok',
        detail: `${response.status} ${text.slice(0, 200)}`,
      };
    } catch (error) {
      return { healthy: false, detail: error instanceof Error ? error.message : String(error) };
    }
  };
  const deadline = Date.now() + timeoutSeconds * 1000;
  let last = await probe();
  while (!last.healthy && Date.now() < deadline) {
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(2000, Math.max(0, deadline - Date.now()))),
    );
    last = await probe();
  }
  return { ...last, url };
}
