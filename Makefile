# The two entry points of the README. Each creates/updates the project venv first (idempotent: pip only
# runs when requirements.txt or pyproject.toml changed since the last install).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-cluster gpu-check

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

# The workflow on a real one-node SLURM cluster started on this machine (tests marked `slurm`): as root it
# installs Debian's slurmctld, slurmd and munge when absent, starts and stops the daemons; skips otherwise.
test-cluster: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -m slurm

# GPU acceptance check (README "GPU"): runs with the Python and PyTorch already on the machine, no venv, no
# downloads (`make gpu-check PYTHON=/path/to/python`; default: this venv's Python when it exists). Without a
# GPU it runs the CPU-emulated float16 checks and says so in one line.
ifneq ($(filter command line environment,$(origin PYTHON)),)
CHECK_PYTHON := $(PYTHON)
else
CHECK_PYTHON := $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,$(PYTHON))
endif
gpu-check:
	PYTHONPATH=src:. HF_HUB_OFFLINE=1 $(CHECK_PYTHON) scripts/gpu_check.py
