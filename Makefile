# The two commands of the README:
#   make run   - set up everything, train a champion on the bundled data if none exists, serve it on localhost
#   make test  - set up everything, lint, type-check and run the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test setup system-packages lint typecheck pytest clean

run: setup
	$(BIN)/cotenant up

test: setup lint typecheck pytest

setup: system-packages $(VENV)/.installed

system-packages:
	@bash scripts/install-system-packages.sh

# torch first and pinned, so that the CPU wheel this registry serves is used rather than a CUDA build.
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy cotenant collectors datasets models training serving planning

pytest:
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
