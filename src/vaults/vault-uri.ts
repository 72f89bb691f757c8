import type { Lease } from '../domain/lease';
import type { ManagedVault } from '../domain/vault';
import type { LeaseUseCases } from '../leases/use-cases';
import type { VaultFirewall } from '../ports/vault-firewall';

/** A lease as answered: the stored lease plus its vault's data-plane URI, when known. */
export type LeaseWithVaultUri = Lease & { vaultUri?: string };

/** How long one lookup may add to an answer when the vault has not been read yet. */
const LOOKUP_TIMEOUT_MS = 5000;

/**
 * The vault's data-plane URI (`properties.vaultUri` of its Resource Manager GET, right in every
 * cloud), by vault name; undefined when the vault cannot be read now. The firewall adapter keeps
 * what it has seen: the URI never changes for a vault.
 */
export function vaultUriLookup(
  vaults: ManagedVault[],
  firewall: VaultFirewall,
): (name: string) => Promise<string | undefined> {
  return async (name) => {
    const vault = vaults.find((candidate) => candidate.name === name.toLowerCase());
    if (!vault || !firewall.vaultUri) return undefined;
    return firewall.vaultUri(vault, AbortSignal.timeout(LOOKUP_TIMEOUT_MS)).catch(() => undefined);
  };
}

async function withUris(
  leases: Lease[],
  lookup: (name: string) => Promise<string | undefined>,
): Promise<LeaseWithVaultUri[]> {
  const names = [...new Set(leases.map((lease) => lease.vault))];
  const uris = new Map(
    await Promise.all(names.map(async (name) => [name, await lookup(name)] as const)),
  );
  return leases.map((lease) => {
    const vaultUri = uris.get(lease.vault);
    return vaultUri === undefined ? lease : { ...lease, vaultUri };
  });
}

/**
 * The lease use cases with `vaultUri` on every lease they answer (an additive field of the
 * contract's lease resource, for clients that wait for the data plane). Roles and everything
 * else are the use cases' own.
 */
export function withVaultUris(
  useCases: LeaseUseCases,
  lookup: (name: string) => Promise<string | undefined>,
): LeaseUseCases {
  const one = async (lease: Lease) => (await withUris([lease], lookup))[0] ?? lease;
  const { grant, list, get, renew, release } = useCases;
  return {
    grant: {
      ...grant,
      run: async (...args) => {
        const result = await grant.run(...args);
        return { ...result, lease: await one(result.lease) };
      },
    },
    list: {
      ...list,
      run: async (...args) => {
        const result = await list.run(...args);
        return { ...result, leases: await withUris(result.leases, lookup) };
      },
    },
    get: { ...get, run: async (...args) => one(await get.run(...args)) },
    renew: { ...renew, run: async (...args) => one(await renew.run(...args)) },
    release: { ...release, run: async (...args) => one(await release.run(...args)) },
  };
}
