// Lets the broker's identity rewrite the firewall of ONE managed Storage
// account (a BROKER_TARGETS entry of kind storage). Deployed by main.bicep
// once per account, at the scope of the account's own resource group (which
// may be in another subscription).
//
// The broker reads the account (its networkAcls, its location for the
// same-region check, its blob endpoint for clients to probe) and PATCHes
// properties.networkAcls.ipRules: Microsoft.Storage/storageAccounts/read and
// .../write on the account, through the custom role main.bicep defines
// (custom-role.bicep with these two actions), and nothing more.
//
// What the role deliberately leaves out, compared with Storage Account
// Contributor: listKeys/action and regenerateKey/action (the account keys are
// full data access), delete, and every data action. What it cannot narrow:
// storageAccounts/write covers every property of the account, so the identity
// could also turn defaultAction to Allow or shared keys on (never the keys
// themselves). The broker writes only ipRules (contract §4); the role is
// scoped to each managed account, never wider.
targetScope = 'resourceGroup'

@minLength(3)
@maxLength(24)
@description('Name of the Storage account, in this resource group.')
param storageAccountName string

@description('Principal (object) ID of the broker identity.')
param principalId string

@description('GUID of the storage firewall writer role (custom-role.bicep).')
param roleGuid string

// `existing` also makes the deployment fail early on a wrong account ID.
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource firewallWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleGuid)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'kv-lease broker: adds and removes time-limited IP rules on this storage account'
  }
}

output storageAccountId string = account.id
