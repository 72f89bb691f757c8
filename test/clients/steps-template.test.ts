import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { asArray, asRecord, asString, readYamlAsStrings } from '../infra/helpers';
import { publicIp } from '../support/harness';
import { ciWorld, interruptedMidGrant } from './ci-support';

/**
 * The CLI steps template's commands against the real broker. No pwsh runs
 * here, so the template's own scripts are not executed: each `kv-lease`
 * command line is taken from the template as written, its `$env:` arguments
 * filled from the step's `env:` block (with the agent's macro expansion), and
 * run with the bundled CLI. That proves the template asks the CLI for what the
 * CLI does, including the repeat by Idempotency-Key after a cancel.
 */

const TEMPLATE = 'clients/azure-pipelines/templates/kv-lease-steps.yml';
const CLI = join(__dirname, '..', '..', 'clients', 'cli', 'dist', 'kv-lease.js');
const world = ciWorld('kv-tpl');

const template = asRecord(readYamlAsStrings(TEMPLATE), 'template');
const steps = asArray(template.steps, 'steps');
const grantStep = asRecord(steps[0], 'grant step');
const releaseStep = asRecord(steps[steps.length - 1], 'release step');

/** Template expressions, then the agent's $(macros); an unknown macro stays as written, as on the agent. */
function expand(
  text: string,
  parameters: Record<string, string>,
  variables: Record<string, string>,
) {
  return text
    .replace(/\$\{\{\s*parameters\.(\w+)\s*\}\}/g, (_, name: string) => parameters[name] ?? '')
    .replace(/\$\(([\w.]+)\)/g, (macro, name: string) => variables[name] ?? macro);
}

function stepEnv(
  step: Record<string, unknown>,
  parameters: Record<string, string>,
  variables: Record<string, string>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(asRecord(step.env, 'env')).map(([name, value]) => [
      name,
      expand(asString(value, name), parameters, variables),
    ]),
  );
}

/** The arguments of the script's `kv-lease <verb> ...` line, `$env:NAME` and `$id` filled in. */
function commandLine(
  step: Record<string, unknown>,
  verb: 'grant' | 'release',
  env: Record<string, string>,
  id = '',
): string[] {
  const script = asString(asRecord(step.inputs, 'inputs').inlineScript, 'inlineScript');
  const marker = `@($cli | Select-Object -Skip 1) ${verb} `;
  const line = script.split('\n').find((candidate) => candidate.includes(marker));
  if (!line) throw new Error(`no kv-lease ${verb} line in the step`);
  return [
    verb,
    ...line
      .slice(line.indexOf(marker) + marker.length)
      .trim()
      .split(/\s+/)
      .map((token) => {
        if (token === '$id') return id;
        const variable = /^\$env:(\w+)$/.exec(token);
        return variable ? (env[variable[1] ?? ''] ?? '') : token;
      }),
  ];
}

function kvLease(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [CLI, ...args], {
    // The emulator's data plane is on loopback: the CLI's documented opt-in.
    env: world.env({ KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE: '1', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

describe('Azure Pipelines steps template: its kv-lease commands against the real broker', () => {
  const parameters = () => ({
    brokerUrl: world.frontEnd.url,
    scope: 'api://kv-lease/.default',
    vault: world.vault,
    ttlSeconds: '600',
    cli: 'kv-lease',
    leaseVariable: 'KV_LEASE_ID',
  });
  const variables = (job: string) => ({
    'System.JobId': job,
    'System.JobAttempt': '1',
    'System.CollectionUri': 'https://dev.azure.com/contoso/',
    'System.TeamProject': 'app',
    'Build.BuildId': '4242',
    'System.JobDisplayName': 'deploy',
  });

  it('When the grant step runs, then the CLI leases, waits and prints the lease; the release step removes the rule', async () => {
    const ip = publicIp(301);
    world.frontEnd.clientAddress = ip;
    world.emulator.configureDataPlane({ clientAddress: ip });
    try {
      const env = stepEnv(grantStep, parameters(), variables('job-301'));
      const granted = await kvLease(commandLine(grantStep, 'grant', env), env).done;
      expect(granted.code, granted.stderr).toBe(0);
      const lease = JSON.parse(granted.stdout);
      expect(lease.ip).toBe(`${ip}/32`);
      expect(world.rules()).toContain(`${ip}/32`);

      const releaseEnv = stepEnv(releaseStep, parameters(), {
        ...variables('job-301'),
        KV_LEASE_ID: lease.id,
      });
      expect(releaseEnv.KV_LEASE_RELEASE_ID).toBe(lease.id);
      const released = await kvLease(
        commandLine(releaseStep, 'release', releaseEnv, releaseEnv.KV_LEASE_RELEASE_ID),
        releaseEnv,
      ).done;
      expect(released.code, released.stderr).toBe(0);
    } finally {
      world.emulator.configureDataPlane({ clientAddress: null });
    }
    expect(world.rules()).not.toContain(`${ip}/32`);
  });

  it('When the grant is cancelled in flight, then the release step repeats it by the same Idempotency-Key and releases that lease', async () => {
    const ip = publicIp(302);
    world.frontEnd.clientAddress = ip;
    const env = stepEnv(grantStep, parameters(), variables('job-302'));
    const grant = await interruptedMidGrant(world, () =>
      kvLease(commandLine(grantStep, 'grant', env), env),
    );
    expect(grant.code).not.toBe(0);

    // KV_LEASE_ID was never set: the agent leaves its macro as text.
    const releaseEnv = stepEnv(releaseStep, parameters(), {
      ...variables('job-302'),
      KV_LEASE_ID_STARTED: 'true',
    });
    expect(releaseEnv.KV_LEASE_RELEASE_ID).toBe('$(KV_LEASE_ID)');
    expect(releaseEnv.KV_LEASE_IDEMPOTENCY_KEY).toBe(env.KV_LEASE_IDEMPOTENCY_KEY);
    const repeated = await kvLease(commandLine(releaseStep, 'grant', releaseEnv), releaseEnv).done;
    expect(repeated.code, repeated.stderr).toBe(0);
    const lease = JSON.parse(repeated.stdout);
    const released = await kvLease(
      commandLine(releaseStep, 'release', releaseEnv, lease.id),
      releaseEnv,
    ).done;
    expect(released.code, released.stderr).toBe(0);
    expect(world.rules()).not.toContain(`${ip}/32`);
    expect((await world.activeLeases()).filter((lease) => lease.ip === `${ip}/32`)).toEqual([]);
  });
});
