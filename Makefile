# The two front-door commands: `make run` (the service, embedded default) and `make test` (the suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run test

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[worker,training,test]'
	touch $@

install: $(VENV)/.installed

run: install
	xray-db upgrade
	xray-model check $${XRAY_MODEL_DIR:-models/starter}
	@echo "==> Open http://$${XRAY_BIND:-127.0.0.1:8000} in a browser. Ctrl-C stops the web, the worker and the recovery loop."
	honcho -f deploy/Procfile.local -d . start

test: install
	bash tests/run.sh $(ARGS)
