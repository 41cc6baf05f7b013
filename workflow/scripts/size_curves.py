"""Snakemake adapter: MKNN against dataset size, with the class decomposition, for one pair."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.align.curves import class_bins, pair_size_curves  # noqa: E402
from samesky.align.scores import EmbeddingFile  # noqa: E402
from samesky.io import load_dataset_dir, setup_logging, write_csv, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
log = logging.getLogger("size_curves")
opts = snakemake.params.alignment
curve_opts = opts["size_curves"]
reference, other = snakemake.params.surveys
prop = curve_opts["property"]
labels = None
if prop.startswith("truth:"):
    truth = pd.read_parquet(snakemake.input.truth)
    ids = truth[f"{reference}_object_id"].astype(str)
    keep = ids != ""
    values = truth.loc[keep, prop.split(":", 1)[1]].to_numpy()
    labels = dict(zip(ids[keep], class_bins(values, curve_opts["n_bins"])))
else:
    ds = load_dataset_dir(snakemake.input.dataset)
    if prop in ds.column_names:
        labels = dict(zip(map(str, ds["object_id"]), class_bins(ds[prop], curve_opts["n_bins"])))
    else:
        log.warning("%s has no column '%s': MKNN curves without the class decomposition", snakemake.wildcards.pair, prop)
files = [EmbeddingFile(**f) for f in snakemake.params.files]
curves = pair_size_curves(reference, other, files, opts["k"], curve_opts["seeds"], labels, curve_opts["smallest"])
curves.insert(0, "pair", snakemake.wildcards.pair)
curves["property"] = prop if labels is not None else ""
write_csv(snakemake.output.table, curves)
write_json(snakemake.output.provenance, record(snakemake.config, "size_curves", snakemake.input.provenance,
                                               pair=snakemake.wildcards.pair))
