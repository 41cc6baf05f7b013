"""Snakemake adapter: write a small random model (embedded default) or download released weights."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from samesky.embed.models import download_model, write_mini_model  # noqa: E402
from samesky.io import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])
spec = snakemake.params.spec
if snakemake.params.weights == "mini":
    write_mini_model(spec, snakemake.output[0], seed=snakemake.params.seed)
else:
    download_model(spec, snakemake.output[0])
