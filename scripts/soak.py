"""Soak the convergence test over fresh seeds: `make soak SEEDS=50` (issue 22).

A single convergence run proves little about races between instances: which interleavings occur
depends on timing, so a seed that fails once may pass on replay. This runs the three-process
variant of `tests/e2e/test_convergence.py` (or the single-process one, or both) on SEEDS fresh
random seeds in a row, one pytest process per seed (each with its own Azurite), and prints one line
per run and a summary: runs passed, the seeds' range, the wall time. It stops at the first failure
(its seed and the test's last lines are printed; replay with CONVERGENCE_SEED=<seed>), unless
--keep-going. For whoever changes the workers next: run it before merging.

    python scripts/soak.py [--seeds 50] [--variant three|single|both] [--keep-going]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "three": "test_board_converges_with_three_worker_processes",
    "single": "test_board_converges_under_faults_duplicates_drops_and_reordering",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=int(os.environ.get("SEEDS") or 50))
    parser.add_argument("--variant", choices=["three", "single", "both"], default="three")
    parser.add_argument("--keep-going", action="store_true", help="run every seed even after a failure")
    args = parser.parse_args()
    tests = list(VARIANTS.values()) if args.variant == "both" else [VARIANTS[args.variant]]
    chooser = random.SystemRandom()
    seeds = [chooser.randrange(1, 1_000_000) for _ in range(args.seeds)]
    began = time.monotonic()
    passed, failed = 0, []
    for n, seed in enumerate(seeds, 1):
        for test in tests:
            started = time.monotonic()
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"tests/e2e/test_convergence.py::{test}",
                ],
                cwd=ROOT,
                env={**os.environ, "CONVERGENCE_SEED": str(seed)},
                capture_output=True,
                text=True,
            )
            took = time.monotonic() - started
            ok = run.returncode == 0
            print(f"{n}/{len(seeds)} seed {seed} {test}: {'passed' if ok else 'FAILED'} in {took:.0f} s", flush=True)
            if ok:
                passed += 1
                continue
            failed.append((seed, test))
            lines = run.stdout.splitlines()
            shown = [line for line in lines if line.startswith(("E ", "fake options", "planner {"))][:40]
            print("\n".join(shown or lines[-40:]), flush=True)
            if not args.keep_going:
                break
        if failed and not args.keep_going:
            break
    ran = passed + len(failed)
    tried = sorted({seed for seed in seeds[: max(1, -(-ran // len(tests)))]})
    print(
        f"soak: {passed} of {ran} runs passed ({', '.join(tests)}); seeds {tried[0]}..{tried[-1]} "
        f"({len(tried)} seeds: {' '.join(map(str, seeds[: len(tried)]))}); wall time {time.monotonic() - began:.0f} s"
    )
    for seed, test in failed:
        print(f"  replay: CONVERGENCE_SEED={seed} pytest tests/e2e/test_convergence.py::{test}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
