# One command to try it (`make run`), one to test it (`make test`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL_DIR ?= models
PORT ?= 8080
DATA ?= data/wineind.csv

.PHONY: help venv train run test test-fast lock clean

help:
	@echo "make run        train on $$DATA (first time only), serve on 127.0.0.1:$(PORT)"
	@echo "make test       the whole test suite"
	@echo "make test-fast  unit and service tests only (no servers, engines or tools)"
	@echo "make train      train again and publish a new model version"
	@echo "make image-offline  build the container image on a local Debian base (no registry)"
	@echo "make test-chart render and check the Helm chart"
	@echo "make cluster-up a real single-node cluster on this machine (root; cluster-down)"
	@echo "make cluster-dev  skaffold dev against it; make e2e: the end-to-end suite"
	@echo "make bench      throughput and latency against a baseline, a ceiling and MLServer"
	@echo "make bench-quality  forecast quality on the shared series; bench-scale: sizing"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/runtime.txt requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

# The paths reach the shell as environment variables, quoted, and joined with '=':
# a path with spaces or a leading dash stays one argument, and one holding a quote,
# a backtick or $(...) is a name, not a command to run. For the same reason the
# first training of `run` is a shell test and not a file target (make splits
# targets at spaces).
export DATA MODEL_DIR
TRAIN := $(PY) -m training --data="$$DATA" --model-dir="$$MODEL_DIR"

train: venv
	$(TRAIN)

run: venv
	@test -f "$$MODEL_DIR/CURRENT" || $(TRAIN)
	@mkdir -p build/metrics
	PROMETHEUS_MULTIPROC_DIR=build/metrics SALES_FORECAST_UPLOADS=1 \
		$(PY) -m service --model-dir="$$MODEL_DIR" --port $(PORT)

test: venv
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not integration and not container and not chart \
		and not prometheus and not browser"

# Re-pin the locks from the ranges in pyproject.toml, in a throwaway environment.
lock:
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip install --quiet ".[dev]"
	build/lock/bin/pip freeze --exclude sales-forecast > build/lock/all.txt
	@echo "Pinned set in build/lock/all.txt; split it into requirements/*.txt."

clean:
	rm -rf $(VENV) build .pytest_cache

# ---- Container image: Dockerfile, hack/{docker-engine,base-image,build-image}.sh ----
IMAGE ?= sales-forecast:dev
# Empty: the Dockerfile's python:3.11-slim-bookworm. Offline: 'make image-offline'.
BASE_IMAGE ?=

.PHONY: engine base-image image image-offline test-container

engine:
	hack/docker-engine.sh start

base-image: engine
	hack/base-image.sh

image:
	BASE_IMAGE=$(BASE_IMAGE) hack/build-image.sh $(IMAGE)

image-offline: base-image
	BASE_IMAGE=sales-forecast-base:bookworm hack/build-image.sh $(IMAGE)

test-container: venv
	$(PY) -m pytest -m container

# ---- Forecast page: headless Chromium tests ----
.PHONY: browser test-browser

browser:
	hack/install-browser.sh

test-browser: venv browser
	$(PY) -m pytest -m browser tests/test_upload.py tests/test_browser.py

# ---- Observability: metrics against a real Prometheus ----
.PHONY: test-prometheus instrumentation-cost

test-prometheus: venv
	$(PY) -m pytest -m prometheus

instrumentation-cost: venv
	$(PY) hack/instrumentation-cost.py

# ---- Kubernetes: chart checks and the kind path (charts/, k8s/, skaffold.yaml) ----
KIND_CLUSTER ?= sales-forecast
CHART_NAMESPACE ?= sales-forecast
.PHONY: chart-tools test-chart kind-up kind-down deploy dev port-forward

chart-tools: venv
	hack/install-chart-tools.sh

test-chart: chart-tools
	$(PY) -m pytest -m chart tests/chart

kind-up:
	kind create cluster --name $(KIND_CLUSTER) --config k8s/kind-cluster.yaml
	helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ \
		--force-update
	helm upgrade --install metrics-server metrics-server/metrics-server \
		--namespace kube-system --values k8s/metrics-server-values.yaml

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

deploy:
	skaffold run --kube-context kind-$(KIND_CLUSTER)

dev:
	skaffold dev --kube-context kind-$(KIND_CLUSTER)

port-forward:
	kubectl --context kind-$(KIND_CLUSTER) --namespace $(CHART_NAMESPACE) \
		port-forward service/sales-forecast 8080:8080

# ---- Robustness: soak, model swaps under load, dependency audit ----
.PHONY: soak lifecycle audit
SOAK_SECONDS ?= 900

soak: venv
	SOAK_SECONDS=$(SOAK_SECONDS) nice -n 10 $(PY) -m bench.soak

lifecycle: venv
	nice -n 10 $(PY) -m bench.lifecycle

audit:
	bash hack/audit.sh

# ---- Forecast quality (bench/quality.py, bench/classical.py; docs/forecast-quality.md) ----
.PHONY: bench-quality bench-classical

bench-quality: venv
	$(PY) bench/quality.py

# ETS, ARIMA and Theta on the same protocol, for comparison only: statsmodels lives in
# its own environment and never in the product.
build/classical/.installed:
	$(PYTHON) -m venv build/classical
	build/classical/bin/pip install --quiet statsmodels==0.15.0
	touch $@

bench-classical: build/classical/.installed
	build/classical/bin/python bench/classical.py

# ---- Sizing for many series (bench/scale.py; docs/performance.md, Sizing) ----
.PHONY: bench-scale

# Synthetic files of 100 and 1,000 series: training time and memory, the version on
# disk, the service's memory idle and during a switch, the metadata answers' times.
# Prints one table and judges nothing; one training at a time, about 5 minutes.
bench-scale: venv
	$(PY) -m bench.scale

# ---- Offline single-node Kubernetes and the end-to-end suite (docs/cluster.md) ----
.PHONY: cluster-up cluster-down cluster-deploy cluster-dev e2e

# Build once (cached in .cache/cluster) and start a real single-node cluster (root).
cluster-up:
	hack/cluster/install-deps.sh
	hack/cluster/build.sh
	hack/docker-engine.sh start
	hack/images/build.sh
	hack/cluster/up.sh

# Stop the cluster and remove everything cluster-up set up (binaries stay cached).
cluster-down:
	hack/cluster/down.sh

# skaffold run / skaffold dev on the offline cluster (the offline-cluster profile of
# skaffold.yaml): build, copy the image into the node, helm upgrade --install; dev
# then forwards to 127.0.0.1:8080 and syncs edited Python files.
cluster-deploy:
	hack/cluster/skaffold.sh run

cluster-dev:
	hack/cluster/skaffold.sh dev

# Install the chart with helm on the cluster KUBECONFIG names (default: the offline
# one) and run tests/e2e; settings in docs/cluster.md.
e2e: venv
	hack/cluster/e2e.sh

# ---- Performance (bench/perf/; docs/performance.md) ----
.PHONY: bench bench-tools

bench-tools: venv
	hack/install-bench-tools.sh

# Two passes of bounded wrk runs on 127.0.0.1: the service, a seed-style baseline, a
# hello-world ceiling and MLServer; prints figures and ratios, judges nothing.
bench: bench-tools
	$(PY) -m bench.perf

# CPU per request inside a worker, for the service, the baseline and the ceiling.
.PHONY: bench-hotpath
bench-hotpath: venv
	$(PY) -m bench.perf.hotpath
