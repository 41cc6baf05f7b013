"""Snakemake adapter: where in each property's range one embedding's probe beats another's (seed 001
§4.7.2): net wins per quantile bin and per residual-difference interval, for every `probes.compare` pair."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.probes.analyses import net_wins  # noqa: E402
from samesky.probes.figures import net_wins_bars  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
sample = pd.read_parquet(snakemake.input.sample)
predictions = {tuple(e): pd.read_parquet(p) for e, p in zip(snakemake.params.embeddings, snakemake.input.predictions)}
frames = []
for a, b in snakemake.params.compare:
    for method in ("knn", "mlp"):
        t = net_wins(sample, predictions[a], predictions[b], method)
        frames.append(t.assign(a="/".join(a), b="/".join(b), method=method))
table = pd.concat(frames, ignore_index=True)
table = table[["a", "b", "method", *[c for c in table.columns if c not in ("a", "b", "method")]]]
write_csv(snakemake.output.table, table)
net_wins_bars(table, snakemake.output.figure)
write_json(snakemake.output.provenance, record(snakemake.config, "probe_net_wins", snakemake.input.provenance))
