"""The metric suite of one pair: every comparison of ``scores.align_pair`` scored with every metric of
``metrics.METRICS`` under one protocol (score, permutation null, p-value, calibrated score, k sweep), each
metric's dataset-size curve, and the summary tables and figures over all pairs.

Each file's neighbours are searched once per job, at the largest k, and reused by every comparison it is
part of (``NeighbourCache``): a pair's files take part in several comparisons (Specformer in all of a
spectroscopic pair's crossmodal ones), and the search is most of a comparison's cost.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from .knn import knn
from .scores import EmbeddingFile, comparisons, crossmodal_comparisons, load_cached, paired

log = logging.getLogger(__name__)

LEAD = ["pair", "kind", "side", "model_a", "model_b", "family", "size", "params_m", "size_a", "params_a_m"]


class NeighbourCache:
    """``knn.knn`` of one file's rows at ``k``, searched once per (file, set of rows) within a job."""

    def __init__(self, k: int):
        self.k = k
        self._found: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, f: EmbeddingFile, ids: np.ndarray, x: np.ndarray) -> np.ndarray:
        key = (f.path, hashlib.sha1("\0".join(map(str, ids)).encode()).hexdigest())
        if key not in self._found:
            self._found[key] = knn(x, self.k)
        return self._found[key]


def _lead(pair: str, kind: str, side: str, fa: EmbeddingFile, fb: EmbeddingFile) -> dict:
    """The columns that name a comparison, as scores.csv names it."""
    return {"pair": pair, "kind": kind, "side": side, "model_a": fa.model, "model_b": fb.model, "family": fb.family,
            "size": fb.size, "params_m": fb.params_m, "size_a": fa.size, "params_a_m": fa.params_m}


def pair_metric_suite(pair: str, reference: str, other: str, files: list[EmbeddingFile], metrics, ks,
                      n_permutations: int, n_permutations_matrix: int, max_rows: int | None, rsa_rows: int | None,
                      seed: int, neighbours: NeighbourCache | None = None) -> pd.DataFrame:
    """Every comparison of one pair (``scores.comparisons``) with every metric at every k: one row per
    (comparison, metric, k), the comparison's columns of scores.csv then ``metrics.evaluate``'s (its
    ``kind``, local or global, as ``metric_kind``). ``neighbours``: a cache to search with (and fill), at
    k >= max(ks); a fresh one by default."""
    from .metrics import evaluate

    ks = sorted(set(int(k) for k in ks))
    cache: dict = {}
    neighbours = NeighbourCache(max(ks)) if neighbours is None else neighbours
    if neighbours.k < max(ks):
        raise ValueError(f"the neighbour cache searches k = {neighbours.k}, below the largest k {max(ks)}")
    frames = []
    for kind, side, fa, fb in comparisons(reference, other, files):
        ids, xa, xb = paired(load_cached(fa, cache), load_cached(fb, cache))
        if len(ids) <= max(ks):
            raise ValueError(f"{pair}: only {len(ids)} objects shared by {fa.path} and {fb.path}, k up to {max(ks)}")
        log.info("%s %s %s: %s vs %s on %d objects", pair, kind, side, fa.model, fb.model, len(ids))
        rows = evaluate(xa, xb, metrics, ks, n_permutations, seed, n_permutations_matrix, max_rows, rsa_rows,
                        neighbours=(neighbours(fa, ids, xa), neighbours(fb, ids, xb)))
        frame = pd.DataFrame(rows).rename(columns={"kind": "metric_kind"})
        for i, (name, value) in enumerate(_lead(pair, kind, side, fa, fb).items()):
            frame.insert(i, name, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def largest_of_each_family(pairs: list[tuple[EmbeddingFile, EmbeddingFile]]):
    """The crossmodal comparisons (a, b) whose b is the largest size of its family (Table 2's families)."""
    largest: dict[str, int] = {}
    for i, (_, fb) in enumerate(pairs):
        if fb.family not in largest or fb.params_m > pairs[largest[fb.family]][1].params_m:
            largest[fb.family] = i
    return [pairs[i] for i in sorted(largest.values())]


def pair_metric_size_curves(pair: str, reference: str, other: str, files: list[EmbeddingFile], metrics, ks, seeds,
                            smallest: int, models: str, max_rows: int | None, rsa_rows: int | None,
                            neighbours: NeighbourCache | None = None) -> pd.DataFrame:
    """Each metric against dataset size (``metrics.size_curve``: nested random subsets, no nulls) for the
    crossmodal comparisons of one pair: every model (``models: all``) or the largest of each family
    (``largest``). One row per (comparison, seed, n, metric, k). ``neighbours``: the suite's cache (at
    k >= max(ks)), so the full sample needs no second search."""
    from .metrics import size_curve

    chosen = crossmodal_comparisons(reference, other, files)
    if models == "largest":
        chosen = largest_of_each_family(chosen)
    elif models != "all":
        raise ValueError(f"models must be 'largest' or 'all', got {models!r}")
    cache: dict = {}
    frames = []
    for fo, fr in chosen:
        ids, xa, xb = paired(load_cached(fo, cache), load_cached(fr, cache))
        whole = (neighbours(fo, ids, xa), neighbours(fr, ids, xb)) if neighbours is not None else None
        curve = size_curve(xa, xb, metrics, ks=ks, seeds=seeds, smallest=smallest, max_rows=max_rows,
                           rsa_rows=rsa_rows, neighbours=whole)
        curve = curve[["seed", "n", "metric", "kind", "k", "score", "sample_rows"]].rename(
            columns={"kind": "metric_kind"})
        for i, (name, value) in enumerate(_lead(pair, "crossmodal", other, fo, fr).items()):
            curve.insert(i, name, value)
        frames.append(curve)
    return pd.concat(frames, ignore_index=True)


# Summaries over all pairs ------------------------------------------------------------------------------


def at_table_k(suite: pd.DataFrame, k: int) -> pd.DataFrame:
    """The rows at ``k``: local metrics at that k, global metrics (no k) as they are."""
    return suite[suite["k"].isna() | (suite["k"] == k)]


def metric_order(suite: pd.DataFrame) -> list[str]:
    from .metrics import METRICS

    present = set(suite["metric"])
    return [m for m in METRICS if m in present]


def crossmodal_wide(suite: pd.DataFrame, k: int, value: str = "calibrated") -> pd.DataFrame:
    """One row per crossmodal comparison (pair, side, family, size, params_m), one column per metric: its
    ``value`` (calibrated score by default) at ``k`` (the global metrics have none)."""
    cross = at_table_k(suite[suite["kind"] == "crossmodal"], k)
    wide = cross.pivot_table(index=["pair", "side", "family", "size", "params_m"], columns="metric", values=value,
                             sort=False).reset_index()
    wide.columns.name = None
    order = {p: i for i, p in enumerate(dict.fromkeys(cross["pair"]))}
    wide = wide.sort_values(["pair", "family", "params_m"], key=lambda s: s.map(order) if s.name == "pair" else s)
    return wide[["pair", "side", "family", "size", "params_m", *metric_order(cross)]].reset_index(drop=True)


def metric_trend_tests(suite: pd.DataFrame, k: int, tolerance=None) -> pd.DataFrame:
    """For each metric, the Platonic Universe's binomial trend tests (``tables.trend_tests``: intramodal,
    crossmodal, crossmodal_sdss; increases between adjacent sizes) on its raw score and on its calibrated
    score at ``k``. MKNN's raw-score rows are exactly trend_tests.csv's raw counts.

    With ``tolerance`` (one number, or a function of the suite's rows giving each row's), each test also
    counts the steps decided up and down, those that move by more than the tolerance (``tables.trend_steps``'
    tolerance rule: the suite keeps no per-object values to bootstrap, and a global metric has none), the
    undecided ones within it, and the near-ties (|delta| within a tolerance of the tolerance)."""
    from .tables import mark_near_ties, trend_steps, trend_tests

    rows = []
    for metric in metric_order(suite):
        sub = at_table_k(suite[suite["metric"] == metric], k).copy()
        sub["k"] = k  # the global metrics' rows join the table at k
        for measure in ("score", "calibrated"):
            scored = sub.assign(mknn=sub[measure])
            steps = None
            if tolerance is not None:
                scored["tolerance"] = tolerance(sub) if callable(tolerance) else float(tolerance)
                steps = trend_steps(scored, k, tolerance="tolerance")
                steps = mark_near_ties(steps, steps["tolerance"].to_numpy() if len(steps) else 0.0)
            tests = trend_tests(scored, k, steps)
            tests.insert(0, "measure", measure)
            tests.insert(0, "k", k if sub["metric_kind"].iloc[0] == "local" else np.nan)
            tests.insert(0, "metric", metric)
            rows.append(tests)
    return pd.concat(rows, ignore_index=True)


def suite_figure(suite: pd.DataFrame, k: int, path) -> None:
    """Calibrated score of every metric (columns) for every crossmodal comparison (rows: families, each by
    size), one heatmap per pair: where the metrics agree, and whether each rises with model size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure
    from .tables import DATASET_LABELS

    wide = crossmodal_wide(suite, k)
    names = metric_order(suite)
    pairs = list(dict.fromkeys(wide["pair"]))
    height = max(len(wide[wide["pair"] == p]) for p in pairs) if pairs else 1
    fig, axes = plt.subplots(1, max(1, len(pairs)), figsize=(4.2 * max(1, len(pairs)), 1.6 + 0.24 * height),
                             squeeze=False)
    image = None
    for ax, pair in zip(axes[0], pairs):
        sub = wide[wide["pair"] == pair]
        values = sub[names].to_numpy(float)
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=4.5, color="w" if v < 0.6 else "k")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(sub)), [f"{f}-{s_}" for f, s_ in zip(sub["family"], sub["size"])], fontsize=6)
        ax.set_title(f"{DATASET_LABELS.get(pair.split('_')[0], pair)} vs HSC", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes[0][-1], shrink=0.8, label="calibrated (s - tau) / (1 - tau)")
    fig.suptitle(f"calibrated score, crossmodal (kNN metrics at k = {k}); 0 = the permutation null", fontsize=8)
    write_figure(path, fig)


def size_curve_figure(curves: pd.DataFrame, path) -> None:
    """Each metric against the number of objects, one panel per pair: its score at n over its score on all
    objects (mean over the compared models and seeds), so metrics of every scale share one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure
    from .curves import _log_x
    from .tables import DATASET_LABELS

    pairs = list(dict.fromkeys(curves["pair"]))
    fig, axes = plt.subplots(1, max(1, len(pairs)), figsize=(3.6 * max(1, len(pairs)), 3.4), squeeze=False,
                             sharey=True)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, 12))
    for ax, pair in zip(axes[0], pairs):
        sub = curves[curves["pair"] == pair]
        full = sub[sub["n"] == sub.groupby(["model_b", "seed"])["n"].transform("max")]
        scale = full.groupby(["model_b", "seed", "metric"])["score"].first()
        for colour, metric in zip(colours, metric_order(sub)):
            m = sub[sub["metric"] == metric]
            ratio = m["score"].to_numpy() / scale.loc[list(zip(m["model_b"], m["seed"], m["metric"]))].to_numpy()
            mean = pd.Series(ratio, index=m["n"].to_numpy()).groupby(level=0).mean()
            ax.plot(mean.index, mean, marker=".", color=colour, label=metric)
        ax.axhline(1, color="0.6", lw=0.8)
        _log_x(ax)
        ax.set_title(f"{DATASET_LABELS.get(pair.split('_')[0], pair)} vs HSC", fontsize=8)
        ax.set_xlabel("objects N")
    axes[0][0].set_ylabel("score(N) / score(all objects)")
    axes[0][-1].legend(fontsize=5, ncol=2)
    write_figure(path, fig)
