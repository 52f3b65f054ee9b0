# Two commands: `make serve` and `make test`. Both create .venv when it is missing and install
# only when pyproject.toml changed since the last install (stamp files), so a second run is fast.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL_REPOSITORY ?= models
PYTEST_ARGS ?=
# One pytest worker per core; a test file's tests stay on one worker, so module-scoped servers
# and trained models are built once, and files go out in collection order (tests/conftest.py
# puts the slowest first).
PYTEST_WORKERS ?= -n auto --dist loadfile --no-loadscope-reorder

.PHONY: serve test test-tools check-test-tools install-serve install-dev deploy-test-tools \
	browser-test-tools lint train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# --no-compile: pip would byte-compile all ~12,000 installed modules (36 s of CPU here);
# Python compiles the few hundred a run imports, once.
$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-compile -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-compile -e '.[train,dev]'
	touch $@ $(VENV)/.serve-installed

install-serve: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed

serve: install-serve
	$(BIN)/python -m service --model-repository $(MODEL_REPOSITORY) --host $(HOST) --port $(PORT)

# The programs some tests run, from apt as root: chromium (tests/web), nginx, prometheus's
# promtool and docker-compose (tests/deploy). `make test` installs them only under CI=true or
# with INSTALL_TEST_TOOLS=1; otherwise it says what is missing, and those tests skip, listed at
# the end of the run. `make test-tools` installs them now.
test-tools:
	@INSTALL_TEST_TOOLS=1 sh deploy/test-tools.sh
	@INSTALL_TEST_TOOLS=1 sh deploy/browser-test-tools.sh

check-test-tools: deploy-test-tools browser-test-tools

deploy-test-tools:
	@sh deploy/test-tools.sh

browser-test-tools:
	@sh deploy/browser-test-tools.sh

# PYTHONDONTWRITEBYTECODE (set in many CI images and containers) is cleared for the run: the
# suite starts well over a hundred Python processes (servers, training runs, workers), and with
# --no-compile above none would find a cached .pyc: each would compile fastapi, pydantic, grpc,
# torch again, 2.5 s of CPU a server start instead of 0.85 s (half the CPU of the server tests).
test: install-dev check-test-tools
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check service training tests bench docs

train: install-dev
	$(BIN)/python -m training all

clean:
	rm -rf $(VENV) .pytest_cache
