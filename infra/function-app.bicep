// The broker: a Linux Function App on its own Flex Consumption plan, running
// as the user-assigned identity, with identity-based connections only.

param name string
param location string
param tags object = {}

@description('Name of the Flex Consumption (FC1) plan; Flex Consumption hosts one app per plan.')
param planName string

@description('Resource ID of the user-assigned identity.')
param identityId string

@description('Client ID of the user-assigned identity.')
param identityClientId string

@description('Storage account of the host (AzureWebJobsStorage) and of the deployment container.')
param storageAccountName string

@description('URL of the blob container that holds the deployment package.')
param deploymentContainerUrl string

param appInsightsConnectionString string

@allowed([
  '22'
  '24'
])
param nodeVersion string = '22'

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

param maximumInstanceCount int = 100

@description('Flex Consumption always-ready entries, e.g. [{ name: \'function:sweep\', instanceCount: 1 }].')
param alwaysReady array = []

@description('App settings of the broker (string values).')
param appSettings object

// NOTE: the Node.js worker's V8 heap limit: a quarter of the instance memory,
// at least 256 MB (256, 512 or 1024 MB for the 512, 2048 and 4096 MB
// instances). Measured on the sweep (issue #16): its RSS peak of 214-256 MB
// is heap V8 grows into because its limit is large, not live data; with
// --max-old-space-size=512 the same sweep peaks at 139-143 MB. A quarter is
// the ratio V8 itself applies to the physical memory it sees; setting it
// makes the limit follow the instance size whatever memory Node.js sees on
// the host, and leaves the rest to the Functions host, which shares the
// instance ("Instance resources are shared between your function code and the
// Functions host", Flex Consumption plan docs), and to memory outside the
// heap. A worker that outgrows it fails with "JavaScript heap out of memory"
// in the logs rather than the instance running out of memory. Billing is by
// instance size, so this saves no money: it bounds the worker.
//
// How: Azure Functions passes "languageWorkers:node:arguments" to the Node.js
// worker, documented with "--max-old-space-size=<max memory in MB>" (Premium
// plan docs, "Memory usage considerations"); on Linux `__` replaces `:`
// (MicrosoftDocs/azure-docs#68614; in use on Linux in
// Azure/azure-functions-host#9017). Flex Consumption does not list it among
// its deprecated settings (functions-app-settings.md, "Flex Consumption plan
// deprecations"). Not verified here: that a Flex instance applies it; check
// v8.getHeapStatistics().heap_size_limit in the app after a deployment.
var nodeHeapLimitMB = max(256, instanceMemoryMB / 4)

// Host storage through the identity (Storage Blob Data Owner, see rbac.bicep)
// and telemetry authenticated with it (Monitoring Metrics Publisher).
var hostSettings = {
  languageWorkers__node__arguments: '--max-old-space-size=${nodeHeapLimitMB}'
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled' // pipelines call the API from anywhere; it validates Entra tokens itself
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReady
      }
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
  }

  // NOTE: Flex Consumption takes the runtime from functionAppConfig and refuses
  // FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and the
  // WEBSITE_* deployment settings here: do not add them.
  resource settings 'config' = {
    name: 'appsettings'
    properties: union(appSettings, hostSettings)
  }
}

// No publishing passwords: FTP and the SCM site accept Entra tokens only
// (azd deploys to Flex Consumption with the deployer's token).
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
output hostName string = site.properties.defaultHostName
