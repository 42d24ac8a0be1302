# imageport: the two commands a new machine needs are `make demo` and `make test`.
# Every target is idempotent: re-running skips what is already installed or built.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := .cache/stamps

# No analytics, ever; Prefect keeps its state inside the checkout.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export PREFECT_HOME ?= $(CURDIR)/.cache/prefect-home
# /dev/kvm hangs stock kernels on these hosts: libguestfs runs its appliance under TCG.
export LIBGUESTFS_BACKEND := direct
export LIBGUESTFS_BACKEND_SETTINGS := force_tcg
export LIBGUESTFS_CACHEDIR := $(CURDIR)/.cache/guestfs
# pytest-xdist workers for `make test` (CI has 2 cores); one test file runs on one worker (tests/README.md).
TEST_WORKERS ?= 2

.PHONY: help demo test deps test-deps venv test-services lint format bench ui serve clean bundle automations

help:
	@echo "make demo   install what the demo needs, then run it on the embedded default"
	@echo "make test   install the test services, then run lint and the whole suite"
	@echo "make bench  run the benchmarks (ratios against the reference tools)"
	@echo "make ui     start a local Prefect server + UI on http://127.0.0.1:4200 (PORT=N for another port)"
	@echo "make serve  the same server + UI, with every deployment served (run ports from the UI or REST API)"
	@echo "make automations  create/refresh the server's lost-worker automation (runs without heartbeats: CRASHED)"
	@echo "make bundle build the compositing engine's agent bundle into dist/ (path + sha256)"

deps:
	@scripts/install-system-packages.sh runtime

test-deps:
	@scripts/install-system-packages.sh test

$(STAMP)/venv: pyproject.toml scripts/make-venv.sh
	@mkdir -p $(STAMP)
	scripts/make-venv.sh $(VENV) test
	@touch $@

venv: $(STAMP)/venv

test-services: test-deps
	@scripts/build-test-services.sh

# The agent bundle every compositing engine runs (python3 BUNDLE JOB.json); prints its path and sha256.
bundle: venv
	$(VENV)/bin/imageport engine bundle --out dist

lint: venv
	$(VENV)/bin/ruff check .

format: venv
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

test: test-deps venv test-services lint
	@mkdir -p $(LIBGUESTFS_CACHEDIR)
	$(VENV)/bin/pytest -q -rfE --durations=15 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

demo: deps venv
	@mkdir -p $(PREFECT_HOME) $(LIBGUESTFS_CACHEDIR)
	$(PY) -m deployments.demo

bench: test-deps venv test-services
	$(PY) bench/run_all.py

# The UI asks the API at PREFECT_API_URL as the server had it when it started: set it first, on PORT.
PORT ?= 4200
API_URL = http://127.0.0.1:$(PORT)/api

ui: venv
	@mkdir -p $(PREFECT_HOME)
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PORT)

# serve: Prefect behind imageport's roles (`imageport server`, docs/operations.md "Users and roles"); HOST=0.0.0.0
# needs users in the users file. The runner authenticates with PREFECT_API_AUTH_STRING (a worker user) if set.
HOST ?= 127.0.0.1
serve: venv
	@mkdir -p $(PREFECT_HOME)
	@export PREFECT_API_URL=$(API_URL); \
	  $(VENV)/bin/imageport server --host $(HOST) --port $(PORT) & server=$$!; \
	  trap "kill $$server" EXIT; \
	  until $(PY) -c "import urllib.request as u; u.urlopen('$(API_URL)/health')" 2>/dev/null; \
	    do kill -0 $$server || exit 1; sleep 1; done; \
	  $(VENV)/bin/imageport serve

# Idempotent, against PREFECT_API_URL: runs whose heartbeats stop (a lost worker) are marked CRASHED.
automations: venv
	$(PY) -m deployments.automations

clean:
	rm -rf .cache/test-run demo-output
