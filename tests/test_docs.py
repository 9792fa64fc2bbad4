"""The README stays true: every setting the code reads is documented, and so is every route."""

from __future__ import annotations

from pathlib import Path

from shared.settings import SETTING_NAMES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme_settings_table():
    missing = [name for name in SETTING_NAMES if f"| `{name}` |" not in README]
    assert missing == []


def test_every_http_route_is_mentioned_in_the_readme():
    from tests.unit.test_function_app import indexed_functions

    routes = [f.get_trigger().route for f in indexed_functions() if f.get_trigger().type == "httpTrigger"]
    stems = {route.split("{")[0].rstrip("/") for route in routes}
    missing = sorted(stem for stem in stems if f"/api/{stem}" not in README)
    assert missing == []


def _demo_sample() -> str:
    start = README.index("Its output ends like")
    block = README[README.index("```\n", start) + 4 :]
    return block[: block.index("```")]


def test_the_readme_demo_sample_has_the_shape_the_demo_prints():
    """The sample output is a real run: its table header and summary line are what scripts/demo.py
    prints (numbers aside), and the explanation below it matches its notification count."""
    import re

    from scripts.demo import HEADERS, SUMMARY

    sample = _demo_sample()
    header = next(line for line in sample.splitlines() if line.strip().startswith("person"))
    assert [cell.strip() for cell in header.split("|")] == list(HEADERS)
    pattern = re.sub(r"\\\{\w+\\\}", r"(\\d+)", re.escape(SUMMARY))  # every {field}: a number
    found = re.search(pattern, " ".join(sample.split()))
    assert found is not None, "the README's summary line is not what the demo prints"
    received = found.group(1)
    assert f"= {received} received" in README  # the explanation of the count
    assert "\r" not in sample
