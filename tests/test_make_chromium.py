"""`make chromium` (a step of `make test`) installs the browser the console's tests need on a fresh
machine instead of stopping with instructions: Debian's package as root, else Playwright's own, and
only if both fail the instructions (exit 1).

`apt-get` and Playwright's installer are stand-ins on PATH (nothing is installed); `id` is one too,
so the root and non-root paths both run whoever runs the tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _make(tmp_path: Path, *, uid: int, apt_works: bool, playwright_works: bool) -> tuple[int, str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    chromium = tmp_path / "usr-bin-chromium"
    log = tmp_path / "calls.log"
    _stub(bin_dir, "id", f'[ "$1" = "-u" ] && echo {uid}')
    apt = f'echo "apt-get $*" >> {log}; '
    if apt_works:  # `install` puts the browser where Debian does (here: the CHROMIUM given to make)
        apt += f'case "$*" in *install*) printf "#!/bin/sh\\n" > {chromium}; chmod +x {chromium};; esac; exit 0'
    else:
        apt += "exit 100"
    _stub(bin_dir, "apt-get", apt)
    _stub(bin_dir, "playwright-install", f'echo "playwright install" >> {log}; exit {0 if playwright_works else 1}')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        [
            "make",
            "-s",
            "-o",
            ".venv/.installed",
            "chromium",
            f"CHROMIUM={chromium}",
            f"PLAYWRIGHT_CHROMIUM={bin_dir / 'playwright-install'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stdout + done.stderr, calls


@pytest.fixture(autouse=True)
def _make_exists():
    if subprocess.run(["sh", "-c", "command -v make"], capture_output=True).returncode != 0:
        pytest.fail("make is missing", pytrace=False)


def test_as_root_the_debian_package_is_installed(tmp_path):
    status, output, calls = _make(tmp_path, uid=0, apt_works=True, playwright_works=False)
    assert status == 0, output
    assert calls[0] == "apt-get update -qq" and calls[1].startswith("apt-get install -y -qq chromium")
    assert "playwright install" not in calls
    assert (tmp_path / "usr-bin-chromium").exists()


def test_without_root_playwright_s_own_is_installed(tmp_path):
    status, output, calls = _make(tmp_path, uid=1000, apt_works=True, playwright_works=True)
    assert status == 0, output
    assert calls == ["playwright install"]  # apt-get is not tried without root


def test_when_apt_get_fails_playwright_s_own_is_tried(tmp_path):
    status, output, calls = _make(tmp_path, uid=0, apt_works=False, playwright_works=True)
    assert status == 0, output
    assert calls[-1] == "playwright install"


def test_when_both_fail_the_message_says_how_and_make_fails(tmp_path):
    status, output, calls = _make(tmp_path, uid=1000, apt_works=False, playwright_works=False)
    assert status != 0
    assert "sudo apt-get update && sudo apt-get install -y chromium" in output
    assert calls == ["playwright install"]


def test_an_installed_chromium_is_left_alone(tmp_path):
    present = tmp_path / "usr-bin-chromium"
    present.write_text("#!/bin/sh\n")
    present.chmod(0o755)
    status, output, calls = _make(tmp_path, uid=0, apt_works=True, playwright_works=True)
    assert status == 0 and calls == [], output
