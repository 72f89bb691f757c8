import { describe, expect, it } from 'vitest';

import { asText, DeploymentFailed, type Expansion } from './arm';
import { type Compiled } from './compile';
import {
  appSettings,
  compiledMain,
  deployMain,
  ofType,
  properties,
  runtimeOf,
  single,
  VAULT_A,
  VAULT_B,
} from './deployment';
import { readText } from './helpers';

/**
 * BROKER_TARGETS as deployed (contract §4): managedTargetIds lists resources of
 * any kind, each kind gets its own custom role with only what the broker calls
 * on it, assigned per resource, and the storage kind also gets the service
 * tag read on its subscriptions. Read from the compiled, expanded ARM JSON
 * (test/infra/deployment.ts).
 */

let compiled: Compiled;
const unavailable = compiledMain('test/infra/targets.test.ts', (built) => {
  compiled = built;
});

const SUB_1 = '11111111-1111-1111-1111-111111111111'; // VAULT_A's subscription
const SUB_2 = '22222222-2222-2222-2222-222222222222'; // VAULT_B's subscription
const SUB_3 = '33333333-3333-3333-3333-333333333333';
const SUB_4 = '44444444-4444-4444-4444-444444444444';

const STORAGE_STATE = `/subscriptions/${SUB_1}/resourceGroups/rg-tfstate/providers/Microsoft.Storage/storageAccounts/sttfstate`;
const STORAGE_LOGS = `/subscriptions/${SUB_1}/resourceGroups/rg-logs/providers/Microsoft.Storage/storageAccounts/stlogs`;
/** In SUB_5, written in capitals here: still one subscription. */
const SUB_5 = 'abcdefab-cdef-abcd-efab-cdefabcdefab';
const STORAGE_BACKUP = `/subscriptions/${SUB_5.toUpperCase()}/resourceGroups/rg-bk/providers/Microsoft.Storage/storageAccounts/stbackup`;
const STORAGE_BACKUP_2 = `/subscriptions/${SUB_5}/resourceGroups/rg-bk/providers/Microsoft.Storage/storageAccounts/stbackup2`;
/** The provider written in other cases, as a hand-typed ID may be: still a storage account. */
const STORAGE_ARTIFACTS_GIVEN = `/subscriptions/${SUB_3}/resourceGroups/rg-artifacts/providers/microsoft.storage/StorageAccounts/startifacts`;
const STORAGE_ARTIFACTS = `/subscriptions/${SUB_3}/resourceGroups/rg-artifacts/providers/Microsoft.Storage/storageAccounts/startifacts`;
const SQL_SERVER = `/subscriptions/${SUB_2}/resourceGroups/rg-sql/providers/Microsoft.Sql/servers/sql-orders`;
const TARGET_VAULT = `/subscriptions/${SUB_4}/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-t`;

const MIXED = [STORAGE_STATE, SQL_SERVER, STORAGE_ARTIFACTS_GIVEN, TARGET_VAULT, STORAGE_LOGS];

const STORAGE_ACTIONS = [
  'Microsoft.Storage/storageAccounts/read',
  'Microsoft.Storage/storageAccounts/write',
];
const SQL_ACTIONS = ['Microsoft.Sql/servers/read', 'Microsoft.Sql/servers/firewallRules/*'];
const SERVICE_TAG_ACTIONS = ['Microsoft.Network/locations/serviceTags/read'];
const VAULT_ACTIONS = ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write'];

interface Permission {
  actions: string[];
  notActions: string[];
  dataActions: string[];
  notDataActions: string[];
}

/** The custom roles deployed at subscription scope (the audit appender lives in the resource group). */
function subscriptionRoles(expansion: Expansion) {
  return ofType(expansion, 'Microsoft.Authorization/roleDefinitions')
    .filter((role) => role.resourceGroup === '')
    .map((role) => {
      const props = properties(role);
      return {
        guid: role.name,
        roleName: String(props.roleName),
        permissions: props.permissions as Permission[],
        assignableScopes: props.assignableScopes as string[],
      };
    });
}

/**
 * Every role assignment of the broker's identity to a managed resource (not
 * its own resource group), as `<the role's actions> at <scope>`: the scope of
 * an extension resource, or the subscription a subscription-scope assignment
 * is deployed to. Also checks that each is deployed into the resource's own
 * subscription and resource group.
 */
function targetAssignments(expansion: Expansion): string[] {
  const roles = new Map(
    subscriptionRoles(expansion).map((role) => [role.guid, role.permissions[0]?.actions ?? []]),
  );
  const principal = runtimeOf(
    single(expansion, 'Microsoft.ManagedIdentity/userAssignedIdentities'),
    'principalId',
  );
  const site = single(expansion, 'Microsoft.Web/sites');
  return ofType(expansion, 'Microsoft.Authorization/roleAssignments')
    .filter(
      (a) => a.subscriptionId !== site.subscriptionId || a.resourceGroup !== site.resourceGroup,
    )
    .map((a) => {
      const props = properties(a);
      expect(asText(props.principalId)).toBe(principal);
      expect(props.principalType).toBe('ServicePrincipal');
      const scope = a.scope ?? `/subscriptions/${a.subscriptionId}`;
      const home = `/subscriptions/${a.subscriptionId}${a.resourceGroup ? `/resourceGroups/${a.resourceGroup}` : ''}`;
      expect(
        scope.toLowerCase().startsWith(home.toLowerCase()),
        `${scope} deployed to ${home}`,
      ).toBe(true);
      const guid = /roleDefinitions\/([\w-]+)$/.exec(String(props.roleDefinitionId))?.[1] ?? '';
      return `${(roles.get(guid) ?? [`unknown role ${guid}`]).join(' + ')} at ${scope}`;
    })
    .sort();
}

const at = (actions: string[], scope: string) => `${actions.join(' + ')} at ${scope}`;

describe.skipIf(unavailable !== undefined)('BROKER_TARGETS in the compiled deployment', () => {
  const mixed = () => deployMain(compiled, { managedTargetIds: MIXED });

  it('When the targets mix kinds, Then each managed resource gets exactly its kind’s role at its own scope, and each storage subscription the service tag read', () => {
    expect(targetAssignments(mixed())).toEqual(
      [
        at(VAULT_ACTIONS, VAULT_A),
        at(VAULT_ACTIONS, VAULT_B),
        at(VAULT_ACTIONS, TARGET_VAULT),
        at(STORAGE_ACTIONS, STORAGE_STATE),
        at(STORAGE_ACTIONS, STORAGE_LOGS),
        at(STORAGE_ACTIONS, STORAGE_ARTIFACTS),
        at(SQL_ACTIONS, SQL_SERVER),
        // Two accounts in SUB_1 share one assignment there.
        at(SERVICE_TAG_ACTIONS, `/subscriptions/${SUB_1}`),
        at(SERVICE_TAG_ACTIONS, `/subscriptions/${SUB_3}`),
      ].sort(),
    );
  });

  it('When the roles are defined, Then each grants its kind’s actions and nothing more, assignable only in the subscriptions of its resources', () => {
    const roles = subscriptionRoles(mixed());
    const byActions = (actions: string[]) =>
      roles.find(
        (role) => JSON.stringify(role.permissions[0]?.actions) === JSON.stringify(actions),
      );
    expect(roles).toHaveLength(4);
    const expected: [string[], string[]][] = [
      [VAULT_ACTIONS, [SUB_1, SUB_2, SUB_4]],
      [STORAGE_ACTIONS, [SUB_1, SUB_3]],
      [SQL_ACTIONS, [SUB_2]],
      [SERVICE_TAG_ACTIONS, [SUB_1, SUB_3]],
    ];
    for (const [actions, subscriptions] of expected) {
      const role = byActions(actions);
      expect(role?.permissions, actions.join()).toEqual([
        { actions, notActions: [], dataActions: [], notDataActions: [] },
      ]);
      expect(role?.assignableScopes).toEqual(subscriptions.map((sub) => `/subscriptions/${sub}`));
    }
    expect(new Set(roles.map((role) => role.roleName)).size).toBe(4);
    expect(new Set(roles.map((role) => role.guid)).size).toBe(4);
    // Names of the kinds' roles say what they are, per environment.
    expect(roles.map((role) => role.roleName).sort()).toEqual([
      'kv-lease SQL firewall writer (dev)',
      'kv-lease service tag reader (dev)',
      'kv-lease storage firewall writer (dev)',
      'kv-lease vault firewall writer (dev)',
    ]);
  });

  it('When a role gains an action, Then the assignment check names it (negative)', () => {
    const expansion = mixed();
    const storageRole = ofType(expansion, 'Microsoft.Authorization/roleDefinitions').find((role) =>
      String(properties(role).roleName).startsWith('kv-lease storage'),
    );
    const permissions = properties(storageRole ?? single(expansion, 'none'))
      .permissions as Permission[];
    permissions[0]?.actions.push('Microsoft.Storage/storageAccounts/listkeys/action');
    expect(targetAssignments(expansion)).toContain(
      at([...STORAGE_ACTIONS, 'Microsoft.Storage/storageAccounts/listkeys/action'], STORAGE_STATE),
    );
    expect(targetAssignments(expansion)).not.toContain(at(STORAGE_ACTIONS, STORAGE_STATE));
  });

  it('When the targets are given, Then BROKER_TARGETS carries them as listed and BROKER_VAULTS is unchanged', () => {
    const settings = appSettings(
      deployMain(compiled, { managedTargetIds: [` ${STORAGE_STATE} `, SQL_SERVER] }),
    );
    expect(settings.BROKER_TARGETS).toBe(`${STORAGE_STATE},${SQL_SERVER}`);
    expect(settings.BROKER_VAULTS).toBe(`${VAULT_A},${VAULT_B}`);
    // Without targets the setting is there, empty: the broker reads it as "none".
    expect(appSettings(deployMain(compiled)).BROKER_TARGETS).toBe('');
  });

  it('When no storage account is managed, Then there is no storage role, no service tag role and no assignment at a subscription', () => {
    const expansion = deployMain(compiled, { managedTargetIds: [SQL_SERVER, TARGET_VAULT] });
    expect(targetAssignments(expansion)).toEqual(
      [
        at(VAULT_ACTIONS, VAULT_A),
        at(VAULT_ACTIONS, VAULT_B),
        at(VAULT_ACTIONS, TARGET_VAULT),
        at(SQL_ACTIONS, SQL_SERVER),
      ].sort(),
    );
    expect(
      subscriptionRoles(expansion)
        .map((role) => role.roleName)
        .sort(),
    ).toEqual(['kv-lease SQL firewall writer (dev)', 'kv-lease vault firewall writer (dev)']);
    expect(expansion.outputs.KV_LEASE_STORAGE_ROLE_ID).toBe('');
    expect(expansion.outputs.KV_LEASE_SERVICE_TAG_ROLE_ID).toBe('');
    expect(expansion.outputs.KV_LEASE_SQL_ROLE_ID).toMatch(/^[0-9a-f-]{36}$/);
    // And the default deployment (vaults only) has neither.
    expect(subscriptionRoles(deployMain(compiled)).map((role) => role.roleName)).toEqual([
      'kv-lease vault firewall writer (dev)',
    ]);
  });

  it('When only storage accounts are managed, Then no vault role is defined (it would be assignable nowhere) and BROKER_VAULTS is empty', () => {
    const expansion = deployMain(compiled, {
      managedVaultIds: [],
      managedTargetIds: [STORAGE_STATE],
    });
    expect(targetAssignments(expansion)).toEqual(
      [
        at(STORAGE_ACTIONS, STORAGE_STATE),
        at(SERVICE_TAG_ACTIONS, `/subscriptions/${SUB_1}`),
      ].sort(),
    );
    expect(
      subscriptionRoles(expansion)
        .map((role) => role.roleName)
        .sort(),
    ).toEqual(['kv-lease service tag reader (dev)', 'kv-lease storage firewall writer (dev)']);
    expect(appSettings(expansion).BROKER_VAULTS).toBe('');
    expect(expansion.outputs.KV_LEASE_VAULT_ROLE_ID).toBe('');
  });

  it('When two accounts name one subscription in different letter case, Then it gets one service tag assignment', () => {
    const expansion = deployMain(compiled, {
      managedTargetIds: [STORAGE_BACKUP, STORAGE_BACKUP_2],
    });
    expect(
      targetAssignments(expansion).filter((a) => a.startsWith(SERVICE_TAG_ACTIONS.join(' + '))),
    ).toEqual([at(SERVICE_TAG_ACTIONS, `/subscriptions/${SUB_5}`)]);
    const storageRole = subscriptionRoles(expansion).find((role) =>
      role.roleName.startsWith('kv-lease storage'),
    );
    expect(storageRole?.assignableScopes).toEqual([`/subscriptions/${SUB_5}`]);
  });

  it('When a vault is listed in both settings, Then it gets one role assignment', () => {
    const expansion = deployMain(compiled, { managedTargetIds: [VAULT_A] });
    expect(targetAssignments(expansion)).toEqual(
      [at(VAULT_ACTIONS, VAULT_A), at(VAULT_ACTIONS, VAULT_B)].sort(),
    );
  });

  it.each([
    ['another kind', `/subscriptions/${SUB_1}/resourceGroups/rg/providers/Microsoft.Web/sites/app`],
    ['a child resource', `${STORAGE_STATE}/blobServices/default`],
    ['a name only', 'sttfstate'],
    ['a resource group ID', `/subscriptions/${SUB_1}/resourceGroups/rg-tfstate`],
  ])('When a target ID is %s, Then the deployment fails naming it', (_what, id) => {
    expect(() => deployMain(compiled, { managedTargetIds: [STORAGE_STATE, id] })).toThrow(
      DeploymentFailed,
    );
    expect(() => deployMain(compiled, { managedTargetIds: [STORAGE_STATE, id] })).toThrow(id);
  });

  it('When neither list names a resource, Then the deployment fails saying so', () => {
    expect(() => deployMain(compiled, { managedVaultIds: [] })).toThrow(
      /managedVaultIds and managedTargetIds are both empty/,
    );
  });

  it('When azd provisions, Then KV_LEASE_TARGET_IDS feeds managedTargetIds and is optional like the vault list', () => {
    const file = readText('infra/main.parameters.json');
    expect(file).toMatch(/"managedTargetIds":\s*\{\s*"value": "\$\{KV_LEASE_TARGET_IDS=\[\]\}"/);
    expect(file).toMatch(/"managedVaultIds":\s*\{\s*"value": "\$\{KV_LEASE_VAULT_IDS=\[\]\}"/);
  });
});
