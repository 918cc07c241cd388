# Each user-facing target creates or refreshes .venv, so a fresh machine with Python 3.11 and make
# needs nothing else.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install services browser demo test mock ui stream lint format bench clean

$(BIN)/python:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The databricks extra too, so the Databricks compute target is always tested (against a local stand-in).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,databricks]'
	touch $(STAMP)

# The Dagster instance of the embedded default: SQLite under DAGSTER_HOME, configured by dagster.yaml (the
# design card keeps it at the top level; DAGSTER_HOME gets a copy).
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

install: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

# Real services the tests start themselves: PostgreSQL (test_postgres_*.py, benchmarks/bench_backfill.py)
# from Debian's postgresql package, installed here when missing (CI runs as root on a clean machine); the S3
# stand-in, moto's server (test_s3_*.py), comes with the dev extra.
services:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
		echo "PostgreSQL is missing: install Debian's postgresql package (apt-get install postgresql) as root." >&2; \
		exit 1; \
	fi

demo: install
	$(BIN)/python -m osipi_dagster.demo

mock: install
	$(BIN)/python -m osipi_dagster.mock --host 127.0.0.1 --port 8010

# The Dagster UI (http://127.0.0.1:3000, `dg dev`) on the instance in DAGSTER_HOME, with the demo's mock
# (2,000 points, clock at noon UTC of today) on 127.0.0.1:8010; the first start of a day materializes the
# demo's days first and every start prints what to click. Ctrl-C stops both.
ui: install
	$(BIN)/python -m osipi_dagster.ui

# The live stream (docs/STREAMING.md): PI channels into bronze.pi_timeseries_live, settings from OSIPI_*
# (by default the mock of `make mock` on 127.0.0.1:8010); Ctrl-C commits the buffer and stops.
stream: install
	$(BIN)/osipi-stream

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Debian's Chromium for the browser test (osipi_dagster_tests/test_ui_browser.py), which Playwright drives
# with executable_path: no browser download. Installing needs root; elsewhere install it yourself.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: run 'sudo apt-get install chromium' (the browser test needs it)"; exit 1; fi; }

test: install services lint browser
	$(BIN)/lint-imports
	$(BIN)/dagster definitions validate -w workspace.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	$(BIN)/python -m pytest -n 3 --dist worksteal -q --durations=60

bench: install
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
