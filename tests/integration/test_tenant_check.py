"""`make tenant-check`'s checks, run against the fakes: every check must run, clean up after itself,
and find the answer the fakes play (under each option the fakes offer for an unverified point)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeDime, FakeGraph

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tenant_check.py"


@pytest.fixture(scope="module")
def tenant_check():
    spec = importlib.util.spec_from_file_location("tenant_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tenant_check"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "options",
    [{}, {"deleted_get_status": 200, "delta_body": "html"}, {"delta_body": "text", "delta_sparse": True}],
)
def test_every_check_agrees_with_the_fakes_and_cleans_up(tenant_check, options):
    with FakeGraph(seed=3, **options) as graph, FakeDime(api_key="key") as dime:
        person = graph.add_user(upn="check@contoso.com", mail="check@contoso.com")
        dime.board.add_resource("R-CHECK", "check@contoso.com")
        dime.board.plan("Listed", tenant_check.Context(None, "").when, tenant_check.Context(None, "").when, ["R-CHECK"])
        ctx = tenant_check.Context(
            graph=httpx.Client(
                base_url=graph.base_url, headers={"Authorization": "Bearer t", "Prefer": tenant_check.PREFER}
            ),
            mailbox=person["id"],
            dime=httpx.Client(base_url=dime.base_url, headers={"X-API-KEY": "key"}),
            resource_email="check@contoso.com",
        )
        rows = tenant_check.run_checks(ctx)

        assert len(rows) == len(tenant_check.CHECKS) >= 9
        assert [(r.behaviour, r.observed) for r in rows if r.agrees != "yes"] == []
        observed = {r.behaviour: r.observed for r in rows}
        assert observed["GET of a deleted event (immutable id)"] == str(options.get("deleted_get_status", 404))
        assert observed["body of a single event in a delta item"] == (options.get("delta_body") or "absent")
        assert observed["the e-mail an appointment carries for the test resource, against GET /resource's"] == "equal"
        assert graph.events(person["id"]) == []  # everything it created is gone again
        assert dime.appointments == {}
        assert dime.board.hooks == {}  # the hook check removed its hook
        table = tenant_check.table(rows)
        assert table.splitlines()[0].startswith("behaviour") and len(table.splitlines()) == len(rows) + 2


def test_a_check_that_disagrees_or_fails_is_reported_and_still_cleaned_up(tenant_check, monkeypatch):
    monkeypatch.setattr(tenant_check, "CHECKS", list(tenant_check.CHECKS))

    @tenant_check.check("an answer the fakes do not play", "404", lambda seen: seen == "404")
    def disagrees(ctx):
        ctx.create_event("disagrees")
        return "410"

    @tenant_check.check("a check that breaks", "anything", lambda seen: True)
    def breaks(ctx):
        ctx.create_event("breaks")
        raise RuntimeError("boom")

    with FakeGraph(seed=3) as graph:
        person = graph.add_user(upn="check@contoso.com")
        ctx = tenant_check.Context(
            graph=httpx.Client(base_url=graph.base_url, headers={"Authorization": "Bearer t"}), mailbox=person["id"]
        )
        rows = {r.behaviour: r for r in tenant_check.run_checks(ctx)}
        assert rows["an answer the fakes do not play"].agrees == "NO"
        assert (rows["a check that breaks"].agrees, rows["a check that breaks"].observed) == (
            "error",
            "RuntimeError: boom",
        )
        assert rows["delete with an empty date"].agrees == "skipped"  # no Dime.Scheduler configured
        assert graph.events(person["id"]) == []


def test_it_is_opt_in(tenant_check, monkeypatch, capsys):
    for name in (*tenant_check.GRAPH_ENV, *tenant_check.DIME_ENV):
        monkeypatch.delenv(name, raising=False)
    assert tenant_check.main([]) == 2
    assert "opt-in" in capsys.readouterr().err
