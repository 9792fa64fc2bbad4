// Flex Consumption plan + Linux Python function app running as the user-assigned identity.
// The deployment package lives in a blob container reached with that identity (no keys), HTTP has
// one always-ready instance so Graph's webhook deliveries (answer within 3 s) never wait for a cold
// start, and the app settings (built in main.bicep) are applied as one sites/config resource.
// On Flex, FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION must NOT be app settings: the
// runtime comes from functionAppConfig.runtime below.

param name string
param planName string
param location string
param tags object

@description('Resource id of the user-assigned identity.')
param identityId string

@description('https://<account>.blob.core.windows.net/<container> for the deployment package.')
param deploymentContainerUrl string

@description('App settings (name -> value). Secrets are Key Vault references, never values.')
param appSettings object

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('App Service Authentication with Entra ID (authsettingsV2) for the console, /api/manage and /api/me.')
param signIn bool = false

@description('Application (client) id of the sign-in app registration (the one defining Connector.Admin).')
param signInClientId string = ''

@description('Tenant whose people sign in.')
param signInTenantId string = tenant().tenantId

@description('App setting holding the sign-in registration\'s client secret; empty: ID tokens only.')
param signInCredentialSetting string = 

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
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
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId // resolve @Microsoft.KeyVault(...) with the user-assigned identity
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
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
        alwaysReady: [
          {
            name: 'http' // every HTTP-triggered function: notifications, lifecycle, Dime publications, admin
            instanceCount: 1
          }
        ]
      }
      runtime: {
        name: 'python'
        version: '3.11' // the Python the tests run on (tests/infra checks it)
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

// App Service Authentication ("Easy Auth") with Entra ID, when signIn is on. Unauthenticated
// requests are let through (AllowAnonymous) and the app decides per route, because the platform's
// unauthenticated action is one for the whole app: /api/manage answers 401 itself (a script with
// MANAGEMENT_KEY still works), the console offers "Sign in with your work account"
// (/.auth/login/aad), and /api/me answers 401 until the person signs in. The platform strips any
// X-MS-CLIENT-PRINCIPAL a caller sends and sets WEBSITE_AUTH_ENABLED, the app's signal that the
// header can be trusted (shared/core/principal.py). The routes other services call are excluded
// from the module entirely: Graph's webhooks, Dime.Scheduler's publications, the health probe.
// /api/manage, /api/me and /api/session must never be excluded (tests/infra checks it).
var signInExcludedPaths = [
  '/api/notifications'
  '/api/lifecycle'
  '/api/health'
  '/api/dime/publications'
  '/api/dime/publications/created'
  '/api/dime/publications/updated'
  '/api/dime/publications/deleted'
]

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (signIn) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
      excludedPaths: signInExcludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: signInClientId
          clientSecretSettingName: empty(signInCredentialSetting) ? null : signInCredentialSetting
          openIdIssuer: '${environment().authentication.loginEndpoint}${signInTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            signInClientId
            'api://${signInClientId}'
          ]
        }
      }
    }
  }
  dependsOn: [
    settings // the client secret's app setting exists before the module reads it
  ]
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
