# Two commands: `make serve` and `make test`. Both create .venv when it is missing and install
# only when pyproject.toml changed since the last install (stamp files), so a second run is fast.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL_REPOSITORY ?= models
PYTEST_ARGS ?=

.PHONY: serve test install-serve install-dev deploy-test-tools browser-test-tools lint train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $@ $(VENV)/.serve-installed

install-serve: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed

serve: install-serve
	$(BIN)/python -m service --model-repository $(MODEL_REPOSITORY) --host $(HOST) --port $(PORT)

# nginx, promtool and docker-compose for tests/deploy, from apt when missing (else they skip).
deploy-test-tools:
	@sh deploy/test-tools.sh

# Debian's chromium for the playground's browser tests, from apt when missing (else they skip).
browser-test-tools:
	@sh deploy/browser-test-tools.sh

test: install-dev deploy-test-tools browser-test-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check service training tests bench docs

train: install-dev
	$(BIN)/python -m training all

clean:
	rm -rf $(VENV) .pytest_cache
