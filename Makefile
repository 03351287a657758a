# Two commands do all of the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PLUGINS := .meltano/.plugins-installed
# The core suite's plugins; the rest of meltano.yml (more loaders, dbt) is for the extras.
CORE_PLUGINS := tap-strava tap-strava-details tap-strava-reconcile tap-strava-events target-csv target-postgres mapper-strava-tally target-strava-spool tap-strava-replay strava-data
EXTRAS := $(VENV)/.extras-installed

.PHONY: setup setup-club bench-club demo test test-e2e test-sdk-range lint format clean settings-doc schema-doc setup-extras test-extras dashboard bench bench-archive bench-events bench-strings

# The three distributions of packages/ (the tap, the simulator, the pipeline around them),
# editable, and the tools of the suite.
PACKAGES := -e ./packages/tap-strava -e ./packages/strava-simulator -e ./packages/strava-pipeline \
	-e ./packages/strava-events
PACKAGE_FILES := packages/tap-strava/pyproject.toml packages/strava-simulator/pyproject.toml \
	packages/strava-pipeline/pyproject.toml packages/strava-events/pyproject.toml requirements-dev.txt

$(INSTALLED): $(PACKAGE_FILES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PACKAGES) -r requirements-dev.txt
	touch $@

$(PLUGINS): meltano.yml $(INSTALLED)
	$(BIN)/meltano install $(CORE_PLUGINS)
	touch $@

# Heavy installs kept out of `make test`: every plugin of meltano.yml (more loaders, the
# dbt transformer), the Python extras (dashboard, drivers) and Debian's chromium for the
# dashboard's browser test (apt-get needs root, as in CI).
# target-xml also into the project's environment: its writer's unit tests import it.
$(EXTRAS): $(PACKAGE_FILES) requirements-extras.txt meltano.yml loaders/target-xml/pyproject.toml $(INSTALLED)
	$(BIN)/pip install --quiet $(PACKAGES) -e './packages/strava-pipeline[dashboard]' \
		-r requirements-dev.txt -r requirements-extras.txt -e ./loaders/target-xml
	$(BIN)/meltano install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	touch $@

setup-extras: setup $(EXTRAS) setup-club

# The club's Dagster definitions (packages/strava-club, docs/scaling.md) in their own
# environment, never the core install: Dagster, its webserver and PostgreSQL storage are
# about 250 MB. dagster, dagster-webserver and dagster-postgres are pinned together in
# packages/strava-club/pyproject.toml.
CLUB_VENV := .venv-club
CLUB_INSTALLED := $(CLUB_VENV)/.installed

$(CLUB_INSTALLED): packages/strava-club/pyproject.toml
	$(PYTHON) -m venv $(CLUB_VENV)
	$(CLUB_VENV)/bin/pip install --quiet --upgrade pip
	$(CLUB_VENV)/bin/pip install --quiet -e ./packages/strava-club
	touch $@

setup-club: $(CLUB_INSTALLED)

setup: $(INSTALLED) $(PLUGINS)

demo: setup
	$(BIN)/python -m devtools.demo

# Three pytest-xdist workers: most tests wait on Meltano's start-up and the simulator, so
# three keep two cores busy (each worker has its own embedded PostgreSQL).
PYTEST_WORKERS ?= 3

test: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS)

test-e2e: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m e2e

# The tap's in-process tests on the lowest singer-sdk of its range (pyproject.toml); the
# newest the range admits is what `make setup` installed, which `make test` used.
SDK_LOWEST := 0.54.2
SDK_VENV := .venv-sdk-lowest

test-sdk-range: setup
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install --quiet --upgrade pip
	$(SDK_VENV)/bin/pip install --quiet $(PACKAGES) -r requirements-dev.txt 'singer-sdk==$(SDK_LOWEST)'
	$(SDK_VENV)/bin/python -c "import importlib.metadata as m; print('lowest singer-sdk:', m.version('singer-sdk'))"
	$(BIN)/python -c "import importlib.metadata as m; print('newest singer-sdk:', m.version('singer-sdk'))"
	$(SDK_VENV)/bin/pytest -n $(PYTEST_WORKERS) -p no:cacheprovider -m "not e2e and not extras"

test-extras: setup-extras
	$(BIN)/pytest -m extras

# The demo, then the training dashboard from its data (.demo/report.html).
dashboard: setup-extras
	$(BIN)/python -m devtools.demo --dashboard

# A simulated club on one app (issue 26): 50 athletes x 447 activities, the first sync,
# then a day of daily polls at 1, 2 and 4 concurrent runs (docs/benchmarks.md);
# BENCH_ARGS="--athletes 200" for the bigger club, ~15 min at 50.
bench-club: setup
	$(BIN)/python -m devtools.bench_club $(BENCH_ARGS)

# API requests, throughput and peak memory against the simulator (docs/benchmarks.md);
# BENCH_ARGS="--sizes 1000,10000,100000" for the full table, "--quick" for 1,000 only,
# "--requests-only" for issue 14's requests against Strava's minimum alone.
bench: setup
	$(BIN)/python -m devtools.bench $(BENCH_ARGS)

# The export archive's import against a bare decoding loop and the API (issue 16), and
# reads per day with push events against polling (issue 17): docs/benchmarks.md.
bench-archive: setup
	$(BIN)/python -m devtools.bench_archive $(BENCH_ARGS)

bench-events: setup
	$(BIN)/python -m devtools.bench_events $(BENCH_ARGS)

# What issue 24's guards cost: the rule for strings per record, the answer cap's memory.
bench-strings: setup
	$(BIN)/python -m devtools.bench_strings $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The README's settings table, regenerated from `tap-strava --about --format=markdown`.
settings-doc: $(INSTALLED)
	$(BIN)/python -m devtools.settings_doc

# docs/schema.md: every stream's columns, JSON-schema and PostgreSQL types, meanings.
schema-doc: $(INSTALLED)
	$(BIN)/python -m devtools.schema_doc

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(SDK_VENV) $(CLUB_VENV) .meltano .embedded-pg .embedded-pg-* .demo .pytest_cache .mypy_cache .ruff_cache
