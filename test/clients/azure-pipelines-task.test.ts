import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { STATE } from '../../clients/pipeline/lease-step';
import { startTaskStep } from '../../dev/ci/runners';
import { publicIp } from '../support/harness';
import { http } from '../support/processes';
import { ciWorld, interruptedMidGrant } from './ci-support';
import { type FakeBroker, fakeLease, HOSTILE_TEXT, startFakeBroker, startTrap } from './hostile';
import { readZip } from './zip';

/**
 * The Azure Pipelines task as the extension ships it (staged by the
 * packaging script: task.json and the bundle), run as the agent runs it
 * (INPUT_*, logging commands on stdout, task variables handed to the
 * post-job handler) against the real broker, azurite and the emulator.
 */

const world = ciWorld('kv-ado');
// The packaging script is an ES module (run by node directly); tests load it with import().
const packaging = () => import('../../clients/azure-pipelines/package.mjs');
let taskDir: string;

beforeAll(async () => {
  taskDir = await (await packaging()).stage(mkdtempSync(join(tmpdir(), 'kv-lease-task-')));
}, 60_000);

function inputs(extra: Record<string, string> = {}): Record<string, string> {
  return {
    brokerUrl: world.frontEnd.url,
    vault: world.vault,
    ttlSeconds: '600',
    wait: 'false',
    ...extra,
  };
}

function execution(ip: string, extra: Record<string, string> = {}) {
  world.frontEnd.clientAddress = ip;
  return startTaskStep({ taskDir, handler: 'execution', inputs: inputs(extra), env: world.env() });
}

function postJob(taskVariables: Record<string, string>, extra: Record<string, string> = {}) {
  return startTaskStep({
    taskDir,
    handler: 'postjobexecution',
    inputs: inputs(extra),
    taskVariables,
    env: world.env(),
  }).done;
}

describe('Azure Pipelines task (staged extension, agent protocol, real broker)', () => {
  it('When the execution handler runs, then it grants, sets the output variables, and the post-job handler removes the rule', async () => {
    const ip = publicIp(201);
    const granted = await execution(ip).done;
    expect(granted.result, granted.stdout).toBe('Succeeded');
    expect(granted.outputs.leaseId).toMatch(/\S+/);
    expect(granted.outputs.ip).toBe(`${ip}/32`);
    expect(granted.taskVariables[STATE.leaseId]).toBe(granted.outputs.leaseId);
    expect(world.rules()).toContain(`${ip}/32`);

    const released = await postJob(granted.taskVariables);
    expect(released.result, released.stdout).toBe('Succeeded');
    expect(world.rules()).not.toContain(`${ip}/32`);
    const lease = await http('GET', `${world.broker.url}/api/leases/${granted.outputs.leaseId}`);
    expect(lease.body.status).toBe('released');
  });

  it('When the data plane of the vault takes 1.5 s to apply the rule, then the execution handler waits for it and succeeds', async () => {
    const ip = publicIp(205);
    world.emulator.configureDataPlane({ propagationDelayMs: 1500, clientAddress: ip });
    try {
      const granted = await execution(ip, {
        wait: 'true',
        waitTimeoutSeconds: '30',
        allowLoopbackDataPlane: 'true',
      }).done;
      expect(granted.result, granted.stdout).toBe('Succeeded');
      expect(granted.stdout).toMatch(/lets this address in after \d+\.\d s/);
      const released = await postJob(granted.taskVariables);
      expect(released.result).toBe('Succeeded');
    } finally {
      world.emulator.configureDataPlane({ propagationDelayMs: 0, clientAddress: null });
    }
    expect(world.rules()).not.toContain(`${ip}/32`);
  });

  it('When the job is cancelled (SIGINT) while the grant request is in flight, then the post-job handler releases what the broker granted', async () => {
    const ip = publicIp(202);
    const interrupted = await interruptedMidGrant(world, () => execution(ip));
    expect(interrupted.result).not.toBe('Succeeded');
    expect(interrupted.outputs.leaseId).toBeUndefined();
    expect(interrupted.taskVariables[STATE.phase]).toBe('granting');

    const released = await postJob(interrupted.taskVariables);
    expect(released.result, released.stdout).toBe('Succeeded');
    expect(released.stdout).toMatch(/lease \S+ is released/);
    expect(world.rules()).not.toContain(`${ip}/32`);
    expect((await world.activeLeases()).filter((lease) => lease.ip === `${ip}/32`)).toEqual([]);
  });

  it('When release is false, then the post-job handler leaves the lease to its expiry', async () => {
    const ip = publicIp(203);
    const granted = await execution(ip, { release: 'false' }).done;
    expect(granted.result, granted.stdout).toBe('Succeeded');
    const kept = await postJob(granted.taskVariables, { release: 'false' });
    expect(kept.stdout).toContain('ends at its expiry');
    expect(world.rules()).toContain(`${ip}/32`);
    await http('DELETE', `${world.broker.url}/api/leases/${granted.outputs.leaseId}`);
  });

  it('When the broker refuses the grant, then the task fails with the problem detail and the post-job handler releases nothing', async () => {
    const refused = await execution(publicIp(204), { ttlSeconds: '5' }).done;
    expect(refused.result).toBe('Failed');
    expect(refused.resultMessage).toMatch(/^kv-lease: .*ttl/i);
    expect(refused.taskVariables[STATE.phase]).toBe('refused');
    const after = await postJob(refused.taskVariables);
    expect(after.stdout).toContain('nothing to release');
  });

  it('When a broker answers a plain-http vault URI, then the task sends no token there, fails naming it, and the post-job handler releases', async () => {
    const [broker, trap] = await Promise.all([startFakeBroker(), startTrap()]);
    try {
      const hostile = `http://127.0.0.1:${trap.port}/`;
      broker.lease = fakeLease({ vaultUri: hostile });
      const step = (
        handler: 'execution' | 'postjobexecution',
        variables?: Record<string, string>,
      ) =>
        startTaskStep({
          taskDir,
          handler,
          inputs: { brokerUrl: broker.url, vault: 'kv-demo', wait: 'true' },
          ...(variables ? { taskVariables: variables } : {}),
          env: world.env(),
        }).done;

      const refused = await step('execution');
      const released = await step('postjobexecution', refused.taskVariables);

      expect(refused.result).toBe('Failed');
      expect(refused.resultMessage).toContain(`refusing to send a vault token to ${hostile}`);
      expect(refused.resultMessage).toMatch(/only sent over https, not http/);
      expect(released.result).toBe('Succeeded');
      expect(broker.deletes()).toEqual([broker.lease.id]);
      expect(trap.seen).toEqual([]);
    } finally {
      await Promise.all([broker.close(), trap.close()]);
    }
  });

  it('When the post-job handler runs for a task that never granted, then it succeeds and does nothing', async () => {
    const after = await postJob({});
    expect(after.result).toBe('Succeeded');
    expect(after.stdout).toContain('nothing to release');
  });
});

describe('Azure Pipelines extension package', () => {
  it('When npm run package:ado builds the .vsix offline, then it holds the manifest, task.json and the bundle the handlers name', async () => {
    const output = join(mkdtempSync(join(tmpdir(), 'kv-lease-vsix-out-')), 'kv-lease.vsix');
    await (await packaging()).packageExtension(output);
    const files = readZip(readFileSync(output));
    const task = JSON.parse(files.get('task/task.json')?.toString('utf8') ?? '{}');
    expect(task.id).toBe(
      JSON.parse(
        readFileSync(join(__dirname, '../../clients/azure-pipelines/task/task.json'), 'utf8'),
      ).id,
    );
    for (const handler of ['execution', 'postjobexecution']) {
      for (const runtime of ['Node20_1', 'Node24']) {
        const target = task[handler][runtime].target as string;
        expect(files.has(`task/${target}`), `${handler}.${runtime}: ${target}`).toBe(true);
      }
    }
    expect(files.get('task/dist/run.js')?.length).toBeGreaterThan(10_000);
    expect(files.get('extension.vsixmanifest')?.toString('utf8')).toContain('kv-lease-tasks');
  }, 60_000);
});

describe('Azure Pipelines task with targets of other kinds (a fake broker answers the v1.1 lease fields)', () => {
  function fakeExecution(broker: FakeBroker, extra: Record<string, string>) {
    return startTaskStep({
      taskDir,
      handler: 'execution',
      inputs: { brokerUrl: broker.url, wait: 'false', ...extra },
      env: world.env(),
    }).done;
  }

  it('When the lease carries warnings that try to forge logging commands, then each is one task warning with its text escaped, and no command is forged, not even from a plain log line', async () => {
    const broker = await startFakeBroker();
    try {
      broker.lease = fakeLease({
        vault: 'stdemo##vso[task.setvariable variable=fromName]yes',
        target: 'stdemo##vso[task.setvariable variable=fromName]yes',
        kind: 'storage',
        warnings: [
          '##vso[task.setvariable variable=pwned]yes',
          `same region\n##vso[task.complete result=Failed]forged${HOSTILE_TEXT}`,
        ],
      });

      const granted = await fakeExecution(broker, { target: 'stdemo' });

      expect(granted.result, granted.stdout).toBe('Succeeded');
      const warnings = granted.commands.filter(
        (c) => c.command === 'task.issue' && c.properties.type === 'warning',
      );
      expect(warnings.map((c) => c.message)).toEqual([
        'kv-lease: ##vso[task.setvariable variable=pwned]yes',
        expect.stringMatching(
          /^kv-lease: same region\\u000a##vso\[task\.complete result=Failed\]forgedrun 42\\u001b\[2J/,
        ),
      ]);
      const setVariables = granted.commands
        .filter((c) => c.command === 'task.setvariable')
        .map((c) => c.properties.variable);
      expect(setVariables).not.toContain('pwned');
      expect(setVariables).not.toContain('fromName');
      expect(granted.commands.filter((c) => c.command === 'task.complete')).toHaveLength(1);
      expect(granted.stdout).toContain(
        'opens stdemo##vso\\[task.setvariable variable=fromName]yes',
      );
      expect(granted.outputs).toMatchObject({ kind: 'storage' });
      expect(broker.grants()).toEqual([expect.objectContaining({ target: 'stdemo' })]);
    } finally {
      await broker.close();
    }
  });

  it('When target and vault name different targets, then the task fails naming both before any grant', async () => {
    const broker = await startFakeBroker();
    try {
      const both = await fakeExecution(broker, { target: 'sql-demo', vault: 'kv-demo' });

      expect(both.result).toBe('Failed');
      expect(both.resultMessage).toMatch(
        /^kv-lease: target 'sql-demo' and vault 'kv-demo' differ: give one of them/,
      );
      expect(broker.grants()).toEqual([]);
    } finally {
      await broker.close();
    }
  });
});
