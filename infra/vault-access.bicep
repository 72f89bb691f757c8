// Lets the broker's identity rewrite the firewall of ONE managed vault.
// Deployed by main.bicep once per vault, at the scope of the vault's own
// resource group (which may be in another subscription).
//
// The broker reads the vault and PATCHes properties.networkAcls: it needs
// Microsoft.KeyVault/vaults/read and Microsoft.KeyVault/vaults/write on the
// vault, nothing on its data plane (the firewall never blocks management calls).
//
// RISK: vaults/write is a powerful permission. On a vault that uses the
// access-policy permission model, whoever can write the vault can add an
// access policy for itself and so read every secret, key and certificate:
// the broker's identity is privileged. Therefore:
//   - prefer RBAC-mode vaults (enableRbacAuthorization: true), where access
//     policies grant nothing;
//   - scope the role to each managed vault, never to a resource group or
//     subscription (done here);
//   - prefer the custom role of custom-role.bicep (useCustomVaultRole in
//     main.bicep) over Key Vault Contributor: it grants only vaults/read and
//     vaults/write, where Key Vault Contributor grants Microsoft.KeyVault/*
//     (deleting the vault, private endpoint connections, deployments in the
//     resource group, ...). It does not remove the access-policy risk above,
//     which comes with vaults/write itself.
targetScope = 'resourceGroup'

@minLength(3)
@maxLength(24)
@description('Name of the Key Vault, in this resource group.')
param vaultName string

@description('Principal (object) ID of the broker identity.')
param principalId string

@description('GUID of the custom role of custom-role.bicep; empty for Key Vault Contributor.')
param customRoleGuid string = ''

// Built-in Key Vault Contributor: manage vaults, no data-plane access of its own.
var keyVaultContributorRoleId = 'f25e0fa2-a7c8-4377-a976-54943a77a395'
var roleGuid = empty(customRoleGuid) ? keyVaultContributorRoleId : customRoleGuid

// `existing` also makes the deployment fail early on a wrong vault ID.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource firewallWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roleGuid)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'kv-lease broker: adds and removes time-limited IP rules on this vault'
  }
}

output vaultId string = vault.id
output roleDefinitionGuid string = roleGuid
