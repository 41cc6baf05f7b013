"""From per-embedding probe predictions to the AstroCLIP benchmark's tables: R^2 (Tables 3-4), bootstrap CIs and
differences (Tables 5-6), R^2 per environment bin, brightness class and sky partition (Tables 13-17).

A predictions file holds, per object of the probe sample: ``object_id``, ``split``, and for each method
m and target t ``fit_m_t`` (the fixed split's probe: held-out on test rows, leave-self-out kNN / fitted
MLP on train rows) and ``oof_m_t`` (out-of-fold, for the per-group analyses).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .regress import METHODS, bootstrap_r2, r2_per_target, run_probes
from .robustness import r2_by_group
from .structure import mdl_bin_count, quantile_bins
from .targets import TARGETS

log = logging.getLogger(__name__)

METHOD_LABELS = {"knn": "zero-shot (kNN)", "mlp": "few-shot (MLP)"}


def probe_embedding(sample: pd.DataFrame, ids, emb: np.ndarray, seed: int, n_folds: int, n_neighbours: int,
                    mlp: str, name: str = "embeddings", sample_name: str = "probe sample") -> pd.DataFrame:
    """Run every probe on one embedding; rows are the sample's objects that have an embedding.

    ``name`` and ``sample_name`` (the files) go into the error when too few objects are in both."""
    index = pd.Series(np.arange(len(ids)), index=pd.Index(np.asarray(ids).astype(str)))
    rows = sample[sample["object_id"].isin(index.index)].reset_index(drop=True)
    if len(rows) < 2 * n_folds:
        raise ValueError(f"only {len(rows)} objects have both an embedding in {name} ({len(ids)} objects, field "
                         f"'object_id') and catalogue properties in {sample_name} ({len(sample)} objects); the "
                         f"{n_folds}-fold probes need at least {2 * n_folds}")
    x = emb[index.loc[rows["object_id"]].to_numpy()]
    y = rows[list(TARGETS)].to_numpy(float)
    split = rows["split"].to_numpy()
    preds = run_probes(x, y, split, seed, n_folds, n_neighbours, mlp)
    out = rows[["object_id", "split"]].copy()
    for method, p in preds.items():
        fit = np.empty_like(y)
        fit[split == "test"], fit[split == "train"] = p["test"], p["train"]
        for j, t in enumerate(TARGETS):
            out[f"fit_{method}_{t}"] = fit[:, j]
            out[f"oof_{method}_{t}"] = p["oof"][:, j]
    return out


def _truth(sample: pd.DataFrame, pred: pd.DataFrame) -> pd.DataFrame:
    return pred.merge(sample[["object_id", *TARGETS]], on="object_id", how="left")


SPLIT_COLUMNS = {"test": "fit", "train": "fit", "oof": "oof"}


def _on_split(pred: pd.DataFrame, split: str) -> tuple[pd.DataFrame, str]:
    """The rows a split scores and the prediction columns' prefix: the fixed split's test or train rows
    with the final fit's predictions, or every row with its out-of-fold prediction."""
    if split not in SPLIT_COLUMNS:
        raise ValueError(f"split must be test, train or oof, not {split!r}")
    return (pred if split == "oof" else pred[pred["split"] == split]), SPLIT_COLUMNS[split]


def r2_table(sample: pd.DataFrame, predictions: dict, split: str = "test") -> pd.DataFrame:
    """One row per (embedding, method): R^2 of each target on the test (Table 3) or train (Table 4) rows of
    the fixed split, or out of fold (``oof``) over every object of the sample, each predicted by the fold
    model that did not see it: ten times the test objects, so models a few hundredths apart separate."""
    rows = []
    for (survey, model), pred in predictions.items():
        on_split, column = _on_split(pred, split)
        sub = _truth(sample, on_split)
        for method in METHODS:
            y = sub[list(TARGETS)].to_numpy(float)
            p = sub[[f"{column}_{method}_{t}" for t in TARGETS]].to_numpy(float)
            rows.append({"survey": survey, "model": model, "method": method, "n": len(sub),
                         **dict(zip(TARGETS, r2_per_target(y, p)))})
    return pd.DataFrame(rows)


def comparison_table(sample: pd.DataFrame, predictions: dict, pairs, n_boot: int, seed: int) -> pd.DataFrame:
    """Bootstrap 95% CIs of R^2 for two embeddings and of their difference (a minus b), on the objects
    both have (Tables 5-6): on the fixed test split (``split`` = test, as the paper), and out of fold over
    every object of the sample (``split`` = oof; ten times the objects, so far narrower intervals)."""
    rows = []
    for a, b in pairs:
        pa, pb = predictions[a], predictions[b]
        for split in ("test", "oof"):
            (rows_a, column), (rows_b, _) = _on_split(pa, split), _on_split(pb, split)
            common = rows_a[["object_id"]].merge(rows_b[["object_id"]])
            sa, sb = (_truth(sample, common.merge(p, on="object_id")) for p in (pa, pb))
            y = sa[list(TARGETS)].to_numpy(float)
            for method in METHODS:
                cols = [f"{column}_{method}_{t}" for t in TARGETS]
                ci = bootstrap_r2(y, [sa[cols].to_numpy(float), sb[cols].to_numpy(float)], n_boot, seed)
                for j, t in enumerate(TARGETS):
                    rows.append({"a": "/".join(a), "b": "/".join(b), "split": split, "method": method, "target": t,
                                 "n": len(y), "r2_a": ci.loc[j, "r2_0"], "lo_a": ci.loc[j, "lo_0"],
                                 "hi_a": ci.loc[j, "hi_0"], "r2_b": ci.loc[j, "r2_1"], "lo_b": ci.loc[j, "lo_1"],
                                 "hi_b": ci.loc[j, "hi_1"], "delta": ci.loc[j, "delta"],
                                 "delta_lo": ci.loc[j, "delta_lo"], "delta_hi": ci.loc[j, "delta_hi"]})
    return pd.DataFrame(rows)


BIN_NAMES = ("very small", "small", "medium", "large", "very large")


def net_wins(sample: pd.DataFrame, pred_a: pd.DataFrame, pred_b: pd.DataFrame, method: str,
             n_bins: int = 5) -> pd.DataFrame:
    """Where in each property's range embedding a beats b (AstroCLIP benchmark §4.7.2, Figures 14-15).

    On the test objects both have: the true value in ``n_bins`` equal-population bins; per object the
    difference of absolute residuals d = |a - truth| - |b - truth|; per bin, ``a_better`` (d < 0),
    ``b_better`` (d > 0) and ``net`` = a_better - b_better, overall (``error_from`` NaN) and per interval
    of |d| (bin edges by the MDL rule over all |d| of that property, as the paper's histograms).
    """
    ra, rb = residuals(sample, pred_a, method), residuals(sample, pred_b, method)
    common = ra.index.intersection(rb.index)
    ra, rb = ra.loc[common], rb.loc[common]
    truth = sample.set_index("object_id").loc[common]
    names = BIN_NAMES if n_bins == 5 else tuple(str(i) for i in range(n_bins))
    rows = []
    for t in TARGETS:
        d = (ra[t] - rb[t]).to_numpy()
        bins = quantile_bins(truth[t].to_numpy(float), n_bins)
        edges = np.histogram_bin_edges(np.abs(d), bins=mdl_bin_count(np.abs(d)))
        interval = np.clip(np.searchsorted(edges, np.abs(d), side="right") - 1, 0, len(edges) - 2)
        for b in range(n_bins):
            in_bin = bins == b
            groups = [(np.nan, np.nan, in_bin)] + [(edges[i], edges[i + 1], in_bin & (interval == i))
                                                   for i in range(len(edges) - 1)]
            for lo, hi, sel in groups:
                a_better, b_better = int((d[sel] < 0).sum()), int((d[sel] > 0).sum())
                rows.append({"target": t, "bin": names[b], "error_from": lo, "error_to": hi, "n": int(sel.sum()),
                             "a_better": a_better, "b_better": b_better, "net": a_better - b_better})
    return pd.DataFrame(rows)


def net_wins_table(sample: pd.DataFrame, predictions: dict, compare) -> pd.DataFrame:
    """:func:`net_wins` of every compared pair (a, b) and both probes, in one table led by a, b, method."""
    frames = []
    for a, b in compare:
        for method in METHODS:
            t = net_wins(sample, predictions[a], predictions[b], method)
            frames.append(t.assign(a="/".join(a), b="/".join(b), method=method))
    table = pd.concat(frames, ignore_index=True)
    return table[["a", "b", "method", *[c for c in table.columns if c not in ("a", "b", "method")]]]


def outlier_table(sample: pd.DataFrame, predictions: dict) -> tuple[pd.DataFrame, dict]:
    """The AstroCLIP benchmark's Table 18 for every embedding and probe: how many test objects are residual
    outliers in exactly 1..4 properties (zeros listed); and the kNN absolute residuals per embedding, for
    the histograms of Figure 12."""
    from .structure import outlier_recurrence

    rows, histograms = [], {}
    for (survey, model), pred in predictions.items():
        for method in METHODS:
            res = residuals(sample, pred, method)
            recurrence = outlier_recurrence(res)
            total = recurrence.sum()
            if total == 0:
                log.info("%s/%s %s: no residual outliers among %d test objects", survey, model, method, len(res))
            for n_props, count in recurrence.items():
                rows.append({"embedding": f"{survey}/{model}", "method": method, "outlier_in_n_properties": n_props,
                             "objects": count, "percent": 100 * count / total if total else float("nan"),
                             "test_objects": len(res)})
            if method == "knn":
                histograms[f"{survey}/{model}"] = res
    return pd.DataFrame(rows), histograms


def group_table(sample: pd.DataFrame, predictions: dict, group: str, min_objects: int = 5) -> pd.DataFrame:
    """R^2 of the out-of-fold predictions within each value of ``group`` (a sample column), per embedding."""
    frames = []
    for (survey, model), pred in predictions.items():
        sub = _truth(sample, pred).merge(sample[["object_id", group]], on="object_id")
        sub = sub[sub[group].astype(str) != ""]
        cols = {f"oof_{m}_{t}": f"pred_{m}_{t}" for m in METHODS for t in TARGETS}
        table = r2_by_group(sub.rename(columns=cols), group, TARGETS, min_objects)
        table.insert(0, "model", model)
        table.insert(0, "survey", survey)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def bright_minus_faint(table: pd.DataFrame) -> pd.DataFrame:
    """Table 17: R^2(bright) - R^2(faint) per embedding, method and target."""
    keys = ["survey", "model", "method"]
    b = table[table["brightness"] == "bright"].set_index(keys)[list(TARGETS)]
    f = table[table["brightness"] == "faint"].set_index(keys)[list(TARGETS)]
    return (b - f).reset_index()


def residuals(sample: pd.DataFrame, pred: pd.DataFrame, method: str) -> pd.DataFrame:
    """|truth - prediction| of the test objects, one column per target."""
    sub = _truth(sample, pred[pred["split"] == "test"])
    return pd.DataFrame({t: np.abs(sub[t] - sub[f"fit_{method}_{t}"]) for t in TARGETS}).set_index(sub["object_id"])


def table3_markdown(table: pd.DataFrame, caption: str) -> str:
    """The AstroCLIP benchmark's Table 3 layout: one row per embedding, zero-shot then few-shot R^2 of each target."""
    from .targets import LABELS

    head = ["embedding"] + [f"{METHOD_LABELS[m]} {LABELS[t]}" for m in METHODS for t in TARGETS]
    lines = [f"{caption}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (survey, model), sub in table.groupby(["survey", "model"], sort=False):
        by_method = sub.set_index("method")
        cells = [f"{by_method.loc[m, t]:.2f}" for m in METHODS for t in TARGETS]
        lines.append(f"| {survey}/{model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
