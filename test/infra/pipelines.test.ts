import { execFileSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import {
  asArray,
  asRecord,
  asString,
  isRecord,
  readText,
  readYaml,
  readYamlAsStrings,
} from './helpers';

/** What a pipeline author relies on when copying the templates, beyond their schemas. */

const TEMPLATE = 'pipelines/azure-pipelines/kv-lease-steps.yml';
const template = asRecord(readYamlAsStrings(TEMPLATE), 'template');
const templateSteps = asArray(template.steps, 'steps');
const acquireStep = asRecord(templateSteps[0], 'acquire step');
const releaseStep = asRecord(templateSteps[templateSteps.length - 1], 'release step');
const inlineScript = (step: Record<string, unknown>) =>
  asString(asRecord(step.inputs, 'inputs').inlineScript, 'inlineScript');

const actions = ['pipelines/github/action.yml', 'pipelines/github/release/action.yml'].map(
  (path) => {
    const action = asRecord(readYaml(path), path);
    const steps = asArray(asRecord(action.runs, 'runs').steps, 'steps').map((step) =>
      asRecord(step, 'step'),
    );
    return { path, action, steps };
  },
);

const scripts: [string, string][] = [
  [`${TEMPLATE} acquire`, inlineScript(acquireStep)],
  [`${TEMPLATE} release`, inlineScript(releaseStep)],
  ...actions.flatMap(({ path, steps }) =>
    steps.map((step, index): [string, string] => [
      `${path} step ${index}`,
      asString(step.run, 'run'),
    ]),
  ),
];

describe('pipeline scripts', () => {
  it.each(scripts)('When bash reads the script of %s, Then it parses', (_name, script) => {
    expect(() =>
      execFileSync('bash', ['-n'], { input: script, stdio: ['pipe', 'pipe', 'pipe'] }),
    ).not.toThrow();
  });

  it.each(scripts)(
    'When %s runs, Then no template expression is spliced into its code (inputs arrive through env)',
    (_name, script) => {
      expect(script).not.toContain('${{');
    },
  );

  it.each(scripts.slice(0, 2))(
    'When the agent expands macros in %s, Then none can match: the script has no $(name) without a space',
    (_name, script) => {
      expect(script.match(/\$\([\w.-]+\)/g) ?? []).toEqual([]);
    },
  );

  it.each(scripts)(
    'When %s starts, Then it stops at the first failing command',
    (_name, script) => {
      expect(script.trimStart().startsWith('set -euo pipefail')).toBe(true);
    },
  );
});

describe('Azure Pipelines steps template', () => {
  const parameters = asArray(template.parameters, 'parameters').map((parameter) =>
    asRecord(parameter, 'parameter'),
  );
  const parameter = (name: string) => parameters.find((candidate) => candidate.name === name);

  it('When a pipeline includes the template, Then it takes the documented parameters', () => {
    expect(parameters.map((candidate) => candidate.name)).toEqual([
      'brokerUrl',
      'brokerAppId',
      'vault',
      'azureSubscription',
      'ttlSeconds',
      'propagationWaitSeconds',
      'probe',
      'leaseVariable',
      'steps',
    ]);
    expect(parameter('ttlSeconds')).toMatchObject({ type: 'number', default: '1200' });
    expect(parameter('propagationWaitSeconds')).toMatchObject({ type: 'number', default: '60' });
    expect(parameter('steps')).toMatchObject({ type: 'stepList' });
    for (const required of ['brokerUrl', 'brokerAppId', 'vault', 'azureSubscription']) {
      expect(parameter(required)?.default, required).toBeUndefined();
    }
  });

  it('When the template expands, Then acquire runs first, the inner steps next and release last', () => {
    expect(templateSteps).toHaveLength(3);
    expect(templateSteps[1]).toBe('${{ parameters.steps }}');
    for (const step of [acquireStep, releaseStep]) {
      expect(step.task).toBe('AzureCLI@2');
      expect(asRecord(step.inputs, 'inputs')).toMatchObject({
        azureSubscription: '${{ parameters.azureSubscription }}',
        scriptType: 'bash',
        scriptLocation: 'inlineScript',
      });
    }
    expect(inlineScript(acquireStep)).toContain(
      'az account get-access-token --resource "$KV_LEASE_APP_ID"',
    );
  });

  it('When the run is cancelled, Then release still runs: always(), not succeededOrFailed()', () => {
    expect(acquireStep.condition).toBeUndefined();
    expect(releaseStep.condition).toBe('always()');
    const code = readText(TEMPLATE)
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('#'));
    expect(code.join('\n')).not.toContain('succeededOrFailed');
    expect(readText(TEMPLATE)).toMatch(
      /succeededOrFailed\(\) does not run\s+# when the run is cancelled/,
    );
  });

  it('When the grant is retried, Then the Idempotency-Key is the job id and attempt (and vault)', () => {
    const env = asRecord(acquireStep.env, 'env');
    expect(env.KV_LEASE_IDEMPOTENCY_KEY).toBe(
      '$(System.JobId)-$(System.JobAttempt)-${{ parameters.vault }}',
    );
    expect(inlineScript(acquireStep)).toContain(
      '--header "Idempotency-Key: $KV_LEASE_IDEMPOTENCY_KEY"',
    );
    expect(asRecord(releaseStep.env, 'env').KV_LEASE_RELEASE_ID).toBe(
      '$(${{ parameters.leaseVariable }})',
    );
  });
});

describe('GitHub actions', () => {
  const [acquire, release] = actions;

  it('When a workflow uses the acquire action, Then it takes the documented inputs and gives lease-id', () => {
    const inputs = asRecord(acquire?.action.inputs, 'inputs');
    expect(Object.keys(inputs)).toEqual(
      expect.arrayContaining(['broker-url', 'broker-app-id', 'vault', 'ttl-seconds']),
    );
    for (const required of ['broker-url', 'broker-app-id', 'vault']) {
      expect(asRecord(inputs[required], required).required, required).toBe(true);
    }
    expect(asRecord(inputs['ttl-seconds'], 'ttl-seconds').default).toBe('1200');
    const outputs = asRecord(acquire?.action.outputs, 'outputs');
    const stepId = acquire?.steps.find((step) => isRecord(step) && typeof step.id === 'string')?.id;
    expect(asRecord(outputs['lease-id'], 'lease-id').value).toBe(
      `\${{ steps.${String(stepId)}.outputs.lease-id }}`,
    );
    expect(asString(acquire?.steps[0]?.run, 'run')).toContain('echo "lease-id=$lease_id"');
  });

  it('When a workflow uses the release action, Then it takes the lease id and may get an empty one', () => {
    const inputs = asRecord(release?.action.inputs, 'inputs');
    expect(Object.keys(inputs)).toEqual(['broker-url', 'broker-app-id', 'lease-id']);
    expect(asRecord(inputs['lease-id'], 'lease-id')).toMatchObject({
      required: false,
      default: '',
    });
  });

  it('When the example workflow runs, Then it logs in with OIDC, acquires, works and releases with if: always()', () => {
    const workflow = asRecord(readYaml('pipelines/github/example-workflow.yml'), 'workflow');
    expect(asRecord(workflow.permissions, 'permissions')['id-token']).toBe('write');
    const jobs = Object.values(asRecord(workflow.jobs, 'jobs')).map((job) => asRecord(job, 'job'));
    expect(jobs).toHaveLength(1);
    const steps = asArray(jobs[0]?.steps, 'steps').map((step) => asRecord(step, 'step'));
    const uses = steps.map((step) => (typeof step.uses === 'string' ? step.uses : 'run'));
    const login = uses.findIndex((name) => name.startsWith('azure/login@'));
    const acquireAt = uses.indexOf('./pipelines/github');
    const releaseAt = uses.indexOf('./pipelines/github/release');
    expect(login).toBeGreaterThanOrEqual(0);
    expect(acquireAt).toBeGreaterThan(login);
    expect(releaseAt).toBe(steps.length - 1);
    expect(uses.slice(acquireAt + 1, releaseAt)).toContain('run');
    const releaseStep = steps[releaseAt];
    expect(releaseStep?.if).toBe('always()');
    const acquireId = asString(steps[acquireAt]?.id, 'acquire id');
    expect(asRecord(releaseStep?.with, 'with')['lease-id']).toBe(
      `\${{ steps.${acquireId}.outputs.lease-id }}`,
    );
    const text = readText('pipelines/github/example-workflow.yml');
    expect(text).toMatch(/SIGINT, then SIGTERM 7\.5 s later/);
    expect(text).toMatch(/runs no cleanup\s+# at all/);
  });
});
