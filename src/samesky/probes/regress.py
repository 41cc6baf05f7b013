"""Property probes on frozen embeddings (AstroCLIP benchmark, AstroCLIP's evaluation protocol).

- ``knn`` ("zero-shot" in AstroCLIP's code): a distance-weighted k-NN regressor, 64 neighbours, on
  embeddings standardised with the training split's mean and spread.
- ``mlp`` ("few-shot"): ``hidden32`` = one hidden layer of width 32 (scikit-learn MLPRegressor; the
  AstroCLIP benchmark's), or
  ``astroclip`` = AstroCLIP's code: hidden [64, 64], ReLU, dropout 0.1, Adam 1e-3, 10 epochs, batch 64,
  MSE (torch; scikit-learn's MLP has no dropout). Both predict the four z-scored targets jointly.
Targets and embeddings are standardised on the training split only.

Besides the fixed split's test predictions, every object gets an out-of-fold prediction (K folds of
the same shuffle), so the per-group robustness analyses have a held-out prediction for every object.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

METHODS = ("knn", "mlp")


def _mlp_hidden32(x_train, y_train, seed, max_iter=500):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    model = MLPRegressor(hidden_layer_sizes=(32,), max_iter=max_iter, early_stopping=False, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, y_train)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.info("MLP stopped at max_iter = %d before Adam's tolerance was met (loss %.4g)", max_iter, model.loss_)
    return model.predict


def _mlp_astroclip(x_train, y_train, seed, epochs=10, batch=64, lr=1e-3, dropout=0.1):
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d, n_out = x_train.shape[1], y_train.shape[1]
    net = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 64), nn.ReLU(),
                        nn.Dropout(dropout), nn.Linear(64, n_out))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(y_train, dtype=torch.float32)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad()
            nn.functional.mse_loss(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()

    def predict(x_new):
        with torch.inference_mode():
            return net(torch.as_tensor(x_new, dtype=torch.float32)).numpy()

    return predict


def fit_predict(x_train, y_train, x_eval: dict, method: str, seed: int = 0, n_neighbours: int = 64,
                mlp: str = "hidden32") -> dict:
    """Fit one probe on (x_train, y_train) and predict each array of ``x_eval`` (name -> X).

    The special name ``"train"`` predicts the training rows held out from themselves for ``knn`` (with
    distance weighting an object's own zero distance would return its own value: train R^2 = 1).
    """
    from sklearn.neighbors import KNeighborsRegressor

    xs, ys = StandardScaler().fit(x_train), StandardScaler().fit(y_train)
    xt, yt = xs.transform(x_train), ys.transform(y_train)
    out = {}
    if method == "knn":
        k = min(n_neighbours, len(xt) - 1)
        model = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(xt, yt)
        for name, x in x_eval.items():
            if name == "train":
                dist, ind = model.kneighbors(xt, n_neighbors=k + 1)
                dist, ind = dist[:, 1:], ind[:, 1:]  # drop each row's own match
                w = 1.0 / np.maximum(dist, 1e-12)
                pred = np.einsum("nk,nkt->nt", w, yt[ind]) / w.sum(1, keepdims=True)
            else:
                pred = model.predict(xs.transform(x))
            out[name] = ys.inverse_transform(pred.reshape(len(x), -1))
        return out
    if method != "mlp":
        raise ValueError(f"unknown probe method '{method}'; known: {METHODS}")
    if mlp == "hidden32":
        predict = _mlp_hidden32(xt, yt, seed)
    elif mlp == "astroclip":
        predict = _mlp_astroclip(xt, yt, seed)
    else:
        raise ValueError(f"probes.mlp: '{mlp}' is not 'hidden32' or 'astroclip'")
    for name, x in x_eval.items():
        out[name] = ys.inverse_transform(predict(xs.transform(x)).reshape(len(x), -1))
    return out


def run_probes(x: np.ndarray, y: np.ndarray, split: np.ndarray, seed: int, n_folds: int = 10,
               n_neighbours: int = 64, mlp: str = "hidden32") -> dict:
    """Every probe on one embedding: {method: {"test": pred, "train": pred, "oof": pred}} (rows as x)."""
    from sklearn.model_selection import KFold

    train, test = split == "train", split == "test"
    out = {}
    for method in METHODS:
        pred = fit_predict(x[train], y[train], {"test": x[test], "train": x[train]}, method, seed, n_neighbours, mlp)
        oof = np.full(y.shape, np.nan)
        for fold_train, fold_test in KFold(n_folds, shuffle=True, random_state=seed).split(x):
            oof[fold_test] = fit_predict(x[fold_train], y[fold_train], {"f": x[fold_test]}, method, seed,
                                         n_neighbours, mlp)["f"]
        out[method] = {"test": pred["test"], "train": pred["train"], "oof": oof}
    return out


def r2_per_target(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.array([r2_score(y[:, j], pred[:, j]) for j in range(y.shape[1])])


def _r2_resampled(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R^2 per resample and target of (resamples, objects, targets) arrays, as sklearn's ``r2_score`` defines
    it (a constant truth scores 1 if predicted exactly, else 0), in one vectorised pass: calling r2_score
    per resample cost the probe tables 2 s per comparison, almost all of it argument checking."""
    residual = ((y - pred) ** 2).sum(axis=1)
    total = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1 - residual / total
    return np.where(total != 0, r2, np.where(residual == 0, 1.0, 0.0))


def bootstrap_r2(y: np.ndarray, preds: list[np.ndarray], n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> pd.DataFrame:
    """Bootstrap CIs (resampling test objects) of R^2 for each prediction in ``preds`` and, with two, of
    their difference, on the same resamples. Rows: per target, columns r2, lo, hi for each, and delta."""
    rng = np.random.default_rng(seed)
    n, n_t = y.shape
    samples = np.empty((n_boot, len(preds), n_t))
    chunk = max(1, 2**22 // (n * n_t))  # resamples scored at once, a few MB of memory
    for start in range(0, n_boot, chunk):
        idx = np.stack([rng.integers(0, n, n) for _ in range(min(chunk, n_boot - start))])
        for i, p in enumerate(preds):
            samples[start:start + len(idx), i] = _r2_resampled(y[idx], p[idx])
    alpha = (1 - level) / 2
    rows = []
    for j in range(n_t):
        row = {}
        for i, p in enumerate(preds):
            row[f"r2_{i}"] = r2_score(y[:, j], p[:, j])
            row[f"lo_{i}"], row[f"hi_{i}"] = np.quantile(samples[:, i, j], [alpha, 1 - alpha])
        if len(preds) == 2:
            diff = samples[:, 0, j] - samples[:, 1, j]
            row["delta"] = row["r2_0"] - row["r2_1"]
            row["delta_lo"], row["delta_hi"] = np.quantile(diff, [alpha, 1 - alpha])
        rows.append(row)
    return pd.DataFrame(rows)
