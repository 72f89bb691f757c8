// Roles of the broker's identity (and of the operators reading the audit
// trail) on the broker's own resources, each at the narrowest scope the
// platform offers. Built-in role definition IDs are the same in every tenant.
//
//   what                    role                                   scope
//   host storage, package   Storage Blob Data Owner                the storage account (blob only)
//   lease table             Storage Table Data Contributor         the lease table
//   audit table             kv-lease audit appender (custom)       the audit table
//   audit table (operators) Storage Table Data Reader              the audit table
//   telemetry               Monitoring Metrics Publisher           the Application Insights component
//
// The audit appender may query entities and insert new ones, nothing else:
// no update, no replace, no delete, no table delete. So the trail is
// append-only by the platform, not only by the broker's code.

@description('Storage account of the host, the deployment package and the lease tables.')
param storageAccountName string

@description('Table of the leases (LEASE_TABLE_NAME); the audit table is <leaseTableName>audit.')
param leaseTableName string

@description('Application Insights component that receives the telemetry.')
param appInsightsName string

@description('Principal (object) ID of the broker identity.')
param principalId string

@description('Principals that may read the audit trail straight from storage: [{ id: <object id>, type: User | Group | ServicePrincipal }].')
param auditReaders array = []

@description('Display name of the audit appender role; unique in the tenant.')
param auditRoleName string

// Blob: the host's locks and timer state (AzureWebJobsStorage) and the Flex
// Consumption deployment package. The host creates its own containers, so
// this one stays at the account; it grants nothing on tables.
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Leases: read, insert, update, delete entities of the lease table only.
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
// Operators: query the audit table's entities, nothing else.
var storageTableDataReaderRoleId = '76199698-9eea-4c19-bc75-cec21354c6b6'
// Application Insights with local authentication disabled.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

// Data actions per the Azure Storage authorization table for the Table
// service: Query Entities = entities/read; Insert Entity = entities/write OR
// entities/add/action. `add/action` inserts only: Update, Merge, Replace
// (entities/update/action or entities/write) and Delete (entities/delete)
// are refused. A transaction of inserts needs no more than add.
var auditAppenderDataActions = [
  'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read'
  'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'
]
// NOTE: the deployment creates the audit table (storage.bicep), but the
// broker's audit adapter still calls Create Table once per process, and Create
// Table is authorised as tables/write. On the existing table that call is
// answered 409 (already exists) and treated as success; without the action it
// would be 403 and every audit write would fail. tables/write at the table
// scope cannot touch entities, delete the table (tables/delete) or set its ACL
// (tables/setAcl/action; ACLs only matter for SAS, and shared keys are off).
var auditAppenderActions = [
  'Microsoft.Storage/storageAccounts/tableServices/tables/write'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource tableService 'tableServices' existing = {
    name: 'default'

    resource leaseTable 'tables' existing = {
      name: leaseTableName
    }

    resource auditTable 'tables' existing = {
      name: '${leaseTableName}audit'
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Assignable in this resource group only; assigned below to the audit table alone.
resource auditAppender 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'kv-lease', 'audit-appender')
  properties: {
    roleName: auditRoleName
    description: 'kv-lease broker: read the audit table and insert new entries; never update or delete one.'
    type: 'CustomRole'
    permissions: [
      {
        actions: auditAppenderActions
        notActions: []
        dataActions: auditAppenderDataActions
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwnerRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource leaseTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::tableService::leaseTable.id, principalId, storageTableDataContributorRoleId)
  scope: storage::tableService::leaseTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource auditTableAppender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::tableService::auditTable.id, principalId, auditAppender.name)
  scope: storage::tableService::auditTable
  properties: {
    // A role definition is a subscription-level resource wherever it is declared.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', auditAppender.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource auditTableReaders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for reader in auditReaders: {
    name: guid(storage::tableService::auditTable.id, reader.id, storageTableDataReaderRoleId)
    scope: storage::tableService::auditTable
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataReaderRoleId)
      principalId: reader.id
      principalType: reader.type
    }
  }
]

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output auditRoleDefinitionId string = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', auditAppender.name)
