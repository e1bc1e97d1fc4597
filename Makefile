# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-runs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.core

# The run engine's peers (huey, pgqueuer, procrastinate, DBOS, Celery): only for benchmarks.
$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.dev $(VENV)/.core

demo: $(VENV)/.core
	cd "$$(mktemp -d)" && $(CURDIR)/$(BIN)/hokuro demo

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 4

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/run_all.py

bench-runs: $(VENV)/.bench
	$(BIN)/python benchmarks/bench_runs.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hokuro
