"""Snakemake adapter: residual outliers and how often they recur across properties (seed 001 §4.7,
Table 18), and the absolute residual histograms with MDL bin counts (Figure 12)."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.probes.analyses import residuals  # noqa: E402
from samesky.probes.figures import residual_histograms  # noqa: E402
from samesky.probes.structure import outlier_recurrence  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
sample = pd.read_parquet(snakemake.input.sample)
rows, histograms = [], {}
for (survey, model), path in zip(snakemake.params.embeddings, snakemake.input.predictions):
    pred = pd.read_parquet(path)
    for method in ("knn", "mlp"):
        res = residuals(sample, pred, method)
        recurrence = outlier_recurrence(res)
        total = recurrence.sum()
        if total == 0:
            logging.info("%s/%s %s: no residual outliers among %d test objects", survey, model, method, len(res))
        for n_props, count in recurrence.items():
            rows.append({"embedding": f"{survey}/{model}", "method": method, "outlier_in_n_properties": n_props,
                         "objects": count, "percent": 100 * count / total if total else float("nan"),
                         "test_objects": len(res)})
        if method == "knn":
            histograms[f"{survey}/{model}"] = res
write_csv(snakemake.output.table, pd.DataFrame(rows))
residual_histograms(histograms, snakemake.output.figure)
write_json(snakemake.output.provenance, record(snakemake.config, "probe_residuals", snakemake.input.provenance))
