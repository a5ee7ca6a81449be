# The two set-up commands of README.md: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA_DIR ?= ./data
# `make run` serves Prometheus metrics here (http://127.0.0.1:9100/metrics); 0 turns them off.
METRICS_PORT ?= 9100

AXE := build/node/node_modules/axe-core/axe.min.js

.PHONY: run test check lint typecheck pytest bench system-deps axe clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "inboxcall needs Python >= 3.11"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests need: headless Chromium for pages, ffmpeg's ffprobe for
# recordings, a PostgreSQL server, redis-server and coturn's turnserver (all started by the
# tests themselves, on loopback).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v ffprobe >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v turnserver >/dev/null 2>&1 || missing="$$missing coturn"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# axe-core (accessibility checks in the browser tests) from the npm registry, never vendored.
axe: $(AXE)
$(AXE):
	@command -v npm >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	npm install --prefix build/node --no-audit --no-fund --silent axe-core@4

run: $(STAMP)
	INBOXCALL_DATA_DIR=$(DATA_DIR) $(BIN)/inboxcall demo
	INBOXCALL_DATA_DIR=$(DATA_DIR) INBOXCALL_DEMO=true INBOXCALL_METRICS_PORT=$(METRICS_PORT) \
		$(BIN)/inboxcall serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo --no-cache
	@# The moderation package's contracts apply once that package exists.
	@if [ -d moderation ]; then $(BIN)/lint-imports --no-logo --no-cache importlinter-moderation.toml; fi

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps axe
	$(BIN)/pytest

check: lint typecheck

test: check pytest

# Two nodes on one PostgreSQL and one Redis, on loopback, data under ./cluster-data.
cluster: $(STAMP) system-deps
	$(BIN)/python scripts/run_cluster.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache test-artifacts
