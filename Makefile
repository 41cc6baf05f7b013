# Set-up and entry points. Two commands do everything on a fresh machine (Debian, Python 3.11, no GPU):
#   make run    # create the pinned environment, then run the embedded default: snakemake --cores all
#   make test   # create the pinned environment, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# every core the machine has, and no more: 8 jobs on 2 cores ran 13% slower than 2 (issue 28); make run CORES=8
CORES ?= all

.PHONY: env run test dryrun lint lock docs clean

env: $(VENV)/.installed

# torch==2.13.0 in the lock takes the CPU build where it is on disk (see requirements/cpu.txt).
$(VENV)/.installed: requirements/cpu.txt pyproject.toml tools/install_astropt.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/cpu.txt
	$(BIN)/python tools/install_astropt.py
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

run: env
	$(BIN)/snakemake --cores $(CORES)

test: env
	$(BIN)/python -m pytest

dryrun: env
	$(BIN)/snakemake -n
	$(BIN)/snakemake -n --configfile config/paper.yaml

lint: env
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --lint --configfile config/paper.yaml

# config/README.md from the schema's descriptions (a test checks that they agree).
docs: env
	$(BIN)/python -m samesky.configdoc > config/README.md

# Rewrite the lock from the current environment (after a deliberate upgrade).
lock: env
	{ grep '^#' requirements/cpu.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^astropt==' | sed 's/+cpu$$//'; } > requirements/cpu.txt.new
	mv requirements/cpu.txt.new requirements/cpu.txt

# Computed results only; resources/ (downloads, model weights, the mini universe) stays.
clean:
	rm -rf results .snakemake
