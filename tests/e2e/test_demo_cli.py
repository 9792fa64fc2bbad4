"""`make demo` as a user runs it: --help, output into a file, and stopping it (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_serve_leaves_the_world_running_for_the_console_until_ctrl_c(tmp_path):
    """`make console`: the week, then a few failures; the printed URL serves the console and the
    printed key opens the management routes; Ctrl-C (SIGINT) stops everything, Azurite's folder
    included, with status 0."""
    import queue
    import threading

    import httpx

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, str(DEMO), "--serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    url = key = None
    try:
        deadline = time.monotonic() + 240
        while key is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                break
            if line is None:
                break
            output.append(line)
            if line.startswith("The console: "):
                url = line.removeprefix("The console: ").strip()
            if line.startswith("Sign in with the management key: "):
                key = line.removeprefix("Sign in with the management key: ").strip()
        assert url and key, "".join(output)
        assert "OK: the board matches" in "".join(output)
        origin = url.removesuffix("/api/console/")
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        headers = {"x-functions-key": key}
        status = httpx.get(f"{origin}/api/manage/status", headers=headers, timeout=30)
        assert status.status_code == 200 and len(status.json()["mailboxes"]) == 5
        assert httpx.get(f"{origin}/api/manage/status", timeout=30).status_code == 401  # the key is needed
        failed = httpx.get(f"{origin}/api/manage/transactions", params={"status": "failed"}, headers=headers).json()
        codes = {(t["errorCode"], t["attempts"]) for t in failed["items"]}
        assert ("DIME_REJECTED", 1) in codes and ("DIME_UNAVAILABLE", 5) in codes  # the failures to look at
        unmatched = httpx.get(f"{origin}/api/manage/unmatched", headers=headers).json()["items"]
        assert [(u["resource"], u["reason"]) for u in unmatched] == [("R-FINN", "not-onboarded")]
        assert httpx.get(f"{origin}/api/health").json()["status"] == "ok"
        assert list(tmp_path.glob("azurite-*")) and _processes_inside(tmp_path)

        process.send_signal(signal.SIGINT)
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    while (line := lines.get(timeout=10)) is not None:
        output.append(line)
    assert process.returncode == 0, "".join(output)
    assert "stopping" in "".join(output)
    assert list(tmp_path.glob("azurite-*")) == []  # the folder is gone
    assert _processes_inside(tmp_path) == []  # and so is Azurite
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=5)  # and the runner
