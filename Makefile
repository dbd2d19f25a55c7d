# The two front-door commands: `make run` (the service, embedded default) and `make test` (the suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# What the service needs (web, worker and its runtimes, the client, Flower), and on top of it what the tests
# need (training, the test tools, the JAX and PyTorch backends the worker is checked on).
SERVICE_EXTRAS := worker,client,monitoring
TEST_EXTRAS := worker,training,test,client,backends,monitoring

.PHONY: install install-service run test test-fast

$(VENV)/.installed-service: pyproject.toml constraints.txt
	@echo "==> installing the service's pinned dependencies into $(VENV)/ (first run only; a few minutes)"
	@python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet -c constraints.txt -e '.[$(SERVICE_EXTRAS)]'
	@touch $@

$(VENV)/.installed: $(VENV)/.installed-service
	@echo "==> adding the test, training and backend dependencies to $(VENV)/ (first test run only)"
	@$(PY) -m pip install --quiet -c constraints.txt -e '.[$(TEST_EXTRAS)]'
	@touch $@

install-service: $(VENV)/.installed-service
install: $(VENV)/.installed

# VERBOSE=1 copies every process's log to the terminal (they are always in var/logs/); FLOWER=1 adds Flower,
# the Celery dashboard, on http://127.0.0.1:5555 (it needs the Redis broker: CELERY_BROKER_URL).
run: install-service
	@$(PY) deploy/run_local.py $(if $(VERBOSE),--verbose) $(if $(FLOWER),--flower)

# The whole suite (what CI runs): unit, service, browser, fault and slow tests.
test: install
	@bash tests/run.sh $(ARGS)

# Unit and service tests only (no fault, browser or slow tests): about two minutes, for the edit-test loop.
test-fast: install
	@bash tests/run.sh -m "not faults and not browser and not slow" $(ARGS)
