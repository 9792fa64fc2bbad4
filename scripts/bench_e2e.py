"""One end-to-end figure of `make bench`, alone: the workload (M mailboxes x C changes, each notified
x3, 20 per POST) drained by this process under one latency profile. For quick before/after runs
while changing the worker; `make bench` remains the full measurement.

    .venv/bin/python scripts/bench_e2e.py --profile realistic [--interleave] [--mailboxes 10 --changes 60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import function_app
from scripts.bench import bench_end_to_end, naive_apply
from tests.azurite import start_azurite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["loopback", "realistic"], default="realistic")
    parser.add_argument("--interleave", action="store_true")
    parser.add_argument("--naive", action="store_true", help="the naive recipe instead of ours")
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    handler = naive_apply if args.naive else (lambda services: function_app.apply_change)
    azurite = start_azurite()
    try:
        for _ in range(args.repeat):
            result = bench_end_to_end(
                azurite, args.mailboxes, args.changes, handler, profile=args.profile, interleave=args.interleave
            )
            print(
                f"{args.profile} {'interleaved' if args.interleave else 'bench order'}"
                f"{' naive' if args.naive else ''}: {result['changes_per_second']:.1f} changes/s, "
                f"{result['seconds']:.2f} s, CPU {result['cpu_ms_per_change']:.2f} ms/change, "
                f"tables {result['table_per_change']:.2f}/change, queue {result['queue_per_change']:.2f}/change, "
                f"Graph {result['graph_per_change']:.2f}, Dime {result['dime_requests_per_change']:.2f}, "
                f"429 MailboxConcurrency {result['graph_refusals']}, failed deliveries {result['redeliveries']}",
                flush=True,
            )
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
