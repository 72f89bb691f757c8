import type { ManagedTarget } from '../domain/target';
import { keyVaultKind } from './keyvault/kind';
import type { TargetKind } from './kind';
import { sqlKind } from './sql/kind';
import { storageKind } from './storage/kind';

/**
 * Every kind of target the broker manages. Adding a kind is one entry here,
 * its module under `src/targets/<kind>/` and its adapter in `firewalls.ts`
 * (docs/architecture.md, "Adding a kind").
 */
export const KINDS: readonly TargetKind[] = [keyVaultKind, storageKind, sqlKind];

const byName = new Map(KINDS.map((kind) => [kind.name, kind]));

/** The kind of a target (or a lease's kind name); Key Vault for a v1 row that names none. */
export function kindOf(target: Pick<ManagedTarget, 'kind'> | string | undefined): TargetKind {
  const name = typeof target === 'string' ? target : target?.kind;
  return byName.get(name ?? keyVaultKind.name) ?? keyVaultKind;
}

/** Parse a resource ID of any kind: the target, or a message saying why it is not one. */
export function parseTargetId(resourceId: string): ManagedTarget | string {
  for (const kind of KINDS) {
    const parsed = kind.parseId(resourceId);
    if (parsed !== undefined) return parsed;
  }
  return `"${resourceId}" is not the resource ID of a kind the broker manages (${KINDS.map((kind) => kind.resourceType).join(', ')}): /subscriptions/<guid>/resourceGroups/<rg>/providers/<type>/<name>`;
}
