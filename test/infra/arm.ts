import { createHash } from 'node:crypto';

/**
 * Reads a compiled ARM template the way Resource Manager would expand it:
 * every `[expression]` evaluated with the given parameters, nested
 * deployments (Bicep modules) expanded with the parameters their parent
 * passes, conditions and copy loops applied. What only exists once deployed
 * (a resource's runtime properties, a tenant's ids) stays symbolic: it reads
 * as `<...>` naming where it comes from, e.g. `<identity.principalId>`.
 *
 * It knows the functions the Bicep compiler emits for infra/, and fails on
 * any other: a template that needs more makes the tests fail, never pass.
 */

export interface Template {
  parameters?: Record<string, { type: string; defaultValue?: unknown; allowedValues?: unknown[] }>;
  variables?: Record<string, unknown> & {
    copy?: { name: string; count: unknown; input: unknown }[];
  };
  resources: TemplateResource[] | Record<string, TemplateResource>;
  outputs?: Record<string, { type: string; value: unknown; condition?: unknown }>;
}

interface TemplateResource {
  type: string;
  name?: unknown;
  condition?: unknown;
  copy?: { name: string; count: unknown };
  scope?: unknown;
  resourceGroup?: unknown;
  subscriptionId?: unknown;
  properties?: Record<string, unknown> & {
    template?: Template;
    parameters?: Record<string, { value: unknown }>;
  };
  existing?: boolean;
  [key: string]: unknown;
}

/** A resource the deployment would create, with every expression evaluated. */
export interface Deployed {
  /** Module names from the top, e.g. `['api']`, then the resource's own symbol or index. */
  deployment: string[];
  type: string;
  name: string;
  /** The resource group (or `subscription`) the resource is deployed to. */
  resourceGroup: string;
  subscriptionId: string;
  /** The evaluated `scope` of an extension resource (role assignments), relative as ARM takes it. */
  scope?: string;
  body: Record<string, unknown>;
}

/** What Resource Manager answers when a template calls fail(): the deployment stops. */
export class DeploymentFailed extends Error {}

/** A value known only once deployed. */
class Runtime {
  constructor(readonly path: string) {}
  toString(): string {
    return `<${this.path}>`;
  }
}

export const SUBSCRIPTION_ID = '00000000-0000-0000-0000-00000000aaaa';
export const TENANT_ID = '00000000-0000-0000-0000-00000000bbbb';

// ---- parsing -------------------------------------------------------------------

type Node =
  | { kind: 'literal'; value: string | number }
  | { kind: 'call'; name: string; args: Node[] }
  | { kind: 'property'; target: Node; name: string }
  | { kind: 'index'; target: Node; index: Node };

function parse(text: string): Node {
  let i = 0;
  const space = () => {
    while (/\s/.test(text.charAt(i))) i += 1;
  };
  const expect = (char: string) => {
    space();
    if (text.charAt(i) !== char) throw new Error(`expected '${char}' at ${i} in ${text}`);
    i += 1;
  };
  const primary = (): Node => {
    space();
    const char = text.charAt(i);
    if (char === "'") {
      let value = '';
      i += 1;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated string in ${text}`);
        if (text.charAt(i) === "'") {
          if (text.charAt(i + 1) === "'") {
            value += "'";
            i += 2;
            continue;
          }
          i += 1;
          return { kind: 'literal', value };
        }
        value += text.charAt(i);
        i += 1;
      }
    }
    const number = /^-?\d+/.exec(text.slice(i));
    if (number) {
      i += number[0].length;
      return { kind: 'literal', value: Number(number[0]) };
    }
    const name = /^[A-Za-z_][\w]*/.exec(text.slice(i));
    if (!name) throw new Error(`unexpected '${char}' at ${i} in ${text}`);
    i += name[0].length;
    expect('(');
    const args: Node[] = [];
    space();
    if (text.charAt(i) === ')') i += 1;
    else {
      for (;;) {
        args.push(postfix());
        space();
        if (text.charAt(i) === ',') {
          i += 1;
          continue;
        }
        expect(')');
        break;
      }
    }
    return { kind: 'call', name: name[0], args };
  };
  const postfix = (): Node => {
    let node = primary();
    for (;;) {
      space();
      if (text.charAt(i) === '.') {
        i += 1;
        const name = /^[A-Za-z_$][\w$]*/.exec(text.slice(i));
        if (!name) throw new Error(`expected a property name at ${i} in ${text}`);
        i += name[0].length;
        node = { kind: 'property', target: node, name: name[0] };
      } else if (text.charAt(i) === '[') {
        i += 1;
        const index = postfix();
        expect(']');
        node = { kind: 'index', target: node, index };
      } else return node;
    }
  };
  const node = postfix();
  space();
  if (i !== text.length) throw new Error(`trailing text at ${i} in ${text}`);
  return node;
}

// ---- evaluation ----------------------------------------------------------------

interface Scope {
  parameters: Record<string, unknown>;
  variable(name: string): unknown;
  reference(id: string): unknown;
  copyIndex(name?: string): number;
  lambda: Record<string, unknown>;
  resourceGroup: string;
  subscriptionId: string;
  deploymentName: string;
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Runtime) return value.toString();
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner instanceof Runtime ? inner.toString() : inner,
  );
}

function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object' && !(value instanceof Runtime))
    return Object.keys(value).length === 0;
  return false;
}

function hash(...parts: unknown[]): Buffer {
  return createHash('sha256').update(parts.map(text).join('\u0000')).digest();
}

/** `Type/child` + names → `Type/name/child/name`, as resourceId() builds it. */
function typedPath(type: string, names: unknown[]): string {
  const [namespace = '', ...types] = type.split('/');
  if (types.length !== names.length)
    throw new Error(`${type} takes ${types.length} names, got ${names.length}`);
  return [namespace, ...types.flatMap((segment, index) => [segment, text(names[index])])].join('/');
}

const RESOURCE_TYPE = /^[A-Za-z0-9]+\.[A-Za-z0-9.]+\/[A-Za-z0-9/]+$/;

function resourceIdArgs(
  args: unknown[],
  scope: Scope,
  withGroup: boolean,
): { sub: string; rg: string; path: string } {
  const at = args.findIndex((arg) => typeof arg === 'string' && RESOURCE_TYPE.test(arg));
  if (at === -1) throw new Error(`no resource type in ${text(args)}`);
  const before = args.slice(0, at).map(text);
  const path = typedPath(text(args[at]), args.slice(at + 1));
  if (!withGroup) return { sub: before[0] ?? scope.subscriptionId, rg: '', path };
  const [sub, rg] =
    before.length === 2 ? before : [scope.subscriptionId, before[0] ?? scope.resourceGroup];
  return { sub: sub ?? scope.subscriptionId, rg: rg ?? scope.resourceGroup, path };
}

function evaluate(node: Node, scope: Scope): unknown {
  if (node.kind === 'literal') return node.value;
  if (node.kind === 'property') {
    const target = evaluate(node.target, scope);
    if (target instanceof Runtime) return new Runtime(`${target.path}.${node.name}`);
    if (target === null || typeof target !== 'object')
      throw new Error(`.${node.name} of ${text(target)}`);
    if (!(node.name in target)) throw new Error(`no property ${node.name} in ${text(target)}`);
    return (target as Record<string, unknown>)[node.name];
  }
  if (node.kind === 'index') {
    const target = evaluate(node.target, scope);
    const index = evaluate(node.index, scope);
    if (target instanceof Runtime) return new Runtime(`${target.path}[${text(index)}]`);
    return (target as Record<string, unknown>)[index as string];
  }
  const args = () => node.args.map((arg) => evaluate(arg, scope));
  const one = () => evaluate(node.args[0] as Node, scope);
  switch (node.name.toLowerCase()) {
    case 'parameters': {
      const name = text(one());
      if (!(name in scope.parameters)) throw new Error(`no parameter ${name}`);
      return scope.parameters[name];
    }
    case 'variables':
      return scope.variable(text(one()));
    case 'if':
      return evaluate(node.args[one() === true ? 1 : 2] as Node, scope);
    case 'not':
      return one() !== true;
    case 'and':
      return args().every((value) => value === true);
    case 'or':
      return args().some((value) => value === true);
    case 'equals': {
      const [a, b] = args();
      return text(a) === text(b);
    }
    case 'greater': {
      const [a, b] = args();
      return (a as number) > (b as number);
    }
    case 'mul': {
      const [a, b] = args();
      return (a as number) * (b as number);
    }
    case 'max':
      return Math.max(...(args().flat() as number[]));
    case 'div': {
      const [a, b] = args();
      return Math.trunc((a as number) / (b as number));
    }
    case 'empty':
      return isEmpty(one());
    case 'contains': {
      const [container, item] = args();
      if (Array.isArray(container)) return container.some((value) => text(value) === text(item));
      if (typeof container === 'string') return container.includes(text(item));
      return text(item) in (container as object);
    }
    case 'fail':
      // Bicep's fail(): Resource Manager stops the deployment with this message.
      throw new DeploymentFailed(text(one()));
    case 'length': {
      const value = one();
      if (typeof value === 'string' || Array.isArray(value)) return value.length;
      return Object.keys(value as object).length;
    }
    case 'format': {
      const [pattern, ...rest] = args();
      return text(pattern).replace(/\{(\d+)\}/g, (_match, index: string) =>
        text(rest[Number(index)]),
      );
    }
    case 'concat': {
      const values = args();
      if (values.every(Array.isArray)) return (values as unknown[][]).flat();
      return values.map(text).join('');
    }
    case 'string':
      return text(one());
    case 'json':
      return JSON.parse(text(one())) as unknown;
    case 'tolower':
      return text(one()).toLowerCase();
    case 'trim':
      return text(one()).trim();
    case 'replace': {
      const [value, from, to] = args().map(text);
      return (value ?? '').split(from ?? '').join(to ?? '');
    }
    case 'split': {
      const [value, separator] = args().map(text);
      return (value ?? '').split(separator ?? '');
    }
    case 'join': {
      const [values, separator] = args();
      return (values as unknown[]).map(text).join(text(separator));
    }
    case 'take': {
      const [value, count] = args();
      return (value as string | unknown[]).slice(0, count as number);
    }
    case 'last': {
      const value = one() as string | unknown[];
      return value[value.length - 1];
    }
    case 'createarray':
      return args();
    case 'createobject': {
      const values = args();
      const object: Record<string, unknown> = {};
      for (let index = 0; index < values.length; index += 2)
        object[text(values[index])] = values[index + 1];
      return object;
    }
    case 'union': {
      const values = args();
      if (values.every(Array.isArray)) {
        const seen = new Set<string>();
        return (values as unknown[][]).flat().filter((value) => {
          const key = text(value);
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
      }
      return Object.assign({}, ...(values as object[])) as unknown;
    }
    case 'lambda': {
      const names = node.args.slice(0, -1).map((arg) => text(evaluate(arg, scope)));
      const body = node.args.at(-1) as Node;
      return (...values: unknown[]) =>
        evaluate(body, {
          ...scope,
          lambda: {
            ...scope.lambda,
            ...Object.fromEntries(names.map((name, index) => [name, values[index]])),
          },
        });
    }
    case 'lambdavariables': {
      const name = text(one());
      if (!(name in scope.lambda)) throw new Error(`no lambda variable ${name}`);
      return scope.lambda[name];
    }
    case 'map': {
      const [values, fn] = args();
      return (values as unknown[]).map((value) => (fn as (v: unknown) => unknown)(value));
    }
    case 'filter': {
      const [values, fn] = args();
      return (values as unknown[]).filter(
        (value) => (fn as (v: unknown) => unknown)(value) === true,
      );
    }
    case 'copyindex': {
      const values = args();
      const name = typeof values[0] === 'string' ? values[0] : undefined;
      const offset = typeof values.at(-1) === 'number' ? (values.at(-1) as number) : 0;
      return scope.copyIndex(name) + offset;
    }
    case 'guid': {
      const hex = hash('guid', ...args()).toString('hex');
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
    }
    case 'uniquestring':
      return hash('uniqueString', ...args())
        .toString('base64url')
        .replace(/[^a-z0-9]/gi, '')
        .slice(0, 13)
        .toLowerCase();
    case 'subscription':
      return {
        id: `/subscriptions/${scope.subscriptionId}`,
        subscriptionId: scope.subscriptionId,
        tenantId: TENANT_ID,
      };
    case 'tenant':
      return { tenantId: TENANT_ID };
    case 'resourcegroup':
      return {
        id: `/subscriptions/${scope.subscriptionId}/resourceGroups/${scope.resourceGroup}`,
        name: scope.resourceGroup,
        location: new Runtime(`resourceGroup.location`),
      };
    case 'deployer':
      return { objectId: new Runtime('deployer.objectId'), tenantId: TENANT_ID };
    case 'deployment':
      return { name: scope.deploymentName };
    case 'environment':
      return {
        name: 'AzureCloud',
        resourceManager: 'https://management.azure.com/',
        suffixes: { storage: 'core.windows.net', keyvaultDns: '.vault.azure.net' },
      };
    case 'resourceid': {
      const { sub, rg, path } = resourceIdArgs(args(), scope, true);
      return `/subscriptions/${sub}/resourceGroups/${rg}/providers/${path}`;
    }
    case 'subscriptionresourceid': {
      const { sub, path } = resourceIdArgs(args(), scope, false);
      return `/subscriptions/${sub}/providers/${path}`;
    }
    case 'tenantresourceid': {
      const [type, ...names] = args();
      return `/providers/${typedPath(text(type), names)}`;
    }
    case 'extensionresourceid': {
      const [base, type, ...names] = args();
      return `${text(base)}/providers/${typedPath(text(type), names)}`;
    }
    case 'reference':
      return scope.reference(text(one()));
    default:
      throw new Error(`ARM function ${node.name}() is not known to test/infra/arm.ts`);
  }
}

function evaluateValue(value: unknown, scope: Scope): unknown {
  if (typeof value === 'string') {
    if (value.startsWith('[[')) return value.slice(1);
    if (value.startsWith('[') && value.endsWith(']'))
      return evaluate(parse(value.slice(1, -1)), scope);
    return value;
  }
  if (Array.isArray(value)) return value.map((item) => evaluateValue(item, scope));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'copy' && Array.isArray(inner)) {
        // A property loop: { copy: [{ name, count, input }] } builds the array `name`.
        for (const loop of inner as { name: string; count: unknown; input: unknown }[]) {
          const count = evaluateValue(loop.count, scope) as number;
          out[loop.name] = Array.from({ length: count }, (_unused, index) =>
            evaluateValue(loop.input, {
              ...scope,
              copyIndex: (name) => (name === loop.name ? index : scope.copyIndex(name)),
            }),
          );
        }
        continue;
      }
      // Keys may be expressions too (`userAssignedIdentities: { '${identityId}': {} }`).
      out[text(evaluateValue(key, scope))] = evaluateValue(inner, scope);
    }
    return out;
  }
  return value;
}

/** The result of expanding one template: what it deploys and what it outputs. */
export interface Expansion {
  resources: Deployed[];
  outputs: Record<string, unknown>;
}

/**
 * Expands `template` as deployed with `parameters` (defaults fill the rest)
 * into `resourceGroup` (`''` for a subscription-scope template).
 */
export function expand(
  template: Template,
  parameters: Record<string, unknown>,
  where: { resourceGroup: string; subscriptionId?: string; path?: string[] } = {
    resourceGroup: '',
  },
): Expansion {
  const subscriptionId = where.subscriptionId ?? SUBSCRIPTION_ID;
  const path = where.path ?? [];
  const given = new Map(Object.entries(parameters));
  const params: Record<string, unknown> = {};
  const variables = new Map<string, unknown>();
  const children = new Map<string, Expansion>();
  const resources: Deployed[] = [];

  const unknownParams = [...given.keys()].filter((name) => !(name in (template.parameters ?? {})));
  if (unknownParams.length > 0) throw new Error(`unknown parameters ${unknownParams.join(', ')}`);

  const scope: Scope = {
    parameters: params,
    lambda: {},
    resourceGroup: where.resourceGroup,
    subscriptionId,
    deploymentName: path.at(-1) ?? 'main',
    copyIndex: () => {
      throw new Error('copyIndex() outside a loop');
    },
    variable(name) {
      if (variables.has(name)) return variables.get(name);
      const loop = template.variables?.copy?.find((entry) => entry.name === name);
      const value = loop
        ? Array.from({ length: evaluateValue(loop.count, scope) as number }, (_unused, index) =>
            evaluateValue(loop.input, {
              ...scope,
              copyIndex: (n) => (n === undefined || n === name ? index : scope.copyIndex(n)),
            }),
          )
        : evaluateValue(template.variables?.[name], scope);
      if (!loop && !(name in (template.variables ?? {}))) throw new Error(`no variable ${name}`);
      variables.set(name, value);
      return value;
    },
    reference(id) {
      const deployment = /\/providers\/Microsoft\.Resources\/deployments\/([^/]+)$/.exec(id)?.[1];
      const child = deployment === undefined ? undefined : children.get(deployment);
      if (deployment !== undefined) {
        if (!child) throw new Error(`deployment ${deployment} is referenced before it is expanded`);
        return {
          outputs: Object.fromEntries(
            Object.entries(child.outputs).map(([key, value]) => [key, { value }]),
          ),
        };
      }
      // A resource of this template: its runtime properties, named after the resource.
      return new Runtime(id.replace(/^.*\/providers\//, ''));
    },
  };

  for (const [name, spec] of Object.entries(template.parameters ?? {})) {
    if (given.has(name)) params[name] = given.get(name);
    else if ('defaultValue' in spec) params[name] = evaluateValue(spec.defaultValue, scope);
    else throw new Error(`parameter ${name} of ${path.join('/') || 'the template'} is required`);
  }

  const entries: [string, TemplateResource][] = Array.isArray(template.resources)
    ? template.resources.map((resource, index) => [String(index), resource])
    : Object.entries(template.resources);

  for (const [symbol, resource] of entries) {
    if (resource.existing === true) continue;
    const count = resource.copy ? (evaluateValue(resource.copy.count, scope) as number) : 1;
    for (let index = 0; index < count; index += 1) {
      const inner: Scope = resource.copy
        ? {
            ...scope,
            copyIndex: (name) =>
              name === undefined || name === resource.copy?.name ? index : scope.copyIndex(name),
          }
        : scope;
      if (resource.condition !== undefined && evaluateValue(resource.condition, inner) !== true)
        continue;
      const name = text(evaluateValue(resource.name, inner));
      const subId =
        resource.subscriptionId === undefined
          ? subscriptionId
          : text(evaluateValue(resource.subscriptionId, inner));
      const group =
        resource.resourceGroup === undefined
          ? where.resourceGroup
          : text(evaluateValue(resource.resourceGroup, inner));
      const nested = resource.properties?.template;
      if (resource.type === 'Microsoft.Resources/deployments' && nested) {
        const values = Object.fromEntries(
          Object.entries(resource.properties?.parameters ?? {}).map(([key, spec]) => {
            // A parameter may be one expression as a whole: `[if(c, createObject('value', x), ...)]`.
            const evaluated = evaluateValue(spec, inner) as { value?: unknown };
            if (!('value' in evaluated))
              throw new Error(`parameter ${key} of ${name} has no value`);
            return [key, evaluated.value];
          }),
        );
        const child = expand(nested, values, {
          resourceGroup: group,
          subscriptionId: subId,
          path: [...path, name],
        });
        if (!resource.copy) children.set(name, child);
        resources.push(...child.resources);
        continue;
      }
      const {
        type,
        name: _name,
        condition: _condition,
        copy: _copy,
        scope: rawScope,
        ...body
      } = resource;
      resources.push({
        deployment: [...path, resource.copy ? `${symbol}[${index}]` : symbol],
        type,
        name,
        resourceGroup: group,
        subscriptionId: subId,
        scope: rawScope === undefined ? undefined : text(evaluateValue(rawScope, inner)),
        body: evaluateValue(body, inner) as Record<string, unknown>,
      });
    }
  }

  const outputs: Record<string, unknown> = {};
  for (const [name, output] of Object.entries(template.outputs ?? {})) {
    if (output.condition !== undefined && evaluateValue(output.condition, scope) !== true) continue;
    outputs[name] = evaluateValue(output.value, scope);
  }
  return { resources, outputs };
}

/** Whether a value is only known once deployed (see `Runtime`). */
export function isRuntime(value: unknown): boolean {
  return value instanceof Runtime;
}

/** A value as text, runtime values as `<where.from>`. */
export function asText(value: unknown): string {
  return text(value);
}
