import { beforeAll } from 'vitest';

import { asText, type Deployed, expand, type Expansion } from './arm';
import { bicepUnavailable, type Compiled, compileInfra } from './compile';

/**
 * infra/main.bicep as `azd up` would deploy it (compiled, then expanded by
 * test/infra/arm.ts): two vaults in other subscriptions and resource groups,
 * every other parameter at its default unless a test gives it.
 */

export const VAULT_A =
  '/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-vaults-a/providers/Microsoft.KeyVault/vaults/kv-a';
export const VAULT_B =
  '/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-vaults-b/providers/Microsoft.KeyVault/vaults/kv-b';

export function deployMain(
  compiled: Compiled,
  parameters: Record<string, unknown> = {},
): Expansion {
  const main = compiled.templates.main;
  if (!main) throw new Error('main.bicep did not compile');
  return expand(main, {
    environmentName: 'dev',
    location: 'westeurope',
    managedVaultIds: [VAULT_A, VAULT_B],
    ...parameters,
  });
}

export function ofType(expansion: Expansion, type: string): Deployed[] {
  return expansion.resources.filter((resource) => resource.type === type);
}

export function single(expansion: Expansion, type: string): Deployed {
  const found = ofType(expansion, type);
  if (found.length !== 1) throw new Error(`${found.length} resources of type ${type}`);
  return found[0] as Deployed;
}

export function properties(resource: Deployed): Record<string, unknown> {
  return (resource.body.properties ?? {}) as Record<string, unknown>;
}

/** The Function App's app settings, values as text (runtime values as `<resource.property>`). */
export function appSettings(expansion: Expansion): Record<string, string> {
  const config = ofType(expansion, 'Microsoft.Web/sites/config').find((resource) =>
    resource.name.endsWith('/appsettings'),
  );
  if (!config) throw new Error('no appsettings');
  return Object.fromEntries(
    Object.entries(properties(config)).map(([key, value]) => [key, asText(value)]),
  );
}

/** `<type/name.property>`: how a runtime property of a deployed resource reads. */
export function runtimeOf(resource: Deployed, property: string): string {
  return `<${resource.type}/${resource.name}.${property}>`;
}

/** The resource ID of a deployed resource (resource-group scope). */
export function idOf(resource: Deployed): string {
  const [namespace = '', ...types] = resource.type.split('/');
  const names = resource.name.split('/');
  const path = [namespace, ...types.flatMap((segment, index) => [segment, names[index] ?? ''])];
  return `/subscriptions/${resource.subscriptionId}/resourceGroups/${resource.resourceGroup}/providers/${path.join('/')}`;
}

/**
 * For a test file that reads the deployment: infra/ compiled (once per run,
 * compile.ts shares it) and main.bicep expanded in the file's beforeAll,
 * handed to `use`. Returns why the Bicep CLI is unavailable (the file's tests
 * skip then, after a warning naming `file`), or undefined.
 */
export function compiledMain(
  file: string,
  use: (compiled: Compiled, deployed: Expansion) => void,
): string | undefined {
  const unavailable = bicepUnavailable();
  if (unavailable) console.warn(`${file}: ${unavailable}`);
  beforeAll(async () => {
    if (unavailable) return;
    const compiled = await compileInfra();
    use(compiled, deployMain(compiled));
  }, 120_000);
  return unavailable;
}
