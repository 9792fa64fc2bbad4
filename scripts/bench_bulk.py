"""The bulk retry alone: `bench.py`'s `bench_bulk_retry` (1,500 failed notifications, POST
.../transactions/retry {"all": true}, then the bulk queue until empty), without the whole bench.

    .venv/bin/python scripts/bench_bulk.py [--profile loopback|realistic] [--rows N] [--repeat K]


Prints the seconds of each run, the Azurite round trips per row (counted at the storage transport,
as bench_scale does), and the load average, so that a figure can be read beside the machine's state.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench import bench_bulk_retry  # noqa: E402
from tests.azurite import start_azurite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="bulk retry of N failed transactions, one profile")
    parser.add_argument("--profile", choices=["loopback", "realistic"], default="loopback")
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    azurite = start_azurite()
    try:
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            seconds, messages, board = bench_bulk_retry(azurite, args.rows, profile=args.profile)
            print(
                f"bulk retry [{args.profile}] {args.rows:,} rows: {seconds:.1f} s, {messages} messages, "
                f"board {board}, load {load:.2f}",
                flush=True,
            )
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
