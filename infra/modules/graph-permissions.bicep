// Grants Microsoft Graph application permissions (app roles) to the managed identity, so the app
// reaches Graph with no client secret at all. Uses the Microsoft Graph Bicep extension (alias in
// ../bicepconfig.json, Bicep >= 0.36.1). The deploying user needs Privileged Role Administrator
// (or Application Administrator / Cloud Application Administrator) in Microsoft Entra ID.
//
// A freshly created identity can take a minute to replicate in Entra ID; if the first deployment
// fails here with "Not a valid reference update", run the same deployment again.

extension microsoftGraphV1

@description('Object (principal) id of the service principal that receives the permissions (the managed identity).')
param principalId string

@description('The user-read permission: User.ReadBasic.All (least privilege, default) or User.Read.All (fallback).')
@allowed([
  'User.ReadBasic.All'
  'User.Read.All'
])
param userReadPermission string = 'User.ReadBasic.All'

@description('Grant Mail.Send: only when ONBOARDING_MAIL_FROM is set (the onboarding mail). Off by default.')
param grantMailSend bool = false

// Application-permission (app role) ids of Microsoft Graph; the same in every tenant.
// Least privilege: only what the code calls. MailboxSettings.Read is not granted: every request asks
// Graph for UTC (Prefer: outlook.timezone="UTC"), so no mailbox's time zone is ever read.
var appRoleIds = {
  // Read events of the tracked mailboxes, subscribe to their changes, run calendarView/delta, and
  // create/update/delete the appointments the planner publishes to Outlook.
  'Calendars.ReadWrite': 'ef54d2bf-783f-4e0f-bca1-3210c0444d99'
  // Resolve a mailbox's object id, mail and userPrincipalName (GET /users/{id}?$select=id,mail,userPrincipalName).
  // Basic profile only: the least privilege that answers this call.
  'User.ReadBasic.All': '97235f07-e226-4f63-ace3-39588e11d3a1'
  // Fallback for tenants where the basic role is refused: reads full user profiles.
  'User.Read.All': 'df021288-bdef-4463-88db-98f22de89214'
  // Only with ONBOARDING_MAIL_FROM: POST /users/{from}/sendMail, the onboarding mail. Application
  // Mail.Send can send as any mailbox: restrict it to the sender in Exchange (docs/deploy.md).
  'Mail.Send': 'b633e1c5-b582-4048-a93e-9f11b44c7e96'
}

resource graph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '00000003-0000-0000-c000-000000000000' // Microsoft Graph
}

resource calendarsReadWrite 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  principalId: principalId
  resourceId: graph.id
  appRoleId: appRoleIds['Calendars.ReadWrite']
}

resource userRead 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  principalId: principalId
  resourceId: graph.id
  appRoleId: appRoleIds[userReadPermission]
}

resource mailSend 'Microsoft.Graph/appRoleAssignedTo@v1.0' = if (grantMailSend) {
  principalId: principalId
  resourceId: graph.id
  appRoleId: appRoleIds['Mail.Send']
}

output grantedPermissions array = concat(['Calendars.ReadWrite', userReadPermission], grantMailSend ? ['Mail.Send'] : [])
