/**
 * A firewalled resource the broker manages (a "target"), as named in
 * `BROKER_TARGETS` or `BROKER_VAULTS`. What differs between kinds lives in
 * the kind's module under `src/targets/<kind>/`; this is all the rest of the
 * broker knows of a target.
 */
export interface ManagedTarget {
  /** Lower-case name (the last segment of the resource ID): the API's handle for the target. */
  name: string;
  /** The kind's name (`TargetKind.name`): which module under `src/targets/` speaks for it. */
  kind: string;
  resourceId: string;
  subscriptionId: string;
  resourceGroup: string;
}

/**
 * The name part every kind's names fit (lower-cased): letters, digits and
 * hyphens, 1-63 characters, no hyphen at either end. Each kind checks its own
 * tighter rule when its resource IDs are parsed; this one is what a lease id
 * may start with.
 */
export const TARGET_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function isTargetName(text: string): boolean {
  return TARGET_NAME.test(text.toLowerCase());
}
