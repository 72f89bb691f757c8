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
// main.bicep deploys the same module with other actions for the other kinds
// of target (BROKER_TARGETS): the storage and SQL firewall writers and the
// service tag reader (see storage-access.bicep, sql-access.bicep,
// service-tag-access.bicep and infra/README.md, "Who may do what, and why").
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

@description('Where the role may be assigned: the subscriptions (/subscriptions/<id>) of the managed resources.')
param assignableScopes array = [
  subscription().id
]

@description('What the role is for, shown with it in the portal.')
param roleDescription string = 'kv-lease broker: read a Key Vault and write its properties (the firewall networkAcls). Assign it per vault.'

@description('The control-plane actions the role grants, and nothing else (no data actions).')
param actions array = [
  'Microsoft.KeyVault/vaults/read'
  'Microsoft.KeyVault/vaults/write'
]

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleGuid
  properties: {
    roleName: roleName
    description: roleDescription
    type: 'CustomRole'
    permissions: [
      {
        actions: actions
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
