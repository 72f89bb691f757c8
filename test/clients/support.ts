import { Agent, fetch as undiciFetch } from 'undici';

import type { RunningEmulator } from '../../dev/emulator/types';
import { lockedVault, testEmulator } from '../support/harness';
import { type BrokerProcess, startBrokers } from '../support/processes';

export const LEASED_IP = '52.10.20.30';

/**
 * A global-fetch-compatible fetch that trusts the emulator's certificate: the vitest worker
 * started before the emulator made its CA, so NODE_EXTRA_CA_CERTS cannot carry it here (the
 * CLI's child processes get it that way).
 */
export function trustingFetch(emulator: RunningEmulator): typeof fetch {
  const dispatcher = new Agent({ connect: { ca: emulator.caPem } });
  return ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher })) as unknown as typeof fetch;
}

export interface ClientWorld {
  emulator: RunningEmulator;
  broker: BrokerProcess;
  vaults: string[];
  close(): Promise<void>;
}

/**
 * The real thing, locally: the emulator (ARM and data plane over https, the vault seeing every
 * caller as LEASED_IP unless told otherwise), azurite and one broker process (the local runner,
 * AUTH_MODE=disabled, so the one caller is Lease.Admin and may name the `ip`).
 */
export async function startWorld(
  prefix: string,
  options: { vaults?: number; env?: Record<string, string> } = {},
): Promise<ClientWorld> {
  const emulator = await testEmulator({ dataPlane: { clientAddress: LEASED_IP } });
  const vaults = Array.from({ length: options.vaults ?? 4 }, (_, i) => `${prefix}-${i + 1}`);
  for (const name of vaults) emulator.createVault(lockedVault(name));
  const [broker] = await startBrokers({ count: 1, emulator, vaults, env: options.env });
  return {
    emulator,
    broker: broker!,
    vaults,
    close: async () => {
      await broker?.child.stop();
      await emulator.close();
    },
  };
}
