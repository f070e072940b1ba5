# The two entry points of the README. Each creates/updates the project venv first (idempotent: pip only
# runs when requirements.txt or pyproject.toml changed since the last install).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-smoke test-published test-cluster test-browser report report-published gpu-check

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

# The main job end to end (tests marked `smoke`): `make run`'s workflow from scratch on a fresh clone (every
# rule of config/smoke.yaml, ~15 min on 2 cores; nothing where its outputs are current), then what it made.
# `make test-browser` reuses these outputs.
test-smoke: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -m smoke

# The README's published targets (`snakemake --cores 8 results/table7.csv`, `snakemake figures/fig9_heatmap.pdf`)
# in a fresh clone of the committed tree: they finish without training and leave `git status` clean (~2 min).
test-published: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -m published

# The workflow on a real one-node SLURM cluster started on this machine (tests marked `slurm`): as root it
# installs Debian's slurmctld, slurmd and munge when absent, starts and stops the daemons; skips otherwise.
test-cluster: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -m slurm

# The smoke run's report in headless Chromium (tests marked `browser`): as root it installs Debian's chromium
# when absent; skips otherwise. It reuses the smoke outputs of `make run` when they exist (else runs them).
test-browser: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -m browser

# Snakemake's report of the smoke run (report.html): whatever smoke output is missing is made first (as by
# `make run`) and the caption texts are always rewritten (their code is not a rule input Snakemake tracks).
report: $(STAMP)
	$(VENV)/bin/snakemake --forcerun captions
	$(VENV)/bin/snakemake --report report.html

# The report of the published CPU run (results/report.html) from the committed records: only the caption
# texts are written (--allowed-rules captions), so nothing is retrained or rebuilt, even on a fresh clone.
report-published: $(STAMP)
	$(VENV)/bin/snakemake results/cpu/captions --configfile config/cpu.yaml --allowed-rules captions --forcerun captions
	$(VENV)/bin/snakemake --configfile config/cpu.yaml --report results/report.html

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
