"""Snakemake adapter: one table of every pair's crossmatch summary."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
write_csv(snakemake.output.table, pd.concat([pd.read_csv(p) for p in snakemake.input.summaries], ignore_index=True))
write_json(snakemake.output.provenance, record(snakemake.config, "crossmatch_summary", snakemake.input.provenance))
