# cohortflow: the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv services services-down status browser demo test lint test-unit lock clean bench bench-quick bench-worker bench-rebuild bench-audit bench-api bench-simulator bench-scaling

help: ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

$(STAMP): pyproject.toml constraints.txt $(wildcard cohortflow/core/_kernel/*.cpp cohortflow/core/_kernel/*.h cohortflow/contract/*.c)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

venv: $(STAMP) ## Create the virtualenv with the locked dependencies.

services: $(STAMP) ## Install (if missing) and start Kafka, PostgreSQL and Redis on loopback; idempotent.
	dev/services up

services-down: $(STAMP) ## Stop the services dev/services started.
	dev/services down

status: $(STAMP) ## Show the services with their versions.
	dev/services status

browser: $(STAMP) ## Install (if missing) the headless Chromium and chromedriver the dashboard test drives (Debian packages).
	$(BIN)/python -m cohortflow.devstack.browser

demo: services ## Services, migrations, topics, then worker + API + simulator and a live table (Ctrl-C stops).
	dev/demo

test: services browser lint ## Lint and type checks, then every test against the real services (started if needed).
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff and mypy, as configured in pyproject.toml.
	$(BIN)/ruff check .
	$(BIN)/mypy

test-unit: $(STAMP) ## Only the tests that need no service.
	$(BIN)/pytest -q -m 'not integration'

lock: ## Re-resolve constraints.txt from pyproject.toml in a scratch virtualenv.
	rm -rf /tmp/cohortflow-lock && $(PYTHON) -m venv /tmp/cohortflow-lock
	/tmp/cohortflow-lock/bin/pip install -q --upgrade pip
	/tmp/cohortflow-lock/bin/pip install -q -e '.[test,bench]'
	/tmp/cohortflow-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

bench: services ## Every benchmark of issue 8 side by side, medians of 3 runs -> bench/results/<date>.json, bench/REPORT.md.
	$(BIN)/python bench/bench_suite.py $(if $(QUICK),--quick) $(ARGS)

bench-quick: services ## make bench with small sizes, one run each (< 5 minutes) -> bench/REPORT-quick.md: checks every path, figures not quotable.
	$(BIN)/python bench/bench_suite.py --quick $(ARGS)

bench-worker: services ## Worker throughput vs the raw consume ceiling, freshness, memory (issue 3).
	$(BIN)/python bench/bench_worker.py

bench-audit: services ## Audit trail: ingest rate, first pages, cursor walk, archive (issue 7). ARGS="--rows 10000000" for the stretch run.
	$(BIN)/python bench/bench_audit.py $(ARGS)

bench-rebuild: services ## cohortflow rebuild of 1,000,000 records (issue 6); ARGS=--full adds 10,000,000.
	$(BIN)/python bench/bench_rebuild.py $(ARGS)

bench-simulator: services ## Simulator: CPU a published record at 20,000 records/s, median of 3 (issue 5).
	$(BIN)/python bench/bench_simulator.py $(ARGS)

bench-scaling: services ## Worker records/s and RSS at 10k/50k/200k students, medians of 3 (issue 16), without all of make bench; ARGS=--stages: the fold path alone, in-process.
	$(BIN)/python bench/bench_scaling.py $(ARGS)

bench-api: services ## Read API: p50/p99 at 1,000 req/s (summaries, badges), SSE clients per process (issue 4).
	$(BIN)/python bench/bench_api.py $(ARGS)

clean: ## Remove the virtualenv (not the services' data: see dev/services reset).
	rm -rf $(VENV) *.egg-info
