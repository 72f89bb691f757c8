import type { ChildProcess } from 'node:child_process';

import { afterAll, beforeAll } from 'vitest';

import { type FrontEnd, startFrontEnd } from '../../dev/ci/front-end';
import type { RunningEmulator } from '../../dev/emulator/types';
import { lockedVault, rulesOf, testEmulator } from '../support/harness';
import { type BrokerProcess, http, startBrokers } from '../support/processes';

/**
 * One emulator, one broker process and a front end that plays Azure's (it
 * appends the caller's public address to X-Forwarded-For) for a test file of
 * the CI clients. Each test leases its own address, so rules never mix.
 */
export interface CiWorld {
  emulator: RunningEmulator;
  broker: BrokerProcess;
  frontEnd: FrontEnd;
  vault: string;
  /** The environment of a step: a static token (AUTH_MODE=disabled) and trust of the emulator's CA. */
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  rules(): string[];
  activeLeases(): Promise<{ id: string; ip: string }[]>;
}

export function ciWorld(vault: string): CiWorld {
  const world = { vault } as CiWorld;
  beforeAll(async () => {
    world.emulator = await testEmulator({ writeLatencyMs: 50 });
    world.emulator.createVault(lockedVault(vault));
    [world.broker] = (await startBrokers({
      count: 1,
      emulator: world.emulator,
      vaults: [vault],
    })) as [BrokerProcess];
    world.frontEnd = await startFrontEnd({ upstream: world.broker.url, clientAddress: '52.1.1.1' });
  });
  afterAll(async () => {
    await world.frontEnd?.close();
    await world.broker?.child.stop();
    await world.emulator?.close();
  });
  world.env = (extra = {}) => ({
    ...process.env,
    KV_LEASE_TOKEN: 'local-dev-token',
    KV_LEASE_VAULT_TOKEN: 'local-data-plane-token',
    NODE_EXTRA_CA_CERTS: world.emulator.caPath,
    ...extra,
  });
  world.rules = () => rulesOf(world.emulator, vault);
  world.activeLeases = async () => {
    const answer = await http('GET', `${world.broker.url}/api/leases?vault=${vault}&status=active`);
    return answer.body.value;
  };
  return world;
}

/** Resolves once `check` holds, polling every 20 ms; throws after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Starts a step whose grant makes the broker write the vault slowly (1.5 s
 * per write), sends it SIGINT once the broker is writing (the grant request
 * is in flight), and resolves with how the step ended.
 */
export async function interruptedMidGrant<T>(
  world: CiWorld,
  start: () => { child: ChildProcess; done: Promise<T> },
): Promise<T> {
  world.emulator.configure({ writeLatencyMs: 1500 });
  const writes = () => world.emulator.stats().patches + world.emulator.stats().puts;
  const before = writes();
  try {
    const step = start();
    await until(() => writes() > before, 15_000, 'the broker writing the vault');
    step.child.kill('SIGINT');
    return await step.done;
  } finally {
    world.emulator.configure({ writeLatencyMs: 50 });
  }
}
