"""Snakemake adapter: score each mini-universe crossmatch against the true pairs."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402
from samesky.mini_universe.truth import truth_recovery  # noqa: E402

setup_logging(snakemake.log[0])
truth = pd.read_parquet(snakemake.input.truth)
rows = []
for pair, path in zip(snakemake.params.pairs, snakemake.input.pairs):
    ref = snakemake.params.datasets[pair["reference"]]["survey"]
    other = snakemake.params.datasets[pair["other"]]["survey"]
    row = {"pair": pair["name"], **truth_recovery(truth, pd.read_csv(path, dtype=str).astype({"separation_arcsec": float}), ref, other)}
    logging.getLogger("truth_recovery").info("%s", row)
    rows.append(row)
write_csv(snakemake.output.table, pd.DataFrame(rows))
write_json(snakemake.output.provenance, record(snakemake.config, "crossmatch_truth_recovery", snakemake.input.provenance))
