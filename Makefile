# The two entry points of the README. Each creates/updates the project venv first (idempotent: pip only
# runs when requirements.txt or pyproject.toml changed since the last install).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test

$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Main job: the default workflow (config/smoke.yaml: tiny synthetic data, every table and figure).
run: $(STAMP)
	$(VENV)/bin/snakemake

# Test suite (what CI runs).
test: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest
