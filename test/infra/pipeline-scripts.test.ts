import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { asArray, asRecord, asString, isRecord, readYaml, readYamlAsStrings } from './helpers';

/**
 * The scripts of the pipeline templates, run for real: bash, curl and jq
 * against a fake broker on loopback, with a fake `az` that hands out a known
 * token. The YAML's `env:` mappings are expanded the way the CI system would,
 * so the wiring between template parameters and scripts is tested too.
 */

const TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-broker-token.signature';
const APP_ID = 'api://kv-lease-test';

const tools = ['bash', 'curl', 'jq'];
const missingTools = tools.filter(
  (tool) =>
    !(process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, tool))),
);

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let server: Server;
let brokerUrl = '';
let requests: Recorded[] = [];
let replies: Reply[] = [];
let work = '';

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body,
      });
      const reply = replies.shift() ?? { status: 500, body: { title: 'no reply scripted' } };
      const text = reply.body === undefined ? '' : JSON.stringify(reply.body);
      response.writeHead(reply.status, {
        'Content-Type': reply.status >= 400 ? 'application/problem+json' : 'application/json',
        ...reply.headers,
      });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  brokerUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  requests = [];
  replies = [];
  work = mkdtempSync(join(tmpdir(), 'kv-lease-pipeline-'));
  const az = join(work, 'az');
  writeFileSync(
    az,
    [
      '#!/usr/bin/env bash',
      'printf "%s\\n" "$*" >> "$FAKE_AZ_LOG"',
      'case "$1 $2" in',
      '  "account get-access-token")',
      '    if [[ -n "${FAKE_AZ_FAIL:-}" ]]; then echo "ERROR: AADSTS500011: resource not found" >&2; exit 1; fi',
      '    echo "$FAKE_TOKEN" ;;',
      '  "cloud show") echo ".vault.azure.net" ;;',
      '  *) echo "unexpected: az $*" >&2; exit 2 ;;',
      'esac',
    ].join('\n'),
  );
  chmodSync(az, 0o755);
  return () => rmSync(work, { recursive: true, force: true });
});

function run(script: string, env: Record<string, string>): Promise<Run> {
  const file = join(work, 'script.sh');
  writeFileSync(file, script);
  return new Promise((resolve) => {
    execFile(
      'bash',
      [file],
      {
        timeout: 30_000,
        env: {
          PATH: `${work}:${process.env.PATH ?? ''}`,
          HOME: work,
          TMPDIR: work,
          FAKE_AZ_LOG: join(work, 'az.log'),
          FAKE_TOKEN: TOKEN,
          ...env,
        },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function azCalls(): string[] {
  try {
    return readFileSync(join(work, 'az.log'), 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** The token must never reach the log: not in stdout, not in stderr. */
function expectNoToken(result: Run): void {
  expect(result.stdout).not.toContain('fake-broker-token');
  expect(result.stderr).not.toContain('fake-broker-token');
}

const LEASE = {
  id: 'lease_01HZX3',
  vault: 'kv-test',
  ip: '52.10.20.30/32',
  status: 'active',
  principal: '55555555-5555-5555-5555-555555555555',
  createdAt: '2026-11-25T10:00:00.000Z',
  expiresAt: '2026-11-25T10:20:00.000Z',
};

describe.skipIf(missingTools.length > 0)('Azure Pipelines steps template scripts', () => {
  const template = asRecord(
    readYamlAsStrings('pipelines/azure-pipelines/kv-lease-steps.yml'),
    'template',
  );
  const steps = asArray(template.steps, 'steps').filter(isRecord);
  const acquire = asRecord(steps[0], 'acquire step');
  const release = asRecord(steps[steps.length - 1], 'release step');
  const scriptOf = (step: Record<string, unknown>) =>
    asString(asRecord(step.inputs, 'inputs').inlineScript, 'inlineScript');

  const defaults = Object.fromEntries(
    asArray(template.parameters, 'parameters')
      .map((parameter) => asRecord(parameter, 'parameter'))
      .filter((parameter) => parameter.default !== undefined)
      .map((parameter) => [asString(parameter.name, 'name'), parameter.default]),
  );

  /** Template expressions at compile time, macros at run time (unknown macros stay as text, as on an agent). */
  function stepEnv(
    step: Record<string, unknown>,
    parameters: Record<string, string>,
    macros: Record<string, string> = {},
  ): Record<string, string> {
    const values: Record<string, unknown> = {
      ...defaults,
      propagationWaitSeconds: '0',
      ...parameters,
    };
    const env: Record<string, string> = {
      SYSTEM_COLLECTIONURI: 'https://dev.azure.com/contoso/',
      SYSTEM_TEAMPROJECT: 'Team Project',
      BUILD_BUILDID: '4242',
      SYSTEM_JOBDISPLAYNAME: 'deploy secrets',
    };
    for (const [name, raw] of Object.entries(asRecord(step.env, 'env'))) {
      env[name] = asString(raw, name)
        .replace(/\$\{\{\s*parameters\.(\w+)\s*\}\}/g, (_match, parameter: string) => {
          const value = values[parameter];
          if (value === undefined) throw new Error(`parameter ${parameter} has no value`);
          // A boolean parameter renders as True/False.
          return value === 'false'
            ? 'False'
            : value === 'true'
              ? 'True'
              : JSON.stringify(value).replace(/^"|"$/g, '');
        })
        .replace(/\$\(([\w.]+)\)/g, (match, macro: string) => macros[macro] ?? match);
    }
    return env;
  }

  const parameters = {
    brokerUrl: '',
    brokerAppId: APP_ID,
    vault: 'kv-test',
    azureSubscription: 'sc-test',
  };
  const macros = { 'System.JobId': '9f0c1d2e-job', 'System.JobAttempt': '2' };

  it('When the broker grants the lease, Then the step sends the token, key and reason, and exports the lease id', async () => {
    replies = [{ status: 201, headers: { Location: `/api/leases/${LEASE.id}` }, body: LEASE }];
    const result = await run(
      scriptOf(acquire),
      stepEnv(acquire, { ...parameters, brokerUrl }, macros),
    );

    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(requests).toHaveLength(1);
    const [request] = requests;
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/api/leases');
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(request?.headers['idempotency-key']).toBe('9f0c1d2e-job-2-kv-test');
    expect(request?.headers['content-type']).toBe('application/json');
    const body = asRecord(JSON.parse(request?.body ?? ''), 'body');
    expect(body.vault).toBe('kv-test');
    expect(body.ttlSeconds).toBe(1200);
    expect(asString(body.reason, 'reason')).toContain(
      'https://dev.azure.com/contoso/Team%20Project/_build/results?buildId=4242',
    );
    expect(result.stdout).toContain(`##vso[task.setvariable variable=KV_LEASE_ID]${LEASE.id}\n`);
    expect(azCalls()).toEqual([
      `account get-access-token --resource ${APP_ID} --query accessToken --output tsv`,
    ]);
    expectNoToken(result);
  });

  it('When the broker refuses with problem+json, Then the step fails with the detail and exports nothing', async () => {
    replies = [
      {
        status: 400,
        body: {
          type: 'urn:kv-lease:problem:validation',
          title: 'Invalid request',
          status: 400,
          detail: 'ttlSeconds must lie within [60, 7200]',
          errors: [{ path: 'ttlSeconds', message: 'too large' }],
        },
      },
    ];
    const result = await run(
      scriptOf(acquire),
      stepEnv(acquire, { ...parameters, brokerUrl, ttlSeconds: '99999' }, macros),
    );

    expect(result.code).not.toBe(0);
    expect(result.stdout).toContain('##vso[task.logissue type=error]kv-lease: POST');
    expect(result.stdout).toContain('HTTP 400: ttlSeconds must lie within [60, 7200]');
    expect(result.stdout).toContain('  - ttlSeconds: too large');
    expect(result.stdout).toContain('urn:kv-lease:problem:validation');
    expect(result.stdout).not.toContain('task.setvariable');
    expectNoToken(result);
  });

  it('When the broker answers 503 with Retry-After, Then the step retries with the same Idempotency-Key', async () => {
    replies = [
      {
        status: 503,
        headers: { 'Retry-After': '0' },
        body: { title: 'Vault update timed out', status: 503 },
      },
      { status: 201, body: LEASE },
    ];
    const result = await run(
      scriptOf(acquire),
      stepEnv(acquire, { ...parameters, brokerUrl }, macros),
    );

    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(requests).toHaveLength(2);
    expect(requests[0]?.headers['idempotency-key']).toBe(requests[1]?.headers['idempotency-key']);
    expect(result.stdout).toContain('answered HTTP 503; trying again in 0s');
  });

  it('When the broker text holds a logging command, Then the step prints it as text', async () => {
    replies = [
      {
        status: 403,
        body: { title: 'Forbidden', status: 403, detail: '##vso[task.setvariable variable=EVIL]1' },
      },
    ];
    const result = await run(
      scriptOf(acquire),
      stepEnv(acquire, { ...parameters, brokerUrl }, macros),
    );

    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain('##vso[task.setvariable');
    expect(result.stdout).toContain('##vso(task.setvariable variable=EVIL]1');
  });

  it('When no token can be had, Then the step fails naming the app role and calls no broker', async () => {
    const result = await run(scriptOf(acquire), {
      ...stepEnv(acquire, { ...parameters, brokerUrl }, macros),
      FAKE_AZ_FAIL: '1',
    });

    expect(result.code).not.toBe(0);
    expect(result.stdout).toContain('Lease.Request');
    expect(requests).toHaveLength(0);
  });

  it('When the broker URL is plain http, Then the step refuses to send a token there', async () => {
    const result = await run(
      scriptOf(acquire),
      stepEnv(acquire, { ...parameters, brokerUrl: 'http://kv-lease.example.com' }, macros),
    );

    expect(result.code).not.toBe(0);
    expect(result.stdout).toContain('must be an https:// URL');
    expect(azCalls()).toEqual([]);
  });

  it('When a lease was granted, Then the release step deletes it', async () => {
    replies = [{ status: 200, body: { ...LEASE, status: 'released' } }];
    const result = await run(
      scriptOf(release),
      stepEnv(release, { ...parameters, brokerUrl }, { KV_LEASE_ID: LEASE.id }),
    );

    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(requests.map((request) => `${request.method} ${request.url}`)).toEqual([
      `DELETE /api/leases/${LEASE.id}`,
    ]);
    expect(requests[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(result.stdout).toContain('is released');
    expectNoToken(result);
  });

  it('When the acquire step set no lease id, Then the release step does nothing and succeeds', async () => {
    // No KV_LEASE_ID variable: the agent leaves the macro $(KV_LEASE_ID) as text.
    const result = await run(scriptOf(release), stepEnv(release, { ...parameters, brokerUrl }));

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('no lease to release');
    expect(requests).toHaveLength(0);
    expect(azCalls()).toEqual([]);
  });

  it('When the release fails, Then the step warns and leaves the job succeeded with issues', async () => {
    replies = [{ status: 500, body: { title: 'Internal error', status: 500 } }];
    const result = await run(
      scriptOf(release),
      stepEnv(release, { ...parameters, brokerUrl }, { KV_LEASE_ID: LEASE.id }),
    );

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('##vso[task.logissue type=warning]kv-lease: releasing lease');
    expect(result.stdout).toContain('##vso[task.complete result=SucceededWithIssues;]');
  });
});

describe.skipIf(missingTools.length > 0)('GitHub actions scripts', () => {
  const actionScript = (path: string) => {
    const action = asRecord(readYaml(path), path);
    const step = asRecord(asArray(asRecord(action.runs, 'runs').steps, 'steps')[0], 'step');
    const inputs = asRecord(action.inputs, 'inputs');
    return { step, inputs, script: asString(step.run, 'run') };
  };
  const acquire = actionScript('pipelines/github/action.yml');
  const release = actionScript('pipelines/github/release/action.yml');

  function stepEnv(
    action: { step: Record<string, unknown>; inputs: Record<string, unknown> },
    inputs: Record<string, string>,
  ): Record<string, string> {
    const values: Record<string, string> = { 'propagation-wait-seconds': '0' };
    for (const [name, input] of Object.entries(action.inputs)) {
      const fallback = asRecord(input, name).default;
      if (typeof fallback === 'string' && !(name in values)) values[name] = fallback;
    }
    Object.assign(values, inputs);
    const env: Record<string, string> = {
      GITHUB_OUTPUT: join(work, 'github_output'),
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_REPOSITORY: 'contoso/app',
      GITHUB_RUN_ID: '777',
      GITHUB_RUN_ATTEMPT: '1',
      GITHUB_JOB: 'deploy',
      RUNNER_NAME: 'GitHub Actions 3',
    };
    for (const [name, raw] of Object.entries(asRecord(action.step.env, 'env'))) {
      env[name] = asString(raw, name).replace(
        /\$\{\{\s*inputs\.([\w-]+)\s*\}\}/g,
        (_match, input: string) => {
          const value = values[input];
          if (value === undefined) throw new Error(`input ${input} has no value`);
          return value;
        },
      );
      expect(env[name], `${name} has an expression the test does not expand`).not.toContain('${{');
    }
    return env;
  }

  const inputs = { 'broker-app-id': APP_ID, vault: 'kv-test' };

  it('When the broker grants the lease, Then the action writes lease-id, ip and expires-at outputs', async () => {
    replies = [{ status: 201, body: LEASE }];
    const result = await run(
      acquire.script,
      stepEnv(acquire, { ...inputs, 'broker-url': brokerUrl }),
    );

    expect(result.code, result.stdout + result.stderr).toBe(0);
    const outputs = readFileSync(join(work, 'github_output'), 'utf8');
    expect(outputs).toBe(`lease-id=${LEASE.id}\nip=${LEASE.ip}\nexpires-at=${LEASE.expiresAt}\n`);
    const [request] = requests;
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(request?.headers['idempotency-key']).toMatch(/^gh-777-1-[0-9a-f]{16}$/);
    const body = asRecord(JSON.parse(request?.body ?? ''), 'body');
    expect(body).toMatchObject({ vault: 'kv-test', ttlSeconds: 1200 });
    expect(asString(body.reason, 'reason')).toContain(
      'https://github.com/contoso/app/actions/runs/777/attempts/1',
    );
    expectNoToken(result);
  });

  it('When two matrix legs lease the same vault, Then their Idempotency-Keys differ', async () => {
    replies = [
      { status: 201, body: LEASE },
      { status: 201, body: LEASE },
    ];
    const env = stepEnv(acquire, { ...inputs, 'broker-url': brokerUrl });
    await run(acquire.script, env);
    await run(acquire.script, { ...env, RUNNER_NAME: 'GitHub Actions 4' });

    expect(requests).toHaveLength(2);
    expect(requests[0]?.headers['idempotency-key']).not.toBe(
      requests[1]?.headers['idempotency-key'],
    );
  });

  it('When the broker refuses, Then the action fails with an escaped error annotation', async () => {
    replies = [
      {
        status: 409,
        body: {
          title: 'Vault at capacity',
          status: 409,
          detail: 'kv-test holds 1000 rules\nno room',
        },
      },
    ];
    const result = await run(
      acquire.script,
      stepEnv(acquire, { ...inputs, 'broker-url': brokerUrl }),
    );

    expect(result.code).not.toBe(0);
    expect(result.stdout).toContain('::error title=kv-lease::POST');
    expect(result.stdout).toContain('HTTP 409: kv-test holds 1000 rules%0Ano room');
    expect(result.stdout).toContain('  | Vault at capacity (409)');
    expect(readFileSync(join(work, 'github_output'), { encoding: 'utf8', flag: 'a+' })).toBe('');
  });

  it('When release gets the lease id, Then it deletes the lease', async () => {
    replies = [{ status: 200, body: { ...LEASE, status: 'released' } }];
    const result = await run(
      release.script,
      stepEnv(release, { 'broker-url': brokerUrl, 'broker-app-id': APP_ID, 'lease-id': LEASE.id }),
    );

    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(requests.map((request) => `${request.method} ${request.url}`)).toEqual([
      `DELETE /api/leases/${LEASE.id}`,
    ]);
    expect(result.stdout).toContain(`lease ${LEASE.id} is released`);
    expectNoToken(result);
  });

  it('When acquire failed and release gets no lease id, Then it does nothing and succeeds', async () => {
    const result = await run(
      release.script,
      stepEnv(release, { 'broker-url': brokerUrl, 'broker-app-id': APP_ID }),
    );

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('no lease to release');
    expect(requests).toHaveLength(0);
  });

  it('When the lease is already gone, Then release warns and does not fail the job', async () => {
    replies = [{ status: 404, body: { title: 'Not found', status: 404 } }];
    const result = await run(
      release.script,
      stepEnv(release, { 'broker-url': brokerUrl, 'broker-app-id': APP_ID, 'lease-id': LEASE.id }),
    );

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('::warning title=kv-lease::lease');
  });
});

it.runIf(missingTools.length > 0)(
  `pipeline scripts need ${tools.join(', ')}: missing ${missingTools.join(', ')}`,
  () => {
    expect(missingTools).toEqual([]);
  },
);
