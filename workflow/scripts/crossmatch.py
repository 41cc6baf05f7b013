"""Snakemake adapter: crossmatch two parent datasets, or audit a pre-crossmatched one."""

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import load_dataset_dir, save_dataset, setup_logging, write_csv, write_json  # noqa: E402
from samesky.pairs import audit_crossmatched, crossmatch_datasets  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
log = logging.getLogger("crossmatch")
pair = snakemake.params.pair
specs = snakemake.params.datasets
radius = snakemake.params.radius_arcsec

if "dataset" in pair:
    ds = load_dataset_dir(snakemake.input[pair["dataset"]])
    paired, pairs, summary = audit_crossmatched(
        ds, pair["reference"], pair["other"], radius, rename=pair.get("rename"), name=pair["dataset"],
        require_positions=snakemake.params.require_positions,
    )
else:
    ref_spec, other_spec = specs[pair["reference"]], specs[pair["other"]]
    paired, pairs, summary = crossmatch_datasets(
        load_dataset_dir(snakemake.input[pair["reference"]]), load_dataset_dir(snakemake.input[pair["other"]]),
        ref_spec["survey"], other_spec["survey"], radius, ref_name=pair["reference"], other_name=pair["other"],
    )
log.info("%s: %s", pair["name"], json.dumps(summary))
summary = {"pair": pair["name"], "reference": pair["reference"], "other": pair["other"], **summary}
save_dataset(paired, snakemake.output.dataset)
write_csv(snakemake.output.pairs, pairs)
write_csv(snakemake.output.summary, pd.DataFrame([summary]))
upstream = [f"{snakemake.input[name]}.provenance.json" for name in specs]
write_json(snakemake.output.provenance, record(snakemake.config, "crossmatch", upstream, pair=pair, summary=summary))
