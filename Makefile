# Dockyard's one entry point for developers and CI: `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written after a successful install; older than requirements.lock or a pyproject.toml = reinstall
# (which also rewrites the installed entry points, what the plugin registry reads).
STAMP := $(VENV)/.dockyard-installed
# The example plugin package (docs/plugins.md), installed so the tests exercise a third-party plugin.
EXAMPLE_PLUGINS := examples/dockyard-example-plugins
ENV_FILE ?= .env
# Runs a command with $(ENV_FILE) loaded as `make up` loads it (.env wins over the shell).
WITH_ENV := $(BIN)/honcho run -e $(ENV_FILE)
PYTEST_ARGS ?=
# Parallel workers (pytest-xdist), each with its own database and namespace; a file's tests stay
# on one worker so its module fixtures start once. Most of a test's time is waiting on processes,
# containers and the broker, so more workers than cores pays: TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= 4
# Procfile entries `make up` starts (all when empty), e.g. make up PROCS="auth files ready".
PROCS ?=
# `make chaos` profile: full (by hand) or ci (the reduced one .ci/run runs after the tests).
PROFILE ?= full

.PHONY: help provision venv up status test lint fmt migrate bench overload chaos docs client clean distclean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# What deploy/provision.sh must bring up: `make test` needs the Docker engine and Chromium;
# `make up` sets the engine up as root and otherwise only warns (tasks then fail
# ENGINE_UNREACHABLE).
PROVISION ?= --docker-if-root
test: PROVISION := --tests

provision: ## Install and start PostgreSQL, Redis, RabbitMQ (and, as root, a Docker engine) where missing
	bash deploy/provision.sh $(PROVISION)

venv: $(STAMP) ## Create .venv and install requirements.lock, Dockyard and the example plugins (only when they changed)

$(STAMP): requirements.lock pyproject.toml $(EXAMPLE_PLUGINS)/pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e $(EXAMPLE_PLUGINS)
	@touch $@

# The files services never create their local storage directory (a missing one is an outage, an
# unmounted volume say), so provisioning does; the default repeats FILES_STORAGE_DIR's.
up: provision venv ## Provision what is missing, the storage directory and the database, migrate, then run every process under supervisord (Ctrl-C stops all)
	$(BIN)/dockyard dev-env --path $(ENV_FILE)
	$(WITH_ENV) sh -c 'mkdir -p "$${FILES_STORAGE_DIR:-./var/files}"'
	$(WITH_ENV) $(BIN)/dockyard db bootstrap
	$(WITH_ENV) $(BIN)/dockyard db migrate
	PATH="$(abspath $(BIN)):$$PATH" exec $(WITH_ENV) $(BIN)/dockyard supervise $(PROCS)

status: venv ## Show each process `make up` runs: state, pid, uptime (supervisorctl)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dockyard supervise --status

# ariadne-codegen pins graphql-core and ruff apart from Dockyard's: it gets a venv of its own.
.venv-codegen/bin/ariadne-codegen: tools/codegen-requirements.txt
	@test -x .venv-codegen/bin/python || $(PYTHON) -m venv .venv-codegen
	.venv-codegen/bin/python -m pip install --disable-pip-version-check -q -r $<
	@touch $@

client: .venv-codegen/bin/ariadne-codegen ## Regenerate dockyard/client/generated from docs/schema/gateway.graphql and queries.graphql
	rm -rf dockyard/client/generated
	.venv-codegen/bin/ariadne-codegen client

test: provision venv ## Provision what is missing, then run the whole test suite (it creates and drops its own database)
	$(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) --durations=30 $(PYTEST_ARGS)

lint: venv ## ruff check, ruff format --check, and README/.env.example up to date (all run)
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/python deploy/update_readme_config.py --check || status=1; \
	exit $$status

fmt: venv ## Fix what ruff can fix, then format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: venv ## Create the database, roles and schemas if missing, then run every service's migrations
	$(WITH_ENV) $(BIN)/dockyard db bootstrap
	$(WITH_ENV) $(BIN)/dockyard db migrate

bench: venv ## Run every benchmark in bench/ (or some: make bench BENCH="gateway_me")
	$(BIN)/python bench/run.py $(BENCH)

overload: venv ## The overload scenario: 560 uploads/s for 10 minutes, processing at half (README "Reliability")
	$(BIN)/python bench/run.py overload
chaos: venv ## Faults under traffic on a throwaway stack of its own; one table, JSON in chaos/results (PROFILE=ci|full)
	$(BIN)/python -m chaos --profile $(PROFILE)

docs: venv ## Regenerate the README configuration table and .env.example from the settings registry
	$(BIN)/python deploy/update_readme_config.py

clean: ## Remove caches and build output (keeps .venv and .env)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info

distclean: clean ## Also remove .venv
	rm -rf $(VENV)
