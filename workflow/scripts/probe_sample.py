"""Snakemake adapter: the probe sample (pair objects with catalogue properties, split, groupings)."""

import hashlib
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.io import load_dataset_dir, setup_logging, write_json, write_parquet  # noqa: E402
from samesky.probes.robustness import environment, sky_partitions  # noqa: E402
from samesky.probes.targets import (SSFR_DEFINITIONS, brightness_from_magnitude, brightness_labels,  # noqa: E402
                                    fill_positions, probe_sample, provabgs_targets, read_catalogue, split_labels)
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
log = logging.getLogger("probe_sample")
opts = snakemake.params.probes
pair = opts["pair"]
ds = load_dataset_dir(snakemake.input.dataset)
flags = [c for c in opts.get("brightness", []) if c in ds.column_names]
columns = ["object_id", "ra", "dec", opts["join_on"], *flags]
missing = [c for c in columns[:4] if c not in ds.column_names]
if missing:
    raise ValueError(f"{snakemake.input.dataset}: pair {pair} has no column(s) {missing} (config probes.join_on); "
                     f"has {ds.column_names}")
frame = ds.select_columns(list(dict.fromkeys(columns))).to_pandas()
catalogue = read_catalogue(snakemake.params.catalogue, "probes.catalogue")
by_mag = opts.get("brightness_from_magnitude")
keep = [c for c in ("ra", "dec") if opts.get("positions_from_catalogue") and c in catalogue.columns]
keep += [by_mag["column"]] if by_mag else []
targets, n_dropped = provabgs_targets(catalogue, opts.get("ssfr", "physical"), name=str(snakemake.params.catalogue),
                                      id_column=opts.get("catalogue_id", "TARGETID"), keep=tuple(keep))
sample = probe_sample(frame, targets, opts["join_on"], name=pair)
if opts.get("positions_from_catalogue"):
    sample = fill_positions(sample, name=pair)
if by_mag:
    sample["brightness"] = brightness_from_magnitude(sample[f"catalogue_{by_mag['column']}"], by_mag["bright_below"],
                                                     by_mag["faint_below"])
elif len(flags) == 2:
    sample["brightness"] = brightness_labels(sample[flags[0]], sample[flags[1]])
else:
    log.warning("pair %s has no brightness flags %s: the brightness analysis will be empty", pair, opts.get("brightness"))
    sample["brightness"] = ""
env, threshold = environment(sample["ra"], sample["dec"])
sample = pd.concat([sample, env], axis=1)
sample["sky_group"] = sky_partitions(sample["ra"], sample["dec"], opts.get("sky_groups", 10), snakemake.params.seed)
sample["split"] = split_labels(len(sample), opts.get("test_fraction", 0.1), opts.get("split_seed", 42))
log.info("probe sample: %d objects (%d test); environment threshold %.2f arcsec; bins %s", len(sample),
         (sample["split"] == "test").sum(), threshold, sample["env_bin"].value_counts().to_dict())
write_parquet(snakemake.output.sample, sample)
content = hashlib.sha256(pd.util.hash_pandas_object(catalogue, index=False).values.tobytes()).hexdigest()
write_json(snakemake.output.provenance, record(
    snakemake.config, "probe_sample", [snakemake.input.provenance],
    datasets={"probes_catalogue": {"source": str(snakemake.params.catalogue), "revision_resolved": f"sha256:{content}",
                                   "n_rows": len(catalogue)}},
    n_objects=len(sample), catalogue_rows_dropped=n_dropped, ssfr=SSFR_DEFINITIONS[opts.get("ssfr", "physical")],
    environment_threshold_arcsec=threshold))
