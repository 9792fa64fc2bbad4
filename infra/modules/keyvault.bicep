// Key Vault in RBAC mode holding every secret the app reads. The secrets arrive as secure
// parameters (never defaults, never written to a file or to deployment history) and the app reads
// them through @Microsoft.KeyVault(SecretUri=...) references resolved with the user-assigned
// identity (keyVaultReferenceIdentity on the site). The identity gets Key Vault Secrets User
// (read secret values only), scoped to this vault.

param name string
param location string
param tags object

@description('Object (principal) id of the managed identity that the function app runs as.')
param principalId string

@description('Purge protection: deleted secrets/vault stay recoverable for the retention period. Cannot be turned off once on.')
param enablePurgeProtection bool = true

@secure()
@minLength(32)
@description('CLIENT_STATE_SECRET: key from which each Graph subscription\'s clientState is derived.')
param clientStateSecret string

@secure()
@description('CLIENT_STATE_SECRET_PREVIOUS: the previous key, only during a rotation. Omit otherwise.')
param clientStateSecretPrevious string?

@secure()
@description('DIME_API_KEY: the Dime.Scheduler API key.')
param dimeApiKey string

@secure()
@minLength(32)
@description('DIME_PUBLICATIONS_KEY: the only key the Dime.Scheduler publications routes accept.')
param dimePublicationsKey string

@secure()
@description('DIME_PUBLICATIONS_KEY_PREVIOUS: the previous publications key, only during a rotation. Omit otherwise.')
param dimePublicationsKeyPrevious string?

@secure()
@minLength(32)
@description('MANAGEMENT_KEY: the key the console and the management routes accept.')
param managementKey string

@secure()
@description('MANAGEMENT_KEY_PREVIOUS: the previous management key, only during a rotation. Omit otherwise.')
param managementKeyPrevious string?

@secure()
@description('MICROSOFT_PROVIDER_AUTHENTICATION_SECRET: the sign-in app registration\'s client secret, only with consoleSignIn and a secret.')
param signInClientSecret string?

@secure()
@description('GRAPH_CLIENT_SECRET: only when Graph is reached with an app registration and a secret.')
param graphClientSecret string?

@secure()
@description('DIME_WEBHOOK_PASSWORD: only when Dime.Scheduler sends Basic credentials with its publications.')
param dimeWebhookPassword string?

// Secret names (Key Vault allows letters, digits and hyphens). main.bicep builds the references.
var secretNames = {
  dimeWebhookPassword: 'dime-webhook-password'
  clientState: 'client-state-secret'
  clientStatePrevious: 'client-state-secret-previous'
  dimeApiKey: 'dime-api-key'
  dimePublicationsKey: 'dime-publications-key'
  dimePublicationsKeyPrevious: 'dime-publications-key-previous'
  graphClientSecret: 'graph-client-secret'
  managementKey: 'management-key'
  managementKeyPrevious: 'management-key-previous'
  signInClientSecret: 'sign-in-client-secret'
}

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // RBAC mode: no access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: enablePurgeProtection ? true : null // the API accepts only true or absent
    publicNetworkAccess: 'Enabled' // Flex without VNet integration resolves references over the public endpoint
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource clientStateSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.clientState
  properties: {
    value: clientStateSecret
    contentType: 'text/plain'
  }
}

resource clientStatePreviousSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(clientStateSecretPrevious ?? '')) {
  parent: vault
  name: secretNames.clientStatePrevious
  properties: {
    value: clientStateSecretPrevious!
    contentType: 'text/plain'
  }
}

resource dimeApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.dimeApiKey
  properties: {
    value: dimeApiKey
    contentType: 'text/plain'
  }
}

resource dimePublicationsKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.dimePublicationsKey
  properties: {
    value: dimePublicationsKey
    contentType: 'text/plain'
  }
}

resource dimePublicationsKeyPreviousSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(dimePublicationsKeyPrevious ?? '')) {
  parent: vault
  name: secretNames.dimePublicationsKeyPrevious
  properties: {
    value: dimePublicationsKeyPrevious!
    contentType: 'text/plain'
  }
}

resource managementKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.managementKey
  properties: {
    value: managementKey
    contentType: 'text/plain'
  }
}

resource managementKeyPreviousSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(managementKeyPrevious ?? '')) {
  parent: vault
  name: secretNames.managementKeyPrevious
  properties: {
    value: managementKeyPrevious!
    contentType: 'text/plain'
  }
}

resource signInClientSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(signInClientSecret ?? '')) {
  parent: vault
  name: secretNames.signInClientSecret
  properties: {
    value: signInClientSecret!
    contentType: 'text/plain'
  }
}

resource graphClientSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(graphClientSecret ?? '')) {
  parent: vault
  name: secretNames.graphClientSecret
  properties: {
    value: graphClientSecret!
    contentType: 'text/plain'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output vaultUri string = vault.properties.vaultUri
output secretNames object = secretNames

resource dimeWebhookPasswordResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(dimeWebhookPassword ?? '')) {
  parent: vault
  name: secretNames.dimeWebhookPassword
  properties: {
    value: dimeWebhookPassword!
    contentType: 'text/plain'
  }
}
