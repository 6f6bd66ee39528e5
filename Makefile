# The two commands of the README. Both install what is missing first.
#   make run   - the whole product locally (Kafka, services, Prometheus, Alertmanager, simulator);
#                Ctrl-C stops it. Options of `charter stack` go in ARGS: make run ARGS="--rate 20"
#   make test  - ruff, mypy and the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv

.PHONY: run test setup lint typecheck pytest system-deps clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

system-deps:
	@bash deploy/install-system-deps.sh

setup: system-deps $(VENV)/.synced

run: setup
	$(VENV)/bin/charter stack $(ARGS)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy .

pytest: setup
	$(VENV)/bin/pytest

test: setup lint typecheck pytest

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .hypothesis .run
