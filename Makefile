# Everything a new user needs, from a fresh clone: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AZURITE := node_modules/.bin/azurite

.PHONY: test lint format install clean demo bench chromium tenant-check soak

install: $(VENV)/.installed $(AZURITE)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

CHROMIUM := /usr/bin/chromium

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The console's browser tests drive the system's Chromium (Playwright's own download cannot work here).
chromium:
	@test -x $(CHROMIUM) || { echo "Chromium is missing (the console's browser tests need it). Install it with:"; \
		echo "  sudo apt-get update && sudo apt-get install -y chromium"; exit 1; }

demo: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_dime_to_outlook.py

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
