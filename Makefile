# Everything sets itself up: `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
export SAM_CLI_TELEMETRY := 0
export __SAM_CLI_APP_DIR := $(CURDIR)/.sam-cli
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help dev demo serve weekly openapi test unit integration e2e lint typecheck template-lint bench chaos-stack build clean

help:
	@echo "make demo   - run the main job on the embedded local stack (no Docker, no AWS account)"
	@echo "make test   - lint, type-check, validate the template, run every test"
	@echo "make bench  - benchmarks that print figures"
	@echo "make chaos-stack - 1,000 jobs on the local stack under faults and crashes; the invariants (issue 9)"
	@echo "make weekly - fire the weekly publish now on the local stack (scenarios/weekly.yaml)"
	@echo "make openapi - regenerate docs/openapi.json from the code (a test fails when it drifts)"

# The runtime + local stack + test tools, in one venv. Re-installed when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# SAM CLI pins boto3, click and pydantic: it lives in its own venv, away from the runtime.
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.120'

dev: $(BIN)/.installed

demo: dev
	$(BIN)/wfm-publish demo

serve: dev
	$(BIN)/wfm-publish serve --port 3000

weekly: dev
	$(BIN)/wfm-publish weekly --now

# The publish API's OpenAPI document, generated from the handler's routes and models. tests/unit/test_openapi.py
# fails when the committed file drifts; tests/e2e/test_api_schemathesis.py fuzzes the local stack with it.
openapi: dev
	$(BIN)/wfm-publish openapi --output docs/openapi.json

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev
	$(BIN)/mypy layers/common/python/wfm_publish src/wfm_publish_local functions bench

template-lint: dev $(SAM_VENV)/bin/sam
	$(BIN)/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template-file template.yaml

unit: dev
	$(BIN)/pytest tests/unit

integration: dev
	$(BIN)/pytest tests/integration

e2e: dev
	$(BIN)/pytest tests/e2e

test: lint typecheck template-lint
	$(BIN)/pytest

bench: dev
	$(BIN)/python -m bench

# Issue 9: 1,000 jobs on the real local stack behind the fault proxy, with worker crashes and Genesys
# faults; exits 1 on any broken invariant. CHAOS_JOBS / CHAOS_SEED / CHAOS_RATE change the run. The rate
# (first requests per second) is about what this 2-core machine's one-process stack carries: faster only
# queues the jobs up, and queued jobs look stuck to the run's short watchdog bound.
CHAOS_JOBS ?= 1000
CHAOS_SEED ?= 9
CHAOS_RATE ?= 1.5
chaos-stack: dev
	$(BIN)/python -m wfm_publish_local.chaos.stack --jobs $(CHAOS_JOBS) --seed $(CHAOS_SEED) --send-rate $(CHAOS_RATE) --timeout 1500

build: $(SAM_VENV)/bin/sam
	PYENV_VERSION=3.11.7:3.12.1 $(SAM_VENV)/bin/sam build --template-file template.yaml

clean:
	rm -rf $(VENV) $(SAM_VENV) .sam-cli .aws-sam .pytest_cache .mypy_cache .ruff_cache
