# One-command entry points. Each target sets up what it needs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The backfill's own venv (requirements-beam.txt: Apache Beam pins protobuf, numpy and Pillow its way)
VENV_BEAM := .venv-beam
PY_BEAM := $(VENV_BEAM)/bin/python
SHARED := $(abspath ..)/shared

DATA_DIR ?= $(SHARED)/data/fashion-product-images-small
TRAIN_DATA ?= $(SHARED)/data/fashion-product-images-12k
WEIGHTS ?= $(if $(wildcard $(SHARED)/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5),$(SHARED)/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5,imagenet)
OUT ?= build/model-store
TRAIN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help venv venv-serve venv-beam test-backfill browser test lint format train train-small embed-model demo bench bundle clean

help:
	@echo "make demo   get a model, start the local emulated cloud, upload sample images, show the results (KEEP=1 leaves it running)"
	@echo "make test   lint and run the whole test suite"
	@echo "make test-backfill  the backfill tests in their own venv (.venv-beam, requirements-beam.txt)"
	@echo "make test-fast  the unit tests only: pure logic, no emulators, no training (about half a minute)"
	@echo "make train  run the training job on the 12k set (TRAIN_DATA=, WEIGHTS=, OUT=, TRAIN_ARGS=)"
	@echo "make train-small  a quick training run on the 2,010-image set (DATA_DIR=)"
	@echo "make embed-model  make OUT's current model the embedded default (default-model/)"
	@echo "make bench  run the benchmarks (training, inference, HTTP, pipeline): tables, build/bench/results.json (BENCH_ARGS=--quick)"
	@echo "make bundle build the functions source archive, reproducibly (BUNDLE=build/bundle/functions.zip)"

$(VENV)/.installed: requirements.txt training/requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv: $(VENV)/.installed

# Serving and the local emulated cloud only (no TensorFlow): what `make demo` runs.
$(VENV)/.serve-installed: requirements.txt requirements-local.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-local.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv-serve: $(if $(wildcard $(VENV)/.installed),$(VENV)/.installed,$(VENV)/.serve-installed)

# The backfill pipeline (backfill/, fashionctl backfill/reclassify, tests/backfill): Apache Beam, no TensorFlow.
$(VENV_BEAM)/.installed: requirements-beam.txt requirements-beam-dev.txt requirements-local.txt requirements.txt pyproject.toml
	@test -x $(PY_BEAM) || $(PYTHON) -m venv $(VENV_BEAM)
	$(PY_BEAM) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY_BEAM) -m pip install --quiet --disable-pip-version-check -r requirements-beam-dev.txt
	$(PY_BEAM) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv-beam: $(VENV_BEAM)/.installed

# Debian's Chromium for the review page's browser tests (tests/review: Playwright drives it;
# `playwright install` is never run). Installs it with apt-get when missing and allowed (root
# or sudo); else says that those tests will skip.
browser:
	@command -v chromium >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "no chromium and no right to install it (apt-get install chromium): the browser tests of tests/review will skip"; fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: venv browser venv-beam
	$(VENV)/bin/ruff check .
	FASHION_SHARED_DATA=$(DATA_DIR) $(PY) -m pytest $(PYTEST_ARGS)
	FASHION_SHARED_DATA=$(DATA_DIR) $(PY_BEAM) -m pytest tests/backfill $(BACKFILL_PYTEST_ARGS)

# The backfill tests alone, in the Beam venv (the main venv does not collect them).
BACKFILL_PYTEST_ARGS ?=
test-backfill: venv-beam
	FASHION_SHARED_DATA=$(DATA_DIR) $(PY_BEAM) -m pytest tests/backfill $(BACKFILL_PYTEST_ARGS)

# The unit tests: pure logic, no emulator or function server started, no
# model trained (the `training` marker is deselected; the tiny test model is
# only converted). Folders mirror the packages (tests/README.md).
TEST_FAST ?= tests/shared tests/functions tests/training tests/localcloud/test_bridge_unit.py \
	tests/bench/test_cli.py tests/deploy/test_terraform.py tests/deploy/test_first_apply.py \
	tests/pipeline/test_processing_failures.py tests/pipeline/test_demo.py
.PHONY: test-fast
test-fast: venv
	$(PY) -m pytest -q -m "not training and not long" --ignore=tests/training/test_gcs.py $(TEST_FAST) $(PYTEST_ARGS)

train: venv
	$(PY) -m training run --data "$(TRAIN_DATA)" --weights "$(WEIGHTS)" --out "$(OUT)" $(TRAIN_ARGS)

# The 2,010-image set, fewer epochs, the category alone (docs/training.md: with the attribute heads it falls below the gate): a few minutes.
train-small: venv
	$(PY) -m training run --data "$(DATA_DIR)" --weights "$(WEIGHTS)" --out "$(OUT)" --head-epochs 2 --fine-tune-epochs 4 $(TRAIN_ARGS)

embed-model: venv
	$(PY) -m scripts.embed_model --store "$(OUT)"

# The embedded model and samples/ unless MODEL_DIR= or DEMO_DATA= (a dataset: images of the model's test split);
# TRAIN=1 trains a model on DATA_DIR first. KEEP=1 leaves the local stack running afterwards; DEMO_ARGS= e.g. --per-class 5
DEMO_DATA ?= $(if $(filter-out 0 no false,$(TRAIN)),$(DATA_DIR))
demo: $(if $(filter-out 0 no false,$(TRAIN)),venv,venv-serve)
	$(PY) -m scripts.demo --out "$(OUT)" $(if $(DEMO_DATA),--data "$(DEMO_DATA)") $(if $(filter-out 0 no false,$(TRAIN)),--train --weights "$(WEIGHTS)") $(if $(MODEL_DIR),--model-dir "$(MODEL_DIR)") $(if $(filter-out 0 no false,$(KEEP)),--keep) $(DEMO_ARGS)

# Benchmarks (docs/benchmarks.md). wrk, the HTTP load generator, comes from Debian.
BENCH_ARGS ?=
bench: venv
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package) for the HTTP benchmark"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq wrk; }; }
	$(PY) -m bench --data "$(DATA_DIR)" --weights "$(WEIGHTS)" $(BENCH_ARGS)

# The Cloud Functions source archive: functions/, shared/ and the local packages
# they import, requirements.txt, a root main.py re-exporting the entry points.
# Reproducible (same sources, same bytes); standard library only.
BUNDLE ?= build/bundle/functions.zip
bundle:
	$(PYTHON) -m scripts.bundle --out "$(BUNDLE)"

clean:
	rm -rf build .pytest_cache .ruff_cache
