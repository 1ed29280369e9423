# tpmap: `make help` lists the targets. Everything runs with .venv/bin/python explicitly.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Touched after a successful install, so the venv is reinstalled only when the lock changes.
VENV_STAMP := $(VENV)/.installed-lock
# The dashboard's third-party assets (npm, pinned in package-lock.json), never committed.
WEB := services/reporting/web
ASSETS_STAMP := $(WEB)/node_modules/.installed-lock

.PHONY: help venv assets up down status run test lint schemas bench lock

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

venv: $(VENV_STAMP) ## create .venv and install requirements.lock (again only when it changes)

$(VENV_STAMP): requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# --no-compile: byte-compiling every installed module doubled the install (65 s against 31 s
	# here); Python compiles the modules a process imports the first time it imports them.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --require-hashes -r requirements.lock
	touch $@

assets: $(ASSETS_STAMP) ## install the dashboard's npm assets (package-lock.json) into services/reporting/web/node_modules

$(ASSETS_STAMP): $(WEB)/package-lock.json
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error
	touch $@

up: venv assets ## start Kafka, PostgreSQL, the topics and every service that exists
	$(PY) -m deploy.local up

down: venv ## stop everything `up` started (data is kept in .local/)
	$(PY) -m deploy.local down

status: venv ## say what is running, on which ports
	$(PY) -m deploy.local status

run: venv assets ## everything up with the demo province 49 (Mukdahan) loaded; prints the dashboard URL and credentials
	$(PY) -m tools.demo run --provinces 49 --start-stack

test: venv assets ## pytest; tests that need Kafka/PostgreSQL start the local stack themselves
	$(PY) -m pytest

lint: venv ## ruff check, ruff format --check, mypy (config in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

schemas: venv ## write the JSON Schemas (docs/schemas/) and example requests (docs/examples/)
	$(PY) -m services.contracts schemas docs/schemas
	$(PY) -m services.ingest examples docs/examples

bench: venv ## benchmarks (the national-scale refresh alone took 54 min here); results in bench/results/
	$(PY) -m deploy.local up --infra-only
	$(PY) -m bench.ingest
	$(PY) -m bench.matcher
	$(PY) -m bench.logbook
	$(PY) -m bench.reporting
	$(PY) -m bench.refresh

lock: venv ## re-resolve requirements.lock from pyproject.toml (with hashes)
	test -x $(VENV)/bin/uv || $(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes -o requirements.lock
