// The broker API's Entra app registration, with the Microsoft Graph Bicep
// extension (bicepconfig.json: microsoftGraphV1): the App ID URI callers ask
// tokens for, the three app roles the broker checks, a delegated scope for the
// operator console, the service principal, and the app role assignments of
// the pipelines and operators given as parameters.
//
// Deploying it needs an Entra permission to create applications (see
// infra/README.md, "Prerequisites"). Where the deployer may not create app
// registrations, main.bicep skips this module (createAppRegistration: false)
// and takes an existing app's ids instead.
extension microsoftGraphV1

@description('Immutable alternate key of the application in the tenant (Graph uniqueName).')
param uniqueName string

param displayName string

@description('Application ID URI (identifierUris), e.g. api://<tenant-id>/kv-lease-prod.')
param identifierUri string

@description('Object ID of the deployer, made owner of the application and its service principal.')
param ownerPrincipalId string

@description('Redirect URIs of the operator console (single-page application, auth code + PKCE).')
param consoleRedirectUris array

@description('Grant tenant-wide consent for the console to call the API as the signed-in user (needs an Entra role that may grant consent, e.g. Cloud Application Administrator); otherwise each operator consents at first sign-in.')
param grantConsoleConsent bool = false

@description('Object IDs of service principals (pipeline identities) given Lease.Request.')
param leaseRequestPrincipalIds array = []

@description('Object IDs of users, groups or service principals given Lease.Read.')
param leaseReadPrincipalIds array = []

@description('Object IDs of users, groups or service principals given Lease.Admin.')
param leaseAdminPrincipalIds array = []

// NOTE: the ids of app roles and scopes are derived from fixed strings, never
// random: a redeployment must keep them, or every assignment made to a role
// would be orphaned. To retire a role, first deploy it with isEnabled: false
// (Entra refuses to remove an enabled role), then remove it in a later
// deployment. Never reuse a retired role's value with a new id.
var roleIds = {
  'Lease.Request': guid('kv-lease', 'app-role', 'Lease.Request')
  'Lease.Read': guid('kv-lease', 'app-role', 'Lease.Read')
  'Lease.Admin': guid('kv-lease', 'app-role', 'Lease.Admin')
}
var userImpersonationScopeId = guid('kv-lease', 'oauth2-scope', 'user_impersonation')

var appRoles = [
  {
    id: roleIds['Lease.Request']
    value: 'Lease.Request'
    displayName: 'Request leases'
    description: 'Ask for, renew and release time-limited firewall leases on the managed Key Vaults (pipelines).'
    allowedMemberTypes: ['Application', 'User']
    isEnabled: true
  }
  {
    id: roleIds['Lease.Read']
    value: 'Lease.Read'
    displayName: 'Read leases and audit'
    description: 'List every lease, the vault overview and the audit trail (operators).'
    allowedMemberTypes: ['Application', 'User']
    isEnabled: true
  }
  {
    id: roleIds['Lease.Admin']
    value: 'Lease.Admin'
    displayName: 'Administer leases'
    description: 'Lease explicit IPs and ranges, renew and revoke any lease (implies Lease.Request and Lease.Read).'
    allowedMemberTypes: ['Application', 'User']
    isEnabled: true
  }
]

resource app 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  description: 'kv-lease broker API: time-limited Key Vault firewall leases for pipelines.'
  signInAudience: 'AzureADMyOrg'
  identifierUris: [identifierUri]
  api: {
    // v2 access tokens: aud is the client ID, iss the v2 issuer; the broker
    // accepts both forms (AUTH_AUDIENCE lists the App ID URI and the client ID).
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: userImpersonationScopeId
        value: 'user_impersonation'
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Use kv-lease as the signed-in operator'
        adminConsentDescription: 'Lets the kv-lease operator console call the broker API as the signed-in user; what the user may do is decided by their app roles.'
        userConsentDisplayName: 'Use kv-lease as you'
        userConsentDescription: 'Lets the kv-lease operator console call the broker API as you, with your kv-lease roles.'
      }
    ]
  }
  appRoles: appRoles
  // The operator console: a single-page app served by the broker itself
  // (/api/console), signing in with MSAL (auth code + PKCE); no secret exists.
  spa: {
    redirectUris: consoleRedirectUris
  }
  owners: {
    relationships: [ownerPrincipalId]
  }
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: app.appId
  // Only principals given a role get tokens for the API at all.
  appRoleAssignmentRequired: true
  owners: {
    relationships: [ownerPrincipalId]
  }
}

// The console is this same application calling its own API: consent is a
// grant of its own scope to itself.
resource consoleConsent 'Microsoft.Graph/oauth2PermissionGrants@v1.0' = if (grantConsoleConsent) {
  clientId: servicePrincipal.id
  resourceId: servicePrincipal.id
  consentType: 'AllPrincipals'
  scope: 'user_impersonation'
}

resource requestAssignments 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for principalId in leaseRequestPrincipalIds: {
    principalId: principalId
    resourceId: servicePrincipal.id
    appRoleId: roleIds['Lease.Request']
  }
]

resource readAssignments 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for principalId in leaseReadPrincipalIds: {
    principalId: principalId
    resourceId: servicePrincipal.id
    appRoleId: roleIds['Lease.Read']
  }
]

resource adminAssignments 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for principalId in leaseAdminPrincipalIds: {
    principalId: principalId
    resourceId: servicePrincipal.id
    appRoleId: roleIds['Lease.Admin']
  }
]

output appId string = app.appId
output applicationObjectId string = app.id
output servicePrincipalId string = servicePrincipal.id
output identifierUri string = identifierUri
output roleIds object = roleIds
