// Alerts and a workbook for operators, on the broker's telemetry in
// Application Insights. The broker writes one JSON log line per event
// (src/observability/telemetry.ts: kvlease.pass, kvlease.pass.failed, kvlease.sweep);
// the Functions host records each line in `traces`, and the queries parse the
// JSON out of the message. Requests (never sampled, host.json) give the 5xx
// rate and a second witness that the sweep timer ran.

param location string
param tags object = {}

@description('Prefix of the alert rule names.')
param namePrefix string

@description('Application Insights component the queries run against.')
param appInsightsName string

@description('Resource IDs of existing action groups that receive the alerts.')
param actionGroupIds array = []

@description('E-mail addresses for a new action group; empty for none.')
param alertEmailAddresses array = []

@minValue(1)
@maxValue(20)
@description('Minutes between two sweeps (the SWEEP_SCHEDULE period); the sweep alert fires after 3 of them.')
param sweepPeriodMinutes int = 1

@minValue(50)
@maxValue(100)
@description('Percentage of the vault rule limit (1000) above which the capacity alert fires.')
param capacityAlertPercent int = 90

@minValue(1)
@maxValue(100)
@description('Percentage of 5xx answers, over 5 minutes with at least 10 requests, above which the server error alert fires.')
param serverErrorAlertPercent int = 5

@description('Create the operator workbook.')
param createWorkbook bool = true

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource emailGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmailAddresses)) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    enabled: true
    groupShortName: 'kvlease' // at most 12 characters
    emailReceivers: [
      for (address, index) in alertEmailAddresses: {
        name: 'email-${index}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroups = union(actionGroupIds, empty(alertEmailAddresses) ? [] : [emailGroup.id])

// Every vault event, with its JSON fields in `e`.
var events = '''
traces
| where message has "kvlease."
| extend e = parse_json(extract(@"(\{.*\})", 1, message))
| extend event = tostring(e.event)
'''

// A vault whose passes all failed for 5 minutes: each failed attempt is a
// kvlease.pass.failed, each completed pass a kvlease.pass.
var notReconciledFilter = '''
| where timestamp > ago(5m)
| where event in ("kvlease.pass", "kvlease.pass.failed")
| extend vault = tostring(e.vault), reason = tostring(e.reason)
| summarize failures = countif(event == "kvlease.pass.failed"), passes = countif(event == "kvlease.pass"), reason = take_anyif(reason, event == "kvlease.pass.failed") by vault
| where failures > 0 and passes == 0
'''
var notReconciledQuery = '${events}${notReconciledFilter}'

var capacityFilter = replace('''
| where timestamp > ago(15m)
| where event == "kvlease.pass"
| extend vault = tostring(e.vault), rules = toint(e.rules), maxRules = toint(e.maxRules), activeLeases = toint(e.activeLeases)
| summarize rules = max(rules), maxRules = max(maxRules), activeLeases = max(activeLeases) by vault
| where maxRules > 0 and rules * 100 >= maxRules * __PERCENT__
''', '__PERCENT__', string(capacityAlertPercent))
var capacityQuery = '${events}${capacityFilter}'

var sweepStaleQuery = replace('''
let stale = __MINUTES__m;
union
  (traces
  | where message has "kvlease.sweep"
  | extend e = parse_json(extract(@"(\{.*\})", 1, message))
  | where tostring(e.event) == "kvlease.sweep"
  | project timestamp),
  (requests | where name == "sweep" | project timestamp)
| summarize last = max(timestamp)
| where isnull(last) or last < ago(stale)
''', '__MINUTES__', string(3 * sweepPeriodMinutes))

var serverErrorQuery = replace('''
requests
| where timestamp > ago(5m)
| where name != "sweep"
| summarize total = count(), errors = countif(toint(resultCode) >= 500)
| where total >= 10 and errors * 100 >= total * __PERCENT__
''', '__PERCENT__', string(serverErrorAlertPercent))

var rules = [
  {
    name: 'vault-not-reconciled'
    displayName: 'kv-lease: a vault could not be reconciled for 5 minutes'
    description: 'Every writer pass on the vault failed for 5 minutes: leases are neither applied nor removed. See the reason (throttled, conflict, rejected, not-found, timeout, store) and the audit trail.'
    severity: 1
    query: notReconciledQuery
    dimensions: ['vault']
    frequency: 'PT5M'
    window: 'PT5M'
  }
  {
    name: 'vault-near-capacity'
    displayName: 'kv-lease: a vault passed ${capacityAlertPercent} % of its IP rules'
    description: 'Key Vault allows 1000 IP rules; above the limit new grants are refused (409 VAULT.AT_CAPACITY). Shorten TTLs, spread pipelines over vaults, or remove static rules.'
    severity: 2
    query: capacityQuery
    dimensions: ['vault']
    frequency: 'PT15M'
    window: 'PT15M'
  }
  {
    name: 'sweep-not-running'
    displayName: 'kv-lease: the sweep has not run for 3 periods'
    description: 'No sweep for ${3 * sweepPeriodMinutes} minutes: expired leases keep their rules. Check that the Function App runs and the timer is enabled.'
    severity: 1
    query: sweepStaleQuery
    dimensions: []
    frequency: 'PT5M'
    window: 'PT1H'
  }
  {
    name: 'server-errors'
    displayName: 'kv-lease: ${serverErrorAlertPercent} % or more answers are 5xx'
    description: 'Server errors include 503 (vault not updated in time): Resource Manager throttling, a vault write conflict storm or a storage outage.'
    severity: 2
    query: serverErrorQuery
    dimensions: []
    frequency: 'PT5M'
    window: 'PT5M'
  }
]

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: '${namePrefix}-${rule.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        appInsights.id
      ]
      evaluationFrequency: rule.frequency
      windowSize: rule.window
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            dimensions: [
              for dimension in rule.dimensions: {
                name: dimension
                operator: 'Include'
                values: ['*']
              }
            ]
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: actionGroups
      }
    }
  }
]

// The operator view: rules and leases per vault, pass failures, sweeps.
var workbookQueries = [
  {
    title: 'IP rules per vault (limit 1000)'
    query: '${events}| where event == "kvlease.pass"\n| summarize rules = max(toint(e.rules)) by bin(timestamp, 5m), vault = tostring(e.vault)\n| render timechart'
  }
  {
    title: 'Live leases per vault'
    query: '${events}| where event == "kvlease.pass"\n| summarize activeLeases = max(toint(e.activeLeases)) by bin(timestamp, 5m), vault = tostring(e.vault)\n| render timechart'
  }
  {
    title: 'Failed passes by vault and reason'
    query: '${events}| where event == "kvlease.pass.failed"\n| summarize failures = count() by bin(timestamp, 5m), vault = tostring(e.vault), reason = tostring(e.reason)\n| render columnchart'
  }
  {
    title: 'Sweep duration (ms)'
    query: '${events}| where event == "kvlease.sweep"\n| summarize p50 = percentile(todouble(e.durationMs), 50), p95 = percentile(todouble(e.durationMs), 95), failed = sum(toint(e.failed)) by bin(timestamp, 15m)\n| render timechart'
  }
]

// A for-expression may not sit inside a function argument (string()), so the items are a variable.
var workbookItems = [
  for (item, index) in workbookQueries: {
    type: 3
    name: 'query-${index}'
    content: {
      version: 'KqlItem/1.0'
      title: item.title
      query: item.query
      queryType: 0
      resourceType: 'microsoft.insights/components'
      timeContext: {
        durationMs: 86400000
      }
    }
  }
]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = if (createWorkbook) {
  name: guid(resourceGroup().id, namePrefix, 'kv-lease-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'kv-lease (${namePrefix})'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: string({
      version: 'Notebook/1.0'
      items: workbookItems
    })
  }
}

output alertRuleNames array = [for (rule, index) in rules: alerts[index].name]
output actionGroupIds array = actionGroups
