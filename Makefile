# Two commands do all of the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PLUGINS := .meltano/.plugins-installed

.PHONY: setup demo test test-e2e lint format clean settings-doc

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(PLUGINS): meltano.yml $(INSTALLED)
	$(BIN)/meltano install
	touch $@

setup: $(INSTALLED) $(PLUGINS)

demo: setup
	$(BIN)/python -m devtools.demo

test: setup
	$(BIN)/pytest

test-e2e: setup
	$(BIN)/pytest -m e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The README's settings table, regenerated from `tap-strava --about --format=markdown`.
settings-doc: $(INSTALLED)
	$(BIN)/python -m devtools.settings_doc

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .meltano .embedded-pg .demo .pytest_cache .mypy_cache .ruff_cache
