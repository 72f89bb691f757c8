import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

import { describe, expect, it } from 'vitest';
import type { z } from 'zod';

import { ConfigSchema } from '../../src/app/config';
import { functionDefinitions } from '../../src/app/definitions';
import { type Expansion, SUBSCRIPTION_ID } from './arm';
import { type Compiled } from './compile';
import {
  appSettings,
  compiledMain,
  deployMain,
  idOf,
  ofType,
  properties,
  runtimeOf,
  single,
  VAULT_A,
  VAULT_B,
} from './deployment';
import { asRecord, readText, readYaml, repoPath } from './helpers';

/**
 * The deployment as compiled: infra/main.bicep built by the Bicep CLI
 * (test/infra/compile.ts) and expanded with azd's parameters
 * (test/infra/deployment.ts). What these tests read is the ARM JSON Resource
 * Manager would receive, not the Bicep text.
 */

let compiled: Compiled;
let deployed: Expansion;
const unavailable = compiledMain('test/infra/infra.test.ts', (built, expanded) => {
  compiled = built;
  deployed = expanded;
});

const INFRA_FILES = readdirSync(repoPath('infra'))
  .filter((name) => name.endsWith('.bicep'))
  .sort();

/**
 * The settings of the config schema, read from the schema itself so that a
 * setting added to src/app/config.ts is checked here without editing this
 * file. In zod 4, `.superRefine()` adds a check to the object itself, so the
 * keys are on `.shape`; a pipe (`.transform()`/`.pipe()`) puts the object on
 * `.in`, which is unwrapped too.
 */
function schemaShape(schema: z.ZodType): Record<string, z.ZodType> {
  const candidate = schema as unknown as { shape?: Record<string, z.ZodType>; in?: z.ZodType };
  if (candidate.shape) return candidate.shape;
  if (candidate.in) return schemaShape(candidate.in);
  throw new Error('ConfigSchema is neither an object schema nor a pipe from one');
}
const SHAPE = schemaShape(ConfigSchema);
const CONFIG_KEYS = Object.keys(SHAPE);

/**
 * Settings of src/app/config.ts that Azure does not get, each for a reason. A new
 * setting in ConfigSchema fails the sync test below until it is either set by
 * main.bicep or listed here: the schema, the README table, the sample settings
 * and the infra app settings stay in step.
 */
const NOT_DEPLOYED: Record<string, string> = {
  LEASE_STORAGE_CONNECTION_STRING: 'keys are off in Azure: the identity-based table URI is used',
  AZURE_ARM_ENDPOINT: 'the default is the public cloud Resource Manager',
  AZURE_ARM_TOKEN: 'a static token for emulators only; Azure uses the managed identity',
  AUTH_ISSUER: 'derived from AUTH_TENANT_ID',
  AUTH_JWKS_URI: 'derived from AUTH_TENANT_ID',
  PORT: 'the local runner only; the Functions host owns the port',
};

/** Settings the Functions host and the Azure SDK read, not the broker's config schema. */
const HOST_SETTINGS = [
  'AzureWebJobsStorage__accountName',
  'AzureWebJobsStorage__credential',
  'AzureWebJobsStorage__clientId',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
  'AZURE_CLIENT_ID', // DefaultAzureCredential: which user-assigned identity
  'languageWorkers__node__arguments', // the host's command line for the Node.js worker
];

function brokerSettings(settings: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(settings).filter(([name]) => !HOST_SETTINGS.includes(name)),
  );
}

describe.skipIf(unavailable !== undefined)('app settings of the compiled deployment', () => {
  it('When the Function App is deployed, Then every broker setting it gets is a setting of src/app/config.ts', () => {
    const names = Object.keys(brokerSettings(appSettings(deployed)));
    expect(names.filter((name) => !CONFIG_KEYS.includes(name))).toEqual([]);
    expect(names.length).toBeGreaterThan(10);
  });

  it('When src/app/config.ts has a setting, Then the deployment sets it or it is listed as not deployed', () => {
    const settings = appSettings(deployed);
    const missing = CONFIG_KEYS.filter((name) => !(name in settings) && !(name in NOT_DEPLOYED));
    expect(missing).toEqual([]);
    expect(Object.keys(NOT_DEPLOYED).filter((name) => name in settings)).toEqual([]);
    expect(Object.keys(NOT_DEPLOYED).filter((name) => !CONFIG_KEYS.includes(name))).toEqual([]);
  });

  it('When the deployed settings are parsed by ConfigSchema, Then they are accepted and name the managed vaults', () => {
    const result = ConfigSchema.safeParse(brokerSettings(appSettings(deployed)));
    expect(result.success, JSON.stringify(result.error?.issues)).toBe(true);
    expect(result.data?.BROKER_VAULTS.map((vault) => vault.resourceId)).toEqual([
      VAULT_A,
      VAULT_B,
    ]);
    expect(result.data?.LEASE_STORAGE__tableServiceUri).toBe(
      `https://${single(deployed, 'Microsoft.Storage/storageAccounts').name}.table.core.windows.net`,
    );
  });

  it('When a setting is left at its parameter default, Then it parses to the config default', () => {
    const settings = brokerSettings(appSettings(deployed));
    let compared = 0;
    for (const [name, value] of Object.entries(settings)) {
      const field = SHAPE[name];
      const fallback = field?.safeParse(undefined);
      // Settings without a config default (optional, or an empty list) have nothing to match.
      const none =
        fallback?.data === undefined ||
        (Array.isArray(fallback.data) && fallback.data.length === 0);
      if (!field || !fallback?.success || none) continue;
      expect(field.parse(value), name).toEqual(fallback.data);
      compared += 1;
    }
    // Table name, auth mode, TTLs, prefix, apply timeout, per-principal cap, schedule.
    expect(compared).toBeGreaterThanOrEqual(9);
  });

  it('When parameters are given, Then the settings carry them and ConfigSchema accepts them', () => {
    const policy = [{ name: 'pipelines', vaults: ['kv-a'], appIds: ['*'], maxTtlSeconds: 1800 }];
    const settings = brokerSettings(
      appSettings(
        deployMain(compiled, {
          leaseDefaultTtlSeconds: 900,
          leaseMaxTtlSeconds: 3600,
          leasePolicy: policy,
          leaseTableName: 'leases',
          authAudience: 'api://kv-lease,33333333-3333-3333-3333-333333333333',
          sweepSchedule: '0 */5 * * * *',
        }),
      ),
    );
    expect(settings).toMatchObject({
      LEASE_DEFAULT_TTL_SECONDS: '900',
      LEASE_MAX_TTL_SECONDS: '3600',
      LEASE_TABLE_NAME: 'leases',
      AUTH_AUDIENCE: 'api://kv-lease,33333333-3333-3333-3333-333333333333',
      SWEEP_SCHEDULE: '0 */5 * * * *',
    });
    const result = ConfigSchema.safeParse(settings);
    expect(result.success, JSON.stringify(result.error?.issues)).toBe(true);
    expect(result.data?.LEASE_POLICY).toEqual(policy);
  });

  it('When the broker runs in Azure, Then AUTH_MODE is entra and no static ARM token or disabled auth exists', () => {
    const settings = appSettings(deployed);
    expect(settings.AUTH_MODE).toBe('entra');
    expect(settings).not.toHaveProperty('AZURE_ARM_TOKEN');
    for (const file of [...INFRA_FILES, 'main.parameters.json']) {
      expect(readText('infra', file), file).not.toContain('AZURE_ARM_TOKEN');
    }
  });

  it('When DefaultAzureCredential and the host start, Then they use the user-assigned identity the app runs as', () => {
    const identity = single(deployed, 'Microsoft.ManagedIdentity/userAssignedIdentities');
    const site = single(deployed, 'Microsoft.Web/sites');
    const settings = appSettings(deployed);
    expect(settings.AZURE_CLIENT_ID).toBe(runtimeOf(identity, 'clientId'));
    expect(settings.AzureWebJobsStorage__clientId).toBe(runtimeOf(identity, 'clientId'));
    expect(settings.AzureWebJobsStorage__credential).toBe('managedidentity');
    expect(settings.AzureWebJobsStorage__accountName).toBe(
      single(deployed, 'Microsoft.Storage/storageAccounts').name,
    );
    expect(settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING).toBe(
      `ClientId=${runtimeOf(identity, 'clientId')};Authorization=AAD`,
    );
    expect(site.body.identity).toEqual({
      type: 'UserAssigned',
      userAssignedIdentities: { [idOf(identity)]: {} },
    });
  });
});

describe.skipIf(unavailable !== undefined)('the compiled Function App', () => {
  it('When the Function App is deployed, Then it is Flex Consumption on Linux running Node.js 22', () => {
    const plan = single(deployed, 'Microsoft.Web/serverfarms');
    expect(plan.body.sku).toEqual({ name: 'FC1', tier: 'FlexConsumption' });
    expect(properties(plan).reserved).toBe(true);
    const site = single(deployed, 'Microsoft.Web/sites');
    expect(site.body.kind).toBe('functionapp,linux');
    expect(properties(site).serverFarmId).toBe(idOf(plan));
    const config = asRecord(properties(site).functionAppConfig, 'functionAppConfig');
    expect(config.runtime).toEqual({ name: 'node', version: '22' });
    // Flex Consumption takes the runtime from functionAppConfig and refuses these settings.
    for (const name of [
      'FUNCTIONS_WORKER_RUNTIME',
      'FUNCTIONS_EXTENSION_VERSION',
      'WEBSITE_RUN_FROM_PACKAGE',
    ]) {
      expect(appSettings(deployed), name).not.toHaveProperty(name);
    }
    expect(asRecord(site.body.tags, 'tags')['azd-service-name']).toBe('api');
  });

  it('When the runtime parameter is read, Then Node.js 22 is the default, 24 the other choice and .nvmrc agrees', () => {
    const nodeVersion = compiled.templates.main?.parameters?.nodeVersion;
    expect(nodeVersion?.defaultValue).toBe('22');
    expect(nodeVersion?.allowedValues).toEqual(['22', '24']);
    expect(readText('.nvmrc').trim()).toBe('22');
    const site = single(deployMain(compiled, { nodeVersion: '24' }), 'Microsoft.Web/sites');
    expect(asRecord(properties(site).functionAppConfig, 'functionAppConfig').runtime).toEqual({
      name: 'node',
      version: '24',
    });
  });

  it('When the instance size is chosen, Then the Node.js worker gets a heap limit of a quarter of it, at least 256 MB', () => {
    const heap = (parameters: Record<string, unknown>) => {
      const expansion = deployMain(compiled, parameters);
      const config = asRecord(
        properties(single(expansion, 'Microsoft.Web/sites')).functionAppConfig,
        'functionAppConfig',
      );
      const memory = asRecord(config.scaleAndConcurrency, 'scaleAndConcurrency').instanceMemoryMB;
      return `${String(memory)}: ${appSettings(expansion).languageWorkers__node__arguments}`;
    };
    // 2048 MB is the default: 512 is the limit the sweep was measured with (issue #16).
    expect(heap({})).toBe('2048: --max-old-space-size=512');
    expect(heap({ instanceMemoryMB: 512 })).toBe('512: --max-old-space-size=256');
    expect(heap({ instanceMemoryMB: 4096 })).toBe('4096: --max-old-space-size=1024');
    // One place for Node.js options: the worker's arguments, not also NODE_OPTIONS.
    expect(appSettings(deployed)).not.toHaveProperty('NODE_OPTIONS');
    expect(readText('infra/function-app.bicep')).toMatch(/Memory usage considerations/);
  });

  it('When the sweep is kept warm, Then the always-ready entry names the timer function', () => {
    const timers = functionDefinitions(() => {
      throw new Error('not needed to list the definitions');
    })
      .filter((definition) => definition.kind === 'timer')
      .map((definition) => definition.name);
    const scale = (parameters: Record<string, unknown>) =>
      asRecord(
        asRecord(
          properties(single(deployMain(compiled, parameters), 'Microsoft.Web/sites'))
            .functionAppConfig,
          'config',
        ).scaleAndConcurrency,
        'scaleAndConcurrency',
      );
    expect(scale({}).alwaysReady).toEqual([]);
    expect(scale({ sweepAlwaysReadyInstances: 1 }).alwaysReady).toEqual([
      { name: 'function:sweep', instanceCount: 1 },
    ]);
    expect(timers).toContain('sweep');
  });

  it('When storage is deployed, Then shared keys are off and the lease and audit tables exist', () => {
    const account = single(deployed, 'Microsoft.Storage/storageAccounts');
    expect(properties(account)).toMatchObject({
      allowSharedKeyAccess: false,
      allowBlobPublicAccess: false,
    });
    // The broker writes its audit trail to <LEASE_TABLE_NAME>audit (src/app/composition.ts).
    expect(
      ofType(deployed, 'Microsoft.Storage/storageAccounts/tableServices/tables').map((t) => t.name),
    ).toEqual([`${account.name}/default/kvlease`, `${account.name}/default/kvleaseaudit`]);
    expect(readText('src/app/composition.ts')).toContain(
      'tableName: `${config.LEASE_TABLE_NAME}audit`',
    );
  });

  it('When azd reads main.parameters.json, Then it sets only declared parameters and every required one', () => {
    const declared = compiled.templates.main?.parameters ?? {};
    const file = asRecord(JSON.parse(readText('infra/main.parameters.json')), 'parameters file');
    const given = Object.keys(asRecord(file.parameters, 'parameters'));
    expect(given.filter((name) => !(name in declared))).toEqual([]);
    const required = Object.entries(declared)
      .filter(([, spec]) => !('defaultValue' in spec))
      .map(([name]) => name);
    expect(required.filter((name) => !given.includes(name))).toEqual([]);
  });
});

// Built-in role definition IDs, the same in every tenant.
const BUILT_IN = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6',
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb',
  keyVaultContributor: 'f25e0fa2-a7c8-4377-a976-54943a77a395',
};

/** Every role assignment as (role GUID, scope, principal, principal type). */
function roleAssignments(expansion: Expansion): string[] {
  return ofType(expansion, 'Microsoft.Authorization/roleAssignments')
    .map((assignment) => {
      const props = properties(assignment);
      const role = /\/providers\/Microsoft\.Authorization\/roleDefinitions\/([\w-]+)$/.exec(
        String(props.roleDefinitionId),
      );
      return `${role?.[1] ?? String(props.roleDefinitionId)} at ${assignment.scope ?? '?'} to ${String(props.principalId)} (${String(props.principalType)})`;
    })
    .sort();
}

describe.skipIf(unavailable !== undefined)('role assignments of the compiled deployment', () => {
  it('When the broker is deployed, Then its identity gets exactly these roles, each at the narrowest scope', () => {
    const identity = single(deployed, 'Microsoft.ManagedIdentity/userAssignedIdentities');
    const principal = `${runtimeOf(identity, 'principalId')} (ServicePrincipal)`;
    const account = idOf(single(deployed, 'Microsoft.Storage/storageAccounts'));
    const component = idOf(single(deployed, 'Microsoft.Insights/components'));
    const definitions = ofType(deployed, 'Microsoft.Authorization/roleDefinitions');
    const audit = definitions.find((d) => d.resourceGroup !== '');
    const vault = definitions.find((d) => d.resourceGroup === '');
    expect(roleAssignments(deployed)).toEqual(
      [
        `${BUILT_IN.storageBlobDataOwner} at ${account} to ${principal}`,
        `${BUILT_IN.storageTableDataContributor} at ${account}/tableServices/default/tables/kvlease to ${principal}`,
        `${audit?.name ?? '?'} at ${account}/tableServices/default/tables/kvleaseaudit to ${principal}`,
        `${BUILT_IN.monitoringMetricsPublisher} at ${component} to ${principal}`,
        `${vault?.name ?? '?'} at ${VAULT_A} to ${principal}`,
        `${vault?.name ?? '?'} at ${VAULT_B} to ${principal}`,
      ].sort(),
    );
    // Each vault's assignment is deployed into the vault's own subscription and resource group.
    const vaultAssignments = ofType(deployed, 'Microsoft.Authorization/roleAssignments').filter(
      (a) => a.scope?.includes('Microsoft.KeyVault'),
    );
    expect(
      vaultAssignments.map(
        (a) => `/subscriptions/${a.subscriptionId}/resourceGroups/${a.resourceGroup}`,
      ),
    ).toEqual([VAULT_A.replace(/\/providers\/.*$/, ''), VAULT_B.replace(/\/providers\/.*$/, '')]);
  });

  it('When operators read the audit trail from storage, Then they get Storage Table Data Reader on the audit table only', () => {
    const reader = { id: '44444444-4444-4444-4444-444444444444', type: 'Group' };
    const withReaders = deployMain(compiled, { auditReaders: [reader] });
    const account = idOf(single(withReaders, 'Microsoft.Storage/storageAccounts'));
    const added = roleAssignments(withReaders).filter(
      (a) => !roleAssignments(deployed).includes(a),
    );
    expect(added).toEqual([
      `${BUILT_IN.storageTableDataReader} at ${account}/tableServices/default/tables/kvleaseaudit to ${reader.id} (Group)`,
    ]);
  });

  it('When the custom vault role is turned off, Then each vault gets Key Vault Contributor and no role is defined for it', () => {
    const builtIn = deployMain(compiled, { useCustomVaultRole: false });
    const vaults = roleAssignments(builtIn).filter((a) => a.includes('Microsoft.KeyVault'));
    expect(vaults.map((a) => a.split(' ')[0])).toEqual([
      BUILT_IN.keyVaultContributor,
      BUILT_IN.keyVaultContributor,
    ]);
    expect(ofType(builtIn, 'Microsoft.Authorization/roleDefinitions')).toHaveLength(1); // the audit appender
  });

  it("When the custom vault role is defined, Then it may read and write vaults and nothing else, assignable in the vaults' subscriptions", () => {
    const role = ofType(deployed, 'Microsoft.Authorization/roleDefinitions').find(
      (d) => d.resourceGroup === '',
    );
    expect(role?.subscriptionId).toBe(SUBSCRIPTION_ID);
    expect(properties(role ?? single(deployed, 'none'))).toMatchObject({
      type: 'CustomRole',
      permissions: [
        {
          actions: ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write'],
          notActions: [],
          dataActions: [],
          notDataActions: [],
        },
      ],
      assignableScopes: [
        '/subscriptions/11111111-1111-1111-1111-111111111111',
        '/subscriptions/22222222-2222-2222-2222-222222222222',
      ],
    });
    expect(readText('infra/vault-access.bicep')).toMatch(/access polic/i); // the risk is explained
  });
});

describe('azd packaging', () => {
  it('When azd reads azure.yaml, Then one TypeScript function service "api" is built here from the root, not remotely', () => {
    const config = asRecord(readYaml('azure.yaml'), 'azure.yaml');
    expect(config.name).toBe('kv-lease');
    const services = asRecord(config.services, 'services');
    expect(Object.keys(services)).toEqual(['api']);
    expect(services.api).toEqual({
      project: '.',
      language: 'ts',
      host: 'function',
      remoteBuild: false,
    });
  });

  it('When azd packages the app, Then .funcignore leaves everything out but host.json, package.json, the bundle and the console', () => {
    const rules = readText('.funcignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    expect(rules).toEqual([
      '/*',
      '!/host.json',
      '!/package.json',
      '!/dist/',
      '/dist/*',
      '!/dist/app/',
      '!/dist/console/',
      '*.map',
      '*.js.map',
    ]);
    // The host loads package.json "main": it must be inside what is shipped.
    const main = asRecord(JSON.parse(readText('package.json')), 'package.json').main;
    expect(main).toBe('dist/app/index.js');
  });

  it('When the package leaves the dev tools out, Then nothing in src/ imports them', () => {
    const excluded = ['dev'].map((dir) => repoPath(dir));
    const inside = (path: string) =>
      excluded.some((dir) => path === dir || path.startsWith(dir + sep));
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) {
          if (!inside(path)) walk(path);
        } else if (path.endsWith('.ts')) {
          const source = readFileSync(path, 'utf8');
          for (const match of source.matchAll(
            /(?:from\s+|import\s*\(\s*|require\s*\(\s*)'(\.[^']*)'/g,
          )) {
            const target = resolve(dirname(path), match[1] ?? '');
            if (inside(target)) offenders.push(`${relative(repoPath(), path)} -> ${match[1]}`);
          }
        }
      }
    };
    walk(repoPath('src'));
    expect(offenders).toEqual([]);
  });
});
