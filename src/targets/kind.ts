import type { ManagedTarget } from '../domain/target';

/**
 * Everything that differs between the kinds of firewalled resource, behind
 * one seam: the writer, the use cases, the sweep, the API, the audit and the
 * console speak of targets and kinds and never name one. A kind is one
 * module under `src/targets/<kind>/`: `kind.ts` (these pure facts) and
 * `firewall.ts` (its Resource Manager adapter, the `TargetFirewall` port).
 */
export interface TargetKind {
  /** The contract's name of the kind (`keyvault`, `storage`, `sql`): in leases, audit entries and `/api/targets`. */
  readonly name: string;
  /** How people call one (`Key Vault`, `storage account`, `SQL server`), for messages. */
  readonly label: string;
  /** Resource Manager's type, e.g. `Microsoft.KeyVault/vaults`. */
  readonly resourceType: string;
  /** The kind's documented limit of IP rules on one target: capacity counts every rule against it. */
  readonly maxRules: number;
  /**
   * `whole-list`: the rules are one list, replaced as a whole by a PATCH (ownership kept
   * in the store). `per-rule`: each rule is its own child resource, PUT and DELETEd one by
   * one (ownership is the rule's name).
   */
  readonly model: 'whole-list' | 'per-rule';
  /**
   * Parse a resource ID: `undefined` when it is not of this kind, a message when it is of this
   * resource type but not valid (a bad name), the target otherwise (name lower-cased).
   */
  readonly parseId: (resourceId: string) => ManagedTarget | string | undefined;
  /**
   * The canonical rules (`a.b.c.d/n`) a lease on `cidr` (canonical) takes on this kind:
   * `[cidr]`, except where the kind cannot hold that range as one rule (Storage: a /31 is
   * its two addresses).
   */
  readonly rulesFor: (cidr: string) => string[];
}
