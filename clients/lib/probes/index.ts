import type { DataPlaneEndpoint } from '../data-plane-endpoint';
import { keyVaultProbe } from './keyvault';
import type { Probe } from './probe';
import { sqlProbe, type TdsLogin } from './sql';
import { storageProbe } from './storage';

export { clientAddressOf } from './keyvault';
export type { Probe, ProbeAnswer } from './probe';
export { type TdsLogin } from './sql';
export { STORAGE_API_VERSION } from './storage';

/** The probe of the endpoint's kind: the one place a kind picks its probe. */
export function probeFor(
  endpoint: DataPlaneEndpoint,
  deps: { fetch: typeof fetch; tdsLogin?: TdsLogin | undefined },
): Probe {
  switch (endpoint.kind) {
    case 'keyvault':
      return keyVaultProbe(endpoint, deps.fetch);
    case 'storage':
      return storageProbe(endpoint, deps.fetch);
    case 'sql':
      return sqlProbe(endpoint, deps.tdsLogin);
  }
}
