"""Snakemake adapter: K-means (inertia, k = 3 clusters and their mean properties), AMI with property bins,
HDBSCAN cluster counts and UMAP projections (seed 001 §4.3, Tables 7-12, Figures 3-8)."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from samesky.embed.run import read_embeddings  # noqa: E402
from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.probes import structure  # noqa: E402
from samesky.probes.figures import inertia_and_umap  # noqa: E402
from samesky.probes.targets import TARGETS  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
log = logging.getLogger("structure")
seed = snakemake.params.seed
sample = pd.read_parquet(snakemake.input.sample).set_index("object_id")
clusters, ami, hdb, inertia, projections = [], [], [], [], {}
for (survey, model), path in zip(snakemake.params.embeddings, snakemake.input.embeddings):
    name = f"{survey}/{model}"
    ids, emb, _ = read_embeddings(path)
    keep = np.isin(ids.astype(str), sample.index)
    ids, x = ids[keep].astype(str), emb[keep]
    props = sample.loc[ids, list(TARGETS)]
    log.info("%s: %d objects", name, len(ids))
    inertia.append(structure.kmeans_inertia(x, seed=seed).assign(embedding=name))
    labels = structure.kmeans_labels(x, 3, seed)
    means = props.groupby(labels).mean()
    means.insert(0, "frequency", pd.Series(labels).value_counts(normalize=True).sort_index().to_numpy())
    clusters.append(means.rename_axis("cluster").reset_index().assign(embedding=name))
    ami.append({"embedding": name, **structure.ami_with_bins(labels, props, 3)})
    counts = structure.hdbscan_counts(x, min_samples=5)
    hdb.append(pd.DataFrame({"embedding": name, "label": counts.index, "count": counts.to_numpy(),
                             "fraction": counts.to_numpy() / len(x)}))
    projections[name] = (ids, structure.umap_2d(x, seed=seed))
first = ["embedding"]
write_csv(snakemake.output.clusters, pd.concat(clusters)[first + ["cluster", "frequency", *TARGETS]])
write_csv(snakemake.output.ami, pd.DataFrame(ami))
write_csv(snakemake.output.hdbscan, pd.concat(hdb))
inertia = pd.concat(inertia)[["embedding", "k", "inertia"]]
write_csv(snakemake.output.inertia, inertia)
inertia_and_umap(inertia, projections, sample.reset_index(), snakemake.output.figure)
write_json(snakemake.output.provenance, record(snakemake.config, "embedding_structure", snakemake.input.provenance))
