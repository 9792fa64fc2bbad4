// The user-assigned managed identity the function app runs as. It reads storage (host, queues,
// tables, Flex deployment package), publishes telemetry, resolves Key Vault references and, by
// default, calls Microsoft Graph. A user-assigned identity (rather than a system-assigned one) exists
// before the site, so every role can be granted before the app first starts.

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
