"""Static checks of the Bicep templates and docs/deploy.md.

The Bicep compiler cannot be installed on the build machine (it downloads from Microsoft's
servers), so these tests read the templates as text. They check what would otherwise only fail in
production: a setting the code reads but the template never sets, a wrong role id, a storage key
or secret in plain text, queue/table names that drifted from shared/names.py, a Python version
other than the one the tests run on, and so on. Fast, no network.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from shared import names
from shared.settings import SETTING_NAMES, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
PARAMS = INFRA / "main.bicepparam"
MODULES = INFRA / "modules"
DEPLOY_MD = ROOT / "docs" / "deploy.md"

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

AZURE_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "storage.bicep", "storage"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": ("Storage Queue Data Contributor", "storage.bicep", "storage"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", "storage.bicep", "storage"),
    "3913510d-42f4-4e42-8a64-420c390055eb": ("Monitoring Metrics Publisher", "monitoring.bicep", "appInsights"),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", "keyvault.bicep", "vault"),
}
GRAPH_APP_ROLES = {
    "Calendars.ReadWrite": "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
    "User.ReadBasic.All": "97235f07-e226-4f63-ace3-39588e11d3a1",
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "Mail.Send": "b633e1c5-b582-4048-a93e-9f11b44c7e96",  # only with ONBOARDING_MAIL_FROM
}
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SECRET_SETTINGS = {
    "CLIENT_STATE_SECRET",
    "CLIENT_STATE_SECRET_PREVIOUS",
    "DIME_API_KEY",
    "GRAPH_CLIENT_SECRET",
    "NOTIFICATION_URL",  # carries the function key in ?code=
    "DIME_PUBLICATIONS_URL",  # no key any more, but the host name is known only in the second pass
    "DIME_PUBLICATIONS_KEY",
    "DIME_PUBLICATIONS_KEY_PREVIOUS",
    "DIME_WEBHOOK_PASSWORD",
    "LIFECYCLE_NOTIFICATION_URL",
    "MANAGEMENT_KEY",
    "MANAGEMENT_KEY_PREVIOUS",
    "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET",  # the sign-in registration's client secret (App Service reads it)
}


# --------------------------------------------------------------------------------------------
# A little Bicep reading
# --------------------------------------------------------------------------------------------


def strip_comments(text: str) -> str:
    """Remove // and /* */ comments, leaving string literals ('...', with \\' escapes) intact."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_strings(code: str) -> str:
    return re.sub(r"'(?:\\.|[^'\\])*'", "''", code)


def read(path: Path) -> str:
    return strip_comments(path.read_text(encoding="utf-8"))


def bicep_files() -> list[Path]:
    return [MAIN, *sorted(MODULES.glob("*.bicep"))]


def block_after(code: str, start: int) -> str:
    """The text of the {...} or [...] block whose opening bracket is the first one at/after start."""
    m = re.compile(r"[{\[]").search(code, start)
    assert m, "no block found"
    opening = m.group()
    closing = "}" if opening == "{" else "]"
    depth = 0
    for k in range(m.start(), len(code)):
        ch = code[k]
        if ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth == 0:
                return code[m.start() : k + 1]
    raise AssertionError("unbalanced block")


def top_level_keys(block: str) -> dict[str, str]:
    """Keys (and raw values) of the outermost level of an object block `{ key: value ... }`."""
    inner = block.strip()[1:-1]
    keys: dict[str, str] = {}
    depth = 0
    for line in inner.splitlines():
        if depth == 0:
            m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$", line)
            if m:
                keys[m.group(1)] = m.group(2)
        bare = without_strings(line)
        depth += bare.count("{") + bare.count("[") + bare.count("(")
        depth -= bare.count("}") + bare.count("]") + bare.count(")")
    return keys


def params(code: str) -> dict[str, dict]:
    """param declarations: name -> {type, default (raw or None), nullable, secure, allowed}."""
    found: dict[str, dict] = {}
    lines = code.splitlines()
    for idx, line in enumerate(lines):
        m = re.match(r"\s*param\s+(\w+)\s+([\w.]+)(\?)?\s*(?:=\s*(.+?))?\s*$", line)
        if not m:
            continue
        decorators = []
        j = idx - 1
        statement = re.compile(r"\s*(param|var|resource|module|output|func|targetScope)\b")
        while j >= 0 and lines[j].strip() and not statement.match(lines[j]):
            decorators.append(lines[j])
            j -= 1
        deco_text = "\n".join(reversed(decorators))
        allowed = None
        am = re.search(r"@allowed\(\[(.*?)\]\)", deco_text, re.S)
        if am:
            allowed = re.findall(r"'([^']*)'|(\d+)", am.group(1))
            allowed = [a or b for a, b in allowed]
        found[m.group(1)] = {
            "type": m.group(2),
            "nullable": bool(m.group(3)),
            "default": m.group(4),
            "secure": "@secure()" in deco_text,
            "allowed": allowed,
        }
    return found


def literal(raw: str) -> str:
    """A Bicep literal default as the string an app setting would carry."""
    raw = raw.strip()
    if raw.startswith("'") and raw.endswith("'"):
        return raw[1:-1]
    return raw  # ints and true/false


def app_settings() -> tuple[dict[str, str], dict[str, str]]:
    """(unconditional settings, conditional settings) of main.bicep, name -> raw value expression."""
    code = read(MAIN)
    base = top_level_keys(block_after(code, code.index("var baseAppSettings")))
    optional_start = code.index("var optionalAppSettings")
    optional_text = code[optional_start : code.index("\n\n", optional_start)]
    optional = dict(re.findall(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^}]*?)\s*\}", optional_text))
    return base, optional


def resource_blocks(code: str, type_prefix: str) -> list[tuple[str, str]]:
    """(symbolic name, block) of every `resource <name> '<type_prefix>@...' ...= {` declaration."""
    out = []
    for m in re.finditer(r"resource\s+(\w+)\s+'" + re.escape(type_prefix) + r"@[^']+'", code):
        out.append((m.group(1), block_after(code, m.end())))
    return out


# --------------------------------------------------------------------------------------------
# Files and syntax sanity
# --------------------------------------------------------------------------------------------


def test_expected_files_exist():
    for path in (MAIN, PARAMS, INFRA / "bicepconfig.json", DEPLOY_MD):
        assert path.is_file(), path
    for module in re.findall(r"module\s+\w+\s+'([^']+)'", read(MAIN)):
        assert (INFRA / module).is_file(), f"main.bicep references a missing module {module}"


@pytest.mark.parametrize("path", [*bicep_files(), PARAMS], ids=lambda p: p.name)
def test_brackets_balance(path):
    code = without_strings(read(path))
    for opening, closing in ("{}", "[]", "()"):
        assert code.count(opening) == code.count(closing), f"{path.name}: unbalanced {opening}{closing}"
    # strings are closed on their own line (Bicep has no multi-line '...' strings except ''')
    for number, line in enumerate(read(path).splitlines(), 1):
        assert re.sub(r"\\.", "", line).count("'") % 2 == 0, f"{path.name}:{number}: unterminated string"


def test_api_versions():
    text = "\n".join(read(p) for p in bicep_files())
    expected = {
        "Microsoft.Web/sites": "2024-04-01",
        "Microsoft.Web/serverfarms": "2024-04-01",
        "Microsoft.Storage/storageAccounts": "2023-05-01",
        "Microsoft.KeyVault/vaults": "2023-07-01",
        "Microsoft.Authorization/roleAssignments": "2022-04-01",
        "Microsoft.OperationalInsights/workspaces": "2023-09-01",
        "Microsoft.Insights/components": "2020-02-02",
    }
    for rtype, version in expected.items():
        used = set(re.findall(re.escape(rtype) + r"@([\w.-]+)'", text))
        assert used == {version}, f"{rtype}: {used}"


# --------------------------------------------------------------------------------------------
# App settings against shared/settings.py
# --------------------------------------------------------------------------------------------


def test_every_required_setting_is_always_set():
    base, _ = app_settings()
    for setting in SETTINGS:
        if not setting.required:
            continue
        if setting.name == names.STORAGE_CONNECTION:
            continue  # identity-based form, checked below
        assert setting.name in base, f"required setting {setting.name} is not an unconditional app setting"


def test_storage_is_identity_based_not_a_connection_string():
    base, optional = app_settings()
    prefix = names.STORAGE_CONNECTION + "__"
    assert names.STORAGE_CONNECTION not in base and names.STORAGE_CONNECTION not in optional
    assert base[prefix + "credential"] == "'managedidentity'"
    assert "clientId" in base[prefix + "clientId"]
    for service in ("blob", "queue", "table"):
        assert f"{service}Endpoint" in base[f"{prefix}{service}ServiceUri"], service


def test_every_optional_setting_is_set_or_documented():
    base, optional = app_settings()
    docs = DEPLOY_MD.read_text(encoding="utf-8")
    for setting in SETTINGS:
        if not setting.required:
            assert setting.name in base or setting.name in optional or setting.name in docs, setting.name


def test_every_setting_is_documented_in_deploy_md():
    docs = DEPLOY_MD.read_text(encoding="utf-8")
    for name in SETTING_NAMES:
        assert name in docs, f"{name} is not mentioned in docs/deploy.md"


def test_timer_schedules_are_app_settings():
    base, _ = app_settings()
    for name in ("DELTA_SCHEDULE", "RECONCILE_SCHEDULE", "RETRY_SCHEDULE", "RENEW_SCHEDULE"):
        assert name in SETTING_NAMES
        assert name in base, name


def test_template_defaults_equal_code_defaults():
    """A fresh deployment behaves as shared/settings.py documents."""
    base, _ = app_settings()
    declared = params(read(MAIN))
    checked = 0
    for setting in SETTINGS:
        if setting.default is None or setting.name not in base:
            continue
        value = base[setting.name]
        m = re.fullmatch(r"string\((\w+)\)|(\w+)\s*\?\s*'true'\s*:\s*'false'|(\w+)", value)
        assert m, f"{setting.name}: value {value!r} is not a plain parameter"
        param = next(g for g in m.groups() if g)
        assert param in declared, f"{setting.name}: {param} is not a parameter"
        default = declared[param]["default"]
        assert default is not None, f"{param} has no default"
        assert literal(default) == setting.default, f"{setting.name}: template {default} != code {setting.default!r}"
        checked += 1
    assert checked >= 10


def test_secrets_are_key_vault_references():
    base, optional = app_settings()
    code = read(MAIN)
    body = re.search(r"func\s+kvRef\(.*?\)\s*string\s*=>\s*(.+)", code)
    assert body and "@Microsoft.KeyVault(SecretUri=" in body.group(1)
    for name in SECRET_SETTINGS:
        value = base.get(name, optional.get(name))
        assert value is not None, f"{name} is not set"
        assert value.startswith("kvRef("), f"{name} must be a Key Vault reference, got {value}"


def test_conditional_secrets_only_when_used():
    base, optional = app_settings()
    assert "GRAPH_CLIENT_SECRET" not in base and "GRAPH_CLIENT_SECRET" in optional
    assert "CLIENT_STATE_SECRET_PREVIOUS" not in base and "CLIENT_STATE_SECRET_PREVIOUS" in optional
    assert "DIME_PUBLICATIONS_KEY_PREVIOUS" not in base and "DIME_PUBLICATIONS_KEY_PREVIOUS" in optional
    assert "DIME_PUBLICATIONS_KEY" in base


def test_key_vault_secret_names_agree():
    main = read(MAIN)
    kv = read(MODULES / "keyvault.bicep")
    defined = top_level_keys(block_after(kv, kv.index("var secretNames")))
    for key in re.findall(r"secretNames\.(\w+)", main):
        assert key in defined, f"main.bicep uses secretNames.{key}, not defined in keyvault.bicep"
    urls = read(MODULES / "notification-urls.bicep")
    for secret in re.findall(r"kvRef\(vaultUri,\s*'([^']+)'\)", main):
        assert f"name: '{secret}'" in urls, f"secret {secret} referenced but never written"
    assert "/api/notifications?code=" in urls and "/api/lifecycle?code=" in urls


def test_flex_worker_settings_are_not_set():
    for path in bicep_files():
        code = read(path)
        for name in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"):
            assert not re.search(rf"^\s*'?{name}'?\s*:", code, re.M), f"{path.name} sets {name}"
            assert not re.search(rf"name:\s*'{name}'", code), f"{path.name} sets {name}"


def test_application_insights_uses_entra_auth():
    base, _ = app_settings()
    assert "Authorization=AAD" in base["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert "ClientId=${identity.outputs.clientId}" in base["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in base
    assert re.search(r"DisableLocalAuth:\s*true", read(MODULES / "monitoring.bicep"))


def test_graph_client_id_is_the_identity_in_managed_identity_mode():
    base, _ = app_settings()
    expected = r"useClientSecret\s*\?\s*graphAppClientId\s*:\s*identity\.outputs\.clientId"
    assert re.fullmatch(expected, base["GRAPH_CLIENT_ID"])
    declared = params(read(MAIN))
    assert literal(declared["graphAuthMode"]["default"]) == "managedIdentity"


# --------------------------------------------------------------------------------------------
# No secret in plain text
# --------------------------------------------------------------------------------------------


def test_no_key_or_secret_literal():
    for path in [*bicep_files(), PARAMS]:
        raw = path.read_text(encoding="utf-8")
        for pattern in (
            r"AccountKey\s*=",
            r"SharedAccessSignature",
            r"listKeys\(",
            r"\.listKeys",
            r"primaryKey",
            r"InstrumentationKey\s*=",
            r"sig=",
            r"Password\s*=",
            r"UseDevelopmentStorage",
        ):
            assert not re.search(pattern, raw, re.I), f"{path.name} contains {pattern}"


def test_secure_params_have_no_default():
    count = 0
    for path in bicep_files():
        for name, spec in params(read(path)).items():
            if spec["secure"]:
                count += 1
                assert spec["default"] is None, f"{path.name}: @secure() param {name} has a default"
    assert count >= 5


def test_secret_looking_params_are_secure():
    for path in bicep_files():
        for name, spec in params(read(path)).items():
            if re.search(r"secret|password|apikey|functionkey", name, re.I):
                assert spec["secure"], f"{path.name}: {name} looks like a secret but is not @secure()"
                assert spec["default"] is None, f"{path.name}: {name} has a default"


def test_required_secrets_are_not_nullable():
    declared = params(read(MAIN))
    for name in ("clientStateSecret", "dimeApiKey", "dimePublicationsKey", "managementKey"):
        assert declared[name]["secure"] and not declared[name]["nullable"] and declared[name]["default"] is None


def test_parameters_file_reads_secrets_from_the_environment():
    declared = params(read(MAIN))
    assigned = dict(re.findall(r"^\s*param\s+(\w+)\s*=\s*(.+?)\s*$", read(PARAMS), re.M))
    assert re.search(r"^\s*using\s+'main\.bicep'", read(PARAMS), re.M)
    for name, value in assigned.items():
        assert name in declared, f"main.bicepparam sets unknown parameter {name}"
        if declared[name]["secure"]:
            assert value.startswith("readEnvironmentVariable("), f"{name} must come from the environment"
    for name, spec in declared.items():
        if spec["default"] is None and not spec["nullable"]:
            assert name in assigned, f"required parameter {name} missing from main.bicepparam"


def test_outputs_carry_no_key():
    code = read(MAIN)
    outputs = re.findall(r"^output\s+(\w+)\s+\w+\s*=\s*(.+)$", code, re.M)
    names_ = {n for n, _ in outputs}
    assert {"functionAppName", "notificationUrl", "lifecycleNotificationUrl"} <= names_
    secure = {n for n, s in params(code).items() if s["secure"]}
    for name, value in outputs:
        assert "code=" not in value, name
        assert not any(re.search(rf"\b{s}\b", value) for s in secure), f"output {name} exposes a secure param"
    values = dict(outputs)
    assert values["notificationUrl"].endswith("/api/notifications'")
    assert values["lifecycleNotificationUrl"].endswith("/api/lifecycle'")


# --------------------------------------------------------------------------------------------
# Storage, queues, tables
# --------------------------------------------------------------------------------------------


def test_storage_is_keyless_and_tls12():
    code = read(MODULES / "storage.bicep")
    [(_, account)] = resource_blocks(code, "Microsoft.Storage/storageAccounts")
    assert re.search(r"allowSharedKeyAccess:\s*false\b", account)
    assert re.search(r"minimumTlsVersion:\s*'TLS1_2'", account)
    assert re.search(r"allowBlobPublicAccess:\s*false\b", account)
    assert re.search(r"supportsHttpsTrafficOnly:\s*true\b", account)


def _list_var(code: str, var: str) -> list[str]:
    return re.findall(r"'([^']+)'", block_after(code, code.index(f"var {var}")))


def test_queues_match_shared_names():
    code = read(MODULES / "storage.bicep")
    assert sorted(_list_var(code, "queueNames")) == sorted(names.ALL_QUEUES)
    assert all(q + names.POISON_SUFFIX in _list_var(code, "queueNames") for q in names.TRIGGER_QUEUES)
    assert re.search(r"queueServices/queues@[^']+'\s*=\s*\[\s*for\s+\w+\s+in\s+queueNames", code)


def test_tables_match_shared_names():
    code = read(MODULES / "storage.bicep")
    assert sorted(_list_var(code, "tableNames")) == sorted(names.ALL_TABLES)
    assert re.search(r"tableServices/tables@[^']+'\s*=\s*\[\s*for\s+\w+\s+in\s+tableNames", code)


def test_deployment_container_exists_and_is_used_with_identity():
    storage = read(MODULES / "storage.bicep")
    assert "blobServices/containers@" in storage and "deploymentContainerName" in storage
    app = read(MODULES / "functionapp.bicep")
    assert re.search(r"type:\s*'blobContainer'", app)
    assert re.search(r"type:\s*'UserAssignedIdentity'\s*userAssignedIdentityResourceId:\s*identityId", app)


# --------------------------------------------------------------------------------------------
# Role assignments
# --------------------------------------------------------------------------------------------


def _resolve_role(code: str, token: str) -> str:
    key = token.split(".")[-1]
    m = re.search(rf"\b{re.escape(key)}\s*[:=]\s*'({GUID})'", code)
    assert m, f"cannot resolve role {token}"
    return m.group(1).lower()


def test_role_assignments_are_the_five_scoped_to_each_resource():
    seen: dict[str, tuple[str, str]] = {}
    for path in bicep_files():
        code = read(path)
        for symbol, block in resource_blocks(code, "Microsoft.Authorization/roleAssignments"):
            ref = re.search(r"roleDefinitions',\s*([\w.]+)\)", block)
            assert ref, f"{path.name}:{symbol} has no roleDefinitionId"
            role = _resolve_role(code, ref.group(1))
            assert role in AZURE_ROLES, f"{path.name}:{symbol}: unknown role {role}"
            scope = re.search(r"^\s*scope:\s*(\w+)\s*$", block, re.M)
            assert scope, f"{path.name}:{symbol} is not scoped to a resource"
            assert "principalType: 'ServicePrincipal'" in block
            assert re.search(r"name:\s*guid\(", block), "deterministic assignment names"
            assert role not in seen, f"{AZURE_ROLES[role][0]} assigned twice"
            seen[role] = (path.name, scope.group(1))
    assert set(seen) == set(AZURE_ROLES), f"missing: {[AZURE_ROLES[r][0] for r in set(AZURE_ROLES) - set(seen)]}"
    for role, (file, scope) in seen.items():
        _, expected_file, expected_scope = AZURE_ROLES[role]
        assert (file, scope) == (expected_file, expected_scope), f"{AZURE_ROLES[role][0]}: {file} scope {scope}"


def test_every_guid_in_templates_is_known():
    allowed = set(AZURE_ROLES) | set(GRAPH_APP_ROLES.values()) | {GRAPH_APP_ID}
    for path in bicep_files():
        for guid in re.findall(GUID, read(path)):
            assert guid.lower() in allowed, f"{path.name}: unexpected id {guid}"


# --------------------------------------------------------------------------------------------
# Key Vault
# --------------------------------------------------------------------------------------------


def test_key_vault_is_rbac_mode_with_reference_identity():
    kv = read(MODULES / "keyvault.bicep")
    assert re.search(r"enableRbacAuthorization:\s*true\b", kv)
    assert "accessPolicies" not in kv
    assert re.search(r"enableSoftDelete:\s*true\b", kv)
    app = read(MODULES / "functionapp.bicep")
    assert re.search(r"keyVaultReferenceIdentity:\s*identityId\b", app)
    assert re.search(r"type:\s*'UserAssigned'", app)


# --------------------------------------------------------------------------------------------
# Flex Consumption function app
# --------------------------------------------------------------------------------------------


def test_flex_consumption_plan():
    code = read(MODULES / "functionapp.bicep")
    [(_, plan)] = resource_blocks(code, "Microsoft.Web/serverfarms")
    assert re.search(r"tier:\s*'FlexConsumption'", plan)
    assert re.search(r"name:\s*'FC1'", plan)
    assert re.search(r"reserved:\s*true\b", plan)


def test_runtime_is_the_python_the_tests_run_on():
    code = read(MODULES / "functionapp.bicep")
    m = re.search(r"runtime:\s*\{\s*name:\s*'(\w+)'\s*version:\s*'([\d.]+)'\s*\}", code)
    assert m, "functionAppConfig.runtime not found"
    assert m.group(1) == "python"
    assert m.group(2) == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_http_is_always_ready():
    code = read(MODULES / "functionapp.bicep")
    m = re.search(r"alwaysReady:\s*\[\s*\{\s*name:\s*'http'\s*instanceCount:\s*(\d+)\s*\}", code)
    assert m and int(m.group(1)) >= 1


def test_site_is_https_only_and_uses_the_app_settings():
    code = read(MODULES / "functionapp.bicep")
    assert re.search(r"httpsOnly:\s*true\b", code)
    assert re.search(r"minTlsVersion:\s*'1\.2'", code)
    assert re.search(r"name:\s*'appsettings'\s*properties:\s*appSettings\b", code)
    assert re.search(r"appSettings:\s*union\(baseAppSettings,\s*optionalAppSettings\)", read(MAIN))


# --------------------------------------------------------------------------------------------
# Microsoft Graph permissions
# --------------------------------------------------------------------------------------------


def test_graph_extension_configured():
    config = json.loads((INFRA / "bicepconfig.json").read_text(encoding="utf-8"))
    assert config["extensions"]["microsoftGraphV1"] == "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0"
    code = read(MODULES / "graph-permissions.bicep")
    assert re.search(r"^extension\s+microsoftGraphV1\s*$", code, re.M)
    assert re.search(rf"servicePrincipals@v1\.0'\s*existing\s*=\s*\{{\s*appId:\s*'{GRAPH_APP_ID}'", code)


def test_graph_app_role_ids_are_correct():
    code = read(MODULES / "graph-permissions.bicep")
    declared = dict(re.findall(rf"'([\w.]+)':\s*'({GUID})'", block_after(code, code.index("var appRoleIds"))))
    assert declared == GRAPH_APP_ROLES


def test_graph_roles_granted_to_the_identity():
    code = read(MODULES / "graph-permissions.bicep")
    grants = resource_blocks(code, "Microsoft.Graph/appRoleAssignedTo")
    assert len(grants) == 3  # exactly what the code uses: no MailboxSettings.Read (times are asked in UTC)
    # Mail.Send only for the onboarding mail, and only when ONBOARDING_MAIL_FROM is set
    assert re.search(
        r"resource\s+mailSend\s+'Microsoft\.Graph/appRoleAssignedTo@v1\.0'\s*=\s*if\s*\(grantMailSend\)", code
    )
    assert literal(params(code)["grantMailSend"]["default"]) == "false"
    assert re.search(r"grantMailSend:\s*!empty\(onboardingMailFrom\)", read(MAIN))
    role_refs = set()
    for _, block in grants:
        assert re.search(r"principalId:\s*principalId\b", block)
        assert re.search(r"resourceId:\s*graph\.id\b", block)
        role_refs.add(re.search(r"appRoleId:\s*appRoleIds\[([^\]]+)\]", block).group(1))
    assert role_refs == {"'Calendars.ReadWrite'", "userReadPermission", "'Mail.Send'"}
    main = params(read(MAIN))
    module = params(code)
    assert literal(main["graphUserReadPermission"]["default"]) == "User.ReadBasic.All"
    assert set(main["graphUserReadPermission"]["allowed"]) == {"User.ReadBasic.All", "User.Read.All"}
    assert set(module["userReadPermission"]["allowed"]) == {"User.ReadBasic.All", "User.Read.All"}
    assert literal(main["grantGraphPermissions"]["default"]) == "true"
    main_code = read(MAIN)
    condition = (
        r"module\s+\w+\s+'modules/graph-permissions\.bicep'\s*=\s*if\s*\(!useClientSecret && grantGraphPermissions\)"
    )
    assert re.search(condition, main_code)
    assert re.search(r"principalId:\s*identity\.outputs\.principalId\s*userReadPermission:", main_code)


# --------------------------------------------------------------------------------------------
# docs/deploy.md
# --------------------------------------------------------------------------------------------


def test_deploy_md_walks_through_everything():
    docs = DEPLOY_MD.read_text(encoding="utf-8")
    for needle in (
        "az group create",
        "az deployment group create",
        "func azure functionapp publish",
        "--python",
        "az functionapp keys",
        "0.36.1",
        "Python 3.11",
        "Privileged Role Administrator",
        "User Access Administrator",
        "/api/dime/publications?code=",
        "Webhook",
        "/api/manage/resources/jane@contoso.com?code=",
        "/api/manage/status",
        "masterKey",
        "CLIENT_STATE_SECRET_PREVIOUS",
        "az group delete",
        "appRoleAssignments",
        *GRAPH_APP_ROLES,
    ):
        assert needle in docs, needle


def test_deploy_md_names_every_parameter():
    docs = DEPLOY_MD.read_text(encoding="utf-8")
    for name in params(read(MAIN)):
        assert f"`{name}`" in docs, f"parameter {name} not explained in docs/deploy.md"


def test_mailbox_settings_permission_only_if_the_code_reads_mailbox_settings():
    """Least privilege: MailboxSettings.Read is granted (and documented) only if some code calls
    /mailboxSettings; today every request asks Graph for UTC instead."""
    uses = any("mailboxsettings" in path.read_text().lower() for path in (ROOT / "shared").rglob("*.py"))
    granted = "MailboxSettings.Read" in read(MODULES / "graph-permissions.bicep")
    documented = "MailboxSettings.Read" in (ROOT / "docs" / "deploy.md").read_text()
    assert uses == granted == documented


def test_client_state_secret_minimum_matches_the_settings():
    from shared.settings import MIN_CLIENT_STATE_SECRET

    for path in (MAIN, MODULES / "keyvault.bicep"):
        code = read(path)
        assert (
            f"@minLength({MIN_CLIENT_STATE_SECRET})"
            in code[: code.index("param clientStateSecret")].split("param ")[-1]
        )


def test_the_publications_url_never_carries_the_host_key_and_the_key_is_its_own():
    """The publications routes take DIME_PUBLICATIONS_KEY only: the stored publications URL must not
    carry the function (host) key (the registration adds the publications key), the key is a
    required secure parameter of the same minimum length as the code's, stored in Key Vault."""
    from shared.core.dime_to_outlook.publications_key import MIN_KEY_LENGTH

    urls = read(MODULES / "notification-urls.bicep")
    stored = block_after(urls, urls.index("resource dimePublicationsUrl"))
    assert "/api/dime/publications'" in stored and "code=" not in stored and "functionKey" not in stored
    for path, name in ((MAIN, "dimePublicationsKey"), (MODULES / "keyvault.bicep", "dimePublicationsKey")):
        code = read(path)
        spec = params(code)[name]
        assert spec["secure"] and not spec["nullable"] and spec["default"] is None
        assert f"@minLength({MIN_KEY_LENGTH})" in code[: code.index(f"param {name} ")].split("param ")[-1]
    kv = read(MODULES / "keyvault.bicep")
    assert "value: dimePublicationsKey\n" in kv and "value: dimePublicationsKeyPrevious!" in kv
    assert "readEnvironmentVariable('DIME_PUBLICATIONS_KEY')" in read(PARAMS)
    import function_app
    from tests.runner import indexed_functions  # get_functions() may be called once per app

    routes = {f.get_function_name(): f.get_trigger() for f in indexed_functions(function_app.app)}
    for name in ("dime_publications", "dime_publications_change"):
        # anonymous to the host: a FUNCTION route would also open to the host keys; the code checks ours
        assert str(getattr(routes[name].auth_level, "value", routes[name].auth_level)).lower() == "anonymous"


# --------------------------------------------------------------------------------------------
# The management key and Entra ID sign-in (App Service Authentication)
# --------------------------------------------------------------------------------------------


def test_the_management_key_is_its_own_required_secret():
    """MANAGEMENT_KEY replaces the master key for /api/manage: a required secure parameter of the
    code's minimum length, stored in Key Vault, read from the environment, with a previous one for
    rotations that exists only while given."""
    from shared.core.dime_to_outlook.publications_key import MIN_KEY_LENGTH

    for path in (MAIN, MODULES / "keyvault.bicep"):
        code = read(path)
        spec = params(code)["managementKey"]
        assert spec["secure"] and not spec["nullable"] and spec["default"] is None
        assert f"@minLength({MIN_KEY_LENGTH})" in code[: code.index("param managementKey ")].split("param ")[-1]
        assert params(code)["managementKeyPrevious"]["nullable"]
    base, optional = app_settings()
    assert base["MANAGEMENT_KEY"] == "kvRef(vaultUri, secretNames.managementKey)"
    assert "MANAGEMENT_KEY_PREVIOUS" in optional and "MANAGEMENT_KEY_PREVIOUS" not in base
    kv = read(MODULES / "keyvault.bicep")
    assert "value: managementKey\n" in kv and "value: managementKeyPrevious!" in kv
    assert "readEnvironmentVariable('MANAGEMENT_KEY')" in read(PARAMS)


def test_website_auth_enabled_is_never_set_by_the_templates():
    """The app trusts X-MS-CLIENT-PRINCIPAL only when WEBSITE_AUTH_ENABLED says App Service
    Authentication is on; App Service sets it. A template setting it would make a forged header
    trusted on an app without authentication."""
    for path in [*bicep_files(), PARAMS]:
        assert "WEBSITE_AUTH_ENABLED" not in read(path), path.name


def _auth_settings() -> tuple[str, str, str]:
    code = read(MODULES / "functionapp.bicep")
    [(symbol, block)] = [
        (name, block)
        for name, block in resource_blocks(code, "Microsoft.Web/sites/config")
        if "authsettingsV2" in block
    ]
    return code, symbol, block


def test_sign_in_is_a_switch_off_by_default():
    code, symbol, _ = _auth_settings()
    assert re.search(rf"resource\s+{symbol}\s+'Microsoft\.Web/sites/config@[^']+'\s*=\s*if\s*\(signIn\)", code)
    assert literal(params(code)["signIn"]["default"]) == "false"
    main = read(MAIN)
    assert literal(params(main)["consoleSignIn"]["default"]) == "false"
    assert re.search(r"signIn:\s*consoleSignIn\b", main) and re.search(r"signInClientId:\s*signInClientId\b", main)
    assert params(main)["signInClientSecret"]["secure"] and params(main)["signInClientSecret"]["nullable"]


def test_sign_in_is_entra_id_and_the_app_decides_per_route():
    _, _, block = _auth_settings()
    assert re.search(r"platform:\s*\{\s*enabled:\s*true\s*\}", block)
    # One unauthenticated action for the whole app: let requests through, the app answers 401 on
    # /api/manage itself (so the management key keeps working) and the console offers the sign-in.
    assert re.search(r"requireAuthentication:\s*false\b", block)
    assert "unauthenticatedClientAction: 'AllowAnonymous'" in block
    assert re.search(r"clientId:\s*signInClientId\b", block)
    assert re.search(
        r"openIdIssuer:\s*'\$\{environment\(\)\.authentication\.loginEndpoint\}\$\{signInTenantId\}/v2\.0'", block
    )
    assert "requireHttps: true" in block


def test_excluded_paths_are_exactly_the_routes_other_services_call():
    """Every HTTP route a service calls without a person (Graph's webhooks, Dime.Scheduler's
    publications with each change, the health probe) is excluded; the routes that read the
    principal (/api/manage, /api/me, /api/session) never are."""
    import function_app
    from shared.core.dime_to_outlook.publication import CHANGES
    from tests.runner import indexed_functions

    code = read(MODULES / "functionapp.bicep")
    excluded = set(re.findall(r"'([^']+)'", block_after(code, code.index("var signInExcludedPaths"))))
    reads_principal = ("manage/", "me", "session", "console")
    expected = set()
    for function in indexed_functions(function_app.app):
        trigger = function.get_trigger()
        if trigger.type != "httpTrigger" or trigger.route.startswith(reads_principal):
            continue
        stem = trigger.route.split("{")[0].rstrip("/")
        if "{change}" in trigger.route:
            expected |= {f"/api/{stem}/{change}" for change in CHANGES}
        else:
            expected.add(f"/api/{stem}")
    assert excluded == expected
    assert not any(path.startswith(("/api/manage", "/api/me", "/api/session")) for path in excluded)


def test_deploy_md_explains_the_sign_in_and_the_app_role():
    docs = DEPLOY_MD.read_text(encoding="utf-8")
    for needle in (
        "Connector.Admin",
        "authsettingsV2",
        "/.auth/login/aad/callback",
        "WEBSITE_AUTH_ENABLED",
        "MANAGEMENT_KEY_PREVIOUS",
        "#/me",
        "Mail.Send",
        "Graph Bicep extension",
    ):
        assert needle in docs, needle
