# Everything sets itself up: `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
BIN := $(VENV)/bin
export SAM_CLI_TELEMETRY := 0
export __SAM_CLI_APP_DIR := $(CURDIR)/.sam-cli
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help dev demo-deps demo serve weekly openapi genesys-models servicenow chaos chaos-stack test unit integration e2e lint typecheck template-lint security bench build clean

help:
	@echo "make demo   - run the main job on the embedded local stack (no Docker, no AWS account)"
	@echo "make test   - lint, type-check, validate the template, security findings, run every test"
	@echo "make security - checkov on template.yaml (every finding fixed or skipped with a reason)"
	@echo "make bench  - benchmarks that print figures (each run in bench/runs/; bench/results/ holds the quoted ones)"
	@echo "make chaos  - 10,000 seeded fault schedules through the real core; every promise checked"
	@echo "make chaos-stack - 1,000 jobs on the local stack under faults and crashes; the invariants"
	@echo "make weekly - fire the weekly publish now on the local stack (scenarios/weekly.yaml)"
	@echo "make openapi - regenerate docs/openapi.json from the code (a test fails when it drifts)"
	@echo "make genesys-models - regenerate docs/genesys-models.json from the official Genesys SDK (needs PyPI)"
	@echo "make servicenow - build the ServiceNow update set from servicenow/ (build/servicenow/wfm-publish-update-set.xml)"

# One venv, filled in two steps: `make demo` needs only the runtime and the local stack (.installed-local);
# `make test` and the tools add the test and lint tools (.installed). Each is redone when pyproject.toml changes.
$(BIN)/.installed-local: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local]'
	@touch $@

$(BIN)/.installed: $(BIN)/.installed-local
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# SAM CLI pins boto3, click and pydantic: it lives in its own venv, away from the runtime.
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.120'

# checkov pins its own versions of boto3 and friends: it lives in its own venv too.
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'

dev: $(BIN)/.installed

demo-deps: $(BIN)/.installed-local

demo: demo-deps
	$(BIN)/wfm-publish demo

serve: demo-deps
	$(BIN)/wfm-publish serve --port 3000

weekly: demo-deps
	$(BIN)/wfm-publish weekly --now

# The publish API's OpenAPI document, generated from the handler's routes and models. tests/unit/test_openapi.py
# fails when the committed file drifts; tests/e2e/test_api_schemathesis.py fuzzes the local stack with it.
openapi: dev
	$(BIN)/wfm-publish openapi --output docs/openapi.json

# The official Genesys response models of every route we touch, from the SDK (PureCloudPlatformClientV2)
# installed into a throwaway venv under /tmp: the only target that needs the network (PyPI). The contract
# tests read the committed docs/genesys-models.json.
genesys-models: dev
	$(BIN)/python scripts/genesys_models.py

# The ServiceNow update set an admin imports (docs/servicenow.md): servicenow/, one file per record, built
# into one XML under build/ (not committed: it is derived, and the same files always build the same bytes).
# Every script is checked at ES5 level first: later syntax fails the build. SERVICENOW_DATE stamps the
# records (yyyy-MM-dd HH:mm:ss; a fixed date by default, so the same files build the same bytes).
SERVICENOW_DATE ?= 2024-01-01 00:00:00
servicenow: dev
	$(BIN)/python -m wfm_publish_local.servicenow_set --output build/servicenow/wfm-publish-update-set.xml --date "$(SERVICENOW_DATE)"

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev
	$(BIN)/mypy layers/common/python/wfm_publish layers/common/build.py src/wfm_publish_local functions bench scripts

template-lint: dev $(SAM_VENV)/bin/sam
	$(BIN)/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template-file template.yaml

unit: dev
	$(BIN)/pytest tests/unit

integration: dev
	$(BIN)/pytest tests/integration

e2e: dev
	$(BIN)/pytest tests/e2e

# Security findings: every check passes or is skipped in template.yaml with a written reason
# (tests/unit/test_security.py holds the reasons to a standard). Any other finding fails.
security: $(CHECKOV_VENV)/bin/checkov
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download

test: lint typecheck template-lint security
	$(BIN)/pytest

# Each run's figures go to bench/runs/ (untracked); bench/results/ keeps the figures the README and
# docs/benchmark.md quote (refresh: copy a run's file over its committed one, with the quoted figures).
bench: dev
	$(BIN)/python -m bench

# The fault harness: 10,000 seeded fault schedules through the real core in virtual time, every
# promise checked after each (src/wfm_publish_local/chaos, docs/chaos.md). A violation prints its seed
# and a trace, and exits non-zero. `make test` runs a few hundred (tests/unit/test_chaos.py).
CHAOS_SEEDS ?= 10000
chaos: dev
	$(BIN)/python -m wfm_publish_local.chaos --seeds $(CHAOS_SEEDS) --workers 2

# 1,000 jobs on the real local stack behind the fault proxy, with worker crashes and Genesys
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
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .sam-cli .aws-sam .pytest_cache .mypy_cache .ruff_cache
