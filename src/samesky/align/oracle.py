"""Known-truth "oracle" embeddings: pairs of spaces that share a set fraction of the mini universe's physics.

Real embeddings never tell us how much information two models truly share, so no metric can be checked
on them. Here the answer is built in. Both spaces are noisy random projections of the galaxies' latent
properties (z, log M*, log Z, age, sSFR, dust, size; standardised), split into a part both spaces see and a
part each sees alone:

    S_A = sqrt(f) L Q_s + sqrt(1 - f) P_A Q_a,    S_B = (sqrt(f) L Q_s + sqrt(1 - f) P_B Q_b) R

L is the (N, P) latent matrix, each column of unit variance. P_A, P_B are "private" latents: the same
properties re-paired with other objects (independent row permutations; or independent Gaussians), so
they have the properties' distribution but carry nothing about the object nor about each other. The
3P rows of Q_s, Q_a, Q_b are orthonormal in R^dim, so the two parts are orthogonal; R is a random
rotation, so B does not share A's basis. Hence, exactly:
- each space's signal has total variance P, of which the part common to both is exactly f (the shared
  fraction), and every squared distance splits as |S_i - S_j|^2 = f |L_i - L_j|^2 + (1 - f) |P_i - P_j|^2;
- f = 0: the two signals are independent (functions of independent re-pairings);
  f = 1: identical signals up to the rotation R.
Isotropic Gaussian noise is added with total variance P / snr per space (the same at every f). An optional
fixed nonlinearity, g(s) = c tanh(s / c) per coordinate with c the coordinate's signal scale sqrt(P / dim),
is applied to each space's signal before R (so f = 1 stays identical up to R); off by default.

``nuisance_pair`` is the trap: the spaces share one property only (brightness or redshift), carrying a
``weight`` of each space's variance (default 0.5: as much shared variance as the oracle at f = 0.5, but in
one latent instead of all P), the rest private. A metric is "fooled" by it when it scores the nuisance pair
at or above the oracle at f = weight, i.e. credits one shared nuisance with as much as the same shared
variance spread over all the physics (``summarise``).
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata, spearmanr

from .metrics import evaluate

log = logging.getLogger(__name__)

PROPERTIES = ("z", "log_mstar", "log_z_mw", "t_age_gyr", "log_ssfr", "a_v", "r_eff_arcsec")
NUISANCES = ("mag_r", "z")
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def latent_matrix(truth: pd.DataFrame, columns: Iterable[str] = PROPERTIES + ("mag_r",),
                  transform: str = "rank") -> pd.DataFrame:
    """The chosen truth columns, standardised: ``rank`` (default) maps each to Gaussian quantiles of its
    ranks, then z-scores (skewed properties like size count like the others); ``zscore`` only z-scores.
    NaN, a missing or a constant column is an error naming the column."""
    columns = list(columns)
    missing = [c for c in columns if c not in truth.columns]
    if missing:
        raise KeyError(f"truth table has no column(s) {missing}; it has {list(truth.columns)}")
    out = {}
    for c in columns:
        v = pd.to_numeric(truth[c], errors="coerce").to_numpy(float)
        bad = int((~np.isfinite(v)).sum())
        if bad:
            raise ValueError(f"truth column '{c}' has {bad} NaN or non-numeric values of {len(v)}; "
                             "drop those rows or leave the column out")
        if transform == "rank":
            v = norm.ppf((rankdata(v) - 0.5) / len(v))
        elif transform != "zscore":
            raise ValueError(f"transform must be 'rank' or 'zscore', got {transform!r}")
        sd = v.std()
        if not sd > 0:
            raise ValueError(f"truth column '{c}' is constant: it cannot be standardised")
        out[c] = (v - v.mean()) / sd
    return pd.DataFrame(out, index=truth.index)


def _orthonormal_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, rows)))
    return (q * np.sign(np.diag(r))).T  # Haar-distributed


def _private(latents: np.ndarray, rng: np.random.Generator, private: str) -> np.ndarray:
    if private == "shuffle":
        return latents[rng.permutation(len(latents))]
    if private == "gaussian":
        return rng.normal(size=latents.shape)
    raise ValueError(f"private must be 'shuffle' or 'gaussian', got {private!r}")


def _finish(s_a: np.ndarray, s_b: np.ndarray, total_variance: float, snr: float | None, nonlinearity: str | None,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    dim = s_a.shape[1]
    if nonlinearity == "tanh":
        c = np.sqrt(total_variance / dim)
        s_a, s_b = c * np.tanh(s_a / c), c * np.tanh(s_b / c)
    elif nonlinearity is not None:
        raise ValueError(f"nonlinearity must be None or 'tanh', got {nonlinearity!r}")
    s_b = s_b @ _orthonormal_rows(rng, dim, dim)
    if snr is None:
        return s_a, s_b
    if not snr > 0:
        raise ValueError(f"snr must be positive (or None for no noise), got {snr}")
    sigma = np.sqrt(total_variance / (snr * dim))
    return s_a + sigma * rng.normal(size=s_a.shape), s_b + sigma * rng.normal(size=s_b.shape)


def oracle_pair(latents, shared_fraction: float, dim: int = 64, snr: float | None = 4.0, seed: int = 0,
                nonlinearity: str | None = None, private: str = "shuffle") -> tuple[np.ndarray, np.ndarray]:
    """(A, B), each (N, dim), sharing exactly ``shared_fraction`` of their signal variance (module docstring).

    ``latents``: (N, P) standardised properties (``latent_matrix``); every column is used. ``snr``: total
    signal variance over total noise variance per space (None: no noise). Needs dim >= 3P. Deterministic
    given ``seed``.
    """
    f = float(shared_fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"shared_fraction must lie in [0, 1], got {shared_fraction}")
    lat = np.asarray(latents, np.float64)
    n, p = lat.shape
    if dim < 3 * p:
        raise ValueError(f"dim = {dim} is too small for {p} properties: the shared and two private parts need "
                         f"{3 * p} orthogonal directions")
    rng = np.random.default_rng(seed)
    q = _orthonormal_rows(rng, 3 * p, dim)
    q_s, q_a, q_b = q[:p], q[p:2 * p], q[2 * p:]
    p_a, p_b = _private(lat, rng, private), _private(lat, rng, private)
    shared = np.sqrt(f) * lat @ q_s
    s_a = shared + np.sqrt(1 - f) * p_a @ q_a
    s_b = shared + np.sqrt(1 - f) * p_b @ q_b
    return _finish(s_a, s_b, float(p), snr, nonlinearity, rng)


def nuisance_pair(latents: pd.DataFrame, nuisance: str = "mag_r", weight: float = 0.5,
                  properties: Iterable[str] = PROPERTIES, dim: int = 64, snr: float | None = 4.0, seed: int = 0,
                  nonlinearity: str | None = None, private: str = "shuffle") -> tuple[np.ndarray, np.ndarray]:
    """(A, B) that share ONLY the column ``nuisance`` (e.g. brightness mag_r or redshift z).

    S_A = sqrt(w P) n q + sqrt((1 - w) P / P') P_A Q_a and B likewise with its own private part, where n is
    the nuisance column, q one direction, and P_A the other ``properties`` (P' of them, the nuisance left
    out) re-paired with other objects. Total signal variance P = len(properties), as in ``oracle_pair``, so
    the same ``snr`` means the same noise; the nuisance carries the fraction ``weight`` of it.
    """
    if nuisance not in latents.columns:
        raise KeyError(f"nuisance '{nuisance}' is not a latent column; have {list(latents.columns)}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    properties = list(properties)
    others = [c for c in properties if c != nuisance]
    if not others:
        raise ValueError("the nuisance pair needs at least one property besides the nuisance")
    p = len(properties)
    if dim < 1 + 2 * len(others):
        raise ValueError(f"dim = {dim} is too small: need {1 + 2 * len(others)} orthogonal directions")
    rng = np.random.default_rng(seed)
    q = _orthonormal_rows(rng, 1 + 2 * len(others), dim)
    q_s, q_a, q_b = q[:1], q[1:1 + len(others)], q[1 + len(others):]
    lat = latents[others].to_numpy(np.float64)
    p_a, p_b = _private(lat, rng, private), _private(lat, rng, private)
    shared = np.sqrt(weight * p) * latents[[nuisance]].to_numpy(np.float64) @ q_s
    scale = np.sqrt((1 - weight) * p / len(others))
    return _finish(shared + scale * p_a @ q_a, shared + scale * p_b @ q_b, float(p), snr, nonlinearity, rng)


def oracle_curves(latents: pd.DataFrame, fractions: Iterable[float] = FRACTIONS, metrics: Iterable[str] | None = None,
                  seeds: Iterable[int] = (0, 1, 2), ks: Iterable[int] = (10,), properties: Iterable[str] = PROPERTIES,
                  nuisances: Iterable[str] = NUISANCES, nuisance_weight: float = 0.5, dim: int = 64,
                  snr: float | None = 4.0, nonlinearity: str | None = None, private: str = "shuffle",
                  n_permutations: int = 20, n_permutations_matrix: int = 20,
                  **evaluate_kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric on oracle pairs over a grid of shared fractions and seeds, and on the nuisance pairs.

    Returns (curves, summary). ``curves``: one row per (pair, shared_fraction, seed, metric, k) with
    columns pair ('oracle' or 'nuisance:<column>'), shared_fraction (NaN for nuisance pairs), seed,
    nuisance_weight (NaN for oracle pairs), and metrics.evaluate's (metric, kind, k, n, score, null_mean,
    null_std, p_value, calibrated, n_permutations, sample_rows). ``summary``: see ``summarise``.
    """
    properties = [c for c in properties]
    missing = [c for c in list(properties) + list(nuisances) if c not in latents.columns]
    if missing:
        raise KeyError(f"latents have no column(s) {missing}; have {list(latents.columns)}")
    lat = latents[properties]
    frames = []
    run = dict(metrics=metrics, ks=ks, n_permutations=n_permutations, n_permutations_matrix=n_permutations_matrix,
               **evaluate_kw)
    pair_kw = dict(dim=dim, snr=snr, nonlinearity=nonlinearity, private=private)
    for seed in seeds:
        for f in fractions:
            a, b = oracle_pair(lat, f, seed=seed, **pair_kw)
            frames.append(pd.DataFrame(evaluate(a, b, seed=seed, **run)).assign(
                pair="oracle", shared_fraction=float(f), seed=seed, nuisance_weight=np.nan))
        for name in nuisances:
            a, b = nuisance_pair(latents, name, nuisance_weight, properties, seed=seed, **pair_kw)
            frames.append(pd.DataFrame(evaluate(a, b, seed=seed, **run)).assign(
                pair=f"nuisance:{name}", shared_fraction=np.nan, seed=seed, nuisance_weight=nuisance_weight))
    curves = pd.concat(frames, ignore_index=True)
    lead = ["pair", "shared_fraction", "seed", "nuisance_weight"]
    curves = curves[lead + [c for c in curves.columns if c not in lead]]
    return curves, summarise(curves)


def summarise(curves: pd.DataFrame, saturation_gain: float = 0.1) -> pd.DataFrame:
    """One row per (metric, k) of the oracle curves (mean over seeds at each fraction):

    - spearman: rank correlation of score with shared fraction over every (fraction, seed) point;
    - monotone: the mean curve rises strictly at every step of the fraction grid;
    - noise: the across-seed standard deviation, averaged over fractions;
    - range: s(1) - s(0) of the mean curve (linear interpolation on the grid); snr_curve = range / noise;
    - half_range = (s(0.5) - s(0)) / range: 0.5 for a metric linear in f, above for a concave one;
    - top_gain = (s(1) - s(0.75)) / range; saturates: top_gain < ``saturation_gain`` (the last quarter of the
      shared information adds under a tenth of the range);
    - tracks: spearman >= 0.9, monotone, and range > 3 noise;
    - per nuisance pair (weight w of the variance in the one shared column): nuisance_<col> (mean score),
      nuisance_<col>_relative = (s_nuisance - s(0)) / range, nuisance_<col>_fraction: the shared fraction at
      which the mean oracle curve reaches s_nuisance (inverse interpolation; NaN unless monotone), and
      fooled_<col>: s_nuisance >= s(w), i.e. the metric credits one shared column with at least what the same
      shared variance spread over all the properties earns. A metric that sees only shared variance sits at
      s(w) and counts as fooled (it cannot tell one nuisance from the physics); one that tracks shared
      information scores below (w = 0.5 by default: s(0.5)).
    """
    oracle = curves[curves["pair"] == "oracle"]
    rows = []
    for (metric, k), sub in oracle.groupby(["metric", oracle["k"].fillna(-1)], sort=False):
        stats = sub.groupby("shared_fraction")["score"]
        mean = stats.mean()
        fr, m = mean.index.to_numpy(float), mean.to_numpy()
        spread = stats.std(ddof=1).to_numpy() if sub["seed"].nunique() > 1 else np.full(len(m), np.nan)
        covers = len(fr) >= 2 and fr.min() <= 0 and fr.max() >= 1

        def at(x):
            return float(np.interp(x, fr, m)) if covers else float("nan")

        s0, s_half, s75, s1 = at(0.0), at(0.5), at(0.75), at(1.0)  # on the fraction grid's mean curve
        rng_ = s1 - s0
        noise = float(np.nanmean(spread)) if np.isfinite(spread).any() else float("nan")
        rho = spearmanr(sub["shared_fraction"], sub["score"]).statistic if sub["score"].nunique() > 1 else float("nan")
        monotone = bool(np.all(np.diff(m) > 0))
        row = {"metric": metric, "k": None if k == -1 else int(k), "spearman": float(rho), "monotone": monotone,
               "noise": noise, "range": rng_, "snr_curve": rng_ / noise if noise > 0 else float("nan"),
               "half_range": (s_half - s0) / rng_ if rng_ else float("nan"),
               "top_gain": (s1 - s75) / rng_ if rng_ else float("nan")}
        row["saturates"] = bool(row["top_gain"] < saturation_gain)
        row["tracks"] = bool(rho >= 0.9 and monotone and rng_ > 3 * (noise if np.isfinite(noise) else 0))
        for pair in sorted(p for p in curves["pair"].unique() if p.startswith("nuisance:")):
            name = pair.split(":", 1)[1]
            nsub = curves[(curves["pair"] == pair) & (curves["metric"] == metric) & (curves["k"].fillna(-1) == k)]
            s = float(nsub["score"].mean()) if len(nsub) else float("nan")
            w = float(nsub["nuisance_weight"].iloc[0]) if len(nsub) and "nuisance_weight" in nsub else 0.5
            row[f"nuisance_{name}"] = s
            row[f"nuisance_{name}_relative"] = (s - s0) / rng_ if rng_ else float("nan")
            row[f"nuisance_{name}_fraction"] = float(np.interp(s, m, fr)) if monotone and covers else float("nan")
            row[f"fooled_{name}"] = bool(s >= at(w))
        rows.append(row)
    return pd.DataFrame(rows)


def oracle_figure(curves: pd.DataFrame, path) -> None:
    """Score (left) and calibrated score (right) against the true shared fraction: one line per metric
    (and k), the mean over seeds with the seeds' range shaded; nuisance pairs as markers right of f = 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure

    oracle = curves[curves["pair"] == "oracle"].assign(kk=lambda d: d["k"].fillna(-1))
    nuisance_pairs = sorted(p for p in curves["pair"].unique() if p.startswith("nuisance:"))
    markers = dict(zip(nuisance_pairs, "vs^Dpx"))
    keys = list(dict.fromkeys(zip(oracle["metric"], oracle["kk"])))
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(keys), 2)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1, 1, 0.42]})
    panels = ((axes[0], "score", "score"), (axes[1], "calibrated", "calibrated (s - tau) / (1 - tau)"))
    for ax, column, title in panels:
        for colour, (metric, k) in zip(colours, keys):
            sub = oracle[(oracle["metric"] == metric) & (oracle["kk"] == k)].groupby("shared_fraction")[column]
            mean = sub.mean()
            label = metric if k == -1 else f"{metric} k={int(k)}"
            ax.plot(mean.index, mean, marker=".", color=colour, label=label)
            ax.fill_between(mean.index, sub.min(), sub.max(), color=colour, alpha=0.2)
            for j, pair in enumerate(nuisance_pairs):
                nsub = curves[(curves["pair"] == pair) & (curves["metric"] == metric) & (curves["k"].fillna(-1) == k)]
                if len(nsub):
                    ax.plot(1.08 + 0.08 * j, nsub[column].mean(), markers[pair], color=colour, ms=5)
        for j, pair in enumerate(nuisance_pairs):
            ax.plot([], [], markers[pair], color="0.3", label=f"{pair} (x = {1.08 + 0.08 * j:.2f})")
        ax.axvline(1.04, color="0.7", lw=0.8)
        ax.set_xlabel("true shared fraction f")
        ax.set_ylabel(title)
        ax.set_title(f"oracle pairs: {title}")
    axes[2].axis("off")
    axes[2].legend(*axes[0].get_legend_handles_labels(), loc="center left", fontsize=7, frameon=False)
    write_figure(path, fig)
