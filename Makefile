# Everything a new user needs, from a fresh clone: `make demo`, `make console`, `make test`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AZURITE := node_modules/.bin/azurite

.PHONY: test lint format install clean demo console bench chromium screenshots tenant-check soak

install: $(VENV)/.installed $(AZURITE)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

CHROMIUM ?= /usr/bin/chromium
PLAYWRIGHT_CHROMIUM ?= $(BIN)/python -m playwright install chromium

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The console's browser tests drive a Chromium, installed here when missing: Debian's package when
# running as root (as CI does), else Playwright's own download (needs the internet); if neither
# works, how to install it.
chromium:
	@test -x $(CHROMIUM) && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Chromium is missing: installing Debian's (apt-get install chromium)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium && test -x $(CHROMIUM) && exit 0; \
	fi; \
	echo "Chromium is missing: installing Playwright's own (python -m playwright install chromium)"; \
	$(PLAYWRIGHT_CHROMIUM) && exit 0; \
	echo "Chromium is missing and could not be installed (the console's browser tests need it). Install it with:"; \
	echo "  sudo apt-get update && sudo apt-get install -y chromium"; exit 1

# The console's browser tests, writing their screenshots into docs/screenshots/ (`make test` writes
# them into a temporary folder and leaves committed files alone).
screenshots: install chromium
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/e2e/test_console.py

demo: install
	$(BIN)/python scripts/demo.py

# The demo's world left running with its week (and a few failures) for the console: prints the URL
# and the key; Ctrl-C stops everything.
console: install
	$(BIN)/python scripts/demo.py --serve

# Every figure under the loopback and the realistic latency profile (PROFILE=loopback|realistic for
# one; BENCH_QUICK=1 for a short run on small workloads). See README, "Performance".
PROFILE ?= both
bench: install
	$(BIN)/python scripts/bench.py --profile $(PROFILE)
	$(BIN)/python scripts/bench_dime_to_outlook.py --profile $(PROFILE)

# The three-process convergence test on SEEDS fresh seeds in a row (stops at the first failure and
# prints its seed): races between instances depend on timing, so one passing run proves little.
# Run it after changing the workers. VARIANT=single|both for the single-process variant too.
SEEDS ?= 50
VARIANT ?= three
soak: install
	$(BIN)/python scripts/soak.py --seeds $(SEEDS) --variant $(VARIANT)

# Opt-in, never in CI: checks what the fakes assume against a real tenant and a Dime.Scheduler
# sandbox (credentials from TENANT_CHECK_* environment variables; see docs/verification.md).
tenant-check: install
	$(BIN)/python scripts/tenant_check.py

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
