"""Snakemake adapter: all pairs' size curves in one table, and their two figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.align.curves import size_curve_figures  # noqa: E402
from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
curves = pd.concat([pd.read_csv(p) for p in snakemake.input.tables], ignore_index=True)
write_csv(snakemake.output.table, curves)
size_curve_figures(curves, snakemake.output.mknn, snakemake.output.decomposition, snakemake.params.model)
write_json(snakemake.output.provenance, record(snakemake.config, "size_curve_figures", snakemake.input.provenance))
