#!/usr/bin/env node
/* global AbortSignal, fetch, process, URL -- Node.js globals */
// azd postdeploy hook: once the code is deployed, the broker must answer
// /api/health, and must not lease an address a caller forged.
//
//   node infra/hooks/postdeploy.mjs [--dry-run] [--timeout-seconds N]
//
// The broker leases the rightmost X-Forwarded-For entry, the one Azure's
// front end appends; every earlier entry is the caller's to write. Whether
// the front end really appends the caller's address (and nothing in front of
// it rewrites the header) is the one fact about Azure's front end no test on
// a developer's machine can show. So after each deployment this hook asks
// the deployed broker GET /api/whoami with a forged leftmost entry and fails
// when the broker would lease the forged address.
//
// It needs an access token for the API (whoami takes any authenticated
// caller, no role): KV_LEASE_TOKEN when set, else the Azure CLI's
// (`az account get-access-token --scope <KV_LEASE_SCOPE>`). A token is sent
// only over https (or plain http to loopback). KV_LEASE_SKIP_FORWARDED_FOR_CHECK
// =true skips the check, saying so. --dry-run prints what it would call and
// calls nothing.
import { randomInt } from 'node:crypto';

import { az, envValue, log, options, waitHealthy, warn } from './lib.mjs';

const { dryRun, value } = options();
const timeoutSeconds = Number(value('timeout-seconds', '180'));

const brokerUrl = envValue('KV_LEASE_BROKER_URL').replace(/\/+$/, '');
const appIdUri = envValue('KV_LEASE_APP_ID_URI');
const scope = envValue('KV_LEASE_SCOPE') || (appIdUri ? `${appIdUri}/.default` : '');
const skip = /^(1|true|yes)$/i.test(envValue('KV_LEASE_SKIP_FORWARDED_FOR_CHECK'));

/** Prints why, then exits non-zero: the deployment is done, but not fit for use. */
function fail(lines) {
  for (const line of lines) warn(line);
  process.exit(1);
}

if (brokerUrl === '') {
  fail([
    'KV_LEASE_BROKER_URL is not set: run `azd provision` first (it is an output of infra/main.bicep).',
  ]);
}

// A public address no caller would have: it looks like the documentation range
// 198.51.100.0/24 but is not one, so the broker would lease it if it took it.
const forged = `198.51.99.${randomInt(1, 255)}`;
const whoamiUrl = `${brokerUrl}/api/whoami`;

if (dryRun) {
  log(
    `[dry-run] GET ${brokerUrl}/api/health (until 200 {"status":"ok"}, at most ${timeoutSeconds} s)`,
  );
  if (skip) {
    log('[dry-run] X-Forwarded-For check skipped (KV_LEASE_SKIP_FORWARDED_FOR_CHECK)');
    process.exit(0);
  }
  if (envValue('KV_LEASE_TOKEN') === '') {
    az(
      [
        'account',
        'get-access-token',
        '--scope',
        scope,
        '--query',
        'accessToken',
        '--output',
        'tsv',
      ],
      {
        dryRun,
      },
    );
  }
  log(
    `[dry-run] GET ${whoamiUrl} with X-Forwarded-For: ${forged} (fails if the broker would lease ${forged}/32)`,
  );
  process.exit(0);
}

const health = await waitHealthy(brokerUrl, timeoutSeconds);
if (!health.healthy) {
  fail([
    `${health.url} is not healthy (last answer: ${health.detail}). Check the Function App's logs in Application Insights.`,
  ]);
}
log(`Health: ${health.url} answers {"status":"ok"}.`);

if (skip) {
  warn(
    'the X-Forwarded-For check is skipped (KV_LEASE_SKIP_FORWARDED_FOR_CHECK): nothing shows that the broker leases the address Azure\'s front end appends rather than one a caller wrote. Run `node infra/hooks/postdeploy.mjs` with a token (infra/README.md, "The front-end check").',
  );
  process.exit(0);
}

let isLoopback = false;
try {
  const url = new URL(brokerUrl);
  isLoopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback)) {
    fail([
      `${brokerUrl} is not https: no token is sent to it, so the X-Forwarded-For check cannot run.`,
    ]);
  }
} catch {
  fail([`KV_LEASE_BROKER_URL ${brokerUrl} is not a URL.`]);
}

const howToToken = [
  'The check needs an access token for the API (any kv-lease app role; the registration requires assignment):',
  `  - give the deploying identity a role (e.g. its object ID in KV_LEASE_READ_PRINCIPAL_IDS, then azd provision), and for a user let the Azure CLI request ${scope || '<App ID URI>/.default'} (infra/README.md, "The front-end check"); or`,
  '  - set KV_LEASE_TOKEN to such a token and run `node infra/hooks/postdeploy.mjs` again; or',
  '  - accept the risk: azd env set KV_LEASE_SKIP_FORWARDED_FOR_CHECK true.',
];

let token = envValue('KV_LEASE_TOKEN');
if (token === '') {
  if (scope === '') fail(['KV_LEASE_SCOPE is not set: run `azd provision` first.', ...howToToken]);
  const result = az(
    ['account', 'get-access-token', '--scope', scope, '--query', 'accessToken', '--output', 'tsv'],
    { dryRun },
  );
  token = result.stdout.trim();
  if (!result.ok || token === '') {
    const said =
      result.stderr
        .trim()
        .split('\n')
        .find((line) => line.trim() !== '') ?? '';
    fail([
      `No token for ${scope} from the Azure CLI${said ? ` (${said.slice(0, 300)})` : ''}: the X-Forwarded-For check did not run.`,
      ...howToToken,
    ]);
  }
}

let response;
let text = '';
try {
  response = await fetch(whoamiUrl, {
    headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': forged },
    signal: AbortSignal.timeout(30_000),
    redirect: 'error',
  });
  text = await response.text();
} catch (error) {
  fail([
    `GET ${whoamiUrl} failed (${error instanceof Error ? error.message : String(error)}): the X-Forwarded-For check did not run.`,
  ]);
}

let body;
try {
  body = JSON.parse(text);
} catch {
  body = undefined;
}
const detail = typeof body?.detail === 'string' ? body.detail : text.slice(0, 200);
if (response.status === 401 || response.status === 403) {
  fail([
    `The broker refused the token (${response.status}: ${detail}): the X-Forwarded-For check did not run.`,
    ...howToToken,
  ]);
}
if (response.status !== 200 || body === null || typeof body !== 'object') {
  fail([
    `GET ${whoamiUrl} answered ${response.status} ${detail}${response.status === 404 ? ' (is the deployed code older than GET /api/whoami?)' : ''}: the X-Forwarded-For check did not run.`,
  ]);
}

const ip = typeof body.ip === 'string' ? body.ip : undefined;
const ipProblem = typeof body.ipProblem === 'string' ? body.ipProblem : undefined;
if (ip === `${forged}/32` || (ipProblem ?? '').includes(forged)) {
  fail([
    `SECURITY: the broker at ${brokerUrl} takes the caller's address from an X-Forwarded-For entry the caller wrote.`,
    `  This hook sent "X-Forwarded-For: ${forged}" and the broker would lease ${ip ?? forged} (${ipProblem ?? 'GET /api/whoami'}).`,
    '  So any caller with Lease.Request can open the vault firewalls to any address it names.',
    '  Something between callers and the Function App (Front Door, Application Gateway, API Management, a proxy)',
    "  does not append the caller's address as the last entry. Give the broker URL to no pipeline until that",
    '  front end appends it (or callers reach the Function App directly), then run `azd deploy` again.',
  ]);
}

const seen = ip
  ? `it would lease ${ip} for this machine`
  : `it sees no address it could lease for this machine: ${ipProblem ?? '(no answer)'}`;
log(`Front end: the broker ignored the forged leftmost X-Forwarded-For entry ${forged}; ${seen}.`);
if (!ip) {
  warn(
    'grants without an explicit ip from this machine would be refused; pipelines on hosted agents are unaffected if their address is public.',
  );
}
