// Lets the broker's identity manage its own firewall rules on ONE managed
// Azure SQL logical server (a BROKER_TARGETS entry of kind sql). Deployed by
// main.bicep once per server, at the scope of the server's own resource group
// (which may be in another subscription).
//
// The broker reads the server (its publicNetworkAccess, its host name for
// clients to probe) and lists, creates and deletes child resources
// firewallRules/{name} (its own carry the prefix kvlease-): the custom role
// main.bicep defines grants Microsoft.Sql/servers/read and
// Microsoft.Sql/servers/firewallRules/* (read, write, delete of rules) on the
// server, and nothing more.
//
// What the role deliberately leaves out, compared with SQL Server Contributor:
// servers/write (administrators, Entra-only authentication, public network
// access), the databases, auditing and security policies, and every data
// action; SQL logins are not Azure RBAC at all. What it cannot narrow:
// firewallRules/* covers every server-level rule, so the identity could
// delete a rule it did not add (the broker never does: it touches only
// kvlease- rules, contract §4). The role is scoped to each managed server.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(63)
@description('Name of the Azure SQL logical server, in this resource group.')
param serverName string

@description('Principal (object) ID of the broker identity.')
param principalId string

@description('GUID of the SQL firewall writer role (custom-role.bicep).')
param roleGuid string

// `existing` also makes the deployment fail early on a wrong server ID.
resource server 'Microsoft.Sql/servers@2021-11-01' existing = {
  name: serverName
}

resource firewallWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(server.id, principalId, roleGuid)
  scope: server
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'kv-lease broker: creates and deletes its time-limited kvlease- firewall rules on this server'
  }
}

output serverId string = server.id
