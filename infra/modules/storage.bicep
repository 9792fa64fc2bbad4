// Storage for the Functions host (leases, timers, keys), the app's queues and tables, and the Flex
// Consumption deployment package. Keyless: shared-key access is off, so every client (host, app, CLI)
// must use Microsoft Entra ID. The managed identity gets exactly the three data roles it needs,
// scoped to this account.

param name string
param location string
param tags object

@description('Object (principal) id of the managed identity that the function app runs as.')
param principalId string

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

// Must equal shared/names.py ALL_QUEUES (trigger queues, their "-poison" and "-poison-poison"
// queues); a test checks. The app also creates them itself on first use.
// The host creates poison queues on demand, but creating them here lets the identity's role and
// the admin API find them from the first minute.
var queueNames = [
  'graph-notifications'
  'graph-lifecycle'
  'mailbox-resync'
  'dime-publications'
  'transactions-bulk'
  'mailbox-chunks'
  'graph-notifications-poison'
  'graph-lifecycle-poison'
  'mailbox-resync-poison'
  'dime-publications-poison'
  'transactions-bulk-poison'
  'mailbox-chunks-poison'
  'graph-notifications-poison-poison'
  'graph-lifecycle-poison-poison'
  'mailbox-resync-poison-poison'
  'dime-publications-poison-poison'
  'transactions-bulk-poison-poison'
  'mailbox-chunks-poison-poison'
]

// Must equal shared/names.py ALL_TABLES; a test checks.
var tableNames = [
  'resources'
  'subscriptions'
  'links'
  'transactions'
  'eventlinks'
  'dimehooks'
  'rules'
  'syncstate'
  'history'
]

// Built-in role definition ids (identical in every Azure tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // host leases/timers/keys + Flex deployment package
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // queue triggers and the app's enqueues
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // resources, subscriptions, links, transactions, sync state
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false // no account keys, no SAS signed with them: Entra ID only
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled' // Flex without VNet integration reaches storage over its public endpoint
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer.name}'
