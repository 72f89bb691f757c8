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
