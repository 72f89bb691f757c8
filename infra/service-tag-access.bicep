// Lets the broker's identity read Azure's service tags in ONE subscription:
// the subscription of one or more managed Storage accounts. Deployed by
// main.bicep once per such subscription, and only when a Storage account is
// managed at all.
//
// Why: an IP rule has no effect on clients in the account's own region
// (contract §4). The broker checks whether a leased address lies in the
// account's region with the Service Tag Discovery API,
// GET /subscriptions/{sub}/providers/Microsoft.Network/locations/{location}/serviceTags,
// which needs Microsoft.Network/locations/serviceTags/read on the
// subscription; the grant succeeds either way, with a warning when it does.
// The role holds that one action: it reads Azure's published address ranges,
// nothing of the subscription's own resources.
targetScope = 'subscription'

@description('Principal (object) ID of the broker identity.')
param principalId string

@description('GUID of the service tag reader role (custom-role.bicep).')
param roleGuid string

resource serviceTagReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'kv-lease broker: reads Azure service tags for the same-region check of managed storage accounts'
  }
}
