import type { ManagedTarget } from '../domain/target';

const RESOURCE_ID =
  /^\/subscriptions\/([0-9a-fA-F-]{36})\/resourceGroups\/([-\w._()]{1,90})\/providers\/([\w.]+\/[\w.]+)\/([^/]+)$/i;

/**
 * The `TargetKind.parseId` of a kind whose targets are top-level resources
 * (`/subscriptions/<guid>/resourceGroups/<rg>/providers/<type>/<name>`):
 * `undefined` for another type, a message for a bad name of this type.
 */
export function resourceIdParser(
  kind: string,
  resourceType: string,
  name: RegExp,
  nameRule: string,
): (resourceId: string) => ManagedTarget | string | undefined {
  return (resourceId) => {
    const match = RESOURCE_ID.exec(resourceId.trim());
    if (!match || match[3]?.toLowerCase() !== resourceType.toLowerCase()) return undefined;
    const [, subscriptionId = '', resourceGroup = '', , raw = ''] = match;
    const lower = raw.toLowerCase();
    if (!name.test(lower)) return `"${raw}" is not a valid name: ${nameRule}`;
    return {
      name: lower,
      kind,
      resourceId: resourceId.trim(),
      subscriptionId,
      resourceGroup,
    };
  };
}
