"""Who may use a management route: the principal App Service hands on, and the management key.

The principal's shape follows Microsoft Learn ("Work with user identities in Azure App Service
authentication": base64 JSON with auth_typ, name_typ, role_typ and a claims list of typ/val)."""

from __future__ import annotations

import base64
import json

import pytest

from shared.core.principal import (
    ADMIN_ROLE,
    PrincipalError,
    management_access,
    parse_principal,
    signed_in,
)

KEY = "management-key-0123456789abcdef-0123"
OID = "5B5450DB-EB26-4C1A-981C-BA1D25F0483D"


def principal_header(
    *roles: str,
    oid: str = OID,
    oid_claim: str = "http://schemas.microsoft.com/identity/claims/objectidentifier",
    auth_typ: str = "aad",
    role_claim: str = "roles",
) -> str:
    claims = [
        {"typ": oid_claim, "val": oid},
        {"typ": "name", "val": "Jane Doe"},
        {"typ": "preferred_username", "val": "jane@contoso.com"},
        {"typ": "groups", "val": "f08bbbea-b793-4a36-a5fc-136c18d8aa8f"},
        *({"typ": role_claim, "val": role} for role in roles),
    ]
    document = {
        "auth_typ": auth_typ,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        "claims": claims,
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_a_principal_is_read_with_its_object_id_name_and_roles():
    principal = parse_principal(principal_header(ADMIN_ROLE, "Other.Role"))
    assert principal.object_id == OID.lower()
    assert (principal.name, principal.upn) == ("Jane Doe", "jane@contoso.com")
    assert principal.roles == {ADMIN_ROLE, "Other.Role"} and principal.is_admin


@pytest.mark.parametrize("role_claim", ["roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"])
def test_roles_are_read_under_either_claim_type(role_claim):
    assert parse_principal(principal_header(ADMIN_ROLE, role_claim=role_claim)).is_admin


def test_the_short_oid_claim_is_read_too():
    assert parse_principal(principal_header(oid_claim="oid")).object_id == OID.lower()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not base64 at all!", "not base64"),
        (base64.b64encode(b"{not json").decode(), "not base64 of a JSON object"),
        (base64.b64encode(b"[1, 2]").decode(), "no claims"),
        (base64.b64encode(b'{"auth_typ": "aad", "claims": {}}').decode(), "no claims"),
        (principal_header(auth_typ="github"), "Entra ID"),
        (principal_header(oid="not-a-guid"), "object id"),
        (principal_header(oid_claim="sub"), "object id"),
        ("A" * 20_000, "too long"),
    ],
)
def test_malformed_principals_are_refused_with_a_reason(raw, reason):
    with pytest.raises(PrincipalError, match=reason):
        parse_principal(raw)


def test_a_header_is_ignored_entirely_when_app_service_authentication_is_off():
    forged = {"X-MS-CLIENT-PRINCIPAL": principal_header(ADMIN_ROLE)}
    assert signed_in(forged, app_service_auth=False) is None
    assert signed_in({"x-ms-client-principal": "garbage!"}, app_service_auth=False) is None  # not even parsed
    assert signed_in(forged, app_service_auth=True).is_admin  # header names are case-insensitive


def test_the_key_opens_the_routes_and_nothing_else_does_when_auth_is_off():
    forged = {"x-ms-client-principal": principal_header(ADMIN_ROLE)}
    assert management_access({}, KEY, (KEY,), app_service_auth=False).by_key
    assert management_access(forged, KEY, (KEY,), app_service_auth=False).allowed
    refused = management_access(forged, None, (KEY,), app_service_auth=False)
    assert (refused.status, refused.principal) == (401, None)
    assert management_access({}, "host-key", (KEY,), app_service_auth=False).status == 401
    assert management_access({}, KEY, (), app_service_auth=False).status == 401  # no key configured: closed


def test_the_previous_key_works_during_a_rotation():
    assert management_access(
        {}, "previous-key-0123456789abcdef-012345", (KEY, "previous-key-0123456789abcdef-012345"), False
    ).allowed


def test_with_auth_on_the_role_decides():
    admin = management_access({"x-ms-client-principal": principal_header(ADMIN_ROLE)}, None, (KEY,), True)
    assert admin.allowed and admin.principal.is_admin and not admin.by_key
    person = management_access({"x-ms-client-principal": principal_header("Reader")}, None, (KEY,), True)
    assert person.status == 403 and "Connector.Admin" in person.reason
    assert management_access({"x-ms-client-principal": principal_header("Reader")}, KEY, (KEY,), True).allowed
    assert management_access({}, None, (KEY,), True).status == 401


def test_a_malformed_principal_with_auth_on_is_401():
    access = management_access({"x-ms-client-principal": "%%%"}, None, (KEY,), True)
    assert access.status == 401 and "not understood" in access.reason


def test_a_principals_change_needs_x_requested_with_a_keys_does_not():
    admin = {"x-ms-client-principal": principal_header(ADMIN_ROLE)}
    assert management_access(admin, None, (KEY,), True, "POST").status == 403
    assert management_access({**admin, "X-Requested-With": "console"}, None, (KEY,), True, "POST").allowed
    assert management_access(admin, None, (KEY,), True, "GET").allowed
    assert management_access({}, KEY, (KEY,), True, "DELETE").allowed
