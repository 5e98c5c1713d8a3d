# Two commands on a fresh machine: `make run` (the service on embedded SQLite) and `make test`
# (lint, type-check, dependency rule, every test). Both create .venv and install pinned packages.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sessionmeter serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/charging.py
	$(BIN)/python benchmarks/watch_time_report.py
	$(BIN)/python benchmarks/webhooks.py
	$(BIN)/python benchmarks/rollup.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
