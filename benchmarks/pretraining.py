"""The mini Specformer's pre-training: cost and what it buys, whole spectra against cropped runs, in one run.

Each variant pre-trains the embedded default's random mini Specformer on the mini DESI spectra (the
inputs of rule ``pretrain_mini_specformer``) with several seeds, embeds the probe pair's spectra, and
scores the out-of-fold kNN probe (``samesky.probes.regress.run_probes``, the probe rules' own settings) on
the four PROVABGS-like targets. The reference is the whole-spectrum run (AstroCLIP's objective as it was
the default until crop_tokens); the other variants train on runs of ``crop_tokens`` tokens. Printed per
variant: seconds of pre-training per seed and the R^2 per target (mean and lowest over the seeds), beside
the best image model's out-of-fold kNN R^2 from the same finished run (``tables/probe_r2_oof.csv``).

    python benchmarks/pretraining.py RUN_DIR [--seeds 0 42 1]

RUN_DIR is a finished embedded-default run (its ``resources/`` and ``results/``).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from samesky.embed.models import load_model
from samesky.embed.run import embed_spectra
from samesky.embed.spectra import flux_matrix
from samesky.embed.specformer import pretrain
from samesky.io import load_dataset_dir
from samesky.probes.regress import r2_per_target, run_probes

TARGETS = ["log_mstar", "log_z_mw", "t_age", "log_ssfr"]
# (label, steps, batch, crop_tokens, mask_chunks, threads): the reference first, with the threads each
# setting ran with in the workflow (the whole-spectrum default used 2; a cropped step is faster on 1)
VARIANTS = [("whole spectrum, 700 steps (reference)", 700, 32, None, 6, 2),
            ("runs of 195 tokens, 700 steps", 700, 32, 195, 2, 1),
            ("runs of 195 tokens, 1400 steps", 1400, 32, 195, 2, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 42, 1])
    args = parser.parse_args()
    run = args.run
    spectra, _ = flux_matrix(load_dataset_dir(run / "resources/data/desi"))
    flux = torch.as_tensor(np.asarray(spectra, dtype=np.float32))
    pair = load_dataset_dir(run / "results/crossmatch/desi_hsc/dataset")
    sample = pd.read_parquet(run / "results/probes/sample.parquet")
    oof = pd.read_csv(run / "results/tables/probe_r2_oof.csv")
    images = oof[(oof.survey == "hsc") & (oof.method == "knn")]
    print(f"{len(flux)} spectra to pre-train on, {len(sample)} probe objects")
    print("best image model, out-of-fold kNN R^2: " + ", ".join(
        f"{t} {images[t].max():.3f} ({images.loc[images[t].idxmax(), 'model']})" for t in TARGETS))
    model = load_model(run / "resources/models/specformer-base")
    random_weights = copy.deepcopy(model.model.state_dict())
    print(f"{'variant (threads)':44s} {'s/seed':>7s} " + " ".join(f"{t:>17s}" for t in TARGETS) + "   (mean [lowest])")
    for label, steps, batch, crop, chunks, threads in VARIANTS:
        torch.set_num_threads(threads)
        seconds, scores = [], []
        for seed in args.seeds:
            model.model.load_state_dict(random_weights)
            start = time.perf_counter()
            pretrain(model.model, flux, steps, batch, 4e-3, chunks, 20, seed=seed, crop_tokens=crop)
            seconds.append(time.perf_counter() - start)
            ids, emb, _, _ = embed_spectra(pair, "desi_spectrum", model, progress=False)
            x = pd.DataFrame(emb, index=ids).loc[sample.object_id].to_numpy()
            y = sample[TARGETS].to_numpy()
            scores.append(r2_per_target(y, run_probes(x, y, sample.split.to_numpy(), 0)["knn"]["oof"]))
        scores = np.array(scores)
        print(f"{label + f' ({threads})':44s} {np.mean(seconds):7.1f} " + " ".join(
            f"{m:8.3f} [{lo:6.3f}]" for m, lo in zip(scores.mean(0), scores.min(0))), flush=True)


if __name__ == "__main__":
    main()
