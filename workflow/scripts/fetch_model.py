"""Snakemake adapter: write a small random model (embedded default) or download released weights.

With pre-training settings (the embedded default's Specformer), the spectra of ``input.spectra`` are read
and the mini model is pre-trained on them before it is saved.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import torch  # noqa: E402

from samesky.embed.models import download_model, write_mini_model  # noqa: E402
from samesky.embed.spectra import flux_matrix  # noqa: E402
from samesky.io import load_dataset_dir, setup_logging  # noqa: E402

setup_logging(snakemake.log[0])
spec = snakemake.params.spec
if snakemake.params.weights == "mini":
    pretraining, spectra, source = snakemake.params.pretraining, None, None
    if pretraining:
        torch.set_num_threads(snakemake.threads)
        spectra, skipped = flux_matrix(load_dataset_dir(snakemake.input.spectra))
        lineage = json.loads(Path(snakemake.input.provenance).read_text())
        source = {"path": snakemake.input.spectra, "datasets": lineage.get("datasets", {}),
                  "n_left_out": len(skipped)}
    write_mini_model(spec, snakemake.output[0], seed=snakemake.params.seed, pretraining=pretraining,
                     spectra=spectra, spectra_source=source)
else:
    download_model(spec, snakemake.output[0])
