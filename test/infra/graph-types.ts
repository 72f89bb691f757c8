import type { BicepObject } from './bicep';
import { readText } from './helpers';

/**
 * The published Bicep types of the Microsoft Graph extension (v1.0, 1.0.0;
 * test/fixtures/README.md): what `az bicep build` would check the Graph
 * resources against, read here because no Bicep compiler runs on this machine.
 */
interface TypeEntry {
  $type: string;
  name?: string;
  body?: { $ref: string };
  itemType?: { $ref: string };
  properties?: Record<string, { type: { $ref: string }; flags: number }>;
}

// bicep-types PropertyFlags
const REQUIRED = 1;
const READ_ONLY = 2;

const TYPES = JSON.parse(
  readText('test/fixtures/graph-bicep/microsoftgraph-v1.0-1.0.0.types.json'),
) as TypeEntry[];

function resolve(ref: { $ref: string }): TypeEntry {
  const entry = TYPES[Number(ref.$ref.replace('#/', ''))];
  if (!entry) throw new Error(`no type at ${ref.$ref}`);
  return entry;
}

export function graphResourceTypes(): string[] {
  return TYPES.filter((entry) => entry.$type === 'ResourceType').map((entry) => entry.name ?? '');
}

/** Problems of one resource body against its Graph type: unknown, read-only or missing required properties. */
export function graphTypeProblems(type: string, body: BicepObject, existing = false): string[] {
  const resource = TYPES.find((entry) => entry.$type === 'ResourceType' && entry.name === type);
  if (!resource?.body) return [`${type} is not a Microsoft Graph v1.0 resource type`];
  const problems: string[] = [];
  const check = (object: BicepObject, entry: TypeEntry, path: string, top: boolean) => {
    const properties = entry.properties ?? {};
    for (const [name, value] of object.properties) {
      const property = properties[name];
      if (!property) {
        problems.push(`${path}.${name} is not a property of ${entry.name ?? 'this object'}`);
        continue;
      }
      if (property.flags & READ_ONLY) problems.push(`${path}.${name} is read-only`);
      let target = resolve(property.type);
      if (target.$type === 'ArrayType' && target.itemType) target = resolve(target.itemType);
      for (const inner of value.objects) {
        if (target.$type === 'ObjectType') check(inner, target, `${path}.${name}`, false);
        else problems.push(`${path}.${name} takes no object`);
      }
    }
    // An `existing` reference names only its identifier.
    if (existing && top) return;
    for (const [name, property] of Object.entries(properties)) {
      const settable = !(property.flags & READ_ONLY);
      if (property.flags & REQUIRED && settable && !object.properties.has(name)) {
        problems.push(`${path}.${name} is required`);
      }
    }
  };
  check(body, resolve(resource.body), type, true);
  return problems;
}
