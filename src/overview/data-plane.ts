import type { Lease } from '../domain/lease';
import type { ManagedTarget } from '../domain/target';
import type { LeaseUseCases } from '../leases/use-cases';
import type { TargetFirewall } from '../ports/target-firewall';
import { keyVaultKind } from '../targets/keyvault/kind';
import { kindOf } from '../targets/kinds';

/**
 * A lease as answered: the stored lease plus its target's data-plane address, when known
 * (`dataPlane` for every kind; `vaultUri` as well for a Key Vault, as v1 clients read it).
 */
export type LeaseWithDataPlane = Lease & { dataPlane?: string; vaultUri?: string };

/** How long one lookup may add to an answer when the target has not been read yet. */
const LOOKUP_TIMEOUT_MS = 5000;

/**
 * The target's data-plane address by target name (`TargetFirewall.dataPlane`: right in every
 * cloud, kept by the adapter once seen); undefined when the target cannot be read now.
 */
export function dataPlaneLookup(
  targets: ManagedTarget[],
  firewall: TargetFirewall,
): (name: string) => Promise<string | undefined> {
  return async (name) => {
    const target = targets.find((candidate) => candidate.name === name.toLowerCase());
    if (!target || !firewall.dataPlane) return undefined;
    return firewall
      .dataPlane(target, AbortSignal.timeout(LOOKUP_TIMEOUT_MS))
      .catch(() => undefined);
  };
}

async function withAddresses(
  leases: Lease[],
  lookup: (name: string) => Promise<string | undefined>,
): Promise<LeaseWithDataPlane[]> {
  const names = [...new Set(leases.map((lease) => lease.vault))];
  const addresses = new Map(
    await Promise.all(names.map(async (name) => [name, await lookup(name)] as const)),
  );
  return leases.map((lease) => {
    const dataPlane = addresses.get(lease.vault);
    if (dataPlane === undefined) return lease;
    // NOTE: v1 clients wait on `vaultUri`; it stays, and only a Key Vault's address is one.
    return kindOf(lease.kind).name === keyVaultKind.name
      ? { ...lease, dataPlane, vaultUri: dataPlane }
      : { ...lease, dataPlane };
  });
}

/**
 * The lease use cases with their target's data-plane address on every lease they answer (an
 * additive field of the contract's lease resource, for clients that wait for the data plane).
 * Roles and everything else are the use cases' own.
 */
export function withDataPlanes(
  useCases: LeaseUseCases,
  lookup: (name: string) => Promise<string | undefined>,
): LeaseUseCases {
  const one = async (lease: Lease) => (await withAddresses([lease], lookup))[0] ?? lease;
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
        return { ...result, leases: await withAddresses(result.leases, lookup) };
      },
    },
    get: { ...get, run: async (...args) => one(await get.run(...args)) },
    renew: { ...renew, run: async (...args) => one(await renew.run(...args)) },
    release: { ...release, run: async (...args) => one(await release.run(...args)) },
  };
}
