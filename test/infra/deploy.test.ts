import { readdirSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { asText, type Deployed, type Expansion, isRuntime } from './arm';
import { type Compiled, GRAPH_EXTENSION } from './compile';
import { appSettings, compiledMain, deployMain, ofType, single } from './deployment';
import { asRecord, readText, readYaml, repoPath } from './helpers';

/**
 * The deployment as a security review reads it: the app registration, who
 * may do what on storage and vaults, transport and credentials, the runtime.
 * Each rule is checked on the compiled ARM JSON, expanded as Resource Manager
 * would deploy it (test/infra/deployment.ts), and each check also runs on a
 * copy with the rule broken: a check that cannot fail proves nothing.
 */

let compiled: Compiled;
let deployed: Expansion;
const unavailable = compiledMain('test/infra/deploy.test.ts', (built, expanded) => {
  compiled = built;
  deployed = expanded;
});

/** A deep copy of a deployed resource with `change` applied, for the negative controls. */
function broken(resource: Deployed, change: (body: Record<string, unknown>) => void): Deployed {
  const copy = structuredClone({
    ...resource,
    body: JSON.parse(asText(resource.body)) as Record<string, unknown>,
  });
  change(copy.body);
  return copy;
}

function props(body: Record<string, unknown>): Record<string, unknown> {
  return asRecord(body.properties, 'properties');
}

// ---- the app registration --------------------------------------------------

const ROLES = ['Lease.Admin', 'Lease.Read', 'Lease.Request'];

interface AppRole {
  id: unknown;
  value: string;
  isEnabled: boolean;
  allowedMemberTypes: string[];
}

function appOf(expansion: Expansion): Deployed {
  return single(expansion, 'Microsoft.Graph/applications@v1.0');
}

/**
 * The app roles: the three roles of the contract, enabled, for applications
 * and users, each id a fixed GUID: the same in two deployments that differ in
 * everything else (a redeployment must keep the ids, or every assignment to a
 * role would be orphaned).
 */
function appRoleProblems(app: Deployed, other: Deployed): string[] {
  const problems: string[] = [];
  const roles = (resource: Deployed) => props(resource.body).appRoles as AppRole[];
  const values = roles(app)
    .map((role) => role.value)
    .sort();
  if (JSON.stringify(values) !== JSON.stringify(ROLES))
    problems.push(`app roles ${values.join(', ')}`);
  for (const role of roles(app)) {
    const twin = roles(other).find((candidate) => candidate.value === role.value);
    if (isRuntime(role.id) || !/^[0-9a-f-]{36}$/.test(String(role.id)))
      problems.push(`${role.value} id is not a fixed GUID`);
    else if (twin?.id !== role.id) problems.push(`${role.value} id changes between deployments`);
    if (!role.isEnabled) problems.push(`${role.value} is not enabled`);
    if (JSON.stringify(role.allowedMemberTypes) !== JSON.stringify(['Application', 'User'])) {
      problems.push(
        `${role.value} cannot be given to applications (pipelines) and users (operators)`,
      );
    }
  }
  if (new Set(roles(app).map((role) => String(role.id))).size !== roles(app).length)
    problems.push('two roles share an id');
  return problems;
}

describe.skipIf(unavailable !== undefined)(
  'the API app registration (Microsoft Graph Bicep extension)',
  () => {
    it('When bicepconfig.json is read, Then it pins the GA microsoftGraphV1 extension whose types the compile uses', () => {
      const config = asRecord(
        JSON.parse(readText('infra/bicepconfig.json').replace(/^\s*\/\/.*$/gm, '')),
        'bicepconfig.json',
      );
      expect(asRecord(config.extensions, 'extensions')).toEqual({
        microsoftGraphV1: GRAPH_EXTENSION,
      });
    });

    it('When the roles are deployed, Then Lease.Request, Lease.Read and Lease.Admin have stable derived ids', () => {
      const other = appOf(
        deployMain(compiled, {
          environmentName: 'prod',
          location: 'northeurope',
          leaseReadPrincipalIds: ['x'],
        }),
      );
      expect(appRoleProblems(appOf(deployed), other)).toEqual([]);
      // A role is retired by disabling it first: the rule is written next to the ids.
      expect(readText('infra/app-registration.bicep')).toMatch(
        /isEnabled: false[\s\S]*then remove it/,
      );
    });

    it('When a role id would change between deployments or a role were missing, Then the role check fails (negative)', () => {
      const app = appOf(deployed);
      const moved = broken(app, (body) => {
        (props(body).appRoles as AppRole[])[1]!.id = '00000000-0000-0000-0000-000000000001';
      });
      expect(appRoleProblems(app, moved)).toEqual([
        `${(props(app.body).appRoles as AppRole[])[1]?.value} id changes between deployments`,
      ]);
      const renamed = broken(app, (body) => {
        (props(body).appRoles as AppRole[])[0]!.value = 'Lease.Owner';
      });
      expect(appRoleProblems(renamed, renamed)).not.toEqual([]);
    });

    it('When the registration is deployed, Then it has the App ID URI, the console scope and redirect URI, the deployer as owner and role assignments from parameters', () => {
      const principals = {
        leaseRequestPrincipalIds: ['55555555-5555-5555-5555-555555555555'],
        leaseReadPrincipalIds: ['66666666-6666-6666-6666-666666666666'],
        leaseAdminPrincipalIds: ['77777777-7777-7777-7777-777777777777'],
      };
      const expansion = deployMain(compiled, {
        ...principals,
        deployerPrincipalId: '88888888-8888-8888-8888-888888888888',
      });
      const app = appOf(expansion);
      const site = single(expansion, 'Microsoft.Web/sites');
      expect(props(app.body).identifierUris).toEqual([expansion.outputs.KV_LEASE_APP_ID_URI]);
      expect(String(expansion.outputs.KV_LEASE_APP_ID_URI)).toMatch(
        /^api:\/\/[0-9a-f-]{36}\/kv-lease-dev$/,
      );
      const scopes = asRecord(props(app.body).api, 'api').oauth2PermissionScopes as {
        id: unknown;
        value: string;
      }[];
      expect(scopes.map((scope) => scope.value)).toEqual(['user_impersonation']);
      expect(String(scopes[0]?.id)).toMatch(/^[0-9a-f-]{36}$/);
      // The console is served by the broker at /api/console.
      const console = `https://${site.name}.azurewebsites.net/api/console`;
      expect(asRecord(props(app.body).spa, 'spa').redirectUris).toEqual([console]);
      expect(expansion.outputs.KV_LEASE_CONSOLE_REDIRECT_URI).toBe(console);
      expect(props(app.body).owners).toEqual({
        relationships: ['88888888-8888-8888-8888-888888888888'],
      });
      expect(asText(props(appOf(deployed).body).owners)).toContain('<deployer.objectId>');

      const roleIds = Object.fromEntries(
        (props(app.body).appRoles as AppRole[]).map((role) => [role.value, role.id]),
      );
      const assignments = ofType(expansion, 'Microsoft.Graph/appRoleAssignedTo@v1.0').map(
        (a) => `${String(props(a.body).principalId)} ${String(props(a.body).appRoleId)}`,
      );
      expect(assignments.sort()).toEqual(
        [
          `${principals.leaseRequestPrincipalIds[0]} ${String(roleIds['Lease.Request'])}`,
          `${principals.leaseReadPrincipalIds[0]} ${String(roleIds['Lease.Read'])}`,
          `${principals.leaseAdminPrincipalIds[0]} ${String(roleIds['Lease.Admin'])}`,
        ].sort(),
      );
      // Only principals given a role get tokens for the API at all.
      expect(
        props(single(expansion, 'Microsoft.Graph/servicePrincipals@v1.0').body)
          .appRoleAssignmentRequired,
      ).toBe(true);
    });

    it('When AUTH_AUDIENCE and AUTH_TENANT_ID are derived, Then they come from the registration and the tenant, so nobody types an id', () => {
      const settings = appSettings(deployed);
      expect(settings.AUTH_AUDIENCE).toBe(
        `${String(deployed.outputs.KV_LEASE_APP_ID_URI)},<app.appId>`,
      );
      expect(settings.AUTH_TENANT_ID).toBe(String(deployed.outputs.AZURE_TENANT_ID));
      // Where the deployer may not create registrations: an existing app's ids, no Graph resource.
      const existing = deployMain(compiled, {
        createAppRegistration: false,
        appIdUri: 'api://kv-lease-existing',
        existingAppClientId: '99999999-9999-9999-9999-999999999999',
      });
      expect(existing.resources.filter((r) => r.type.startsWith('Microsoft.Graph/'))).toEqual([]);
      expect(appSettings(existing).AUTH_AUDIENCE).toBe(
        'api://kv-lease-existing,99999999-9999-9999-9999-999999999999',
      );
      expect(existing.outputs.KV_LEASE_APP_OBJECT_ID).toBe('');
      expect(compiled.templates.main?.parameters?.createAppRegistration?.defaultValue).toBe(true);
      expect(readText('infra/README.md')).toMatch(/createAppRegistration.*false/);
    });
  },
);

// ---- storage roles -----------------------------------------------------------

const TABLE_ACTIONS = JSON.parse(readText('test/fixtures/azure-rbac/table-data-actions.json')) as {
  operations: Record<string, string[]>;
};
const DOCUMENTED = new Set(
  Object.values(TABLE_ACTIONS.operations)
    .flat()
    .flatMap((entry) => entry.split(' + ')),
);

interface Permission {
  actions: string[];
  notActions: string[];
  dataActions: string[];
  notDataActions: string[];
}

/** What the audit appender may do: query and insert entities (plus Create Table), nothing else. */
function auditRoleProblems(role: Deployed): string[] {
  const problems: string[] = [];
  const permissions = props(role.body).permissions as Permission[];
  if (permissions.length !== 1) problems.push(`${permissions.length} permission entries`);
  const { actions = [], dataActions = [] } = permissions[0] ?? {};
  for (const action of [...dataActions, ...actions]) {
    if (action.includes('*')) problems.push(`wildcard ${action}`);
    else if (!DOCUMENTED.has(action)) problems.push(`undocumented ${action}`);
    if (/\/(delete|update\/action)$|entities\/write$/.test(action))
      problems.push(`may change entries: ${action}`);
  }
  if (
    JSON.stringify(dataActions) !==
    JSON.stringify([
      'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read',
      'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action',
    ])
  )
    problems.push(`data actions ${dataActions.join(', ')}`);
  if (
    JSON.stringify(actions) !==
    JSON.stringify(['Microsoft.Storage/storageAccounts/tableServices/tables/write'])
  ) {
    problems.push(`actions ${actions.join(', ')}`);
  }
  // Assignable in the broker's resource group only (it is assigned at the audit table, infra.test.ts).
  const scopes = props(role.body).assignableScopes as string[];
  if (
    JSON.stringify(scopes) !==
    JSON.stringify([`/subscriptions/${role.subscriptionId}/resourceGroups/${role.resourceGroup}`])
  ) {
    problems.push(`assignable at ${scopes.join(', ')}`);
  }
  return problems;
}

describe.skipIf(unavailable !== undefined)('the audit appender role (rbac.bicep)', () => {
  const auditRole = () =>
    ofType(deployed, 'Microsoft.Authorization/roleDefinitions').find(
      (role) => role.resourceGroup !== '',
    ) as Deployed;

  it('When the audit role is deployed, Then it may query and insert entries and nothing else, each action as the Azure RBAC reference names it', () => {
    expect(auditRoleProblems(auditRole())).toEqual([]);
    expect(deployed.outputs.KV_LEASE_AUDIT_ROLE_DEFINITION_ID).toMatch(
      new RegExp(`/providers/Microsoft\\.Authorization/roleDefinitions/${auditRole().name}$`),
    );
  });

  it.each([
    ['a wildcard', 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/*'],
    ['delete', 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/delete'],
    [
      'write (insert, merge, replace)',
      'Microsoft.Storage/storageAccounts/tableServices/tables/entities/write',
    ],
    ['update', 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action'],
    [
      'an action the reference does not know',
      'Microsoft.Storage/storageAccounts/tableServices/tables/entities/append/action',
    ],
  ])(
    'When the audit role is widened with %s, Then the audit role check fails (negative)',
    (_what, action) => {
      const widened = broken(auditRole(), (body) => {
        ((props(body).permissions as Permission[])[0] as Permission).dataActions.push(action);
      });
      expect(auditRoleProblems(widened).length).toBeGreaterThan(0);
    },
  );

  it('When the vaults get the broker role, Then the custom per-vault role is the default', () => {
    expect(compiled.templates.main?.parameters?.useCustomVaultRole?.defaultValue).toBe(true);
  });
});

// ---- transport and credentials -----------------------------------------------

function hardeningProblems(resources: Deployed[]): string[] {
  const problems: string[] = [];
  const one = (type: string) => resources.find((resource) => resource.type === type);
  const need = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  const storage = props(one('Microsoft.Storage/storageAccounts')?.body ?? { properties: {} });
  need(storage.allowSharedKeyAccess === false, 'shared keys allowed');
  need(storage.minimumTlsVersion === 'TLS1_2', 'storage TLS below 1.2');
  need(storage.supportsHttpsTrafficOnly === true, 'storage over HTTP');
  need(storage.allowBlobPublicAccess === false, 'public blobs');
  const site = props(one('Microsoft.Web/sites')?.body ?? { properties: {} });
  const siteConfig = (site.siteConfig ?? {}) as Record<string, unknown>;
  need(site.httpsOnly === true, 'app over HTTP');
  need(siteConfig.minTlsVersion === '1.2', 'app TLS below 1.2');
  need(siteConfig.ftpsState === 'Disabled', 'FTP on');
  for (const name of ['ftp', 'scm']) {
    const policy = resources.find(
      (r) =>
        r.type === 'Microsoft.Web/sites/basicPublishingCredentialsPolicies' &&
        r.name.endsWith(`/${name}`),
    );
    need(
      policy !== undefined && props(policy.body).allow === false,
      `${name} publishing passwords allowed`,
    );
  }
  const component = props(one('Microsoft.Insights/components')?.body ?? { properties: {} });
  need(
    component.DisableLocalAuth === true,
    'Application Insights accepts the instrumentation key alone',
  );
  const workspace = props(
    one('Microsoft.OperationalInsights/workspaces')?.body ?? { properties: {} },
  );
  need(
    (workspace.features as Record<string, unknown> | undefined)?.disableLocalAuth === true,
    'Log Analytics keys on',
  );
  return problems;
}

describe.skipIf(unavailable !== undefined)('transport and credentials', () => {
  it('When storage, telemetry and the Function App are deployed, Then there are no shared keys, TLS 1.2, HTTPS only and no FTP or publishing passwords', () => {
    expect(hardeningProblems(deployed.resources)).toEqual([]);
  });

  it('When a setting is loosened, Then the hardening check names it (negative)', () => {
    const loosen = (type: string, change: (body: Record<string, unknown>) => void, nameEnd = '') =>
      deployed.resources.map((resource) =>
        resource.type === type && resource.name.endsWith(nameEnd)
          ? broken(resource, change)
          : resource,
      );
    expect(
      hardeningProblems(
        loosen(
          'Microsoft.Storage/storageAccounts',
          (body) => (props(body).allowSharedKeyAccess = true),
        ),
      ),
    ).toEqual(['shared keys allowed']);
    expect(
      hardeningProblems(
        loosen(
          'Microsoft.Web/sites',
          (body) => ((props(body).siteConfig as Record<string, unknown>).ftpsState = 'FtpsOnly'),
        ),
      ),
    ).toEqual(['FTP on']);
    expect(
      hardeningProblems(
        loosen(
          'Microsoft.Web/sites/basicPublishingCredentialsPolicies',
          (body) => (props(body).allow = true),
          '/scm',
        ),
      ),
    ).toEqual(['scm publishing passwords allowed']);
    expect(
      hardeningProblems(
        loosen('Microsoft.Insights/components', (body) => (props(body).DisableLocalAuth = false)),
      ),
    ).toEqual(['Application Insights accepts the instrumentation key alone']);
  });

  it('When any template is compiled, Then no storage key or connection string is fetched or set', () => {
    for (const [name, template] of Object.entries(compiled.templates)) {
      const json = JSON.stringify(template);
      expect(json, name).not.toMatch(
        /listKeys\(|AccountKey=|SharedAccessSignature|"connectionStrings"/,
      );
    }
    expect(appSettings(deployed)).not.toHaveProperty('AzureWebJobsStorage');
  });
});

// ---- runtime --------------------------------------------------------------

/** Whether an npm engines range like `^20.19.0 || ^22.0.0` admits a version. */
function admits(range: string, version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.replace(/^v/, '').split('.').map(Number);
  return range.split('||').some((part) => {
    const caret = /^\^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(part.trim());
    const atLeast = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(part.trim());
    const bound = caret ?? atLeast;
    if (!bound) throw new Error(`range part not understood: ${part}`);
    const [, m = '0', n = '0', p = '0'] = bound;
    const lower = [Number(m), Number(n), Number(p)];
    const current = [major, minor, patch];
    const cmp = current.findIndex((value, index) => value !== lower[index]);
    const aboveLower = cmp === -1 || (current[cmp] ?? 0) > (lower[cmp] ?? 0);
    return aboveLower && (atLeast !== null || major === Number(m));
  });
}

interface Runtime {
  /** functionAppConfig.runtime.version of the deployed site, parameters at their defaults. */
  deployed: string;
  /** nodeVersion's allowed values in main.json. */
  allowed: string[];
  /** function-app.json's own nodeVersion default. */
  moduleDefault: string;
  nvmrc: string;
  engines: string;
}

function runtimeProblems(runtime: Runtime, devVersion: string): string[] {
  const problems: string[] = [];
  if (runtime.deployed !== '22') problems.push(`default runtime Node ${runtime.deployed}`);
  if (runtime.allowed.includes('20')) problems.push('Node 20 (end of life) is allowed');
  if (runtime.moduleDefault !== runtime.deployed)
    problems.push('function-app.bicep default differs');
  if (runtime.nvmrc.trim() !== runtime.deployed) problems.push(`.nvmrc ${runtime.nvmrc.trim()}`);
  for (const version of [
    `${runtime.deployed}.0.0`,
    ...runtime.allowed.map((v) => `${v}.0.0`),
    devVersion,
  ]) {
    if (!admits(runtime.engines, version))
      problems.push(`engines ${runtime.engines} refuses ${version}`);
  }
  return problems;
}

describe.skipIf(unavailable !== undefined)('runtime', () => {
  const engines = asRecord(
    asRecord(JSON.parse(readText('package.json')), 'package.json').engines,
    'engines',
  ).node as string;
  const runtime = (): Runtime => {
    const config = asRecord(
      props(single(deployed, 'Microsoft.Web/sites').body).functionAppConfig,
      'functionAppConfig',
    );
    return {
      deployed: String(asRecord(config.runtime, 'runtime').version),
      allowed: (compiled.templates.main?.parameters?.nodeVersion?.allowedValues ?? []).map(String),
      moduleDefault: String(
        compiled.templates['function-app']?.parameters?.nodeVersion?.defaultValue,
      ),
      nvmrc: readText('.nvmrc'),
      engines,
    };
  };

  it('When the runtime is chosen, Then Azure runs Node 22 and engines, .nvmrc and this machine agree', () => {
    expect(
      asRecord(props(single(deployed, 'Microsoft.Web/sites').body).functionAppConfig, 'config')
        .runtime,
    ).toEqual({
      name: 'node',
      version: '22',
    });
    expect(runtimeProblems(runtime(), process.version)).toEqual([]);
    expect(readText('infra/README.md')).toMatch(/Node\.js 22/);
  });

  it('When engines, .nvmrc or the default disagree, Then the runtime check fails (negative)', () => {
    expect(runtimeProblems({ ...runtime(), engines: '>=24' }, process.version)).toContain(
      `engines >=24 refuses 22.0.0`,
    );
    expect(runtimeProblems({ ...runtime(), nvmrc: '20' }, process.version)).toEqual(['.nvmrc 20']);
    expect(runtimeProblems({ ...runtime(), deployed: '20' }, process.version)).toContain(
      'default runtime Node 20',
    );
    expect(admits('^20.19.0 || ^22.0.0', '20.18.1')).toBe(false);
    expect(admits('^20.19.0 || ^22.0.0', '23.1.0')).toBe(false);
  });
});

// ---- the documented commands --------------------------------------------------

describe('documented azd environment values', () => {
  it('When the READMEs say `azd env set NAME`, Then main.parameters.json (or azd itself) reads NAME', () => {
    const file = readText('infra/main.parameters.json');
    const mapped = new Set([...file.matchAll(/\$\{(\w+)(?:=[^}]*)?\}/g)].map((m) => m[1]));
    const byAzd = new Set(['AZURE_LOCATION', 'AZURE_ENV_NAME', 'AZURE_SUBSCRIPTION_ID']);
    // A value only a hook reads (azd passes the whole environment to hooks).
    const byHooks = new Set(
      readdirSync(repoPath('infra/hooks'))
        .filter((file) => file.endsWith('.mjs'))
        .flatMap((file) =>
          [...readText('infra/hooks', file).matchAll(/envValue\('(\w+)'/g)].map((m) => m[1]),
        ),
    );
    const documented = ['infra/README.md', 'README.md'].flatMap((doc) =>
      [...readText(doc).matchAll(/azd env set (\w+)/g)].map((m) => m[1] ?? ''),
    );
    expect(documented.length).toBeGreaterThan(5);
    for (const name of documented) {
      expect(mapped.has(name) || byAzd.has(name) || byHooks.has(name), name).toBe(true);
    }
  });
});

// ---- azd hooks in azure.yaml -------------------------------------------------

describe('azd hooks', () => {
  const hooks = asRecord(asRecord(readYaml('azure.yaml'), 'azure.yaml').hooks, 'hooks');

  it('When azd runs a hook, Then each one is a Node script run alike on POSIX and Windows', () => {
    expect(Object.keys(hooks).sort()).toEqual([
      'postdeploy',
      'postdown',
      'postprovision',
      'predown',
    ]);
    for (const [name, hook] of Object.entries(hooks)) {
      const posix = asRecord(asRecord(hook, name).posix, `${name}.posix`);
      const windows = asRecord(asRecord(hook, name).windows, `${name}.windows`);
      expect(posix.run, name).toBe(windows.run);
      expect(posix.shell).toBe('sh');
      expect(windows.shell).toBe('pwsh');
      const script = /^node (infra\/hooks\/[\w-]+\.mjs)(?: --[\w-]+)*$/.exec(
        String(posix.run),
      )?.[1];
      expect(script, name).toBeDefined();
      expect(readText(script ?? '')).toMatch(/--dry-run/);
    }
  });
});
