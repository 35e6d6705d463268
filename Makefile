# burnstand — developer entry points. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PYTEST_ARGS ?=

.PHONY: demo test lint fmt bench snapshot-update image-test deps venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

# The udev extra builds PyGObject against Debian's GLib, so it comes after `deps`.
$(DEV_STAMP): pyproject.toml | $(PY)
	$(MAKE) deps
	$(PY) -m pip install -q -e '.[dev,udev]'
	touch $(RUNTIME_STAMP) $@

venv: $(DEV_STAMP)

deps:
	bash .ci/ensure-deps

## Run the coordinator and a simulated kiosk on ./demo-data (Ctrl-C stops everything).
demo: $(RUNTIME_STAMP)
	$(PY) -m coordinator.demo --data demo-data

## Install what the tests need, then run them all (fails if no test ran).
test: deps $(DEV_STAMP)
	$(PY) -m pytest --cov=wire --cov-branch --cov-report=term-missing:skip-covered \
		--cov-fail-under=95 $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: deps $(DEV_STAMP)
	$(PY) bench/run.py

snapshot-update: $(DEV_STAMP)
	$(PY) -m pytest tests/appliance/kiosk --snapshot-update

## Build the appliance rootfs with mmdebstrap and boot it under systemd-nspawn (root, minutes).
image-test: $(DEV_STAMP)
	bash .ci/ensure-deps .ci/image-packages
	$(PY) -m pytest -p no:cacheprovider tests/system/image_check.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
