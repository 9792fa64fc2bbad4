"""`make demo` as a user runs it: --help, output into a file, and stopping it (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"


def test_help_prints_usage_and_exits_zero():
    done = subprocess.run([sys.executable, str(DEMO), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: make demo" in done.stdout and "--verbose" in done.stdout


def test_progress_into_a_file_has_no_carriage_returns(monkeypatch):
    from scripts import demo

    out = io.StringIO()  # not a terminal, like a CI log
    monkeypatch.setattr(sys, "stdout", out)
    for done in range(1, 95):
        demo.bar(done, 94, f"change {done}")
    text = out.getvalue()
    assert "\r" not in text
    assert text.count("\n") == 4 and "100%  94/94 changes" in text


def _processes_inside(folder: Path) -> list[int]:
    """Pids whose working directory is inside `folder` (Azurite runs in its temporary folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(Path(os.readlink(entry / "cwd"))).startswith(str(folder)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_sigterm_stops_azurite_and_removes_its_folder(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # Azurite's temporary folder lands here
    process = subprocess.Popen(
        [sys.executable, str(DEMO)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:  # wait until Azurite runs and the people are being onboarded
            if "Onboarding" in line or time.monotonic() > deadline:
                break
        assert list(tmp_path.glob("azurite-*")) and _processes_inside(tmp_path)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert list(tmp_path.glob("azurite-*")) == []  # the folder is gone
    assert _processes_inside(tmp_path) == []  # and so is Azurite
