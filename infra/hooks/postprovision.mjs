#!/usr/bin/env node
/* global process -- Node.js globals */
// azd postprovision hook: prints what a pipeline needs to use this broker,
// then checks GET /api/health.
//
//   node infra/hooks/postprovision.mjs [--dry-run] [--require-healthy] [--timeout-seconds N]
//
// After `azd provision` the code may not be deployed yet (azd up deploys
// after this hook), so an unhealthy broker is a warning here;
// --require-healthy fails when the broker does not answer (postdeploy.mjs
// waits for health itself, then checks the front end).
// --dry-run prints the same text and the request it would make, and calls
// nothing.
import {
  envValue,
  GITHUB_ACTION,
  log,
  options,
  PIPELINES_TASK,
  targetIds,
  vaultIds,
  vaultName,
  waitHealthy,
  warn,
} from './lib.mjs';

const { dryRun, flag, value } = options();
const requireHealthy = flag('require-healthy');
const timeoutSeconds = Number(value('timeout-seconds', requireHealthy ? '180' : '20'));

const brokerUrl = envValue('KV_LEASE_BROKER_URL').replace(/\/+$/, '');
const appIdUri = envValue('KV_LEASE_APP_ID_URI');
const scope = envValue('KV_LEASE_SCOPE') || (appIdUri ? `${appIdUri}/.default` : '');
const redirectUri = envValue('KV_LEASE_CONSOLE_REDIRECT_URI');
const vaults = vaultIds().map(vaultName);
const targets = targetIds().map(vaultName);
// The clients name a target with their `vault` input, whatever its kind (contract §4).
const exampleVault = vaults[0] ?? targets[0] ?? '<vault-name>';

if (brokerUrl === '') {
  warn(
    'KV_LEASE_BROKER_URL is not set: run `azd provision` first (it is an output of infra/main.bicep).',
  );
  process.exit(1);
}

log('kv-lease is provisioned.');
log();
log(`  Broker URL      ${brokerUrl}`);
log(`  App ID URI      ${appIdUri || '(not set)'}`);
log(`  Token scope     ${scope || '(not set)'}`);
log(`  Managed vaults  ${vaults.join(', ') || '(none)'}`);
if (targets.length > 0) log(`  Other targets   ${targets.join(', ')}`);
log(`  Console         ${brokerUrl}/api/console`);
log();
log(
  'Give each pipeline identity the app role Lease.Request (KV_LEASE_REQUEST_PRINCIPAL_IDS, then azd provision).',
);
log();
const values = { brokerUrl, scope, vault: exampleVault, ttlSeconds: 1200 };
/** One YAML step: `- <key>: <name>` and its inputs under `<section>:`, named as the client names them. */
function snippet(title, key, name, section, inputs) {
  log(title);
  log();
  log(`  - ${key}: ${name}`);
  log(`    ${section}:`);
  for (const [field, input] of Object.entries(inputs)) log(`      ${input}: ${values[field]}`);
  log();
}
snippet(
  'GitHub Actions (after azure/login with OIDC):',
  'uses',
  GITHUB_ACTION.uses,
  'with',
  GITHUB_ACTION.inputs,
);
snippet(
  'Azure Pipelines (in a job whose service connection holds Lease.Request):',
  'task',
  PIPELINES_TASK.task,
  'inputs',
  PIPELINES_TASK.inputs,
);

if (redirectUri !== '' && !redirectUri.startsWith(`${brokerUrl}/`)) {
  warn(
    `the console redirect URI ${redirectUri} is not on ${brokerUrl}: add ${brokerUrl}/api/console to consoleRedirectUris and provision again.`,
  );
}

const healthUrl = `${brokerUrl}/api/health`;
if (dryRun) {
  log(`[dry-run] GET ${healthUrl} (until 200 {"status":"ok"}, at most ${timeoutSeconds} s)`);
  process.exit(0);
}

const last = await waitHealthy(brokerUrl, timeoutSeconds);
if (last.healthy) {
  log(`Health: ${healthUrl} answers {"status":"ok"}.`);
  process.exit(0);
}
const message = `${healthUrl} is not healthy (last answer: ${last.detail}).`;
if (requireHealthy) {
  warn(`${message} Check the Function App's logs in Application Insights.`);
  process.exit(1);
}
warn(
  `${message} If the code is not deployed yet, azd deploy (or azd up) checks again after the deployment.`,
);
