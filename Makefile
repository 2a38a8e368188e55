# hami — the only commands a newcomer needs: setup, test, lint, bench, demo.
# Component makefiles (the local control plane, libvgpu) add their own targets and
# append prerequisites to TEST_DEPS / DEMO_DEPS.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
HAMI_CACHE ?= $(HOME)/.cache/hami
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export HAMI_CACHE

TEST_DEPS :=
DEMO_DEPS :=
SETUP_DEPS :=

.PHONY: all setup test unit lint bench demo clean
all: test

-include hack/k8s/cluster.mk
-include hack/k8s/node.mk
-include libvgpu/libvgpu.mk
-include hack/kubelet/kubelet.mk
-include hack/helm/helm.mk
-include hack/browser.mk
-include hack/prometheus.mk

setup: $(VENV)/.installed $(SETUP_DEPS)

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

## every test: unit, property, C library (with the line-coverage gate of pyproject's
## [tool.coverage]), then end-to-end against the real control plane
test: setup $(TEST_DEPS)
	$(BIN)/python -m pytest -m "not e2e" --cov --cov-report=term
	$(BIN)/python -m pytest -m e2e

## the fast subset: no control plane, no C builds
unit: setup
	$(BIN)/python -m pytest -m "not e2e"

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/mypy tests  # the tests, under the same strict [tool.mypy] settings
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_import_contracts.py
	$(BIN)/python libvgpu/tools/callgraph.py

bench: setup
	@mkdir -p bench-results
	$(BIN)/python benchmarks/bench_core.py --out bench-results/bench_core.json

## the whole stack on a local cluster (simulated GPU nodes); it keeps running: `hami demo down`
DEMO_DEPS += cluster-bin helm-bin
demo: setup $(DEMO_DEPS)
	$(BIN)/hami demo up --config examples/config.yaml --pods examples/pods.yaml \
		--inventory-dir examples/inventory

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache bench-results
