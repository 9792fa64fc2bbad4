"""The README stays true: every setting the code reads is documented, and so is every route."""

from __future__ import annotations

from pathlib import Path

from shared.settings import SETTING_NAMES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme_settings_table():
    missing = [name for name in SETTING_NAMES if f"| `{name}` |" not in README]
    assert missing == []


def test_every_http_route_is_mentioned_in_the_readme():
    from tests.e2e.test_function_app import indexed_functions

    routes = [f.get_trigger().route for f in indexed_functions() if f.get_trigger().type == "httpTrigger"]
    stems = {route.split("{")[0].rstrip("/") for route in routes}
    missing = sorted(stem for stem in stems if f"/api/{stem}" not in README)
    assert missing == []
