import type { ManagedTarget } from '../domain/target';
import type { FirewallRules, TargetFirewall } from '../ports/target-firewall';
import type { ArmFirewallOptions } from './arm';
import { KeyVaultFirewall } from './keyvault/firewall';
import { SqlFirewall } from './sql/firewall';
import { StorageFirewall } from './storage/firewall';

/** Each kind's Resource Manager adapter, by kind name (`TargetKind.name`). */
const ADAPTERS: Record<string, (options: ArmFirewallOptions) => TargetFirewall> = {
  keyvault: (options) => new KeyVaultFirewall(options),
  storage: (options) => new StorageFirewall(options),
  sql: (options) => new SqlFirewall(options),
};

/**
 * The one `TargetFirewall` the writer and the views use: each call goes to
 * the adapter of the target's kind, made on first use.
 */
export function armFirewalls(options: ArmFirewallOptions): TargetFirewall {
  return dispatching((kind) => {
    const make = ADAPTERS[kind];
    if (!make) throw new Error(`No firewall adapter for targets of kind "${kind}"`);
    return make(options);
  });
}

/** A `TargetFirewall` that hands each call to the firewall of the target's kind. */
export function dispatching(make: (kind: string) => TargetFirewall): TargetFirewall {
  const made = new Map<string, TargetFirewall>();
  const of = (target: ManagedTarget): TargetFirewall => {
    let firewall = made.get(target.kind);
    if (!firewall) {
      firewall = make(target.kind);
      made.set(target.kind, firewall);
    }
    return firewall;
  };
  return {
    read: (target, signal) => of(target).read(target, signal),
    write: (target, current: FirewallRules, next, signal) =>
      of(target).write(target, current, next, signal),
    dataPlane: async (target, signal) => of(target).dataPlane?.(target, signal),
    warnings: async (target, cidr, signal) =>
      (await of(target).warnings?.(target, cidr, signal)) ?? [],
  };
}
