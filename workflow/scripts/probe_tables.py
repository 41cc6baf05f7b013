"""Snakemake adapter: seed 001 Tables 3-6 (test and train R^2, bootstrap CIs and differences) and a figure."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import setup_logging, write_csv, write_json, write_text  # noqa: E402
from samesky.probes.analyses import comparison_table, r2_table, table3_markdown  # noqa: E402
from samesky.probes.figures import r2_bars  # noqa: E402
from samesky.probes.targets import SSFR_DEFINITIONS  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
opts = snakemake.params.probes
sample = pd.read_parquet(snakemake.input.sample)
predictions = {tuple(e): pd.read_parquet(p) for e, p in zip(snakemake.params.embeddings, snakemake.input.predictions)}
out = snakemake.output
test = r2_table(sample, predictions, "test")
write_csv(out.r2_test, test)
write_csv(out.r2_train, r2_table(sample, predictions, "train"))
write_csv(out.r2_oof, r2_table(sample, predictions, "oof"))
ssfr = SSFR_DEFINITIONS[opts.get("ssfr", "physical")]
write_text(out.r2_md, table3_markdown(test, f"Test R² of the property probes (seed 001, Table 3 layout); sSFR = {ssfr}; "
                                             f"MLP variant '{opts.get('mlp', 'seed001')}'."))
write_csv(out.bootstrap, comparison_table(sample, predictions, snakemake.params.compare, opts.get("n_bootstrap", 1000),
                                          opts.get("split_seed", 42)))
r2_bars(test, out.figure)
write_json(out.provenance, record(snakemake.config, "probe_tables", snakemake.input.provenance, ssfr=ssfr))
