#!/usr/bin/env bash
# Snakemake runs this after creating the conda environment (from the workflow's working directory):
# astropt goes in from its wheel with only the requirements it imports (see tools/install_astropt.py).
set -euo pipefail
python tools/install_astropt.py
