# harvester: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# What running needs only (harvester and its dependencies): make run and make example.
RUN_STAMP := $(VENV)/.installed-run
PORT   ?= 8765

.DEFAULT_GOAL := help
EXAMPLE ?= cursor-partitioned
KILLS   ?= 25
SEED    ?= 1

.PHONY: help install run example test deps lint bench crash crash-formats clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install harvester with its test and lint tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

# No lint or test tools: a first make run on a fresh clone installs only what it runs.
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

# The demo API on PORT (8765), or on a free port when that one is taken: the configs read
# its URL from HARVESTER_DEMO_URL, which the launcher sets. Ctrl-C stops the harvest
# gracefully (exit 130, resumable); no traceback on any failure.
run: $(RUN_STAMP) ## Start the demo API (PORT=8765), harvest it with config.yaml, stop the server
	@$(PY) -m harvester.demo.launch --port $(PORT) --latency 0.05 --quiet -- $(PY) -m harvester config.yaml

example: $(RUN_STAMP) ## Harvest the demo API with examples/$(EXAMPLE).yaml (e.g. make example EXAMPLE=link)
	@$(PY) -m harvester.demo.launch --port $(PORT) --latency 0.05 --quiet -- $(PY) -m harvester examples/$(EXAMPLE).yaml

test: install deps ## Run the test suite (after the dependency check)
	$(PY) -m pytest

deps: install ## Check that every imported package is declared in pyproject.toml (deptry)
	$(VENV)/bin/deptry harvester tests benchmarks

lint: install deps ## ruff (lint and format check), mypy --strict and the dependency check
	$(VENV)/bin/ruff check harvester tests benchmarks
	$(VENV)/bin/ruff format --check harvester tests benchmarks
	$(VENV)/bin/mypy

.PHONY: deploy-check
deploy-check: install ## Check deploy/kubernetes/*.yaml against the Kubernetes schemas (offline)
	$(VENV)/bin/kubernetes-validate --strict --kubernetes-version 1.33 deploy/kubernetes/*.yaml
	$(VENV)/bin/kubernetes-validate --strict deploy/kubernetes/*.yaml

bench: install ## Benchmarks against the demo API on loopback (see benchmarks/)
	$(PY) benchmarks/bench_core.py --sequential
	$(PY) benchmarks/bench_cpu.py
	$(PY) benchmarks/bench_styles.py
	$(PY) benchmarks/bench_limits.py
	$(PY) benchmarks/bench_resources.py
	$(PY) benchmarks/fault_suite.py
	$(PY) benchmarks/rate_sim.py
	$(PY) benchmarks/rate_matrix.py --quick
	$(PY) benchmarks/bench_formats.py
	$(PY) benchmarks/bench_parquet.py
	$(PY) benchmarks/bench_api.py
	$(PY) benchmarks/bench_incremental.py
	$(PY) benchmarks/bench_shards.py
	$(PY) benchmarks/init_families.py
	$(PY) benchmarks/bench_ray.py

crash: install ## SIGKILL the CLI at random moments, resume, compare the bytes (KILLS=25 per style, SEED=1)
	$(PY) benchmarks/crash_test.py --kills $(KILLS) --records 50000 --seed $(SEED)

crash-formats: install ## The crash test for every output format (KILLS=10 per format and style)
	$(PY) benchmarks/crash_test.py --format all --style offset,cursor-windows --kills $(or $(filter-out 25,$(KILLS)),10) --records 20000 --seed $(SEED)

clean: ## Remove the virtualenv, caches and demo output
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Third-party API servers live in a virtualenv and node_modules of their own, never in .venv.
THIRD_PARTY := benchmarks/.third_party
THIRD_PARTY_DEPS := benchmarks/third_party_servers/requirements.txt benchmarks/third_party_servers/package.json
.PHONY: third-party
third-party: install ## Harvest json-server, FastAPI, DRF, datasette, flask-smorest (ONLY=name to pick)
	@if [ ! -f $(THIRD_PARTY)/.installed ] || [ -n "$$(find $(THIRD_PARTY_DEPS) -newer $(THIRD_PARTY)/.installed)" ]; then \
		set -e; \
		echo "installing the third-party servers into $(THIRD_PARTY)/"; \
		$(PYTHON) -m venv $(THIRD_PARTY)/venv; \
		$(THIRD_PARTY)/venv/bin/pip install --quiet --upgrade pip; \
		$(THIRD_PARTY)/venv/bin/pip install --quiet -r benchmarks/third_party_servers/requirements.txt; \
		mkdir -p $(THIRD_PARTY)/node; \
		cp benchmarks/third_party_servers/package.json $(THIRD_PARTY)/node/; \
		npm install --prefix $(THIRD_PARTY)/node --no-audit --no-fund --silent; \
		touch $(THIRD_PARTY)/.installed; \
	fi
	$(PY) benchmarks/third_party.py $(if $(ONLY),--only $(ONLY))
	$(PY) benchmarks/third_party_formats.py $(if $(ONLY),--only $(ONLY))
	$(PY) benchmarks/third_party_resources.py
	$(PY) benchmarks/third_party_init.py $(if $(ONLY),--only $(ONLY)) --json out/third-party-init.json
	$(PY) benchmarks/third_party_auth.py
	$(PY) benchmarks/third_party_shards.py $(if $(ONLY),--only $(ONLY))

.PHONY: third-party-shards
third-party-shards: install ## --shard K/N and harvester merge against the third-party servers (after make third-party)
	$(PY) benchmarks/third_party_shards.py $(if $(ONLY),--only $(ONLY))

.PHONY: third-party-auth
third-party-auth: install ## Each client authentication method against authlib's OAuth2 server (after make third-party)
	$(PY) benchmarks/third_party_auth.py

.PHONY: third-party-init
third-party-init: install ## harvester init against the third-party servers, then its config harvested (after make third-party)
	$(PY) benchmarks/third_party_init.py $(if $(ONLY),--only $(ONLY)) --json out/third-party-init.json

.PHONY: third-party-resources
third-party-resources: install ## Parent -> child and incremental runs against json-server 0.17 (after make third-party)
	$(PY) benchmarks/third_party_resources.py

.PHONY: third-party-formats
third-party-formats: install ## Every output format against the third-party servers (after make third-party)
	$(PY) benchmarks/third_party_formats.py $(if $(ONLY),--only $(ONLY))

.PHONY: rate-matrix
rate-matrix: install ## The rate-limit matrix (issue 10, ~1.5 h), then harvester tune against it (ONLY=substring)
	$(PY) benchmarks/rate_matrix.py $(if $(ONLY),--only "$(ONLY)") --json out/rate-matrix.json
	$(PY) benchmarks/rate_matrix.py --tune $(if $(ONLY),--only "$(ONLY)") --json out/rate-matrix-tune.json
