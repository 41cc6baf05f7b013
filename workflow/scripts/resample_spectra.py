"""Snakemake adapter: resample one pair's spectra (SDSS) onto the DESI coadd grid."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from samesky.embed.spectra import resample_dataset  # noqa: E402
from samesky.io import load_dataset_dir, save_dataset, setup_logging, write_csv, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
column = f"{snakemake.params.survey}_spectrum"
resampled, report = resample_dataset(load_dataset_dir(snakemake.input.dataset), column)
logging.getLogger("resample").info(
    "%d spectra resampled, %d skipped; median %s DESI pixels outside coverage",
    (report["status"] == "resampled").sum(), (report["status"] == "skipped").sum(),
    report.loc[report["status"] == "resampled", "n_outside"].median(),
)
save_dataset(resampled, snakemake.output.dataset)
write_csv(snakemake.output.summary, report)
write_json(snakemake.output.provenance, record(
    snakemake.config, "resample_spectra", [snakemake.input.provenance], survey=snakemake.params.survey,
    grid="np.linspace(3600, 9824, 7781)", n_resampled=int((report["status"] == "resampled").sum()),
    skipped=report.loc[report["status"] == "skipped", "object_id"].tolist()))
