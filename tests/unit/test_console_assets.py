"""The console's static-file route: only the console's own files, always with the security headers."""

from __future__ import annotations

import re

import azure.functions as func
import pytest

import function_app
from shared.usecases.admin.console import ASSETS, CONTENT_SECURITY_POLICY, console_asset
from tests.host import call_function


def get(path: str | None, **headers: str) -> func.HttpResponse:
    request = func.HttpRequest(
        "GET", "/api/console/" + (path or ""), headers=headers, route_params={"path": path} if path else {}, body=b""
    )
    return call_function(function_app.console, request)


def test_the_page_is_served_at_the_route_root_with_the_security_headers():
    response = get(None)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Referrer-Policy"] == "no-referrer"
    assert '<script type="module" src="/api/console/app.js">' in response.get_body().decode()


def test_the_policy_allows_this_origin_only_and_no_inline_script():
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [("app.js", "text/javascript"), ("style.css", "text/css"), ("pages/overview.js", "text/javascript")],
)
def test_content_types(path, mimetype):
    response = get(path)
    assert response.status_code == 200 and response.mimetype == mimetype
    assert response.get_body() == (ASSETS / path).read_bytes()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "../function_app.py",
        "../shared/settings.py",
        "pages/../../README.md",
        "..%2Ffunction_app.py",
        "/etc/passwd",
        "..\\function_app.py",
        "app.js/",
        "APP.JS",
        "app.py",
        ".hidden.js",
        "missing.js",
        "pages",
        "a/b/c/d/e.js",
        "app.js\x00.css",
        "x" * 300 + ".js",
    ],
)
def test_anything_but_a_console_file_is_refused(path):
    response = get(path)
    assert response.status_code == 404 and response.get_body() == b"no such console file"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_a_symlink_leading_out_of_the_folder_is_refused(tmp_path, monkeypatch):
    import shared.usecases.admin.console as console

    (tmp_path / "secret.txt").write_text("secret")
    assets = tmp_path / "console"
    assets.mkdir()
    (assets / "leak.js").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setattr(console, "ASSETS", assets.resolve())
    console._read.cache_clear()
    try:
        assert console_asset("leak.js").status == 404
    finally:
        console._read.cache_clear()


def test_an_unchanged_file_answers_304_to_its_etag():
    first = get("app.js")
    etag = first.headers["ETag"]
    assert get("app.js", **{"if-none-match": etag}).status_code == 304
    assert get("app.js", **{"if-none-match": '"other"'}).status_code == 200


def test_no_asset_has_inline_script_inline_handlers_or_a_foreign_url():
    files = [p for p in ASSETS.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".html", ".js", ".css"}
    html = (ASSETS / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="/api/console/app.js">']
    assert not re.search(r"\son[a-z]+=", html)
    for path in files:
        text = path.read_text()
        assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write", text), path
        assert "eval(" not in text and "new Function" not in text, path
        # nothing fetched from elsewhere (the SVG namespace is a name, never fetched)
        assert not re.search(r"https?://(?!portal\.azure\.com|www\.w3\.org/2000/svg\b)", text), path


def test_the_console_is_small():
    """Every page included (a page is loaded when first opened; the first load, the shell and the
    Overview, is measured in the browser by test_first_load_size_and_time_to_first_render)."""
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 128 * 1024, total


def test_the_local_runner_matches_catch_all_routes_as_the_host_does():
    from tests.runner import _route_pattern

    pattern = _route_pattern("console/{*path}")
    assert pattern.match("console").groupdict() == {"path": None}
    assert pattern.match("console/pages/overview.js").groupdict() == {"path": "pages/overview.js"}
    assert pattern.match("consoles/app.js") is None


def test_make_test_installs_chromium_first_and_ci_runs_make_test():
    """What `make chromium` does is tested in tests/test_make_chromium.py; here, that `make test`
    runs it and CI runs exactly `make test`."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert "test: install chromium" in (root / "Makefile").read_text()
    ci = (root / ".ci" / "run").read_text()
    assert ci.rstrip().endswith("make test") and "apt-get" not in ci
