# The two commands: `make test` and `make demo`. Both bootstrap .venv from nothing but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# kustomize renders deploy/kubernetes for tests/deploy/test_kubernetes.py: built once from the
# Go module proxy into .venv/bin (~40 s on a fresh machine) where Go is installed, again only
# when this version changes. Without Go (or kubectl) those tests skip saying so, and fail
# under REQUIRE_TOOLS=1 as CI runs them: like Chromium and promtool, a tool, not a step.
KUSTOMIZE_VERSION := v5.7.1
KUSTOMIZE_STAMP := $(VENV)/.kustomize-$(KUSTOMIZE_VERSION)

.PHONY: test unit demo chaos lint typecheck bench soak profile contracts docs dist clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: install your distribution's venv package (e.g. python3-venv)"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(KUSTOMIZE_STAMP): | $(STAMP)
	@if command -v go >/dev/null 2>&1; then \
	  GOBIN=$(abspath $(VENV))/bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) && touch $@; \
	else \
	  echo "Go not installed: kustomize $(KUSTOMIZE_VERSION) not built (the Kubernetes manifest tests use kubectl if present, else skip)"; \
	fi

test: $(STAMP) $(KUSTOMIZE_STAMP)
	@bash scripts/ensure-tools.sh
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

demo: $(STAMP)
	$(PY) -m dreamscape_dev.demo

# The fault suite (docs/chaos.md): every scenario, ~19 minutes on 2 cores. SCENARIO=crash
# (or broker, network, database, smtp, rebalance, poison, mixed, short) runs one.
SCENARIO ?= all
chaos: $(STAMP)
	@bash scripts/ensure-tools.sh
	$(PY) -m dreamscape_dev.chaos --scenario $(SCENARIO) --out chaos-output

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

# Every benchmark (benchmarks/suite.py): one table, bench-output/results.json, ~3.5 minutes on
# 2 cores. QUICK=1 runs reduced sizes (a smoke run, not figures).
bench: $(STAMP)
	$(PY) benchmarks/suite.py $(if $(QUICK),--quick)

# The three services as processes over ~150,000 records at 300/s (benchmarks/soak.py): resident
# memory against records handled, per service, ~10 minutes. FLOWS=10000 is a quick look.
soak: $(STAMP)
	$(PY) benchmarks/soak.py $(if $(FLOWS),--flows $(FLOWS))

# Each service's benchmark under py-spy: where the time goes (benchmarks/profiles.py), in
# bench-output/profiles/. Needs ptrace (root, or kernel.yama.ptrace_scope=0).
profile: $(STAMP)
	$(PY) benchmarks/profiles.py $(if $(QUICK),--quick)

# Regenerates contracts/ (JSON Schema, AsyncAPI) from the event models; the suite fails when it is stale.
contracts: $(STAMP)
	$(PY) -m dreamscape_dev.contracts

# Regenerates docs/settings.md from the settings classes; tests/unit/test_settings_doc.py fails when it is stale.
docs: $(STAMP)
	$(PY) -m dreamscape_dev.settings_doc

# Every distribution's wheel and sdist (distributions/*/, one version: common.__version__) into
# dist/ (or DIST=dir), each built in an isolated environment, then `twine check --strict`.
# About 15 s; docs/releasing.md. tests/packaging builds them once per session this way.
DIST ?= dist
DISTRIBUTIONS := $(sort $(wildcard distributions/*/pyproject.toml))
dist: $(STAMP)
	rm -rf $(DIST)
	@for project in $(dir $(DISTRIBUTIONS)); do \
	  $(PY) -m build --outdir $(DIST) $$project >/dev/null || exit 1; \
	done
	$(PY) -m twine check --strict $(DIST)/*
	@ls -l $(DIST)

clean:
	rm -rf $(VENV) demo-output chaos-output data .pytest_cache .mypy_cache .ruff_cache
