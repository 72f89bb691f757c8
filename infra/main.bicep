// kv-lease on Azure: a Flex Consumption Function App (Node.js 22) with a
// user-assigned identity, keyless storage for its deployment package and the
// lease and audit tables (roles scoped per table), the API's Entra app
// registration (Microsoft Graph extension), Application Insights on Log
// Analytics with alerts and a workbook, and write access to the firewall of
// each managed resource (Key Vaults, Storage accounts, SQL servers), each
// through a custom role holding only what the broker calls. Deployed by
// `azd up` (see README.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; with the subscription and location it seeds the names of all resources.')
param environmentName string

@minLength(1)
@description('Region of all resources. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Name of the resource group to create; empty for rg-<environmentName>.')
param resourceGroupName string = ''

@description('Resource IDs of the Key Vaults the broker manages (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>), BROKER_VAULTS. Vault names must be unique: the API names a vault by its name. Vaults may live in other resource groups and subscriptions. This list or managedTargetIds must name at least one resource.')
param managedVaultIds array = []

@description('Resource IDs of the other firewalls the broker manages (BROKER_TARGETS), of any kind: Microsoft.KeyVault/vaults, Microsoft.Storage/storageAccounts, Microsoft.Sql/servers. They may live in other resource groups and subscriptions. Names (the last segment) must be unique across both lists.')
param managedTargetIds array = []

// ---- The API's app registration (app-registration.bicep) -------------------

@description('Create the API\'s Entra app registration, its service principal and app role assignments (needs an Entra right to create applications). false: bring an existing registration (appIdUri and existingAppClientId).')
param createAppRegistration bool = true

@description('Application ID URI of the API; empty for api://<tenant-id>/kv-lease-<environmentName> (a new registration) or when bringing one (then give it here).')
param appIdUri string = ''

@description('Client (application) ID of an existing registration, when createAppRegistration is false.')
param existingAppClientId string = ''

@description('Accepted token audiences (AUTH_AUDIENCE), comma-separated; empty derives them from the registration (its App ID URI and client ID).')
param authAudience string = ''

@description('Object ID of the deployer, owner of the new registration; azd passes AZURE_PRINCIPAL_ID. Empty: the deploying principal.')
param deployerPrincipalId string = ''

@description('Object IDs of the pipeline identities (service principals, managed identities) given Lease.Request.')
param leaseRequestPrincipalIds array = []

@description('Object IDs of operators (users, groups, service principals) given Lease.Read.')
param leaseReadPrincipalIds array = []

@description('Object IDs of operators (users, groups, service principals) given Lease.Admin.')
param leaseAdminPrincipalIds array = []

@description('More redirect URIs of the operator console, e.g. a custom domain or http://localhost:7071/api/console; https://<function app>.azurewebsites.net/api/console is always registered.')
param consoleRedirectUris array = []

@description('Grant tenant-wide consent for the operator console (needs an Entra role that may grant consent); otherwise each operator consents at first sign-in.')
param grantConsoleConsent bool = false

// ---- Audit trail readers and alerts -----------------------------------------

@description('Principals that may read the audit table straight from storage (Storage Table Data Reader on that table only): [{ id: <object id>, type: \'User\' | \'Group\' | \'ServicePrincipal\' }].')
param auditReaders array = []

@description('Resource IDs of existing action groups that receive the alerts.')
param alertActionGroupIds array = []

@description('E-mail addresses for a new action group that receives the alerts.')
param alertEmailAddresses array = []

@minValue(1)
@maxValue(20)
@description('Minutes between two sweeps: the period of sweepSchedule (1 for the default). The sweep alert fires after 3 periods without one.')
param sweepPeriodMinutes int = 1

@description('Create the operator workbook (Azure Monitor).')
param createWorkbook bool = true

@description('Entra tenant whose tokens the broker accepts; empty means this deployment\'s tenant.')
param authTenantId string = tenant().tenantId

@minLength(3)
@maxLength(58) // the audit table is named <leaseTableName>audit, at most 63 characters
@description('Table Storage table of the leases; the audit trail goes to <leaseTableName>audit.')
param leaseTableName string = 'kvlease'

@minValue(1)
@maxValue(604800)
@description('TTL of a lease whose request names none, in seconds.')
param leaseDefaultTtlSeconds int = 1200

@minValue(1)
@maxValue(604800)
@description('Shortest TTL a caller may ask for, in seconds.')
param leaseMinTtlSeconds int = 60

@minValue(1)
@maxValue(604800)
@description('Longest TTL a caller may ask for, in seconds.')
param leaseMaxTtlSeconds int = 7200

@minValue(8)
@maxValue(32)
@description('Widest CIDR prefix a Lease.Admin may lease.')
param leaseMinPrefix int = 24

@minValue(1)
@maxValue(200)
@description('How long a grant may wait for the vault firewall write before it answers 503, in seconds.')
param leaseApplyTimeoutSeconds int = 30

@minValue(1)
@maxValue(1000)
@description('Most active leases one principal may hold at once.')
param leaseMaxActivePerPrincipal int = 20

@minValue(1)
@maxValue(3650)
@description('How many days ended leases stay in the lease history before the sweep removes them; the audit trail keeps everything.')
param leaseHistoryDays int = 90

@description('Who may lease which vault (LEASE_POLICY): rules like { name: \'prod pipelines\', vaults: [ \'kv-prod\' ], appIds: [ \'<guid>\' ], maxTtlSeconds: 1800 } (appIds and/or oids; \'*\' for any). Empty: any Lease.Request caller may lease any managed vault.')
param leasePolicy array = []

@description('Six-field NCRONTAB schedule (seconds first) of the sweep timer.')
param sweepSchedule string = '0 */1 * * * *'

// NOTE: Flex Consumption scales the timer on its own and wakes the app for each
// tick, so the sweep runs without any always-ready instance. `function:sweep`
// = 1 keeps one instance warm for it (no cold start on the tick) at the price
// of an always-ready baseline: opt in when the sweep's latency matters.
@minValue(0)
@maxValue(1)
@description('Always-ready instances for the sweep timer (Flex Consumption always-ready entry "function:sweep"); 0 = none.')
param sweepAlwaysReadyInstances int = 0

// NOTE: Node.js 20 reached end of life on 30 April 2026 and is no longer a
// choice. 22 is the default (maintenance LTS, end of life 30 April 2027); 24
// is the next LTS. See infra/README.md, "Runtime".
@allowed([
  '22'
  '24'
])
@description('Node.js version of the Functions runtime (package.json engines and .nvmrc agree).')
param nodeVersion string = '22'

@allowed([
  512
  2048
  4096
])
@description('Memory of one Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Most instances Flex Consumption may scale out to.')
param maximumInstanceCount int = 100

@description('Grant the broker the custom role of custom-role.bicep (read and write of vaults only); false falls back to Key Vault Contributor. Deploying a role definition needs Owner or User Access Administrator on the subscription.')
param useCustomVaultRole bool = true

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-kvlease-${resourceToken}'
var storageAccountName = 'stkvlease${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
var tableServiceUri = 'https://${storageAccountName}.table.${environment().suffixes.storage}'
var vaultIds = empty(managedVaultIds) && empty(managedTargetIds)
  ? fail('managedVaultIds and managedTargetIds are both empty: name at least one resource for the broker to manage')
  : map(managedVaultIds, id => trim(string(id)))

// ---- The targets (BROKER_TARGETS): the kind of each ID ------------------------
// '/subscriptions/<sub>/resourceGroups/<rg>/providers/<namespace>/<type>/<name>'
// split on '/' gives ['', 'subscriptions', <sub>, 'resourceGroups', <rg>,
// 'providers', <namespace>, <type>, <name>]: the kind is <namespace>/<type>,
// compared in lower case (Resource Manager treats IDs case-insensitively). An
// ID of another shape or kind gets the type '' and stops the deployment below.
var targetIds = map(managedTargetIds, id => trim(string(id)))
var parsedTargets = map(targetIds, id => {
  id: id
  type: length(split(id, '/')) != 9
    ? ''
    : toLower('${split(id, '/')[1]}/${split(id, '/')[3]}/${split(id, '/')[5]}') != 'subscriptions/resourcegroups/providers'
        ? ''
        : toLower('${split(id, '/')[6]}/${split(id, '/')[7]}')
})
var targetTypes = {
  keyvault: 'microsoft.keyvault/vaults'
  storage: 'microsoft.storage/storageaccounts'
  sql: 'microsoft.sql/servers'
}
var supportedTargetTypes = [
  targetTypes.keyvault
  targetTypes.storage
  targetTypes.sql
]
var unsupportedTargetIds = map(filter(parsedTargets, t => !contains(supportedTargetTypes, t.type)), t => t.id)
// NOTE: a wrong ID fails the deployment here, naming it, rather than being
// passed on to BROKER_TARGETS without a role (the broker would refuse it at
// start, after a deployment that looked fine).
var targets = empty(unsupportedTargetIds)
  ? parsedTargets
  : fail('managedTargetIds: not the resource ID of a Key Vault, Storage account or SQL server (/subscriptions/<id>/resourceGroups/<rg>/providers/<Microsoft.KeyVault/vaults | Microsoft.Storage/storageAccounts | Microsoft.Sql/servers>/<name>): ${join(unsupportedTargetIds, ', ')}')
var storageAccountIds = map(filter(targets, t => t.type == targetTypes.storage), t => t.id)
var sqlServerIds = map(filter(targets, t => t.type == targetTypes.sql), t => t.id)
// A vault may be listed in either setting; it gets one role assignment.
var allVaultIds = union(vaultIds, map(filter(targets, t => t.type == targetTypes.keyvault), t => t.id))

// The subscriptions (/subscriptions/<sub>) of a list of IDs, each once
// (subscription IDs are GUIDs: lower case, so that one written in capitals is
// not a second subscription).
var vaultSubscriptionScopes = union(map(allVaultIds, id => '/subscriptions/${toLower(split(id, '/')[2])}'), [])
var storageSubscriptionScopes = union(map(storageAccountIds, id => '/subscriptions/${toLower(split(id, '/')[2])}'), [])
var sqlSubscriptionScopes = union(map(sqlServerIds, id => '/subscriptions/${toLower(split(id, '/')[2])}'), [])
var customVaultRoleName = 'kv-lease vault firewall writer (${environmentName})'
var customVaultRoleGuid = guid(tenant().tenantId, 'kv-lease', customVaultRoleName)
var storageRoleName = 'kv-lease storage firewall writer (${environmentName})'
var storageRoleGuid = guid(tenant().tenantId, 'kv-lease', storageRoleName)
var sqlRoleName = 'kv-lease SQL firewall writer (${environmentName})'
var sqlRoleGuid = guid(tenant().tenantId, 'kv-lease', sqlRoleName)
var serviceTagRoleName = 'kv-lease service tag reader (${environmentName})'
var serviceTagRoleGuid = guid(tenant().tenantId, 'kv-lease', serviceTagRoleName)
var sweepAlwaysReadyEntry = {
  name: 'function:sweep' // always-ready entry of the timer function named sweep
  instanceCount: sweepAlwaysReadyInstances
}
var sweepAlwaysReady = sweepAlwaysReadyInstances > 0 ? [sweepAlwaysReadyEntry] : []
var auditRoleName = 'kv-lease audit appender (${environmentName}, ${resourceToken})'

// The Function App's default host name, known before it exists, so the app
// registration (console redirect URI) and the app settings (AUTH_AUDIENCE)
// do not depend on each other.
var functionAppHostName = '${functionAppName}.azurewebsites.net'
var consoleRedirectUri = 'https://${functionAppHostName}/api/console'
var identifierUri = !empty(appIdUri) ? appIdUri : 'api://${tenant().tenantId}/kv-lease-${environmentName}'
var ownerPrincipalId = !empty(deployerPrincipalId) ? deployerPrincipalId : deployer().objectId
// `!`: the module exists exactly when createAppRegistration is true, the same test.
var appClientId = createAppRegistration ? appRegistration!.outputs.appId : existingAppClientId
// v1 tokens carry the App ID URI in aud, v2 tokens the client ID: accept both.
var derivedAudiences = join(filter([identifierUri, appClientId], value => !empty(value)), ',')
var authAudiences = !empty(authAudience) ? authAudience : derivedAudiences

// The settings the broker reads (src/app/config.ts, ConfigSchema). Emulator-only
// settings are left out on purpose: in Azure the broker talks to the real
// Resource Manager with its managed identity, and AUTH_MODE is always entra.
var brokerSettings = {
  BROKER_VAULTS: join(vaultIds, ',')
  BROKER_TARGETS: join(map(targets, t => t.id), ',')
  LEASE_STORAGE__tableServiceUri: tableServiceUri
  LEASE_TABLE_NAME: leaseTableName
  AUTH_MODE: 'entra'
  AUTH_TENANT_ID: empty(authTenantId) ? tenant().tenantId : authTenantId
  AUTH_AUDIENCE: authAudiences
  LEASE_DEFAULT_TTL_SECONDS: string(leaseDefaultTtlSeconds)
  LEASE_MIN_TTL_SECONDS: string(leaseMinTtlSeconds)
  LEASE_MAX_TTL_SECONDS: string(leaseMaxTtlSeconds)
  LEASE_MIN_PREFIX: string(leaseMinPrefix)
  LEASE_APPLY_TIMEOUT_SECONDS: string(leaseApplyTimeoutSeconds)
  LEASE_MAX_ACTIVE_PER_PRINCIPAL: string(leaseMaxActivePerPrincipal)
  LEASE_HISTORY_DAYS: string(leaseHistoryDays)
  LEASE_POLICY: empty(leasePolicy) ? '' : string(leasePolicy) // JSON text; empty means no policy
  SWEEP_SCHEDULE: sweepSchedule
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

// The broker's identity: storage, Application Insights and the vault firewalls.
module identity 'identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-kvlease-${resourceToken}'
    location: location
    tags: tags
  }
}

module appInsights 'app-insights.bicep' = {
  name: 'appinsights'
  scope: rg
  params: {
    workspaceName: 'log-kvlease-${resourceToken}'
    componentName: 'appi-kvlease-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: 30
  }
}

// NOTE: every module is a local file, none comes from a registry (Azure
// Verified Modules included): a registry module cannot be restored offline, so
// it could not be compiled and checked here (infra/README.md, "What is and is
// not compiled here").
module storage 'storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: storageAccountName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    tableNames: [
      leaseTableName
      '${leaseTableName}audit'
    ]
  }
}

module rbac 'rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    leaseTableName: leaseTableName
    appInsightsName: appInsights.outputs.name
    principalId: identity.outputs.principalId
    auditReaders: auditReaders
    auditRoleName: auditRoleName
  }
  // The table-scoped assignments need the tables: storage.outputs makes rbac wait for storage.
}

module appRegistration 'app-registration.bicep' = if (createAppRegistration) {
  name: 'app-registration'
  scope: rg
  params: {
    uniqueName: 'kv-lease-api-${resourceToken}'
    displayName: 'kv-lease API (${environmentName})'
    identifierUri: identifierUri
    ownerPrincipalId: ownerPrincipalId
    consoleRedirectUris: union([consoleRedirectUri], consoleRedirectUris)
    grantConsoleConsent: grantConsoleConsent
    leaseRequestPrincipalIds: leaseRequestPrincipalIds
    leaseReadPrincipalIds: leaseReadPrincipalIds
    leaseAdminPrincipalIds: leaseAdminPrincipalIds
  }
}

module alerts 'monitoring.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: 'kvlease-${resourceToken}'
    appInsightsName: appInsights.outputs.name
    actionGroupIds: alertActionGroupIds
    alertEmailAddresses: alertEmailAddresses
    sweepPeriodMinutes: sweepPeriodMinutes
    createWorkbook: createWorkbook
  }
}

module api 'function-app.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    planName: 'plan-kvlease-${resourceToken}'
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    appInsightsConnectionString: appInsights.outputs.connectionString
    nodeVersion: nodeVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReady: sweepAlwaysReady
    appSettings: union(brokerSettings, {
      // DefaultAzureCredential picks the user-assigned identity by its client ID.
      AZURE_CLIENT_ID: identity.outputs.clientId
    })
  }
  // The host needs its storage roles before its first start.
  dependsOn: [
    rbac
  ]
}

// Optional: a role limited to reading and writing vaults (see custom-role.bicep).
// Not without a vault: a role must be assignable somewhere.
module customRole 'custom-role.bicep' = if (useCustomVaultRole && !empty(allVaultIds)) {
  name: 'kvlease-custom-role'
  params: {
    roleName: customVaultRoleName
    roleGuid: customVaultRoleGuid
    assignableScopes: vaultSubscriptionScopes
  }
}

// One role assignment per managed vault, scoped to that vault only, in the
// vault's own subscription and resource group.
module vaultAccess 'vault-access.bicep' = [
  for vaultId in allVaultIds: {
    name: take('kvlease-vault-access-${uniqueString(vaultId, environmentName)}', 64)
    scope: resourceGroup(split(vaultId, '/')[2], split(vaultId, '/')[4])
    params: {
      vaultName: last(split(vaultId, '/'))
      principalId: identity.outputs.principalId
      customRoleGuid: useCustomVaultRole ? customVaultRoleGuid : ''
    }
    dependsOn: [
      customRole
    ]
  }
]

// ---- Storage accounts and SQL servers (BROKER_TARGETS) ------------------------
// Each kind has its own custom role holding only the actions the broker calls
// on it, assigned per resource in the resource's own resource group (see
// storage-access.bicep and sql-access.bicep for what each leaves out, and
// infra/README.md, "Who may do what, and why"). No built-in fallback: Storage
// Account Contributor can list the account keys (full data access) and SQL
// Server Contributor can change the server's administrators.

module storageRole 'custom-role.bicep' = if (!empty(storageAccountIds)) {
  name: 'kvlease-storage-role'
  params: {
    roleName: storageRoleName
    roleGuid: storageRoleGuid
    roleDescription: 'kv-lease broker: read a Storage account and write its properties (the firewall networkAcls.ipRules). Assign it per account.'
    actions: [
      'Microsoft.Storage/storageAccounts/read'
      'Microsoft.Storage/storageAccounts/write'
    ]
    assignableScopes: storageSubscriptionScopes
  }
}

module storageAccess 'storage-access.bicep' = [
  for accountId in storageAccountIds: {
    name: take('kvlease-storage-access-${uniqueString(accountId, environmentName)}', 64)
    scope: resourceGroup(split(accountId, '/')[2], split(accountId, '/')[4])
    params: {
      storageAccountName: last(split(accountId, '/'))
      principalId: identity.outputs.principalId
      roleGuid: storageRoleGuid
    }
    dependsOn: [
      storageRole
    ]
  }
]

// The same-region check of a storage grant reads Azure's service tags, an API
// of the subscription (service-tag-access.bicep): one assignment in each
// subscription that holds a managed account, none without one.
module serviceTagRole 'custom-role.bicep' = if (!empty(storageAccountIds)) {
  name: 'kvlease-service-tag-role'
  params: {
    roleName: serviceTagRoleName
    roleGuid: serviceTagRoleGuid
    roleDescription: 'kv-lease broker: read Azure service tags (the address ranges of each region), for the same-region check of storage leases. Assign it per subscription.'
    actions: [
      'Microsoft.Network/locations/serviceTags/read'
    ]
    assignableScopes: storageSubscriptionScopes
  }
}

module serviceTagAccess 'service-tag-access.bicep' = [
  for scope in storageSubscriptionScopes: {
    name: take('kvlease-service-tags-${uniqueString(scope, environmentName)}', 64)
    scope: subscription(split(scope, '/')[2])
    params: {
      principalId: identity.outputs.principalId
      roleGuid: serviceTagRoleGuid
    }
    dependsOn: [
      serviceTagRole
    ]
  }
]

module sqlRole 'custom-role.bicep' = if (!empty(sqlServerIds)) {
  name: 'kvlease-sql-role'
  params: {
    roleName: sqlRoleName
    roleGuid: sqlRoleGuid
    roleDescription: 'kv-lease broker: read an Azure SQL server and create, read and delete its server-level firewall rules. Assign it per server.'
    actions: [
      'Microsoft.Sql/servers/read'
      'Microsoft.Sql/servers/firewallRules/*'
    ]
    assignableScopes: sqlSubscriptionScopes
  }
}

module sqlAccess 'sql-access.bicep' = [
  for serverId in sqlServerIds: {
    name: take('kvlease-sql-access-${uniqueString(serverId, environmentName)}', 64)
    scope: resourceGroup(split(serverId, '/')[2], split(serverId, '/')[4])
    params: {
      serverName: last(split(serverId, '/'))
      principalId: identity.outputs.principalId
      roleGuid: sqlRoleGuid
    }
    dependsOn: [
      sqlRole
    ]
  }
]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output KV_LEASE_BROKER_URL string = api.outputs.url
output KV_LEASE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output KV_LEASE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
// What a pipeline and the hooks need (infra/hooks/*.mjs read them from the azd environment).
output KV_LEASE_APP_ID_URI string = identifierUri
output KV_LEASE_APP_CLIENT_ID string = appClientId
output KV_LEASE_SCOPE string = '${identifierUri}/.default'
output KV_LEASE_AUTH_AUDIENCE string = authAudiences
output KV_LEASE_CONSOLE_REDIRECT_URI string = consoleRedirectUri
// Set only when this deployment created the registration: predown deletes it then, never otherwise.
output KV_LEASE_APP_OBJECT_ID string = createAppRegistration ? appRegistration!.outputs.applicationObjectId : ''
output KV_LEASE_VAULT_ROLE_ID string = useCustomVaultRole && !empty(allVaultIds) ? customVaultRoleGuid : ''
// The roles of the other kinds, set only when deployed: postdown deletes them.
output KV_LEASE_STORAGE_ROLE_ID string = empty(storageAccountIds) ? '' : storageRoleGuid
output KV_LEASE_SQL_ROLE_ID string = empty(sqlServerIds) ? '' : sqlRoleGuid
output KV_LEASE_SERVICE_TAG_ROLE_ID string = empty(storageAccountIds) ? '' : serviceTagRoleGuid
output KV_LEASE_AUDIT_ROLE_DEFINITION_ID string = rbac.outputs.auditRoleDefinitionId
