# OneGrid. `make demo` runs a demo county on the real bus; `make test` runs the tests.
# Each sets itself up: a virtualenv with the pinned dependencies, RabbitMQ (with its
# management API) and Redis reachable, started here when they are local and down.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# the install is redone when a lock (or pyproject.toml, for the project itself) changes
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock requirements-test.lock | cksum | cut -d' ' -f1)
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: demo test unit lint lock bench chaos chaos-redis check services tools examples k8s-check prometheus-check screenshots clean help
help:
	@echo "make demo    - a demo county end to end on the local bus, ending with a table"
	@echo "make test    - unit, integration and end-to-end tests (real RabbitMQ and Redis)"
	@echo "make unit    - only the tests that need no broker"
	@echo "make lint    - ruff (lint and format) over the code, mypy over onegrid/ and services/"
	@echo "make bench   - every benchmark in turn (~2.5 h with the full year); BENCH_PARTS=throughput,memory,scaling,profile,year,geo,plot picks"
	@echo "make chaos   - 10,000 events through killed services, broker restart, alarms and stall, Redis restart, failover, maxmemory and stall (private RabbitMQ and Redis), reconciled"
	@echo "make chaos-redis - Redis failover under load, maxmemory with noeviction, a 30 s stall (private Redis), reconciled"
	@echo "make screenshots - refresh docs/screenshots from the console's browser test (a test run writes run/screenshots)"
	@echo "make check   - validate every contract and tenant manifest"
	@echo "make examples - the integrators' Node.js and Go examples (npm ci, go build; Debian's node and Go)"
	@echo "make k8s-check        - render, build and validate deploy/k8s offline (kustomize, schemas, CRDs)"
	@echo "make prometheus-check - alert rules (promtool), dashboards and a real Prometheus on the running services"
	@echo "make image   - the onegrid image with podman/buildah, no network during the build (docs/deploy.md)"

# Exactly the test lock, every file checked against its hash; then OneGrid itself, editable,
# with nothing more (--no-deps: the lock already has all it needs).
$(STAMP): pyproject.toml requirements.lock requirements-test.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	rm -f $(VENV)/.installed-* && touch $@

# Recompile both locks after a dependency change in pyproject.toml (uv, from the test lock).
lock: $(STAMP)
	$(BIN)/python scripts/lock.py

services:
	@bash scripts/ensure-services.sh

# The image, built offline from a wheelhouse (scripts/build-image.sh); for make test only where
# podman can be had, else the container test skips and says why.
.PHONY: image image-if-possible
image: $(STAMP)
	@bash scripts/build-image.sh

image-if-possible: $(STAMP)
	@bash scripts/build-image.sh --if-possible

tools:
	@bash scripts/ensure-tools.sh

examples:
	@bash scripts/ensure-examples.sh

check: $(STAMP)
	$(BIN)/onegrid contracts check

demo: $(STAMP) services
	$(BIN)/onegrid demo

# lint first: a style or type error fails in seconds, before the broker is started
test: lint services tools examples image-if-possible
	$(BIN)/onegrid contracts check
	$(BIN)/pytest

k8s-check: $(STAMP)
	$(BIN)/pytest -q tests/deploy/test_k8s_render.py tests/deploy/test_k8s_validate.py tests/deploy/test_image.py

prometheus-check: $(STAMP) services tools
	$(BIN)/pytest -q tests/deploy/test_alert_rules.py tests/deploy/test_metrics_scrape.py \
	    tests/deploy/test_live_prometheus.py

# The console's pictures in docs/ are refreshed on purpose, here; `make test` writes its
# screenshots to run/screenshots (git-ignored), leaving the tree clean.
screenshots: $(STAMP) services tools
	ONEGRID_SCREENSHOTS=1 ONEGRID_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q tests/e2e/test_console_browser.py

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# The gate: configured in pyproject.toml ([tool.ruff], [tool.mypy], whose files are onegrid and services)
LINTED := onegrid services sim bench tests scripts
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

bench: $(STAMP) services
	$(BIN)/python -m bench

chaos: $(STAMP) services tools
	$(BIN)/python -m bench.chaos

# The Redis faults (failover under load, maxmemory with noeviction, a 30 s stall) on private
# Redis processes; the shared RabbitMQ is used, not restarted. `make chaos-redis FAULTS=stall`
chaos-redis: $(STAMP) services tools
	$(BIN)/python -m bench.chaos_redis $(FAULTS)

clean:
	rm -rf $(VENV) run .pytest_cache .hypothesis
