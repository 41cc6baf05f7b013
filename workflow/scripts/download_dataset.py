"""Snakemake adapter: load one dataset with `datasets.load_dataset` and save it locally."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from samesky.astroclip_data import convert_astroclip_h5  # noqa: E402
from samesky.hub import download_dataset  # noqa: E402
from samesky.io import setup_logging, write_json  # noqa: E402
from samesky.provenance import dataset_entry, record  # noqa: E402

setup_logging(snakemake.log[0])
spec = snakemake.params.spec
if spec.get("format") == "astroclip_h5":  # AstroCLIP's evaluation file, read into the pair layout
    info = convert_astroclip_h5(snakemake.params.source, snakemake.output.data, split=spec.get("split", "test"))
else:
    info = download_dataset(
        snakemake.params.source,
        snakemake.output.data,
        revision=spec.get("revision"),
        split=spec.get("split", "train"),
        config_name=spec.get("config_name"),
        cache_dir=Path(snakemake.output.data).parent,
    )
write_json(snakemake.output.provenance, record(snakemake.config, "download_dataset", datasets={spec["name"]: dataset_entry(info)},
                                                      dataset=spec["name"], **info))
