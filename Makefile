# OneGrid. `make demo` runs a demo county on the real bus; `make test` runs the tests.
# Each sets itself up: a virtualenv with the pinned dependencies, RabbitMQ (with its
# management API) and Redis reachable, started here when they are local and down.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: demo test unit bench chaos check services tools k8s-check prometheus-check clean help
help:
	@echo "make demo    - a demo county end to end on the local bus, ending with a table"
	@echo "make test    - unit, integration and end-to-end tests (real RabbitMQ and Redis)"
	@echo "make unit    - only the tests that need no broker"
	@echo "make bench   - every benchmark in turn (~2.5 h with the full year); BENCH_PARTS=throughput,memory,scaling,profile,year,plot picks"
	@echo "make chaos   - 10,000 events through killed services and restarted RabbitMQ and Redis, reconciled"
	@echo "make check   - validate every contract and tenant manifest"
	@echo "make k8s-check        - render, build and validate deploy/k8s offline (kustomize, schemas, CRDs)"
	@echo "make prometheus-check - alert rules (promtool), dashboards and a real Prometheus on the running services"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

services:
	@bash scripts/ensure-services.sh

tools:
	@bash scripts/ensure-tools.sh

check: $(STAMP)
	$(BIN)/onegrid contracts check

demo: $(STAMP) services
	$(BIN)/onegrid demo

test: $(STAMP) services tools
	$(BIN)/onegrid contracts check
	$(BIN)/pytest

k8s-check: $(STAMP)
	$(BIN)/pytest -q tests/deploy/test_k8s_render.py tests/deploy/test_k8s_validate.py tests/deploy/test_image.py

prometheus-check: $(STAMP) services tools
	$(BIN)/pytest -q tests/deploy/test_alert_rules.py tests/deploy/test_metrics_scrape.py \
	    tests/deploy/test_live_prometheus.py

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP) services
	$(BIN)/python -m bench

chaos: $(STAMP) services
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) run .pytest_cache .hypothesis
