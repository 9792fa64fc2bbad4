// Parameters for infra/main.bicep. Edit the plain values below; secrets are NEVER written here:
// they are read from environment variables of the shell that runs `az deployment group create`
// (see docs/deploy.md), so they exist only in that shell and in Key Vault.
using 'main.bicep'

// ---- Edit these ---------------------------------------------------------------------------------

// Short lowercase prefix for resource names (3-12 characters: letters, digits, inner hyphens).
param namePrefix = 'dimecal'

// Dime.Scheduler API root: https://api.dimescheduler.com (production) or your sandbox/self-hosted URL.
param dimeBaseUrl = 'https://api.dimescheduler.com'

// managedIdentity (recommended, no secret) or clientSecret (app registration + GRAPH_CLIENT_SECRET).
param graphAuthMode = 'managedIdentity'

// Grant the Graph application permissions to the managed identity in this deployment
// (needs Privileged Role Administrator or Application Administrator in Entra ID).
param grantGraphPermissions = true

// Least privilege for reading a mailbox's id/mail/UPN; switch to 'User.Read.All' only if refused.
param graphUserReadPermission = 'User.ReadBasic.All'

// clientSecret mode only: the app registration's application (client) id.
param graphAppClientId = ''

// Required: Dime.Scheduler's time zone, as its administration shows it: an IANA name (Europe/Brussels)
// or a Windows name (Romance Standard Time). The planner's times arrive without an offset and are read
// in it; UTC is right only if the planning board really runs in UTC. The deployment refuses ''.
param dimeTimeZone = ''

// Sync window and tenant-wide consent defaults (an administrator can override per person later).
param syncDaysBack = 30
param syncDaysForward = 180
param defaultEnabled = true
param defaultShowAs = 'tentative,busy,oof,workingElsewhere'
param defaultSensitivity = 'normal,personal'
param syncPrivateDetails = false

// Timer schedules (NCRONTAB, six fields, UTC).
param deltaSchedule = '0 */5 * * * *'
param reconcileSchedule = '0 30 2 * * *'
param retrySchedule = '0 */10 * * * *'
param renewSchedule = '0 0 */6 * * *'

// Dime.Scheduler -> Outlook: the planner's appointments in each assigned person's calendar.
param dimeEventShowAs = 'busy'
param dimeOutlookEdits = 'revert'
param dimeCategoryTimeMarker = false
param dimeReconcileSchedule = '0 15 3 * * *'
// Source apps whose AppointmentCreated/Updated/Deleted hooks PUT /api/manage/dime/hooks registers.
param dimeSourceApps = ''

// Entra ID sign-in (docs/deploy.md, "Entra ID sign-in"): administrators holding the Connector.Admin
// app role open the console without a key; each onboarded person gets their own consent page.
param consoleSignIn = false
// The sign-in app registration's application (client) id (create it first, with the app role).
param signInClientId = ''
// Mailbox (UPN) that mails each newly onboarded person the link to their own page; '' for none
// (Mail.Send is granted only when set).
param onboardingMailFrom = ''

// ---- Secrets: from the environment only ----------------------------------------------------------

// Required. Generate once (openssl rand -hex 32) and keep it in your password manager.
param clientStateSecret = readEnvironmentVariable('CLIENT_STATE_SECRET')
// Required. Created in Dime.Scheduler's administration.
param dimeApiKey = readEnvironmentVariable('DIME_API_KEY')
// Required. Generate once (openssl rand -hex 32): the only key Dime.Scheduler's publications may carry.
param dimePublicationsKey = readEnvironmentVariable('DIME_PUBLICATIONS_KEY')
// Only while rotating DIME_PUBLICATIONS_KEY; empty otherwise.
param dimePublicationsKeyPrevious = readEnvironmentVariable('DIME_PUBLICATIONS_KEY_PREVIOUS', '')
// Only while rotating CLIENT_STATE_SECRET; empty otherwise.
param clientStateSecretPrevious = readEnvironmentVariable('CLIENT_STATE_SECRET_PREVIOUS', '')
// Empty on the first deployment; the function key once the code is published (docs/deploy.md step 5).
param notificationFunctionKey = readEnvironmentVariable('NOTIFICATION_FUNCTION_KEY', '')
// Required. Generate once (openssl rand -hex 32): the key of the console and /api/manage (not the master key).
param managementKey = readEnvironmentVariable('MANAGEMENT_KEY')
// Only while rotating MANAGEMENT_KEY; empty otherwise.
param managementKeyPrevious = readEnvironmentVariable('MANAGEMENT_KEY_PREVIOUS', '')
// Only with consoleSignIn and a client secret on the sign-in app registration (else ID tokens only).
param signInClientSecret = readEnvironmentVariable('SIGN_IN_CLIENT_SECRET', '')
// clientSecret mode only.
param graphClientSecret = readEnvironmentVariable('GRAPH_CLIENT_SECRET', '')
// Only if the Dime.Scheduler Webhook connector sends Basic credentials (both, or neither).
param dimeWebhookUsername = readEnvironmentVariable('DIME_WEBHOOK_USERNAME', '')
param dimeWebhookSecret = readEnvironmentVariable('DIME_WEBHOOK_PASSWORD', '')
