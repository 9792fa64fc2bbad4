"""The app as the host indexes it: bindings, names, and a light import."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def indexed_functions():
    """The app's functions as the host indexes them (shared cache: get_functions() runs once)."""
    import function_app
    from tests.runner import indexed_functions as index

    return index(function_app.app)


def test_every_parameter_name_equals_a_binding_name():
    """A mismatch makes the host index zero functions, silently."""
    functions = indexed_functions()
    assert functions, "no functions indexed"
    for function in functions:
        parameters = set(inspect.signature(function.get_user_function()).parameters) - {"context"}
        bindings = {b.name for b in function.get_bindings()} - {"$return"}
        assert parameters == bindings, function.get_function_name()


def test_routes_and_auth_levels():
    routes = {}
    for function in indexed_functions():
        trigger = function.get_trigger()
        if trigger.type == "httpTrigger":
            routes[trigger.route] = str(trigger.auth_level)
    assert routes["notifications"].endswith("FUNCTION")
    assert routes["lifecycle"].endswith("FUNCTION")


def test_queue_triggers_use_the_app_storage_connection():
    for function in indexed_functions():
        trigger = function.get_trigger()
        if trigger.type == "queueTrigger":
            assert trigger.connection == "AzureWebJobsStorage"


def test_importing_function_app_does_not_import_msgraph():
    heavy = ("msgraph", "msgraph_core", "kiota_http", "azure.identity", "dimescheduler")
    code = f"import json, sys, function_app; print(json.dumps([m for m in sys.modules if m.startswith({heavy!r})]))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
