// Optional, and better than Key Vault Contributor: a custom role that can only
// read a vault and write it, which is all the broker does (GET the vault, then
// PATCH properties.networkAcls). Key Vault Contributor grants
// Microsoft.KeyVault/* on the vault: delete it, manage its private endpoint
// connections, start deployments and more, none of which the broker needs.
//
// What it cannot fix: vaults/write still covers every property of the vault,
// so on an access-policy vault it can still add an access policy (data access
// for itself). RBAC-mode vaults close that path; see vault-access.bicep.
//
// Deployed by main.bicep when useCustomVaultRole is true, or on its own:
//   az deployment sub create --location <region> --template-file infra/custom-role.bicep
// Creating a role definition needs Owner or User Access Administrator. A new
// role can take a few minutes to replicate: if the role assignments of the
// same deployment fail with RoleDefinitionDoesNotExist, run it again.
targetScope = 'subscription'

@description('Display name of the role; unique in the tenant.')
param roleName string = 'kv-lease vault firewall writer'

@description('GUID of the role definition; stable, so a redeployment updates the role in place.')
param roleGuid string = guid(tenant().tenantId, 'kv-lease', roleName)

@description('Where the role may be assigned: the subscriptions (/subscriptions/<id>) of the managed vaults.')
param assignableScopes array = [
  subscription().id
]

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleGuid
  properties: {
    roleName: roleName
    description: 'kv-lease broker: read a Key Vault and write its properties (the firewall networkAcls). Assign it per vault.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.KeyVault/vaults/read'
          'Microsoft.KeyVault/vaults/write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: assignableScopes
  }
}

output roleGuid string = role.name
output roleDefinitionId string = role.id
