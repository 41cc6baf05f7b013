"""Redshift from frozen embeddings: AstroCLIP's redshift task with the property probes' two regressors.

The probes are those of ``samesky.probes.regress`` (zero-shot: distance-weighted kNN on standardised
embeddings; few-shot: the MLP), fitted on one split of the pair's objects. Scores are the property
probes' R^2 and the photometric-redshift field's usual three, on dz = (z_pred - z) / (1 + z):
sigma_NMAD = 1.4826 median |dz - median dz|, the outlier fraction |dz| > 0.15, and the bias median dz.
"""

from __future__ import annotations

import numpy as np

OUTLIER_DZ = 0.15


def redshift_scores(z: np.ndarray, pred: np.ndarray) -> dict:
    from sklearn.metrics import r2_score

    dz = (pred - z) / (1 + z)
    return {"r2": float(r2_score(z, pred)), "sigma_nmad": float(1.4826 * np.median(np.abs(dz - np.median(dz)))),
            "outlier_fraction": float(np.mean(np.abs(dz) > OUTLIER_DZ)), "bias": float(np.median(dz))}


def probe_redshift(x: np.ndarray, z: np.ndarray, is_test: np.ndarray, seed: int, n_neighbours: int,
                   mlp: str) -> dict[str, np.ndarray]:
    """Test-set predictions of each probe method: {method: z_pred}."""
    from ..probes.regress import METHODS, fit_predict

    train = ~is_test
    return {method: fit_predict(x[train], z[train, None], {"test": x[is_test]}, method, seed, n_neighbours,
                                mlp)["test"][:, 0] for method in METHODS}

