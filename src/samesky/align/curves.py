"""Alignment against dataset size (Back into Plato's Cave), and what the agreement is made of.

MKNN is recomputed on nested random subsets (one permutation per seed; each size takes its first n rows),
from ~128 objects to all, at each k. Agreement is split three ways (the decomposition of Back into
Plato's Cave), with each object's class a bin of a physical property:
- ``class_a``, ``class_b``: the fraction of an object's k nearest neighbours in one space that share its
  class (each space on its own finds neighbours of the right kind);
- ``class_both``: the mean over objects of class_a x class_b (both spaces find the right kind);
- ``same_object``: MKNN itself (both spaces find the very same objects).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .knn import chance_level, knn, mknn
from .neighbours import permuted_knn

log = logging.getLogger(__name__)


def subset_sizes(n: int, smallest: int = 128, per_octave: int = 1) -> list[int]:
    """Geometric sizes from ``smallest`` up to ``n``, always ending at ``n``."""
    if n <= smallest:
        return [n]
    sizes = np.unique(np.round(smallest * 2 ** (np.arange(0, np.log2(n / smallest) * per_octave) / per_octave)).astype(int))
    return [int(s) for s in sizes if s < n] + [n]


def class_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bins (0 .. n_bins-1) of a property; NaN values get -1 and never count as a match."""
    values = np.asarray(values, float)
    labels = np.full(len(values), -1)
    ok = np.isfinite(values)
    if ok.sum() >= n_bins:
        edges = np.quantile(values[ok], np.linspace(0, 1, n_bins + 1)[1:-1])
        labels[ok] = np.searchsorted(edges, values[ok], side="right")
    return labels


def class_labels(classes, reference: str, truth=None, dataset=None, other: str = "", pair: str = "",
                 dataset_name: str = "the pair dataset") -> dict | None:
    """object id -> class: quantile bins (``classes.n_bins``) of the property ``classes.column``, from the
    mini universe's truth catalogue (``classes.source`` truth; ids of the ``reference`` survey) or from the
    pair dataset (source pair; ``{other}`` in the column is the pair's other survey). None for a pair not in
    ``classes.only_pairs``: its curves come without the decomposition. A decomposed pair without the column
    is an error naming it and the columns present."""
    values = object_values(classes, reference, truth, dataset, other, pair, dataset_name,
                           "alignment.size_curves.classes")
    if values is None:
        return None
    return dict(zip(values, class_bins(np.fromiter(values.values(), float, len(values)), classes["n_bins"])))


def object_values(spec, reference: str, truth=None, dataset=None, other: str = "", pair: str = "",
                  dataset_name: str = "the pair dataset", key: str = "the property") -> dict | None:
    """object id -> the value of a per-object property named as ``{source, column, only_pairs}`` (the shape
    of ``alignment.size_curves.classes``): a column of the mini universe's truth catalogue (source truth;
    ids of the ``reference`` survey, objects it did not observe left out) or of the pair dataset (source
    pair; ``{other}`` in the column is the pair's other survey). None for source none or a pair not in
    ``only_pairs``. A missing column is an error naming ``key``, the column and the columns present."""
    if spec["source"] == "none":
        return None
    if spec["only_pairs"] is not None and pair not in spec["only_pairs"]:
        log.info("%s is not in %s.only_pairs: no %s for it", pair, key, spec["column"])
        return None
    column = class_column(spec, other)
    if spec["source"] == "truth":
        if column not in truth.columns:
            raise KeyError(f"the truth catalogue has no column '{column}' for {key}; has {list(truth.columns)}")
        ids = truth[f"{reference}_object_id"].astype(str)
        keep = ids != ""
        return dict(zip(ids[keep], pd.to_numeric(truth.loc[keep, column], errors="coerce").to_numpy(float)))
    if column not in dataset.column_names:
        raise KeyError(f"{dataset_name}: no column '{column}' for {key} (pair {pair}); has "
                       f"{dataset.column_names}. Name another column, or leave the pair out of its only_pairs")
    return dict(zip(map(str, dataset["object_id"]), np.asarray(dataset[column], float)))


def class_column(classes, other: str) -> str:
    return classes["column"].replace("{other}", other)


def class_source(classes, other: str = "") -> str:
    """How the curves' ``property`` column names the classes: '<source>:<column>', e.g. 'truth:z'."""
    return f"{classes['source']}:{class_column(classes, other)}"


def _same_class_fraction(nn: np.ndarray, labels: np.ndarray) -> np.ndarray:
    mine = labels[:, None]
    return ((labels[nn] == mine) & (mine >= 0)).mean(axis=1)


def size_curve(x_a: np.ndarray, x_b: np.ndarray, ks, seeds, labels: np.ndarray | None = None,
               smallest: int = 128) -> pd.DataFrame:
    """One row per (seed, n, k): MKNN, chance, and the class decomposition when labels are given."""
    n_all = len(x_a)
    rows = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(n_all)
        for n in subset_sizes(n_all, smallest):
            idx = order[:n]
            k_max = min(max(ks), n - 1)
            if n == n_all:  # every row, reordered: from the search rule's lists where they settle it
                nn_a, nn_b = permuted_knn(x_a, idx, k_max), permuted_knn(x_b, idx, k_max)
            else:
                nn_a, nn_b = knn(x_a[idx], k_max), knn(x_b[idx], k_max)
            for k in sorted(ks):
                if k > k_max:
                    continue
                row = {"seed": seed, "n": n, "k": k, "mknn": mknn(nn_a, nn_b, k), "chance": chance_level(n, k)}
                if labels is not None:
                    lab = labels[idx]
                    fa, fb = _same_class_fraction(nn_a[:, :k], lab), _same_class_fraction(nn_b[:, :k], lab)
                    share = np.bincount(lab[lab >= 0]) / len(lab)  # chance that a random neighbour shares the class
                    row.update(class_a=float(fa.mean()), class_b=float(fb.mean()), class_both=float((fa * fb).mean()),
                               class_chance=float((share**2).sum()))
                rows.append(row)
    return pd.DataFrame(rows)


def pair_size_curves(reference: str, other: str, files, ks, seeds, labels: dict | None = None,
                     smallest: int = 128) -> pd.DataFrame:
    """Size curves of every crossmodal comparison of one pair; ``labels`` maps object id -> class."""
    from .scores import crossmodal_comparisons, load_cached, paired

    cache: dict = {}
    frames = []
    for fo, fr in crossmodal_comparisons(reference, other, files):
        ids, xa, xb = paired(load_cached(fo, cache), load_cached(fr, cache))
        lab = None if labels is None else np.array([labels.get(i, -1) for i in ids])
        curve = size_curve(xa, xb, ks, seeds, lab, smallest)
        curve.insert(0, "model_a", fo.model)
        curve.insert(1, "model_b", fr.model)
        curve.insert(2, "family", fr.family)
        curve.insert(3, "size", fr.size)
        curve.insert(4, "params_m", fr.params_m)
        frames.append(curve)
    return pd.concat(frames, ignore_index=True)


def size_curve_figures(curves: pd.DataFrame, mknn_path, decomposition_path, decomposition_model: str) -> None:
    """MKNN against N per pair (largest size of each family; mean and range over seeds), and the
    class / same-object decomposition at k = 1 for one model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure
    from ..registry import family_label
    from .tables import DATASET_LABELS

    pairs = list(dict.fromkeys(curves["pair"]))
    ks = sorted(set(curves["k"]))
    fig, axes = plt.subplots(len(ks), len(pairs), figsize=(3.6 * len(pairs), 3.0 * len(ks)), squeeze=False)
    for col, pair in enumerate(pairs):
        sub = curves[curves["pair"] == pair]
        largest = sub.loc[sub.groupby("family")["params_m"].idxmax(), "model_b"]
        for row, k in enumerate(ks):
            ax = axes[row][col]
            for model in largest:
                m = sub[(sub["model_b"] == model) & (sub["k"] == k)].groupby("n")["mknn"]
                mean = m.mean()
                ax.plot(mean.index, mean * 100, marker=".", label=family_label(model.split("-")[0]))
                ax.fill_between(mean.index, m.min() * 100, m.max() * 100, alpha=0.2)
            chance = sub[sub["k"] == k].groupby("n")["chance"].mean()
            ax.plot(chance.index, chance * 100, color="0.4", ls="--", label="chance k/(N-1)")
            _log_x(ax)
            ax.set_title(f"{DATASET_LABELS.get(pair.split('_')[0], pair)} vs HSC, k = {k}")
            ax.set_xlabel("objects N")
            ax.set_ylabel("MKNN (%)")
    axes[0][-1].legend(fontsize=7)
    write_figure(mknn_path, fig)

    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.0), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        sub = curves[(curves["pair"] == pair) & (curves["k"] == min(ks)) & (curves["model_b"] == decomposition_model)]
        if sub.empty or "class_a" not in sub or sub["class_a"].isna().all():
            ax.text(0.5, 0.5, "no class labels\nfor this pair", ha="center", va="center", transform=ax.transAxes)
        else:
            mean = sub.groupby("n")[["class_a", "class_b", "class_both", "mknn", "class_chance"]].mean()
            names = {"class_a": f"{DATASET_LABELS.get(pair.split('_')[0], pair)}: same class",
                     "class_b": "HSC: same class", "class_both": "both: same class", "mknn": "both: same object",
                     "class_chance": "same class by chance"}
            for column, label in names.items():
                ax.plot(mean.index, mean[column] * 100, marker=".", ls="--" if column == "class_chance" else "-",
                        label=label)
            _log_x(ax)
            ax.legend(fontsize=6)
        ax.set_title(f"{pair}, {decomposition_model}, k = {min(ks)}")
        ax.set_xlabel("objects N")
        ax.set_ylabel("%")
    write_figure(decomposition_path, fig)


def _log_x(ax) -> None:
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
