// Where the broker's telemetry goes: a Log Analytics workspace and a
// workspace-based Application Insights component. Both refuse keys: the
// component accepts telemetry only with an Entra token (the broker's identity
// holds Monitoring Metrics Publisher on it, rbac.bicep), and the workspace
// accepts no shared-key ingestion or queries.

param location string
param tags object = {}

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param componentName string

@minValue(30)
@maxValue(730)
@description('Days the workspace keeps data.')
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true // Entra ID only: no workspace keys
    }
  }
}

resource component 'Microsoft.Insights/components@2020-02-02' = {
  name: componentName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Telemetry is sent with the identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING):
    // the instrumentation key in the connection string alone is refused.
    DisableLocalAuth: true
  }
}

output name string = component.name
output resourceId string = component.id
output connectionString string = component.properties.ConnectionString
output workspaceResourceId string = workspace.id
