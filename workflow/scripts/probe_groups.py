"""Snakemake adapter: R^2 per environment bin (seed 001 Table 15), brightness class (Tables 16-17) or sky
partition (Tables 13-14), from out-of-fold predictions, with a figure."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.probes.analyses import bright_minus_faint, group_table  # noqa: E402
from samesky.probes.figures import group_r2  # noqa: E402
from samesky.probes.robustness import ENV_BINS  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
analysis = snakemake.params.analysis
sample = pd.read_parquet(snakemake.input.sample)
predictions = {tuple(e): pd.read_parquet(p) for e, p in zip(snakemake.params.embeddings, snakemake.input.predictions)}
column = {"environment": "env_bin", "brightness": "brightness", "sky": "sky_group"}[analysis]
table = group_table(sample, predictions, column)
counts = sample[column].astype(str).value_counts()
extra, order = None, None
if analysis == "environment":
    order = [b for b in ENV_BINS if b in set(sample[column])]

    def extra(ax):  # seed 001 Figures 10-11: nearest-neighbour separations and the bin populations
        ax.hist(np.log10(sample["nn_sep_arcsec"]), bins=30, color="grey")
        ax.set_xlabel("log10 nearest-neighbour separation (arcsec)")
        ax.set_title(" ".join(f"{b}: {counts.get(b, 0)}" for b in ENV_BINS), fontsize=7)
elif analysis == "sky":
    def extra(ax):  # seed 001 Figure 9: the partitions on the sky
        ra = (sample["ra"] + 180) % 360 - 180
        ax.scatter(ra, sample["dec"], c=sample[column], s=3, cmap="tab10")
        ax.set_xlabel("RA (deg, wrapped)")
        ax.set_ylabel("Dec (deg)")
write_csv(snakemake.output.table, table)
if analysis == "brightness":
    write_csv(snakemake.output.difference, bright_minus_faint(table) if len(table) else table)
group_r2(table, column, snakemake.output.figure, order=order, extra=extra)
write_json(snakemake.output.provenance, record(snakemake.config, f"probe_{analysis}", snakemake.input.provenance,
                                               objects_per_group=counts.to_dict()))
