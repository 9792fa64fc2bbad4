"""Create the app's queues (with their poison queues) and tables, for local runs against Azurite.

In Azure the Bicep template creates them. Reads the settings from local.settings.json (as
`func start` does), overridden by the environment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.names import ALL_QUEUES, ALL_TABLES  # noqa: E402
from shared.services import Services  # noqa: E402
from shared.settings import load_settings  # noqa: E402


def main() -> None:
    local = ROOT / "local.settings.json"
    values = json.loads(local.read_text())["Values"] if local.exists() else {}
    services = Services(load_settings({**values, **os.environ}))
    services.store.create_tables()
    services.queues.create_queues(ALL_QUEUES)
    print(f"created (or found) {len(ALL_TABLES)} tables and {len(ALL_QUEUES)} queues")


if __name__ == "__main__":
    main()
