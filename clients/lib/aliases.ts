import { UsageError } from './errors';

/**
 * A setting that has a v1 name besides its own (`--target` and `--vault`, `--data-plane` and
 * `--vault-uri`, the same pairs of step inputs): either may be given, both only when they say
 * the same. The one rule for every client.
 */
export interface Named {
  /** How the user spells it: `--target`, `target`, ... */
  label: string;
  value: string | undefined;
}

/**
 * The value given under either name, and which names carried it; undefined when neither did.
 * Throws a UsageError when both are given and differ (`same` compares them; exact by default).
 */
export function aliased(
  primary: Named,
  alias: Named,
  same: (a: string, b: string) => boolean = (a, b) => a === b,
): { value: string; primary: boolean; alias: boolean } | undefined {
  const a = primary.value?.trim() || undefined;
  const b = alias.value?.trim() || undefined;
  if (a !== undefined && b !== undefined && !same(a, b)) {
    throw new UsageError(
      `${primary.label} '${a}' and ${alias.label} '${b}' differ: give one of them ` +
        `(${alias.label} is the older name of ${primary.label})`,
    );
  }
  const value = a ?? b;
  return value === undefined
    ? undefined
    : { value, primary: a !== undefined, alias: b !== undefined };
}

/**
 * The target a grant names: `--target` or its v1 name `--vault` (names compare case-blind, as
 * Azure's do). The grant's body carries the name under each field the user gave: `target` for a
 * v1.1 broker, `vault` so that a v1 broker keeps working.
 */
export function targetOf(
  target: Named,
  vault: Named,
): { name: string; body: { target?: string; vault?: string } } {
  const given = aliased(target, vault, (a, b) => a.toLowerCase() === b.toLowerCase());
  if (!given) {
    throw new UsageError(
      `no target: set ${target.label} (or its older name ${vault.label}) to the name of the ` +
        `vault, storage account or SQL server, as the broker lists it (kv-lease targets)`,
    );
  }
  return {
    name: given.value,
    body: {
      ...(given.primary ? { target: target.value!.trim() } : {}),
      ...(given.alias ? { vault: vault.value!.trim() } : {}),
    },
  };
}
