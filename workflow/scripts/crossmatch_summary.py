"""Snakemake adapter: one table of every pair's crossmatch summary."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import setup_logging, write_csv  # noqa: E402

setup_logging(snakemake.log[0])
write_csv(snakemake.output[0], pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True))
