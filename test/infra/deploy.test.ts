import { readdirSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { params, resourceBodies, withoutComments } from './bicep';
import { graphResourceTypes, graphTypeProblems } from './graph-types';
import { asRecord, readText, readYaml, repoPath } from './helpers';

/**
 * The deployment as a security review reads it: the app registration, who
 * may do what on storage and vaults, transport and credentials, the runtime.
 * No Bicep compiler runs here, so each rule is a check over the source, and
 * each check also runs on a copy of the source with the rule broken: a check
 * that cannot fail proves nothing.
 */

const main = readText('infra/main.bicep');
const appRegistration = readText('infra/app-registration.bicep');
const rbac = readText('infra/rbac.bicep');
const storage = readText('infra/storage.bicep');
const functionApp = readText('infra/function-app.bicep');

function mutate(source: string, from: string | RegExp, to: string): string {
  const changed = source.replace(from, to);
  if (changed === source) throw new Error(`mutation did not apply: ${String(from)}`);
  return changed;
}

// ---- the app registration --------------------------------------------------

function graphProblems(source: string): string[] {
  const problems: string[] = [];
  const resources = resourceBodies(source, 'Microsoft.Graph/');
  if (resources.length === 0) problems.push('no Microsoft.Graph resource');
  for (const resource of resources) {
    problems.push(...graphTypeProblems(resource.type, resource.body, resource.existing));
  }
  return problems;
}

/** The app roles: the three roles of the contract, ids derived from fixed strings, enabled. */
function appRoleProblems(source: string): string[] {
  const problems: string[] = [];
  const text = withoutComments(source);
  const roleIds = /^var roleIds = \{([\s\S]*?)^\}/m.exec(text)?.[1] ?? '';
  const derived = [...roleIds.matchAll(/^\s*'([\w.]+)':\s*(.+)$/gm)].map((m) => ({
    role: m[1] ?? '',
    expression: (m[2] ?? '').trim(),
  }));
  const roles = derived.map((entry) => entry.role).sort();
  if (JSON.stringify(roles) !== JSON.stringify(['Lease.Admin', 'Lease.Read', 'Lease.Request'])) {
    problems.push(`role ids for ${roles.join(', ')}`);
  }
  for (const { role, expression } of derived) {
    // guid() of string literals only: no newGuid(), no parameter, no resource property.
    if (!/^guid\((\s*'[^']*'\s*,?)+\)$/.test(expression)) {
      problems.push(`${role} id is not derived from fixed strings: ${expression}`);
    }
  }
  const open = text.indexOf('[', text.indexOf('var appRoles ='));
  const list = text.slice(open, text.indexOf('\n]', open));
  const values = [...list.matchAll(/value: '([^']+)'/g)].map((m) => m[1]).sort();
  if (JSON.stringify(values) !== JSON.stringify(['Lease.Admin', 'Lease.Read', 'Lease.Request'])) {
    problems.push(`app role values ${values.join(', ')}`);
  }
  for (const value of values) {
    const id = new RegExp(`id: roleIds\\['${value}'\\]`);
    if (!id.test(list)) problems.push(`${value} does not take its derived id`);
  }
  if ((list.match(/isEnabled: true/g) ?? []).length !== 3) problems.push('a role is not enabled');
  if ((list.match(/allowedMemberTypes: \['Application', 'User'\]/g) ?? []).length !== 3) {
    problems.push('a role cannot be given to applications (pipelines) and users (operators)');
  }
  return problems;
}

describe('the API app registration (Microsoft Graph Bicep extension)', () => {
  it('When bicepconfig.json is read, Then it pins the GA microsoftGraphV1 extension', () => {
    const config = asRecord(
      JSON.parse(readText('infra/bicepconfig.json').replace(/^\s*\/\/.*$/gm, '')),
      'bicepconfig.json',
    );
    expect(asRecord(config.extensions, 'extensions')).toEqual({
      microsoftGraphV1: 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0',
    });
    expect(withoutComments(appRegistration)).toMatch(/^extension microsoftGraphV1$/m);
  });

  it('When the Graph resources are checked against the extension types, Then every property exists, none is read-only and the required ones are set', () => {
    const types = resourceBodies(appRegistration, 'Microsoft.Graph/').map((r) => r.type);
    expect(new Set(types)).toEqual(
      new Set([
        'Microsoft.Graph/applications@v1.0',
        'Microsoft.Graph/servicePrincipals@v1.0',
        'Microsoft.Graph/appRoleAssignedTo@v1.0',
        'Microsoft.Graph/oauth2PermissionGrants@v1.0',
      ]),
    );
    for (const type of types) expect(graphResourceTypes()).toContain(type);
    expect(graphProblems(appRegistration)).toEqual([]);
  });

  it('When a Graph property is misspelt, set read-only or left out, Then the type check names it (negative)', () => {
    expect(graphProblems(mutate(appRegistration, 'identifierUris:', 'identifierUri:'))).toContain(
      'Microsoft.Graph/applications@v1.0.identifierUri is not a property of Microsoft.Graph/applications',
    );
    expect(
      graphProblems(mutate(appRegistration, "  signInAudience: 'AzureADMyOrg'", "  appId: 'x'")),
    ).toContain('Microsoft.Graph/applications@v1.0.appId is read-only');
    expect(
      graphProblems(mutate(appRegistration, / {2}uniqueName: uniqueName\n/, '')).join('\n'),
    ).toMatch(/applications@v1\.0\.uniqueName is required/);
    expect(
      graphProblems(mutate(appRegistration, 'redirectUris: consoleRedirectUris', 'redirectUri: x')),
    ).toContain(
      'Microsoft.Graph/applications@v1.0.spa.redirectUri is not a property of MicrosoftGraphSpaApplication',
    );
  });

  it('When the roles are declared, Then Lease.Request, Lease.Read and Lease.Admin have stable derived ids', () => {
    expect(appRoleProblems(appRegistration)).toEqual([]);
    // A role is retired by disabling it first: the rule is written next to the ids.
    expect(appRegistration).toMatch(/isEnabled: false[\s\S]*then remove it/);
  });

  it('When a role id would be random or a role were missing, Then the role check fails (negative)', () => {
    expect(
      appRoleProblems(
        mutate(appRegistration, "guid('kv-lease', 'app-role', 'Lease.Read')", 'newGuid()'),
      ),
    ).toEqual(['Lease.Read id is not derived from fixed strings: newGuid()']);
    expect(
      appRoleProblems(
        mutate(appRegistration, "guid('kv-lease', 'app-role', 'Lease.Admin')", 'roleSeed'),
      ),
    ).toHaveLength(1);
    expect(
      appRoleProblems(mutate(appRegistration, "value: 'Lease.Admin'", "value: 'Lease.Owner'")),
    ).not.toEqual([]);
  });

  it('When the registration is created, Then it has the App ID URI, the console scope and redirect URI, the deployer as owner and role assignments from parameters', () => {
    const app = resourceBodies(appRegistration, 'Microsoft.Graph/applications@').find(
      (r) => !r.existing,
    );
    const props = app?.body.properties;
    expect(props?.get('identifierUris')?.text).toBe('[identifierUri]');
    const api = props?.get('api')?.objects[0];
    const scope = api?.properties.get('oauth2PermissionScopes')?.objects[0];
    expect(scope?.properties.get('value')?.text).toBe("'user_impersonation'");
    expect(scope?.properties.get('id')?.text).toBe('userImpersonationScopeId');
    expect(withoutComments(appRegistration)).toMatch(
      /var userImpersonationScopeId = guid\('kv-lease', 'oauth2-scope', 'user_impersonation'\)/,
    );
    expect(props?.get('spa')?.objects[0]?.properties.get('redirectUris')?.text).toBe(
      'consoleRedirectUris',
    );
    expect(props?.get('owners')?.objects[0]?.properties.get('relationships')?.text).toBe(
      '[ownerPrincipalId]',
    );
    // main.bicep: the console is served by the broker at /api/console, the owner is the deployer.
    const code = withoutComments(main);
    expect(code).toMatch(/var functionAppHostName = '\$\{functionAppName\}\.azurewebsites\.net'/);
    expect(code).toMatch(
      /var consoleRedirectUri = 'https:\/\/\$\{functionAppHostName\}\/api\/console'/,
    );
    expect(code).toMatch(
      /consoleRedirectUris: union\(\[consoleRedirectUri\], consoleRedirectUris\)/,
    );
    expect(code).toMatch(
      /var ownerPrincipalId = !empty\(deployerPrincipalId\) \? deployerPrincipalId : deployer\(\)\.objectId/,
    );
    const assignments = resourceBodies(appRegistration, 'Microsoft.Graph/appRoleAssignedTo@');
    expect(assignments.map((a) => a.body.properties.get('appRoleId')?.text).sort()).toEqual([
      "roleIds['Lease.Admin']",
      "roleIds['Lease.Read']",
      "roleIds['Lease.Request']",
    ]);
    for (const name of [
      'leaseRequestPrincipalIds',
      'leaseReadPrincipalIds',
      'leaseAdminPrincipalIds',
    ]) {
      expect(params(main).find((p) => p.name === name)?.defaultValue).toBe('[]');
      expect(code).toMatch(new RegExp(`${name}: ${name}`));
    }
  });

  it('When AUTH_AUDIENCE and AUTH_TENANT_ID are derived, Then they come from the registration and the tenant, so nobody types an id', () => {
    const code = withoutComments(main);
    expect(code).toMatch(/AUTH_AUDIENCE: authAudiences/);
    expect(code).toMatch(
      /var authAudiences = !empty\(authAudience\) \? authAudience : derivedAudiences/,
    );
    expect(code).toMatch(
      /var derivedAudiences = join\(filter\(\[identifierUri, appClientId\], value => !empty\(value\)\), ','\)/,
    );
    expect(code).toMatch(
      /var appClientId = createAppRegistration \? appRegistration\.outputs\.appId : existingAppClientId/,
    );
    expect(code).toMatch(
      /AUTH_TENANT_ID: empty\(authTenantId\) \? tenant\(\)\.tenantId : authTenantId/,
    );
    const required = params(main)
      .filter((p) => p.defaultValue === undefined)
      .map((p) => p.name);
    expect(required).not.toContain('authAudience');
    // The path for tenants where the deployer may not create registrations.
    expect(params(main).find((p) => p.name === 'createAppRegistration')?.defaultValue).toBe('true');
    expect(code).toMatch(
      /module appRegistration 'app-registration\.bicep' = if \(createAppRegistration\)/,
    );
    expect(readText('infra/README.md')).toMatch(/createAppRegistration.*false/);
  });
});

// ---- storage roles -----------------------------------------------------------

const TABLE_ACTIONS = JSON.parse(readText('test/fixtures/azure-rbac/table-data-actions.json')) as {
  operations: Record<string, string[]>;
};
const DOCUMENTED = new Set(
  Object.values(TABLE_ACTIONS.operations)
    .flat()
    .flatMap((entry) => entry.split(' + ')),
);

function stringList(source: string, name: string): string[] {
  const text = withoutComments(source);
  const body = new RegExp(`^var ${name} = \\[([\\s\\S]*?)^\\]`, 'm').exec(text)?.[1];
  if (body === undefined) throw new Error(`var ${name} not found`);
  return [...body.matchAll(/'([^']+)'/g)].map((m) => m[1] ?? '');
}

/** What the audit appender may do: query and insert entities (plus Create Table), nothing else. */
function auditRoleProblems(source: string): string[] {
  const problems: string[] = [];
  const dataActions = stringList(source, 'auditAppenderDataActions');
  const actions = stringList(source, 'auditAppenderActions');
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
  const role = resourceBodies(source, 'Microsoft.Authorization/roleDefinitions@')[0];
  const permissions = role?.body.properties.get('properties')?.objects[0];
  const entry = permissions?.properties.get('permissions')?.objects[0];
  if (entry?.properties.get('dataActions')?.text !== 'auditAppenderDataActions')
    problems.push('role does not use auditAppenderDataActions');
  if (entry?.properties.get('actions')?.text !== 'auditAppenderActions')
    problems.push('role does not use auditAppenderActions');
  return problems;
}

/** Which role each assignment names and at which scope. */
function assignments(source: string): { symbol: string; role: string; scope: string }[] {
  return resourceBodies(source, 'Microsoft.Authorization/roleAssignments@').map((r) => ({
    symbol: r.symbol,
    scope: r.body.properties.get('scope')?.text ?? '',
    role:
      r.body.properties.get('properties')?.objects[0]?.properties.get('roleDefinitionId')?.text ??
      '',
  }));
}

const TABLE_DATA_CONTRIBUTOR = 'storageTableDataContributorRoleId';
const TABLE_DATA_READER = 'storageTableDataReaderRoleId';

/** Table data roles only at the scope of their table, never the account. */
function tableScopeProblems(source: string): string[] {
  const problems: string[] = [];
  const found = assignments(source);
  const expect = (symbol: string, role: RegExp, scope: string) => {
    const assignment = found.find((a) => a.symbol === symbol);
    if (!assignment) problems.push(`${symbol} missing`);
    else {
      if (!role.test(assignment.role)) problems.push(`${symbol} role ${assignment.role}`);
      if (assignment.scope !== scope) problems.push(`${symbol} scope ${assignment.scope}`);
    }
  };
  expect(
    'leaseTableContributor',
    new RegExp(TABLE_DATA_CONTRIBUTOR),
    'storage::tableService::leaseTable',
  );
  expect('auditTableAppender', /auditAppender\.name/, 'storage::tableService::auditTable');
  expect('auditTableReaders', new RegExp(TABLE_DATA_READER), 'storage::tableService::auditTable');
  for (const assignment of found) {
    const tableRole = /Table|auditAppender/.test(assignment.role);
    if (tableRole && !assignment.scope.startsWith('storage::tableService::')) {
      problems.push(`${assignment.symbol}: a table role at ${assignment.scope}`);
    }
    if (
      /auditAppender|TableDataContributor/.test(assignment.role) &&
      assignment.scope === 'storage::tableService::auditTable' &&
      !/auditAppender/.test(assignment.role)
    ) {
      problems.push(`${assignment.symbol}: a writer role on the audit table`);
    }
  }
  const table = withoutComments(source);
  if (
    !/resource auditTable 'tables' existing = \{\s+name: '\$\{leaseTableName\}audit'/.test(table)
  ) {
    problems.push('the audit table is not <leaseTableName>audit');
  }
  return problems;
}

describe('storage roles (rbac.bicep)', () => {
  it('When the broker gets table access, Then the lease table role and the audit role are scoped to their table', () => {
    expect(tableScopeProblems(rbac)).toEqual([]);
    expect(withoutComments(main)).toMatch(
      /module rbac 'rbac\.bicep' = \{[\s\S]*?leaseTableName: leaseTableName/,
    );
    expect(withoutComments(readText('src/app/composition.ts'))).toMatch(
      /tableName: `\$\{config\.LEASE_TABLE_NAME\}audit`/,
    );
  });

  it('When a table role is widened back to the account, or the contributor role lands on the audit table, Then the scope check fails (negative)', () => {
    expect(
      tableScopeProblems(
        mutate(rbac, 'scope: storage::tableService::leaseTable', 'scope: storage'),
      ),
    ).toEqual([
      'leaseTableContributor scope storage',
      'leaseTableContributor: a table role at storage',
    ]);
    const onAudit = mutate(
      rbac,
      /name: guid\(storage::tableService::leaseTable\.id, principalId, storageTableDataContributorRoleId\)\n {2}scope: storage::tableService::leaseTable/,
      'name: guid(storage::tableService::leaseTable.id, principalId, storageTableDataContributorRoleId)\n  scope: storage::tableService::auditTable',
    );
    expect(tableScopeProblems(onAudit)).toContain(
      'leaseTableContributor scope storage::tableService::auditTable',
    );
  });

  it('When the audit role is read, Then it may query and insert entries and nothing else, each action as the Azure RBAC reference names it', () => {
    expect(auditRoleProblems(rbac)).toEqual([]);
    // Assignable in the broker's resource group only, assigned at the audit table.
    expect(withoutComments(rbac)).toMatch(/assignableScopes: \[\s+resourceGroup\(\)\.id\s+\]/);
  });

  it.each([
    ['a wildcard', 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/*'],
    ['delete', 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/delete'],
    [
      'write (insert, merge, replace)',
      'Microsoft.Storage/storageAccounts/tableServices/tables/entities/write',
    ],
    ['update', 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action'],
  ])(
    'When the audit role is widened with %s, Then the audit role check fails (negative)',
    (_what, action) => {
      const widened = mutate(
        rbac,
        "  'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'\n",
        `  'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'\n  '${action}'\n`,
      );
      expect(auditRoleProblems(widened).length).toBeGreaterThan(0);
    },
  );

  it('When the audit role names an action the reference does not know, Then the check fails (negative)', () => {
    const misspelt = mutate(rbac, "tables/entities/add/action'", "tables/entities/append/action'");
    expect(auditRoleProblems(misspelt)).toContain(
      'undocumented Microsoft.Storage/storageAccounts/tableServices/tables/entities/append/action',
    );
  });

  it('When operators may read the trail from storage, Then they get Storage Table Data Reader on the audit table only', () => {
    const readers = assignments(rbac).find((a) => a.symbol === 'auditTableReaders');
    expect(readers?.role).toMatch(/storageTableDataReaderRoleId/);
    expect(withoutComments(rbac)).toMatch(
      /var storageTableDataReaderRoleId = '76199698-9eea-4c19-bc75-cec21354c6b6'/,
    );
    expect(withoutComments(main)).toMatch(/auditReaders: auditReaders/);
  });

  it('When the vaults get the broker role, Then the custom per-vault role is the default', () => {
    expect(params(main).find((p) => p.name === 'useCustomVaultRole')?.defaultValue).toBe('true');
  });
});

// ---- transport and credentials -----------------------------------------------

function hardeningProblems(files: { storage: string; functionApp: string }): string[] {
  const problems: string[] = [];
  const s = withoutComments(files.storage);
  const f = withoutComments(files.functionApp);
  const need = (text: string, pattern: RegExp, what: string) => {
    if (!pattern.test(text)) problems.push(what);
  };
  need(s, /allowSharedKeyAccess: false/, 'shared keys allowed');
  need(s, /minimumTlsVersion: 'TLS1_2'/, 'storage TLS below 1.2');
  need(s, /supportsHttpsTrafficOnly: true/, 'storage over HTTP');
  need(s, /allowBlobPublicAccess: false/, 'public blobs');
  need(f, /httpsOnly: true/, 'app over HTTP');
  need(f, /minTlsVersion: '1\.2'/, 'app TLS below 1.2');
  need(f, /ftpsState: 'Disabled'/, 'FTP on');
  for (const name of ['ftp', 'scm']) {
    need(
      f,
      new RegExp(
        `basicPublishingCredentialsPolicies@[^']+' = \\{\\s+parent: site\\s+name: '${name}'\\s+properties: \\{\\s+allow: false`,
      ),
      `${name} publishing passwords allowed`,
    );
  }
  return problems;
}

describe('transport and credentials', () => {
  it('When storage and the Function App are declared, Then there are no shared keys, TLS 1.2, HTTPS only and no FTP or publishing passwords', () => {
    expect(hardeningProblems({ storage, functionApp })).toEqual([]);
  });

  it('When a setting is loosened, Then the hardening check names it (negative)', () => {
    expect(
      hardeningProblems({
        storage: mutate(storage, 'allowSharedKeyAccess: false', 'allowSharedKeyAccess: true'),
        functionApp,
      }),
    ).toEqual(['shared keys allowed']);
    expect(
      hardeningProblems({
        storage,
        functionApp: mutate(functionApp, "ftpsState: 'Disabled'", "ftpsState: 'FtpsOnly'"),
      }),
    ).toEqual(['FTP on']);
    expect(
      hardeningProblems({
        storage,
        functionApp: mutate(
          functionApp,
          /name: 'scm'\n {2}properties: \{\n {4}allow: false/,
          "name: 'scm'\n  properties: {\n    allow: true",
        ),
      }),
    ).toEqual(['scm publishing passwords allowed']);
  });

  it('When any infra file is read, Then no storage key or connection string is fetched or set', () => {
    for (const file of [
      'main.bicep',
      'storage.bicep',
      'function-app.bicep',
      'rbac.bicep',
      'monitoring.bicep',
      'app-registration.bicep',
    ]) {
      const code = withoutComments(readText('infra', file));
      expect(code, file).not.toMatch(
        /listKeys\(|AccountKey=|SharedAccessSignature|connectionStrings:/,
      );
      expect(code, file).not.toMatch(/AzureWebJobsStorage:\s/);
    }
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

function runtimeProblems(
  files: { main: string; functionApp: string; nvmrc: string; engines: string },
  devVersion: string,
): string[] {
  const problems: string[] = [];
  const deployed = /^param nodeVersion string = '(\d+)'$/m.exec(withoutComments(files.main))?.[1];
  const allowed = [
    ...(
      /@allowed\(\[([^\]]*)\]\)\s*(?:@description\([^\n]*\)\s*)?param nodeVersion/.exec(
        withoutComments(files.main),
      )?.[1] ?? ''
    ).matchAll(/'(\d+)'/g),
  ].map((m) => m[1]);
  if (deployed !== '22') problems.push(`default runtime Node ${deployed ?? '?'}`);
  if (allowed.includes('20')) problems.push('Node 20 (end of life) is allowed');
  if (
    /^param nodeVersion string = '(\d+)'$/m.exec(withoutComments(files.functionApp))?.[1] !==
    deployed
  )
    problems.push('function-app.bicep default differs');
  if (files.nvmrc.trim() !== deployed) problems.push(`.nvmrc ${files.nvmrc.trim()}`);
  for (const version of [`${deployed ?? '0'}.0.0`, ...allowed.map((v) => `${v}.0.0`), devVersion]) {
    if (!admits(files.engines, version))
      problems.push(`engines ${files.engines} refuses ${version}`);
  }
  return problems;
}

describe('runtime', () => {
  const engines = asRecord(
    asRecord(JSON.parse(readText('package.json')), 'package.json').engines,
    'engines',
  ).node as string;
  const files = { main, functionApp, nvmrc: readText('.nvmrc'), engines };

  it('When the runtime is chosen, Then Azure runs Node 22 and engines, .nvmrc and this machine agree', () => {
    expect(runtimeProblems(files, process.version)).toEqual([]);
    expect(readText('infra/README.md')).toMatch(/Node\.js 22/);
  });

  it('When engines, .nvmrc or the default disagree, Then the runtime check fails (negative)', () => {
    expect(runtimeProblems({ ...files, engines: '>=24' }, process.version)).toContain(
      `engines >=24 refuses 22.0.0`,
    );
    expect(runtimeProblems({ ...files, nvmrc: '20' }, process.version)).toEqual(['.nvmrc 20']);
    expect(
      runtimeProblems(
        {
          ...files,
          main: mutate(main, "param nodeVersion string = '22'", "param nodeVersion string = '20'"),
        },
        process.version,
      ),
    ).toContain('default runtime Node 20');
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
