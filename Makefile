# burnstand — developer entry points. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
RUNTIME_LOCK := requirements/runtime.txt
DEV_LOCK := requirements/dev.txt
# How the locks are made: one universal resolution (Python 3.11 and newer, every platform) with hashes.
# The runtime lock is constrained by the dev lock, so tests run the very versions a kiosk installs.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock"
PYTEST_ARGS ?=
IMAGE_TEST_ARGS ?=
LOCK_FLAGS ?=

.PHONY: demo test lint fmt bench snapshot-update image image-test rootfs-test deps venv clean lock deps-upgrade

# Every install comes from a lock file in requirements/ (exact versions with hashes; see README,
# "Dependencies"). A stamp is older than its lock when the lock moved, so the venv follows it.
$(RUNTIME_STAMP): $(RUNTIME_LOCK) pyproject.toml
	bash requirements/install $(VENV) $(RUNTIME_LOCK) --editable
	touch $@

# The udev extra builds PyGObject against Debian's GLib, so it comes after `deps`.
$(DEV_STAMP): $(DEV_LOCK) pyproject.toml
	$(MAKE) deps
	bash requirements/install $(VENV) $(DEV_LOCK) --editable
	touch $(RUNTIME_STAMP) $@

venv: $(DEV_STAMP)

deps:
	bash .ci/ensure-deps

## Run the coordinator and a simulated kiosk on ./demo-data (Ctrl-C stops everything).
demo: $(RUNTIME_STAMP)
	$(PY) -m demo --data demo-data

## Install what the tests need, then run them all (fails if no test ran).
test: deps $(DEV_STAMP)
	@echo "make test: .venv installed from $$(cat $(VENV)/.burnstand-lock)"
	$(PY) -m pytest --cov=wire --cov-branch --cov-report=term-missing:skip-covered \
		--cov-fail-under=95 $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: deps $(DEV_STAMP)
	$(PY) bench/run.py

snapshot-update: $(DEV_STAMP)
	$(PY) -m pytest tests/appliance/kiosk --snapshot-update

## The flashable kiosk image: dist/burnstand-kiosk-VERSION-arm64.img.xz, .img.xz.sha256, .bmap
## (root; BURNSTAND_COORDINATOR_URL and BURNSTAND_SHOW_ID set; the Debian bootstrap is cached).
image:
	bash .ci/ensure-deps .ci/image-packages
	bash image-build/build-image.sh

## Boot dist/'s image under qemu-system-aarch64 (and a copy burned by burnstand onto a loop
## device) and walk a kiosk's enrollment against a coordinator on loopback (root, many minutes;
## IMAGE_TEST_ARGS="-k reduced" runs only the short boot to multi-user with the agent ready).
image-test: $(DEV_STAMP)
	bash .ci/ensure-deps .ci/image-packages
	$(PY) -m pytest -p no:cacheprovider -s tests/system/image_boot_check.py $(IMAGE_TEST_ARGS)

## Build an amd64 appliance rootfs with mmdebstrap and boot it under systemd-nspawn (root, minutes).
rootfs-test: $(DEV_STAMP)
	bash .ci/ensure-deps .ci/image-packages
	$(PY) -m pytest -p no:cacheprovider tests/system/image_check.py

## Re-make the lock files from pyproject.toml without moving what is already pinned.
## (LOCK_FLAGS=--upgrade moves them to the newest releases instead: see deps-upgrade.)
lock: $(DEV_STAMP)
	$(UV_COMPILE) $(LOCK_FLAGS) pyproject.toml requirements/build.in --extra dev --extra udev \
		-o $(DEV_LOCK)
	$(UV_COMPILE) pyproject.toml requirements/build.in -c $(DEV_LOCK) -o $(RUNTIME_LOCK)

## Move every pin to the newest release pyproject.toml allows, reinstall, and run the tests on it.
deps-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade
	$(MAKE) test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
