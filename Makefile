# tickml — `make help` lists the targets. `make test` sets up everything on a fresh
# Debian machine and runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@echo "==> Python environment in $(VENV)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

.PHONY: install
install: $(STAMP) ## Create the virtual environment and install tickml with its locked dependencies

.PHONY: lock
lock: ## Re-resolve requirements.lock (dev), the container's requirements and the KServe SDK's lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet -o requirements.lock
	@# The one tickml image runs every service, the notebooks' and MLServer's included.
	$(BIN)/uv pip compile pyproject.toml --extra notebooks --extra mlserver --python-version 3.11 \
		--quiet -o compose/tickml/requirements.txt
	$(BIN)/uv pip compile scripts/kserve-sdk.in --python-version 3.11 --quiet -o scripts/kserve-sdk.lock

.PHONY: lint
lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check tickml tests

.PHONY: tick
tick: ## Build influxd and kapacitord from their Go modules into ~/.cache/tickml (once)
	bash scripts/install-tick.sh

.PHONY: docker
docker: ## Install Docker Engine, build the Compose v2 plugin and the stand-in base into ~/.cache/tickml (once)
	bash scripts/install-docker.sh

.PHONY: browser
browser: ## Install Debian's chromium and chromium-driver (the docs page test) and curl (once)
	bash scripts/install-browser.sh

.PHONY: kserve-sdk
kserve-sdk: $(STAMP) ## Build the KServe SDK's own venv in ~/.cache/tickml, where the KServe manifests are checked (once)
	bash scripts/install-kserve-sdk.sh

.PHONY: proto
proto: $(STAMP) ## Regenerate tickml/udf/udf_pb2.py from tickml/udf/udf.proto
	cd tickml/udf && ../../$(BIN)/python -m grpc_tools.protoc -I. --python_out=. udf.proto

.PHONY: setup
setup: $(STAMP) tick docker browser kserve-sdk ## Install everything the tests need (the parts in parallel)

PYTEST := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

.PHONY: test
test: ## Install what the tests need, lint, and run the whole test suite
	@# The builds are CPU- and network-bound in turns: run them side by side.
	$(MAKE) --no-print-directory --jobs=3 --output-sync=target setup
	$(MAKE) --no-print-directory lint
	@# The Docker end-to-end tests mostly wait on containers: they run beside the others,
	@# each half's report printed whole when it ends.
	$(MAKE) --no-print-directory --jobs=2 --output-sync=target test-docker test-native

.PHONY: test-docker
test-docker: $(STAMP) ## Run the Docker end-to-end tests alone (what `make test` runs beside the rest)
	$(PYTEST) tests/docker --durations=10

.PHONY: test-native
test-native: $(STAMP) ## Run every test but the Docker end-to-end ones
	$(PYTEST) --ignore=tests/docker --durations=20

.PHONY: test-fast
test-fast: $(STAMP) kserve-sdk ## Lint and run the tests that start no services (quick, no influxd or kapacitord)
	$(BIN)/ruff check tickml tests
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not integration"

.PHONY: data
data: $(STAMP) ## Prepare the dataset (the real data/creditcard.csv if present, else a stand-in)
	$(BIN)/tickml data prepare

.PHONY: train
train: $(STAMP) ## Train, evaluate and promote the default model
	$(BIN)/tickml train

.PHONY: clean
clean: ## Remove caches and the virtual environment (keeps data/ and models/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
