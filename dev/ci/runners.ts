import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parse } from 'yaml';

import { type LoggingCommand, parseFileCommands, parseLoggingCommands } from './file-commands';

/**
 * Runs the CI clients' committed bundles the way their hosts do, with no
 * shell: the GitHub runner (`node <runs.main>` / `node <runs.post>` with
 * INPUT_* variables, the GITHUB_OUTPUT / GITHUB_STATE files, and the saved
 * state handed to the post step as STATE_*), and the Azure Pipelines agent
 * (`node <execution target>` / `node <postjobexecution target>` with INPUT_*
 * variables, logging commands on stdout, and task variables handed to the
 * post-job handler as VSTS_TASKVARIABLE_*). The tests and the benchmark use
 * them against the real broker.
 */

export interface StepProcess<T> {
  child: ChildProcess;
  /** Resolves when the process has exited. */
  done: Promise<T>;
}

interface Exited {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(script: string, env: NodeJS.ProcessEnv, cwd: string): StepProcess<Exited> {
  const child = spawn(process.execPath, [script], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Exited>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, signal) => resolve({ exitCode, signal, stdout, stderr }));
  });
  return { child, done };
}

/** The environment a step sees: the caller's, without INPUT_/STATE_ leftovers of its own host. */
function baseEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(
      ([name]) => !/^(INPUT_|STATE_|GITHUB_|VSTS_TASKVARIABLE_|ENDPOINT_)/i.test(name),
    ),
  );
}

// ---------------------------------------------------------------- GitHub

export interface WorkflowCommand {
  command: string;
  message: string;
}

export interface ActionStepResult extends Exited {
  outputs: Record<string, string>;
  state: Record<string, string>;
  commands: WorkflowCommand[];
}

interface ActionMetadata {
  inputs?: Record<string, { default?: string }>;
  runs: { using: string; main: string; post?: string };
}

function unescapeWorkflow(value: string): string {
  return value.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
}

export function parseWorkflowCommands(stdout: string): WorkflowCommand[] {
  return stdout
    .split(/\r?\n/)
    .map((line) => /^::([\w-]+)(?: [^:]*)?::(.*)$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null)
    .map(([, command = '', message = '']) => ({ command, message: unescapeWorkflow(message) }));
}

/**
 * One step of a JavaScript action: `main`, or `post` with the state the main
 * step saved. Inputs not given take their action.yml defaults, as on the runner.
 */
export function startActionStep(options: {
  actionDir: string;
  entry: 'main' | 'post';
  inputs: Record<string, string>;
  state?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  workDir?: string;
}): StepProcess<ActionStepResult> {
  const metadata = parse(
    readFileSync(join(options.actionDir, 'action.yml'), 'utf8'),
  ) as ActionMetadata;
  const script = options.entry === 'main' ? metadata.runs.main : metadata.runs.post;
  if (!script) throw new Error(`the action has no ${options.entry} entry point`);
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'kv-lease-gha-'));
  const files = {
    GITHUB_OUTPUT: join(workDir, `output-${options.entry}`),
    GITHUB_STATE: join(workDir, `state-${options.entry}`),
    GITHUB_ENV: join(workDir, `env-${options.entry}`),
    GITHUB_PATH: join(workDir, `path-${options.entry}`),
    GITHUB_STEP_SUMMARY: join(workDir, `summary-${options.entry}`),
  };
  for (const file of Object.values(files)) writeFileSync(file, '');
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(options.env ?? process.env),
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: workDir,
    GITHUB_RUN_ID: '4242',
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_REPOSITORY: 'contoso/app',
    GITHUB_JOB: 'deploy',
    RUNNER_TEMP: workDir,
    ...files,
  };
  const defaults = Object.entries(metadata.inputs ?? {}).map(
    ([name, spec]) => [name, spec.default ?? ''] as const,
  );
  for (const [name, value] of [...defaults, ...Object.entries(options.inputs)]) {
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  }
  for (const [name, value] of Object.entries(options.state ?? {})) env[`STATE_${name}`] = value;
  const step = run(join(options.actionDir, script), env, workDir);
  return {
    child: step.child,
    done: step.done.then((exited) => ({
      ...exited,
      outputs: parseFileCommands(readFileSync(files.GITHUB_OUTPUT, 'utf8')),
      state: parseFileCommands(readFileSync(files.GITHUB_STATE, 'utf8')),
      commands: parseWorkflowCommands(exited.stdout),
    })),
  };
}

// ------------------------------------------------------- Azure Pipelines

export interface TaskStepResult extends Exited {
  commands: LoggingCommand[];
  /** `task.settaskvariable`: what the agent hands to the post-job handler. */
  taskVariables: Record<string, string>;
  /** `task.setvariable` with isOutput=true. */
  outputs: Record<string, string>;
  /** `task.complete`: Succeeded, SucceededWithIssues, Failed, ... */
  result: string | undefined;
  resultMessage: string;
}

interface TaskMetadata {
  inputs?: { name: string; defaultValue?: string | boolean }[];
  execution: Record<string, { target: string }>;
  postjobexecution?: Record<string, { target: string }>;
}

/**
 * One handler of a Node task, as the agent's Node20_1 handler runs it here.
 * Inputs not given take their task.json defaults, as in the agent.
 */
export function startTaskStep(options: {
  taskDir: string;
  handler: 'execution' | 'postjobexecution';
  inputs: Record<string, string>;
  taskVariables?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  workDir?: string;
}): StepProcess<TaskStepResult> {
  const metadata = JSON.parse(
    readFileSync(join(options.taskDir, 'task.json'), 'utf8'),
  ) as TaskMetadata;
  const handler = metadata[options.handler]?.Node20_1;
  if (!handler) throw new Error(`task.json has no Node20_1 ${options.handler} handler`);
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'kv-lease-ado-'));
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(options.env ?? process.env),
    TF_BUILD: 'True',
    AGENT_VERSION: '4.266.2',
    AGENT_TEMPDIRECTORY: workDir,
    AGENT_WORKFOLDER: workDir,
    SYSTEM_COLLECTIONURI: 'https://dev.azure.com/contoso/',
    SYSTEM_TEAMPROJECT: 'app',
    BUILD_BUILDID: '4242',
    SYSTEM_JOBDISPLAYNAME: 'deploy',
  };
  const defaults = (metadata.inputs ?? []).map(
    (input) => [input.name, String(input.defaultValue ?? '')] as const,
  );
  for (const [name, value] of [...defaults, ...Object.entries(options.inputs)]) {
    env[`INPUT_${name.replace(/\./g, '_').replace(/ /g, '_').toUpperCase()}`] = value;
  }
  for (const [name, value] of Object.entries(options.taskVariables ?? {})) {
    env[`VSTS_TASKVARIABLE_${name.replace(/\./g, '_').replace(/ /g, '_').toUpperCase()}`] = value;
  }
  const step = run(join(options.taskDir, handler.target), env, workDir);
  return {
    child: step.child,
    done: step.done.then((exited) => {
      const commands = parseLoggingCommands(exited.stdout);
      const taskVariables: Record<string, string> = {};
      const outputs: Record<string, string> = {};
      let complete: LoggingCommand | undefined;
      for (const command of commands) {
        const name = command.properties.variable ?? '';
        if (command.command === 'task.settaskvariable') taskVariables[name] = command.message;
        if (command.command === 'task.setvariable' && command.properties.isOutput === 'true') {
          outputs[name] = command.message;
        }
        if (command.command === 'task.complete') complete = command;
      }
      return {
        ...exited,
        commands,
        taskVariables,
        outputs,
        result: complete?.properties.result,
        resultMessage: complete?.message ?? '',
      };
    }),
  };
}
