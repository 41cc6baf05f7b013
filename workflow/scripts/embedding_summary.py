"""Snakemake adapter: one row per embeddings file (pair, side, model, count, dimension, timing)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.embed.run import read_embeddings  # noqa: E402
from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
rows = []
for path in snakemake.input.embeddings:
    ids, emb, meta = read_embeddings(path)
    rows.append({"pair": meta["data"]["pair"], "survey": meta["data"]["survey"],
                 "family": meta["model"]["family"], "size": meta["model"]["size"],
                 "params_m": meta["model"]["params_m"], "weights": meta["model"]["weights"],
                 "pooling": meta["model"]["pooling"], "n_objects": len(ids), "dim": emb.shape[1]})
write_csv(snakemake.output.table, pd.DataFrame(rows))
write_json(snakemake.output.provenance, record(snakemake.config, "embedding_summary", snakemake.input.provenance))
