# Each user-facing target creates or refreshes .venv, so a fresh machine with Python 3.11 and make
# needs nothing else.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install services demo test mock ui lint format bench clean

$(BIN)/python:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The databricks extra too, so the Databricks compute target is always tested (against a local stand-in).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,databricks]'
	touch $(STAMP)

# The Dagster instance of the embedded default: SQLite under DAGSTER_HOME, configured by dagster.yaml.
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

# The Dagster UI (http://127.0.0.1:3000) on the instance in DAGSTER_HOME, with the demo's mock (2,000
# points, fixed clock) on 127.0.0.1:8010; Ctrl-C stops both.
ui: install
	$(BIN)/python -m osipi_dagster.ui

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install services lint
	$(BIN)/lint-imports
	$(BIN)/dagster definitions validate -w workspace.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	$(BIN)/python -m pytest -n 2 -q

bench: install
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
