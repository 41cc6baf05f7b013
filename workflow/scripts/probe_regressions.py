"""Snakemake adapter: kNN and MLP probes of the four properties on one embedding."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.embed.run import read_embeddings  # noqa: E402
from samesky.io import setup_logging, write_json, write_parquet  # noqa: E402
from samesky.probes.analyses import probe_embedding  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
opts = snakemake.params.probes
sample = pd.read_parquet(snakemake.input.sample)
ids, emb, _ = read_embeddings(snakemake.input.embeddings)
pred = probe_embedding(sample, ids, emb, opts.get("split_seed", 42), opts.get("n_folds", 10),
                       opts.get("n_neighbours", 64), opts.get("mlp", "seed001"), name=snakemake.input.embeddings,
                       sample_name=snakemake.input.sample)
logging.getLogger("probes").info("%s/%s: %d objects probed (%d test)", snakemake.wildcards.survey,
                                 snakemake.wildcards.model, len(pred), (pred["split"] == "test").sum())
write_parquet(snakemake.output.predictions, pred)
write_json(snakemake.output.provenance, record(
    snakemake.config, "probe_regressions", snakemake.input.provenance, survey=snakemake.wildcards.survey, model=snakemake.wildcards.model, mlp=opts.get("mlp", "seed001")))
