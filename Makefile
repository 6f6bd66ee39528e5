# The two commands of the README. Both install what is missing first.
#   make run   - the whole product locally (Kafka, services, Prometheus, Alertmanager, simulator);
#                Ctrl-C stops it. Options of `charter stack` go in ARGS: make run ARGS="--rate 20"
#   make test  - ruff, mypy and the whole test suite, then the quick benchmarks (figures printed, never judged)
#   make bench - the full benchmark suite (README "Performance"); Quix Streams in .venv-quix
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
QUIX_VENV := .venv-quix

.PHONY: run test setup lint typecheck pytest system-deps clean bench bench-quick quix

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

# The Quix Streams peer baseline runs in its own environment (it pins pydantic < 2.14), from
# hash-pinned requirements.
$(QUIX_VENV)/.synced: benchmarks/quix/requirements.txt | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(QUIX_VENV)
	$(UV) pip install --quiet --python $(QUIX_VENV)/bin/python --require-hashes -r benchmarks/quix/requirements.txt
	touch $@

quix: $(QUIX_VENV)/.synced

# Quick mode: under two minutes, printed at the end of `make test`; fails only on a crash.
bench-quick: setup quix
	PYTHONPATH=. $(VENV)/bin/python -m benchmarks --quick

bench: setup quix
	PYTHONPATH=. $(VENV)/bin/python -m benchmarks $(ARGS)

test: setup lint typecheck pytest bench-quick

clean:
	rm -rf $(VENV) $(QUIX_VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .hypothesis .run
