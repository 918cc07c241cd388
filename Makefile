# Each user-facing target creates or refreshes .venv, so a fresh machine with Python 3.11 and make
# needs nothing else.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test mock lint format bench clean

$(BIN)/python:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m osipi_dagster.demo

mock: install
	$(BIN)/python -m osipi_dagster.mock --host 127.0.0.1 --port 8010

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint
	$(BIN)/dagster definitions validate -m osipi_dagster.definitions
	$(BIN)/python -m pytest -n 2 -q

bench: install
	$(BIN)/python benchmarks/bench_mock.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
