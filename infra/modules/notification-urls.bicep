// Stores the two URLs Graph calls, each with the function key in ?code=, and the publications URL
// Dime.Scheduler's hooks and connectors call (without a key: the app adds DIME_PUBLICATIONS_KEY, and
// the publications routes refuse the host key), as Key Vault secrets.
// The key exists only after the code is published, so this module runs only when main.bicep is
// given notificationFunctionKey (see docs/deploy.md, step 5). The app settings NOTIFICATION_URL and
// LIFECYCLE_NOTIFICATION_URL always reference these secrets, so a later deployment without the key
// leaves them untouched.

param keyVaultName string

@description('Host name of the function app, e.g. myapp.azurewebsites.net.')
param hostName string

@secure()
@description('A function (host) key of the app; it rides in ?code= on every Graph delivery.')
param functionKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource notificationUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'notification-url'
  properties: {
    value: 'https://${hostName}/api/notifications?code=${functionKey}'
    contentType: 'text/plain'
  }
}

resource lifecycleNotificationUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'lifecycle-notification-url'
  properties: {
    value: 'https://${hostName}/api/lifecycle?code=${functionKey}'
    contentType: 'text/plain'
  }
}

resource dimePublicationsUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'dime-publications-url'
  properties: {
    value: 'https://${hostName}/api/dime/publications'
    contentType: 'text/plain'
  }
}
