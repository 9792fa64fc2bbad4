"""Who is calling a management route: the signed-in principal App Service hands us, or the key.

Pure functions, no I/O: the use case (shared/usecases/admin/access.py) gives them the request's
headers and the settings, and executes what they decide.

**The principal.** With App Service Authentication ("Easy Auth") on, the platform authenticates the
browser's session and passes the claims to the app in `X-MS-CLIENT-PRINCIPAL`: base64 of a JSON
object `{"auth_typ", "name_typ", "role_typ", "claims": [{"typ", "val"}, ...]}`, each app role as a
claim of type `roles` (or of the `role_typ` type). "External requests aren't allowed to set these
headers, so they're present only if set by App Service" (Microsoft Learn, "Work with user
identities in Azure App Service authentication",
https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities).

That promise holds only where the platform's module runs. Without it (a deployment with
authentication off, the local runner, Core Tools) the header is whatever the caller typed, so it is
read **only** when the platform says authentication is on: `WEBSITE_AUTH_ENABLED=True`, the
environment variable App Service sets for an app whose authsettingsV2 `platform.enabled` is true
(Microsoft.Identity.Web reads the same variable to detect Easy Auth,
https://github.com/AzureAD/microsoft-identity-web, src/Microsoft.Identity.Web/AppServicesAuth/
AppServicesAuthenticationInformation.cs). With it off the header is ignored entirely: not parsed,
not logged, not an error.

**The key.** `MANAGEMENT_KEY` (and `MANAGEMENT_KEY_PREVIOUS` during a rotation), sent in
`x-functions-key` (or `?code=`, as the host's own keys are): a key that opens the management routes
and nothing else, compared in constant time after hashing (publications_key.key_is_valid). The
Functions master key no longer opens them: the routes are anonymous to the host, because the
`admin` level accepts the master key only.

**Cross-site requests.** A principal rides on the platform's session cookie, which the browser
also sends with a request another site makes it send (a form posted to /api/manage/...). So a
request that changes something on the strength of a principal must carry `X-Requested-With`: a
page of another origin cannot add that header without a CORS preflight, which this app does not
grant. The console sends it on every call; the management key needs no such proof (no cookie).

Every refusal is decided in O(1) from the headers and the settings: no storage, no Graph.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.core.dime_to_outlook.publications_key import key_is_valid

ADMIN_ROLE = "Connector.Admin"  # the app role an administrator holds on the sign-in app registration
PRINCIPAL_HEADER = "x-ms-client-principal"
SAME_ORIGIN_HEADER = "x-requested-with"  # the console sends it; a cross-site form cannot
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_PRINCIPAL_CHARS = 16 * 1024  # a real one with a few dozen claims is ~2-4 KB; longer is refused unparsed
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
NAME_CLAIMS = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
UPN_CLAIMS = ("preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn")
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
MICROSOFT_PROVIDERS = ("aad", "azureactivedirectory")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class PrincipalError(ValueError):
    """A principal header that is not what App Service sends (the message says what is wrong)."""


@dataclass(frozen=True)
class Principal:
    """A person signed in through Entra ID, as App Service passed them on."""

    object_id: str  # lowercase GUID: the same id the resources table is keyed by
    name: str
    upn: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


@dataclass(frozen=True)
class Access:
    """What the management guard decided: allowed (how), or refused with a status and a reason."""

    status: int  # 200 allowed, 401 no (valid) credentials, 403 a principal without the role
    reason: str
    principal: Principal | None = None
    by_key: bool = False

    @property
    def allowed(self) -> bool:
        return self.status == 200


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever its casing (frameworks differ, Microsoft Learn notes)."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def parse_principal(raw: str) -> Principal:
    """The X-MS-CLIENT-PRINCIPAL value as a Principal; PrincipalError for anything App Service
    does not send: too long, not base64, not a JSON object, no Microsoft provider, no object id."""
    if len(raw) > MAX_PRINCIPAL_CHARS:
        raise PrincipalError("the principal header is too long")
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
        document = json.loads(decoded)
    except (binascii.Error, ValueError, RecursionError):
        raise PrincipalError("the principal header is not base64 of a JSON object") from None
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list):
        raise PrincipalError("the principal header has no claims list")
    provider = str(document.get("auth_typ") or "").lower()
    if provider not in MICROSOFT_PROVIDERS:
        raise PrincipalError("the principal was not signed in with Microsoft Entra ID")
    role_types = {*ROLE_CLAIMS, str(document.get("role_typ") or "roles")}
    claims: dict[str, list[str]] = {}
    for claim in document["claims"]:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str) and isinstance(claim.get("val"), str):
            claims.setdefault(claim["typ"], []).append(claim["val"])
    object_id = next((v[0] for t in OBJECT_ID_CLAIMS if (v := claims.get(t))), "")
    if not _GUID.match(object_id):
        raise PrincipalError("the principal has no object id (oid) claim")
    roles = frozenset(value for typ in role_types for value in claims.get(typ, ()))
    return Principal(
        object_id=object_id.lower(),
        name=next((v[0] for t in NAME_CLAIMS if (v := claims.get(t))), "")[:200],
        upn=next((v[0] for t in UPN_CLAIMS if (v := claims.get(t))), "")[:320],
        roles=roles,
    )


def signed_in(headers: Mapping[str, str], app_service_auth: bool) -> Principal | None:
    """The principal App Service vouches for, or None: none sent, a malformed one (PrincipalError),
    or **any header at all when App Service Authentication is off** (then a caller wrote it)."""
    if not app_service_auth:
        return None
    raw = header(headers, PRINCIPAL_HEADER)
    return parse_principal(raw) if raw else None


def cross_site(method: str, headers: Mapping[str, str]) -> bool:
    """Whether a request that acts on a session cookie could have been sent by another site: a
    change (not GET/HEAD/OPTIONS) without X-Requested-With."""
    return method.upper() not in SAFE_METHODS and not header(headers, SAME_ORIGIN_HEADER)


def management_access(
    headers: Mapping[str, str],
    presented_key: str | None,
    keys: tuple[str, ...],
    app_service_auth: bool,
    method: str = "GET",
) -> Access:
    """Whether a request may use a management route: the management key, or a signed-in principal
    holding Connector.Admin (only when App Service Authentication is on). 401 without either
    (including a malformed principal), 403 for a principal without the role and no valid key, and
    403 for a principal's change without X-Requested-With (cross_site)."""
    if presented_key and key_is_valid(presented_key, keys):
        return Access(200, "management key", by_key=True)
    try:
        principal = signed_in(headers, app_service_auth)
    except PrincipalError as error:
        return Access(401, f"sign-in not understood ({error})")
    if principal is None:
        return Access(401, "wrong key" if presented_key else "no key and no sign-in")
    if not principal.is_admin:
        return Access(403, f"signed in without the {ADMIN_ROLE} app role", principal=principal)
    if cross_site(method, headers):
        return Access(403, "a change without X-Requested-With (cross-site?)", principal=principal)
    return Access(200, "signed in", principal=principal)
