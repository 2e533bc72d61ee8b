# Developer shortcuts. Each target creates .venv on first use from the pinned lock files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install install-dev demo serve test test-all soak lint format typecheck bench lock clean

help:
	@echo "make demo        seed the Riverside Time Bank demo on SQLite and serve it"
	@echo "make test        the default test suite on SQLite and PostgreSQL"
	@echo "make test-all    also the slow soak/load tests (marker: slow)"
	@echo "make lint        ruff check + format check + mypy"
	@echo "make bench       benchmarks (see docs/benchmarks.md)"
	@echo "make lock        re-pin requirements*.lock from pyproject.toml"

$(BIN)/commons: pyproject.toml requirements-dev.lock
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.lock -e .
	@touch $@

install-dev: $(BIN)/commons

demo: install-dev
	$(BIN)/commons demo

serve: install-dev
	$(BIN)/commons serve

test: install-dev
	$(BIN)/pytest

test-all: install-dev
	$(BIN)/pytest -m "slow or not slow"

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev
	$(BIN)/python -m bench.clearing

lock:
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml -o requirements.lock --python-version 3.11
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements-dev.lock --python-version 3.11

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
