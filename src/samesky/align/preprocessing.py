"""Does the Platonic Universe's answer depend on the preprocessing? (issue 26; seed 003 §3.2, §5)

Each preprocessing variant (a stretch, an input size, a close crop) is scored exactly as the run's own
images: the same comparisons, k, permutations and seeds (``align_variant``). Here every variant's scores
become the paper's conclusions, side by side with the run's own ("default"):

- ``crossmodal above null``: the crossmodal comparisons at table_k whose MKNN beats its permutation null
  (p < alpha), out of all;
- the trend tests (``tables.trend_tests``) on the steps decided by the paired bootstrap: intramodal growth
  with size, crossmodal growth (JWST, Legacy Survey, DESI) and SDSS's: decided up / down / undecided and
  the binomial p on the decided steps, with the raw count beside.

A conclusion "holds" where p < alpha; ``same_as_default`` says whether the variant reaches the same verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import tables

DEFAULT = "default"  # the run's own preprocessing: the Platonic Universe's percentile clip, native size, no crop


def scores_table(scores: dict[str, pd.DataFrame], k: int) -> pd.DataFrame:
    """Every comparison at ``k`` of every variant beside the default's: MKNN, its null p and the change."""
    keys = ["pair", "kind", "side", "model_a", "model_b", "family", "size", "params_m"]
    base = scores[DEFAULT]
    base = base[base["k"] == k].set_index(keys)[["mknn", "p_value"]]
    rows = []
    for variant, frame in scores.items():
        at_k = frame[frame["k"] == k].set_index(keys)[["mknn", "null_mean", "p_value"]]
        at_k = at_k.join(base.add_suffix("_default"), how="left")
        at_k["delta_mknn"] = at_k["mknn"] - at_k["mknn_default"]
        rows.append(at_k.reset_index().assign(variant=variant, k=k))
    out = pd.concat(rows, ignore_index=True)
    lead = ["variant", "pair", "kind", "side", "family", "size", "params_m", "model_a", "model_b", "k"]
    return out[lead + [c for c in out.columns if c not in lead]]


def conclusions(scores: dict[str, pd.DataFrame], overlaps: dict[str, pd.DataFrame], k: int, hsc_pair: str,
                n_bootstrap: int, seed: int, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (variant, conclusion): its figures, whether it holds, and whether the default agrees."""
    rows = []
    for variant, frame in scores.items():
        cross = frame[(frame["kind"] == "crossmodal") & (frame["k"] == k)]
        above = int((cross["p_value"] < alpha).sum())
        rows.append({"variant": variant, "conclusion": "crossmodal above null", "value": f"{above}/{len(cross)}",
                     "p_value": np.nan, "holds": bool(len(cross)) and above == len(cross),
                     "rule": f"every crossmodal MKNN at k = {k} above its permutation null (p < {alpha})"})
        steps = tables.trend_steps(frame, k, hsc_pair, overlaps=overlaps[variant], n_bootstrap=n_bootstrap, seed=seed)
        trends = tables.trend_tests(frame, k, steps if len(steps) else None)
        for _, t in trends.iterrows():
            if ":" in t["test"]:  # random-control groups: not a conclusion of the paper
                continue
            decided = "decided_up" in t and not pd.isna(t.get("decided_up"))
            value = (f"{int(t['decided_up'])} up, {int(t['decided_down'])} down, {int(t['undecided'])} undecided "
                     f"(raw {int(t['increases'])}/{int(t['comparisons'])})" if decided
                     else f"{int(t['increases'])}/{int(t['comparisons'])} increase")
            p = t["decided_p"] if decided else t["p_value"]
            rows.append({"variant": variant, "conclusion": f"{t['test']} grows with size", "value": value,
                         "p_value": p, "holds": bool(p < alpha) if not pd.isna(p) else False,
                         "rule": "binomial test on the steps decided by the paired bootstrap" if decided else
                         "binomial test on the raw count"})
    out = pd.DataFrame(rows)
    default = out[out["variant"] == DEFAULT].set_index("conclusion")["holds"]
    out["default_holds"] = out["conclusion"].map(default)
    out["same_as_default"] = out["holds"] == out["default_holds"]
    return out


def figure(table: pd.DataFrame, path, labels: dict | None = None) -> None:
    """Left: each variant's crossmodal MKNN against the default's, per comparison (points on the diagonal:
    unchanged). Right: the mean MKNN per side and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure

    variants = [v for v in table["variant"].unique() if v != DEFAULT]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    cross = table[table["kind"] == "crossmodal"]
    for v in variants:
        sub = cross[cross["variant"] == v]
        left.scatter(sub["mknn_default"] * 100, sub["mknn"] * 100, s=14, label=v, alpha=0.8)
    top = max(float(cross[["mknn", "mknn_default"]].max().max()) * 100, 1.0)
    left.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    left.set_xlabel("MKNN (%), default preprocessing")
    left.set_ylabel("MKNN (%), variant")
    left.set_title("Crossmodal comparisons (each a point)", fontsize=9)
    left.legend(fontsize=7)
    order = [DEFAULT, *variants]
    sides = [s for s in ("jwst", "legacysurvey", "desi", "sdss") if s in set(cross["side"])]
    width = 0.8 / max(len(sides), 1)
    for i, side in enumerate(sides):
        means = [cross[(cross["variant"] == v) & (cross["side"] == side)]["mknn"].mean() * 100 for v in order]
        right.bar(np.arange(len(order)) + i * width, means, width, label=tables.DATASET_LABELS.get(side, side))
    right.set_xticks(np.arange(len(order)) + width * (len(sides) - 1) / 2, order, rotation=30, fontsize=8)
    right.set_ylabel("mean crossmodal MKNN (%)")
    right.set_title("Each side against HSC, mean over models", fontsize=9)
    right.legend(fontsize=7)
    write_figure(path, fig)
