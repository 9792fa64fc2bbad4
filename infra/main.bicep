// Outlook <-> Dime.Scheduler calendar connector: a secure, keyless production install.
//
// One resource group holds: a user-assigned managed identity; a storage account with shared-key
// access off (host storage, the app's queues and tables, the Flex deployment container); a Key
// Vault in RBAC mode with the secrets; Log Analytics + Application Insights with local auth off;
// a Flex Consumption (FC1) Python function app that reaches all of them with the identity.
// Optionally (default on) the identity also receives the Microsoft Graph application permissions,
// so no client secret exists anywhere.
//
// Deploy with docs/deploy.md. Every app setting the code reads (shared/settings.py SETTINGS) is set
// here; tests/infra/test_templates.py checks that, the role ids, the queue/table names and more.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement
// ---------------------------------------------------------------------------------------------

@minLength(3)
@maxLength(12)
@description('Short lowercase prefix (letters, digits, inner hyphens) for every resource name.')
param namePrefix string = 'dimecal'

@description('Azure region; must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Name of the function app (globally unique; becomes <name>.azurewebsites.net).')
@maxLength(32)
param functionAppName string = '${namePrefix}-${take(uniqueString(resourceGroup().id, namePrefix), 8)}'

param tags object = {
  application: 'outlook-dimescheduler-connector'
}

// ---------------------------------------------------------------------------------------------
// Microsoft Graph
// ---------------------------------------------------------------------------------------------

@description('GRAPH_TENANT_ID: the Entra tenant whose mailboxes are synchronised. Defaults to the deploying tenant.')
param graphTenantId string = tenant().tenantId

@description('managedIdentity (default): Graph is called as the user-assigned identity, no secret. clientSecret: as an app registration with a secret (graphAppClientId + graphClientSecret).')
@allowed([
  'managedIdentity'
  'clientSecret'
])
param graphAuthMode string = 'managedIdentity'

@description('managedIdentity mode: grant the Graph application permissions to the identity in this deployment (needs Privileged Role Administrator or Application Administrator in Entra ID). Set false if an Entra administrator grants them separately.')
param grantGraphPermissions bool = true

@description('Graph permission used to read a mailbox\'s id, mail and userPrincipalName. User.ReadBasic.All is the least privilege; use User.Read.All only if your tenant refuses the basic one.')
@allowed([
  'User.ReadBasic.All'
  'User.Read.All'
])
param graphUserReadPermission string = 'User.ReadBasic.All'

@description('clientSecret mode only: the application (client) id of the app registration.')
param graphAppClientId string = ''

@secure()
@description('clientSecret mode only: GRAPH_CLIENT_SECRET, stored in Key Vault. Omit in managedIdentity mode.')
param graphClientSecret string?

@description('GRAPH_BASE_URL: Graph endpoint (change only for national clouds).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

// ---------------------------------------------------------------------------------------------
// Secrets (secure parameters: no defaults, stored in Key Vault, referenced from app settings)
// ---------------------------------------------------------------------------------------------

@secure()
@minLength(32)
@description('CLIENT_STATE_SECRET: random key (e.g. openssl rand -hex 32) from which every subscription\'s clientState is derived. Keep it: changing it is a rotation.')
param clientStateSecret string

@secure()
@description('CLIENT_STATE_SECRET_PREVIOUS: the old key, only while rotating (docs/deploy.md, "Rotating secrets"). Omit otherwise; omitting it removes the app setting.')
param clientStateSecretPrevious string?

@secure()
@description('DIME_API_KEY: API key created in Dime.Scheduler\'s administration.')
param dimeApiKey string

@secure()
@minLength(32)
@description('DIME_PUBLICATIONS_KEY: the only key the Dime.Scheduler publications routes accept (random, URL-safe: openssl rand -hex 32). Not a host key: those ride in the Graph notification URLs, and the routes refuse them. Changing it is a rotation (the hooks are re-registered).')
param dimePublicationsKey string

@secure()
@description('DIME_PUBLICATIONS_KEY_PREVIOUS: the old publications key, only while rotating (docs/deploy.md, "Rotating secrets"). Omit otherwise; omitting it removes the app setting.')
param dimePublicationsKeyPrevious string?

@secure()
@minLength(32)
@description('MANAGEMENT_KEY: the key the console and the management routes (/api/manage) accept in x-functions-key (random, URL-safe: openssl rand -hex 32). Not the Functions master key: the routes are anonymous to the host and check this key, or an Entra ID sign-in holding Connector.Admin (consoleSignIn). Changing it is a rotation.')
param managementKey string

@secure()
@description('MANAGEMENT_KEY_PREVIOUS: the old management key, only while rotating (docs/deploy.md, "Rotating secrets"). Omit otherwise; omitting it removes the app setting.')
param managementKeyPrevious string?

@description('DIME_WEBHOOK_USERNAME: Basic user name Dime.Scheduler sends with publications (Webhook connector). Omit for none.')
param dimeWebhookUsername string = ''

@secure()
@description('DIME_WEBHOOK_PASSWORD: the Basic password (at least 16 characters) that goes with dimeWebhookUsername, stored in Key Vault. Omit for none.')
param dimeWebhookSecret string?

@secure()
@description('A function key of the app (exists only after the first publish). When given, the notification and lifecycle URLs with ?code=<key> are written to Key Vault. Omit on the first deployment; later deployments may omit it (the stored URLs stay).')
param notificationFunctionKey string?

// ---------------------------------------------------------------------------------------------
// Dime.Scheduler, sync window, tenant-wide consent defaults, timers (defaults = shared/settings.py)
// ---------------------------------------------------------------------------------------------

@description('DIME_BASE_URL: Dime.Scheduler API root (sandbox, test and self-hosted installs differ).')
param dimeBaseUrl string = 'https://api.dimescheduler.com'

@minValue(0)
@maxValue(365)
@description('SYNC_DAYS_BACK: days before today that are synchronised.')
param syncDaysBack int = 30

@minValue(1)
@maxValue(365)
@description('SYNC_DAYS_FORWARD: days after today that are synchronised.')
param syncDaysForward int = 180

@description('DEFAULT_ENABLED: a newly seen mailbox is synchronised until an administrator says otherwise.')
param defaultEnabled bool = true

@description('DEFAULT_SHOW_AS: show-as values synchronised by default (Graph spelling, comma-separated).')
param defaultShowAs string = 'tentative,busy,oof,workingElsewhere'

@description('DEFAULT_SENSITIVITY: sensitivities synchronised by default (Graph spelling, comma-separated).')
param defaultSensitivity string = 'normal,personal'

@description('SYNC_PRIVATE_DETAILS: send subject and body of private/confidential events (off: only the busy time).')
param syncPrivateDetails bool = false

@description('DELTA_SCHEDULE: NCRONTAB (six fields, UTC) of the delta timer.')
param deltaSchedule string = '0 */5 * * * *'

@description('RECONCILE_SCHEDULE: NCRONTAB of the reconcile (tracked appointments check-up) timer.')
param reconcileSchedule string = '0 30 2 * * *'

@description('RETRY_SCHEDULE: NCRONTAB of the failed-transaction retry timer.')
param retrySchedule string = '0 */10 * * * *'

@description('RENEW_SCHEDULE: NCRONTAB of the subscription renewal timer.')
param renewSchedule string = '0 0 */6 * * *'

@description('TOMBSTONE_RETENTION_DAYS: days tombstones and last-error notes are kept before the retry timer purges them (the app refuses less than late deliveries need: 14 days with the default RETRY_MAX_ATTEMPTS).')
@minValue(14)
@maxValue(3650)
param tombstoneRetentionDays int = 30

// Dime.Scheduler -> Outlook (defaults = shared/settings.py)

@allowed(['free', 'tentative', 'busy', 'oof', 'workingElsewhere'])
@description('DIME_EVENT_SHOW_AS: show-as of the Outlook events written for planner appointments.')
param dimeEventShowAs string = 'busy'

@allowed(['revert', 'keep'])
@description('DIME_OUTLOOK_EDITS: a person\'s Outlook edit of a planner-owned event is reverted at once, or kept and recorded.')
param dimeOutlookEdits string = 'revert'

@description('DIME_CATEGORY_TIME_MARKER: also put the time marker name into the Outlook categories.')
param dimeCategoryTimeMarker bool = false

@minLength(1)
@description('DIME_TIME_ZONE (required): Dime.Scheduler\'s time zone, IANA (Europe/Brussels) or Windows (Romance Standard Time). Its date-times without an offset are wall-clock time there, and Outlook all-day events reach the board as its midnights.')
param dimeTimeZone string

@description('DIME_RECONCILE_SCHEDULE: NCRONTAB of the Dime.Scheduler -> Outlook reconcile (and backfill) timer.')
param dimeReconcileSchedule string = '0 15 3 * * *'

@description('DIME_SOURCE_APPS: comma-separated source apps whose appointments reach Outlook (hook registration).')
param dimeSourceApps string = ''

// ---------------------------------------------------------------------------------------------
// Entra ID sign-in for the console, the management routes and each person's own page
// ---------------------------------------------------------------------------------------------

@description('Turn on App Service Authentication (Entra ID) in front of the app: administrators holding the Connector.Admin app role use the console without a key, and every onboarded person reaches their own consent page (#/me). Needs signInClientId (docs/deploy.md, "Entra ID sign-in").')
param consoleSignIn bool = false

@description('consoleSignIn: the application (client) id of the sign-in app registration, which defines the Connector.Admin app role. Created by hand or script: Bicep cannot create Entra app registrations without the Microsoft Graph Bicep extension\'s applications resource, which this template does not use for it.')
param signInClientId string = ''

@secure()
@description('consoleSignIn: a client secret of the sign-in app registration, stored in Key Vault (MICROSOFT_PROVIDER_AUTHENTICATION_SECRET). Omit to sign in with ID tokens only (the registration must then issue ID tokens).')
param signInClientSecret string?

@description('ONBOARDING_MAIL_FROM: the mailbox (UPN) that mails each newly onboarded person the link to their own page (#/me; useful with consoleSignIn). Empty: no mail, and Mail.Send is not granted. Restrict Mail.Send to this mailbox in Exchange (docs/deploy.md).')
param onboardingMailFrom string = ''

// ---------------------------------------------------------------------------------------------
// Capacity and retention
// ---------------------------------------------------------------------------------------------

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Key Vault purge protection (recommended). With it, a deleted vault keeps its name for 90 days.')
param keyVaultPurgeProtection bool = true

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var token = take(uniqueString(resourceGroup().id, namePrefix), 8)
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var names = {
  identity: 'id-${namePrefix}-${token}'
  storage: take('st${compactPrefix}${token}', 24)
  keyVault: take('kv-${namePrefix}-${token}', 24)
  workspace: 'log-${namePrefix}-${token}'
  appInsights: 'appi-${namePrefix}-${token}'
  plan: 'plan-${namePrefix}-${token}'
  deploymentContainer: 'app-package-${take(toLower(functionAppName), 40)}'
}

var useClientSecret = graphAuthMode == 'clientSecret'
var hasPreviousClientState = !empty(clientStateSecretPrevious ?? '')
var hasPreviousPublicationsKey = !empty(dimePublicationsKeyPrevious ?? '')
var hasDimeWebhookCredentials = !empty(dimeWebhookUsername) && !empty(dimeWebhookSecret ?? '')
var hasFunctionKey = !empty(notificationFunctionKey ?? '')
var hasPreviousManagementKey = !empty(managementKeyPrevious ?? '')
var hasSignInSecret = consoleSignIn && !empty(signInClientSecret ?? '')

// An app setting value that Azure resolves from Key Vault with keyVaultReferenceIdentity.
func kvRef(vaultUri string, secretName string) string => '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${secretName})'

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    deploymentContainerName: names.deploymentContainer
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    retentionInDays: logRetentionInDays
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    enablePurgeProtection: keyVaultPurgeProtection
    clientStateSecret: clientStateSecret
    clientStateSecretPrevious: clientStateSecretPrevious
    dimeApiKey: dimeApiKey
    dimePublicationsKey: dimePublicationsKey
    dimePublicationsKeyPrevious: dimePublicationsKeyPrevious
    managementKey: managementKey
    managementKeyPrevious: managementKeyPrevious
    signInClientSecret: hasSignInSecret ? signInClientSecret : null
    graphClientSecret: useClientSecret ? graphClientSecret : null
    dimeWebhookPassword: hasDimeWebhookCredentials ? dimeWebhookSecret : null
  }
}

// Graph application permissions for the managed identity (no client secret). Skipped in
// clientSecret mode: there the app registration's permissions are consented in Entra ID.
module graphPermissions 'modules/graph-permissions.bicep' = if (!useClientSecret && grantGraphPermissions) {
  name: 'graph-permissions'
  params: {
    principalId: identity.outputs.principalId
    userReadPermission: graphUserReadPermission
    grantMailSend: !empty(onboardingMailFrom)
  }
}

var vaultUri = keyVault.outputs.vaultUri
var secretNames = keyVault.outputs.secretNames

// Every setting in shared/settings.py SETTINGS, plus the platform's own. Secrets are Key Vault
// references only. FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are deliberately absent
// (Flex Consumption rejects them; the runtime is functionAppConfig.runtime).
var baseAppSettings = {
  // Identity-based host storage (AzureWebJobsStorage): no connection string, no key.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint

  // Telemetry with Entra ID authentication (local auth is off on the component).
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  // The admin console's Log page links to this component's logs.
  CONSOLE_APPINSIGHTS_RESOURCE_ID: monitoring.outputs.appInsightsId

  // Microsoft Graph. Without GRAPH_CLIENT_SECRET the app uses ManagedIdentityCredential(client_id=GRAPH_CLIENT_ID).
  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CLIENT_ID: useClientSecret ? graphAppClientId : identity.outputs.clientId
  GRAPH_BASE_URL: graphBaseUrl
  NOTIFICATION_URL: kvRef(vaultUri, 'notification-url')
  LIFECYCLE_NOTIFICATION_URL: kvRef(vaultUri, 'lifecycle-notification-url')
  CLIENT_STATE_SECRET: kvRef(vaultUri, secretNames.clientState)

  // Dime.Scheduler.
  DIME_BASE_URL: dimeBaseUrl
  DIME_API_KEY: kvRef(vaultUri, secretNames.dimeApiKey)

  // Dime.Scheduler -> Outlook.
  DIME_EVENT_SHOW_AS: dimeEventShowAs
  DIME_OUTLOOK_EDITS: dimeOutlookEdits
  DIME_CATEGORY_TIME_MARKER: dimeCategoryTimeMarker ? 'true' : 'false'
  DIME_TIME_ZONE: dimeTimeZone
  DIME_RECONCILE_SCHEDULE: dimeReconcileSchedule
  DIME_SOURCE_APPS: dimeSourceApps
  // Without a key: the hook registration adds ?code=DIME_PUBLICATIONS_KEY. Written by the second pass
  // (notification-urls.bicep), when the host name is known.
  DIME_PUBLICATIONS_URL: kvRef(vaultUri, 'dime-publications-url')
  // The publications routes are anonymous to the host (a function-level route also takes the host
  // keys, which the Graph URLs carry) and accept this key only.
  DIME_PUBLICATIONS_KEY: kvRef(vaultUri, secretNames.dimePublicationsKey)

  // The management routes and the console: anonymous to the host (whose admin level takes the
  // master key only); the app accepts this key, or a signed-in Connector.Admin when consoleSignIn is
  // on. WEBSITE_AUTH_ENABLED is never set here: App Service sets it when authentication is on, and
  // only then does the app trust the principal header.
  MANAGEMENT_KEY: kvRef(vaultUri, secretNames.managementKey)
  // Each newly onboarded person is mailed the link to their own page from this mailbox (empty: none).
  ONBOARDING_MAIL_FROM: onboardingMailFrom

  // Sync window and tenant-wide consent defaults.
  SYNC_DAYS_BACK: string(syncDaysBack)
  SYNC_DAYS_FORWARD: string(syncDaysForward)
  DEFAULT_ENABLED: defaultEnabled ? 'true' : 'false'
  DEFAULT_SHOW_AS: defaultShowAs
  DEFAULT_SENSITIVITY: defaultSensitivity
  SYNC_PRIVATE_DETAILS: syncPrivateDetails ? 'true' : 'false'

  // Timer schedules, read by the host through %NAME% in the trigger declarations.
  DELTA_SCHEDULE: deltaSchedule
  RECONCILE_SCHEDULE: reconcileSchedule
  RETRY_SCHEDULE: retrySchedule
  RENEW_SCHEDULE: renewSchedule

  // Housekeeping (the retry timer purges older tombstones and last-error notes).
  TOMBSTONE_RETENTION_DAYS: string(tombstoneRetentionDays)
}

var optionalAppSettings = union(
  useClientSecret ? { GRAPH_CLIENT_SECRET: kvRef(vaultUri, secretNames.graphClientSecret) } : {},
  hasPreviousClientState ? { CLIENT_STATE_SECRET_PREVIOUS: kvRef(vaultUri, secretNames.clientStatePrevious) } : {},
  hasPreviousPublicationsKey ? { DIME_PUBLICATIONS_KEY_PREVIOUS: kvRef(vaultUri, secretNames.dimePublicationsKeyPrevious) } : {},
  hasPreviousManagementKey ? { MANAGEMENT_KEY_PREVIOUS: kvRef(vaultUri, secretNames.managementKeyPrevious) } : {},
  hasSignInSecret ? { MICROSOFT_PROVIDER_AUTHENTICATION_SECRET: kvRef(vaultUri, secretNames.signInClientSecret) } : {},
  hasDimeWebhookCredentials ? { DIME_WEBHOOK_USERNAME: dimeWebhookUsername } : {},
  hasDimeWebhookCredentials ? { DIME_WEBHOOK_PASSWORD: kvRef(vaultUri, secretNames.dimeWebhookPassword) } : {}
)

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: functionAppName
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appSettings: union(baseAppSettings, optionalAppSettings)
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    signIn: consoleSignIn
    signInClientId: signInClientId
    signInTenantId: graphTenantId
    signInCredentialSetting: hasSignInSecret ? 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET' : ''
  }
  // The Key Vault, storage and monitoring modules (with their role assignments) are dependencies
  // through the outputs used above, so the identity holds its roles before the app first starts.
}

// Second pass (after the first publish): store the webhook URLs with the function key in Key Vault.
module notificationUrls 'modules/notification-urls.bicep' = if (hasFunctionKey) {
  name: 'notification-urls'
  params: {
    keyVaultName: keyVault.outputs.name
    hostName: functionApp.outputs.defaultHostName
    functionKey: notificationFunctionKey ?? ''
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (no secrets, no keys)
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.defaultHostName
@description('Graph change notifications endpoint, without ?code=.')
output notificationUrl string = 'https://${functionApp.outputs.defaultHostName}/api/notifications'
@description('Graph lifecycle notifications endpoint, without ?code=.')
output lifecycleNotificationUrl string = 'https://${functionApp.outputs.defaultHostName}/api/lifecycle'
@description('Dime.Scheduler outbound publication endpoint (hooks, Webhook connectors), without ?code=: append ?code=<DIME_PUBLICATIONS_KEY>, never a host key.')
output dimePublicationsUrl string = 'https://${functionApp.outputs.defaultHostName}/api/dime/publications'
output keyVaultName string = keyVault.outputs.name
output storageAccountName string = storage.outputs.name
output managedIdentityClientId string = identity.outputs.clientId
output managedIdentityPrincipalId string = identity.outputs.principalId
output notificationUrlsStored bool = hasFunctionKey
@description('The console. With consoleSignIn, Connector.Admin holders open it without a key and everyone onboarded finds their own settings at #/me; else sign in with MANAGEMENT_KEY.')
output consoleUrl string = 'https://${functionApp.outputs.defaultHostName}/api/console/'
@description('Redirect URI (Web) to register on the sign-in app registration when consoleSignIn is on.')
output signInRedirectUri string = 'https://${functionApp.outputs.defaultHostName}/.auth/login/aad/callback'

