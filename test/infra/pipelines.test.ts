import { describe, expect, it } from 'vitest';

import { asArray, asRecord, asString, readText, readYaml, readYamlAsStrings } from './helpers';

/**
 * What a pipeline author relies on in the CI clients' metadata, beyond their
 * schemas (test/infra/schemas.test.ts). Their behaviour is tested against the
 * real broker in test/clients/.
 */

const ACTION = 'clients/github-action/action.yml';
const TASK = 'clients/azure-pipelines/task/task.json';
const TEMPLATE = 'clients/azure-pipelines/templates/kv-lease-steps.yml';

describe('GitHub action metadata', () => {
  const action = asRecord(readYaml(ACTION), 'action');
  const inputs = asRecord(action.inputs, 'inputs');

  it('When a workflow uses the action, Then it runs on node24 with a main and a post step from dist/', () => {
    expect(asRecord(action.runs, 'runs')).toEqual({
      using: 'node24',
      main: 'dist/main.cjs',
      post: 'dist/post.cjs',
    });
    // No post-if: the post step runs always(), after failures and cancels too.
    expect(asRecord(action.runs, 'runs')['post-if']).toBeUndefined();
  });

  it('When a workflow uses the action, Then broker-url is required, the target is named by target or its alias vault, and release can be turned off', () => {
    expect(asRecord(inputs['broker-url'], 'broker-url').required).toBe(true);
    // One of the two is needed; the action says so at run time (both optional here).
    for (const name of ['target', 'vault']) {
      expect(asRecord(inputs[name], name).required, name).toBe(false);
    }
    expect(asRecord(inputs.release, 'release')).toMatchObject({ required: false, default: 'true' });
    expect(asRecord(inputs.wait, 'wait').default).toBe('true');
    for (const [name, spec] of Object.entries(inputs)) {
      const input = asRecord(spec, name);
      if (input.required !== true) expect(typeof input.default, `${name} default`).toBe('string');
    }
  });

  it('When a later step reads the lease, Then lease-id and ip are outputs', () => {
    expect(Object.keys(asRecord(action.outputs, 'outputs'))).toEqual(
      expect.arrayContaining(['lease-id', 'ip']),
    );
  });

  it('When the example workflow runs, Then it logs in with OIDC before the action and writes no release step', () => {
    const path = 'clients/github-action/example-workflow.yml';
    const workflow = asRecord(readYaml(path), 'workflow');
    expect(asRecord(workflow.permissions, 'permissions')['id-token']).toBe('write');
    const jobs = Object.values(asRecord(workflow.jobs, 'jobs')).map((job) => asRecord(job, 'job'));
    const steps = asArray(jobs[0]?.steps, 'steps').map((step) => asRecord(step, 'step'));
    const uses = steps.map((step) => (typeof step.uses === 'string' ? step.uses : 'run'));
    const login = uses.findIndex((name) => name.startsWith('azure/login@'));
    const lease = uses.indexOf('./clients/github-action');
    const lastLease = uses.lastIndexOf('./clients/github-action');
    expect(login).toBeGreaterThanOrEqual(0);
    expect(lease).toBeGreaterThan(login);
    // The lease steps, then the job's work; no release step (each lease's post step releases it).
    const work = uses.slice(lastLease + 1);
    expect(work.length).toBeGreaterThan(0);
    expect(work.every((step) => step === 'run')).toBe(true);
    expect(readText(path)).toMatch(/SIGINT, then SIGTERM 7\.5 s later/);
  });
});

describe('Azure Pipelines task metadata', () => {
  const task = asRecord(JSON.parse(readText(TASK)), 'task.json');

  it('When the agent runs the task, Then execution and postjobexecution run the same bundle on Node24 or Node20_1', () => {
    expect(task.execution).toEqual({
      Node24: { target: 'dist/execution.js', argumentFormat: '' },
      Node20_1: { target: 'dist/execution.js', argumentFormat: '' },
    });
    expect(task.postjobexecution).toEqual({
      Node24: { target: 'dist/post.js', argumentFormat: '' },
      Node20_1: { target: 'dist/post.js', argumentFormat: '' },
    });
    // The first agent with the Node20_1 handler; a newer one picks Node24.
    expect(task.minimumAgentVersion).toBe('3.232.1');
  });

  it('When a pipeline reads the lease, Then leaseId and ip are output variables', () => {
    const names = asArray(task.outputVariables, 'outputVariables').map(
      (output) => asRecord(output, 'output').name,
    );
    expect(names).toEqual(expect.arrayContaining(['leaseId', 'ip']));
  });
});

describe('Azure Pipelines steps template (CLI)', () => {
  const template = asRecord(readYamlAsStrings(TEMPLATE), 'template');
  const steps = asArray(template.steps, 'steps');
  const grant = asRecord(steps[0], 'grant step');
  const release = asRecord(steps[steps.length - 1], 'release step');
  const script = (step: Record<string, unknown>) =>
    asString(asRecord(step.inputs, 'inputs').inlineScript, 'inlineScript');

  it('When the template expands, Then the grant runs first, the inner steps next and the release last with always()', () => {
    expect(steps).toHaveLength(3);
    expect(steps[1]).toBe('${{ parameters.steps }}');
    expect(grant.condition).toBeUndefined();
    expect(release.condition).toBe('always()');
  });

  it('When it runs on a Windows agent, Then no step needs bash or curl: pwsh runs the kv-lease CLI', () => {
    for (const step of [grant, release]) {
      expect(step.task).toBe('AzureCLI@2');
      expect(asRecord(step.inputs, 'inputs').scriptType).toBe('pscore');
      expect(script(step)).not.toMatch(/\bcurl\b|\bjq\b|\/dev\/fd|\bbash\b/);
    }
    expect(script(grant)).toMatch(/ grant .*--idempotency-key .*--wait --json/);
    expect(script(release)).toMatch(/ release \$id/);
  });

  it('When the grant is cancelled in flight, Then the release step can repeat it by its Idempotency-Key', () => {
    const key = '$(System.JobId)-$(System.JobAttempt)-${{ parameters.vault }}';
    expect(asRecord(grant.env, 'env').KV_LEASE_IDEMPOTENCY_KEY).toBe(key);
    expect(asRecord(release.env, 'env').KV_LEASE_IDEMPOTENCY_KEY).toBe(key);
    // The marker is set before the request leaves.
    const lines = script(grant).split('\n');
    const marker = lines.findIndex((line) => line.includes('_STARTED]true'));
    const request = lines.findIndex((line) => line.includes(' grant '));
    expect(marker).toBeGreaterThanOrEqual(0);
    expect(marker).toBeLessThan(request);
    expect(script(release)).toContain("-like '$(*'");
  });

  it('When parameters reach the scripts, Then they arrive through env, never spliced into code', () => {
    for (const step of [grant, release]) expect(script(step)).not.toContain('${{');
  });
});
