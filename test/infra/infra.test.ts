import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

import { describe, expect, it } from 'vitest';
import type { z } from 'zod';

import { ConfigSchema } from '../../src/app/config';
import { functionDefinitions } from '../../src/app/definitions';
import {
  guidConstants,
  moduleReferences,
  objectVar,
  params,
  resourceTypes,
  targetScope,
  unbalancedDelimiter,
  withoutComments,
} from './bicep';
import { asRecord, exists, readText, readYaml, repoPath } from './helpers';

const INFRA_FILES = readdirSync(repoPath('infra'))
  .filter((name) => name.endsWith('.bicep'))
  .sort();
const main = readText('infra/main.bicep');

/**
 * The keys of the config schema. In zod 4, `.superRefine()` adds a check to
 * the object itself (no ZodEffects wrapper as in zod 3), so the keys are on
 * `ConfigSchema.shape`; a pipe (`.transform()`/`.pipe()`) would put the object
 * on `.in`, which is unwrapped here too.
 */
function schemaKeys(schema: z.ZodType): string[] {
  const candidate = schema as unknown as { shape?: Record<string, unknown>; in?: z.ZodType };
  if (candidate.shape) return Object.keys(candidate.shape);
  if (candidate.in) return schemaKeys(candidate.in);
  throw new Error('ConfigSchema is neither an object schema nor a pipe from one');
}
const CONFIG_KEYS = schemaKeys(ConfigSchema);

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

describe('infra/main.bicep app settings', () => {
  const settings = objectVar(main, 'brokerSettings');

  it('When main.bicep sets a broker setting, Then src/app/config.ts reads a setting of that name', () => {
    const unknown = [...settings.keys()].filter((name) => !CONFIG_KEYS.includes(name));
    expect(unknown).toEqual([]);
  });

  it('When src/app/config.ts has a setting, Then main.bicep sets it or it is listed as not deployed', () => {
    const missing = CONFIG_KEYS.filter((name) => !settings.has(name) && !(name in NOT_DEPLOYED));
    expect(missing).toEqual([]);
    const listedButSet = Object.keys(NOT_DEPLOYED).filter((name) => settings.has(name));
    expect(listedButSet).toEqual([]);
    const listedButUnknown = Object.keys(NOT_DEPLOYED).filter(
      (name) => !CONFIG_KEYS.includes(name),
    );
    expect(listedButUnknown).toEqual([]);
  });

  it('When the broker runs in Azure, Then AUTH_MODE is entra and no static ARM token exists anywhere in infra', () => {
    expect(settings.get('AUTH_MODE')).toBe("'entra'");
    for (const file of [...INFRA_FILES, 'main.parameters.json']) {
      const text = readText('infra', file);
      expect(text, file).not.toContain('AZURE_ARM_TOKEN');
      expect(text, file).not.toMatch(/AUTH_MODE\W+disabled/);
    }
  });

  it('When DefaultAzureCredential starts, Then AZURE_CLIENT_ID names the user-assigned identity', () => {
    expect(withoutComments(main)).toMatch(/AZURE_CLIENT_ID:\s*identity\.outputs\.clientId/);
  });

  it('When a setting takes a parameter default, Then that default is the config default', () => {
    const byName = new Map(params(main).map((param) => [param.name, param]));
    const shape = asRecord((ConfigSchema as unknown as { shape: unknown }).shape, 'shape');
    let compared = 0;
    for (const [setting, expression] of settings) {
      const param = byName.get(/^(?:string\()?(\w+)\)?$/.exec(expression)?.[1] ?? '');
      if (param?.defaultValue === undefined) continue;
      const literal = /^'(.*)'$/.exec(param.defaultValue)?.[1] ?? Number(param.defaultValue);
      const fieldSchema = shape[setting] as z.ZodType;
      expect(fieldSchema.parse(undefined), `${setting} (param ${param.name})`).toEqual(literal);
      compared += 1;
    }
    // TTLs, prefix, apply timeout, schedule, table name.
    expect(compared).toBeGreaterThanOrEqual(7);
  });

  it('When the deployed settings are parsed with their defaults, Then ConfigSchema accepts them', () => {
    const byName = new Map(params(main).map((param) => [param.name, param]));
    const samples: Record<string, string> = {
      BROKER_VAULTS:
        '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/kv-a,' +
        '/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-b/providers/Microsoft.KeyVault/vaults/kv-b',
      LEASE_STORAGE__tableServiceUri: 'https://stkvleaseabc.table.core.windows.net',
      AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
      AUTH_AUDIENCE: 'api://kv-lease,33333333-3333-3333-3333-333333333333',
      LEASE_POLICY: '[{"name":"pipelines","vaults":["kv-a"],"appIds":["*"],"maxTtlSeconds":1800}]',
    };
    // The expressions behind the samples, so the samples stand for what is deployed.
    expect(settings.get('BROKER_VAULTS')).toBe("join(vaultIds, ',')");
    expect(settings.get('LEASE_STORAGE__tableServiceUri')).toBe('tableServiceUri');
    expect(withoutComments(main)).toMatch(
      /var tableServiceUri = 'https:\/\/\$\{storageAccountName\}\.table\.\$\{environment\(\)\.suffixes\.storage\}'/,
    );
    // Derived from the app registration (see deploy.test.ts): the App ID URI and the client ID.
    expect(settings.get('AUTH_AUDIENCE')).toBe('authAudiences');
    // Bicep's string() of an array is its JSON text.
    expect(settings.get('LEASE_POLICY')).toBe("empty(leasePolicy) ? '' : string(leasePolicy)");

    const env: Record<string, string> = {};
    for (const [setting, expression] of settings) {
      const sample = samples[setting];
      const literal = /^'(.*)'$/.exec(expression)?.[1];
      const param = byName.get(/^(?:string\()?(\w+)\)?$/.exec(expression)?.[1] ?? '');
      const value = sample ?? literal ?? (param?.defaultValue ?? '').replace(/^'(.*)'$/, '$1');
      expect(value, `a value for ${setting} (${expression})`).not.toBe('');
      env[setting] = value;
    }
    const result = ConfigSchema.safeParse(env);
    expect(result.success, JSON.stringify(result.error?.issues)).toBe(true);
    expect(result.data?.BROKER_VAULTS.map((vault) => vault.name)).toEqual(['kv-a', 'kv-b']);
  });
});

describe('infra Bicep files', () => {
  it.each(INFRA_FILES)(
    'When %s is scanned, Then its brackets, braces and strings pair up',
    (file) => {
      expect(unbalancedDelimiter(readText('infra', file))).toBeUndefined();
    },
  );

  it.each(INFRA_FILES)(
    'When %s references modules, Then each is a local file or a pinned Azure Verified Module',
    (file) => {
      for (const { path } of moduleReferences(readText('infra', file))) {
        if (path.startsWith('br/')) {
          expect(path).toMatch(/^br\/public:avm\/res\/[a-z0-9-]+\/[a-z0-9-]+:\d+\.\d+\.\d+$/);
        } else {
          expect(exists('infra', path), `${file} -> ${path}`).toBe(true);
        }
      }
    },
  );

  it.each(INFRA_FILES)('When %s declares resources, Then each names an API version', (file) => {
    for (const resource of resourceTypes(readText('infra', file))) {
      if (!resource.type.includes('/')) continue; // a nested child inherits its parent's
      // Microsoft Graph resources are versioned by the Graph endpoint (bicepconfig.json pins the types).
      const version = resource.type.startsWith('Microsoft.Graph/')
        ? /^v1\.0$/
        : /^\d{4}-\d{2}-\d{2}(-preview)?$/;
      expect(resource.apiVersion, `${resource.symbol} (${resource.type})`).toMatch(version);
    }
  });

  it('When azd reads main.parameters.json, Then it sets only declared parameters and every required one', () => {
    const declared = params(main);
    const file = asRecord(JSON.parse(readText('infra/main.parameters.json')), 'parameters file');
    const given = Object.keys(asRecord(file.parameters, 'parameters'));
    const declaredNames = declared.map((param) => param.name);
    expect(given.filter((name) => !declaredNames.includes(name))).toEqual([]);
    const required = declared
      .filter((param) => param.defaultValue === undefined)
      .map((param) => param.name);
    expect(required.filter((name) => !given.includes(name))).toEqual([]);
  });

  it('When the Function App is declared, Then it is Flex Consumption on Node with identity-based storage', () => {
    const app = withoutComments(readText('infra/function-app.bicep'));
    expect(withoutComments(main)).toMatch(/name: 'FC1'\s+tier: 'FlexConsumption'/);
    expect(app).toMatch(/runtime: \{\s+name: 'node'/);
    expect(app).toMatch(/type: 'UserAssigned'/);
    expect(app).toMatch(/AzureWebJobsStorage__credential: 'managedidentity'/);
    expect(app).toMatch(/AzureWebJobsStorage__clientId: identityClientId/);
    expect(app).toMatch(/AzureWebJobsStorage__accountName: storageAccountName/);
    // Flex Consumption refuses these settings: the runtime is in functionAppConfig.
    expect(app).not.toMatch(
      /^\s+(FUNCTIONS_WORKER_RUNTIME|FUNCTIONS_EXTENSION_VERSION|WEBSITE_RUN_FROM_PACKAGE)\s*:/m,
    );
    expect(withoutComments(main)).toMatch(/'azd-service-name': 'api'/);
  });

  it('When the sweep is kept warm, Then the always-ready entry names the timer function', () => {
    const timers = functionDefinitions(() => {
      throw new Error('not needed to list the definitions');
    })
      .filter((definition) => definition.kind === 'timer')
      .map((definition) => definition.name);
    const entries = [...withoutComments(main).matchAll(/name: 'function:(\w+)'/g)].map(
      (match) => match[1],
    );
    expect(entries).toEqual(['sweep']);
    expect(timers).toContain('sweep');
  });

  it('When storage is declared, Then shared keys are off and the lease and audit tables exist', () => {
    const storage = withoutComments(readText('infra/storage.bicep'));
    expect(storage).toMatch(/allowSharedKeyAccess: false/);
    expect(storage).toMatch(/allowBlobPublicAccess: false/);
    expect(storage).toMatch(/'Microsoft\.Storage\/storageAccounts\/tableServices\/tables@/);
    expect(storage).toMatch(/'Microsoft\.Storage\/storageAccounts\/blobServices\/containers@/);
    // The broker writes its audit trail to <LEASE_TABLE_NAME>audit (src/app/composition.ts).
    expect(withoutComments(main)).toMatch(
      /tableNames: \[\s+leaseTableName\s+'\$\{leaseTableName\}audit'\s+\]/,
    );
  });
});

describe('role assignments', () => {
  // Built-in role definition IDs, the same in every tenant.
  const BUILT_IN: Record<string, string> = {
    storageBlobDataOwnerRoleId: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
    storageTableDataContributorRoleId: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
    storageTableDataReaderRoleId: '76199698-9eea-4c19-bc75-cec21354c6b6',
    monitoringMetricsPublisherRoleId: '3913510d-42f4-4e42-8a64-420c390055eb',
    keyVaultContributorRoleId: 'f25e0fa2-a7c8-4377-a976-54943a77a395',
  };

  it('When a role is named by a constant, Then the constant holds that built-in role GUID', () => {
    const constants = new Map([
      ...guidConstants(readText('infra/rbac.bicep')),
      ...guidConstants(readText('infra/vault-access.bicep')),
    ]);
    expect(Object.fromEntries(constants)).toEqual(BUILT_IN);
  });

  it.each(['rbac.bicep', 'vault-access.bicep'])(
    'When %s assigns a role, Then it names the principal type and a deterministic name',
    (file) => {
      const source = withoutComments(readText('infra', file));
      const assignments = resourceTypes(source).filter(
        (resource) => resource.type === 'Microsoft.Authorization/roleAssignments',
      );
      expect(assignments.length).toBeGreaterThan(0);
      // The operators reading the audit trail bring their own type (User, Group, ServicePrincipal).
      expect(source.match(/principalType: ('ServicePrincipal'|reader\.type)/g)?.length).toBe(
        assignments.length,
      );
      // Role assignments and role definitions alike are named by guid(), so a redeployment updates them.
      const definitions = resourceTypes(source).filter(
        (resource) => resource.type === 'Microsoft.Authorization/roleDefinitions',
      );
      expect(source.match(/name: guid\(/g)?.length).toBe(assignments.length + definitions.length);
    },
  );

  it('When the broker gets vault access, Then it is one assignment per vault in the vault resource group', () => {
    const access = withoutComments(readText('infra/vault-access.bicep'));
    expect(targetScope(access)).toBe('resourceGroup');
    expect(access).toMatch(/scope: vault\b/);

    // main.bicep parses the vault resource ID with split('/'): check its indices on a real ID.
    const id =
      '/subscriptions/44444444-4444-4444-4444-444444444444/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/kv-app';
    const scope =
      /scope: resourceGroup\(split\(vaultId, '\/'\)\[(\d+)\], split\(vaultId, '\/'\)\[(\d+)\]\)/.exec(
        withoutComments(main),
      );
    expect(scope).not.toBeNull();
    const parts = id.split('/');
    expect(parts[Number(scope?.[1])]).toBe('44444444-4444-4444-4444-444444444444');
    expect(parts[Number(scope?.[2])]).toBe('rg-vaults');
    expect(withoutComments(main)).toMatch(/vaultName: last\(split\(vaultId, '\/'\)\)/);
    expect(withoutComments(main)).toMatch(/for vaultId in vaultIds:/);
  });

  it('When the custom role is used, Then it allows reading and writing vaults and nothing else', () => {
    const role = withoutComments(readText('infra/custom-role.bicep'));
    expect(targetScope(role)).toBe('subscription');
    const actions = /actions: \[([^\]]*)\]/.exec(role)?.[1] ?? '';
    expect([...actions.matchAll(/'([^']+)'/g)].map((match) => match[1])).toEqual([
      'Microsoft.KeyVault/vaults/read',
      'Microsoft.KeyVault/vaults/write',
    ]);
    expect(role).toMatch(/dataActions: \[\]/);
    expect(readText('infra/vault-access.bicep')).toMatch(/access polic/i); // the risk is explained
  });
});

describe('azd packaging', () => {
  it('When azd reads azure.yaml, Then one TypeScript function service "api" is built remotely from the root', () => {
    const config = asRecord(readYaml('azure.yaml'), 'azure.yaml');
    expect(config.name).toBe('kv-lease');
    const services = asRecord(config.services, 'services');
    expect(Object.keys(services)).toEqual(['api']);
    expect(services.api).toEqual({
      project: '.',
      language: 'ts',
      host: 'function',
      remoteBuild: true,
    });
  });

  const ignored = readText('.funcignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  it('When azd packages the app, Then tests, tooling, infra, pipelines and local-only sources stay out', () => {
    for (const pattern of [
      'node_modules/',
      'dist/',
      'test/',
      'bench/',
      'infra/',
      'pipelines/',
      '.azurite/',
      '.emulator/',
      '.ci/',
      'coverage/',
      'local.settings.json',
      '*.md',
      'dev/',
    ]) {
      expect(ignored, pattern).toContain(pattern);
    }
  });

  it('When Oryx builds the package remotely, Then what the build needs is not ignored', () => {
    for (const needed of [
      'src/',
      'src',
      'host.json',
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      '*.ts',
      '*.json',
    ]) {
      expect(ignored, needed).not.toContain(needed);
    }
    expect(ignored.some((pattern) => pattern.startsWith('!'))).toBe(false);
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
