"""Alignment per object, within bins, after removing covariates, and the paired bootstrap of a difference.

A single MKNN over the whole sample can be carried by one property that both spaces know (redshift,
brightness) or by one kind of object. These ask where the agreement lives:
- ``per_object_overlap``: each object's own share of common neighbours (MKNN is its mean);
- ``binned_mknn``: MKNN within each bin of a property, neighbours searched among the bin's rows only,
  with the bin's own permutation null and chance level k / (n_bin - 1);
- ``partial_mknn``: MKNN after regressing covariates out of every embedding dimension;
- ``paired_bootstrap_delta``: a confidence interval for the change in MKNN between two models (adjacent
  sizes) scored against the same partner, resampling objects with their paired overlaps.
All neighbour work is knn.knn's: O(N k) memory, never N x N.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .knn import chance_level, knn, mknn, overlap_counts, permutation_null

log = logging.getLogger(__name__)


def per_object_overlap(nn_a: np.ndarray, nn_b: np.ndarray) -> np.ndarray:
    """|N_a(i) ∩ N_b(i)| / k for each object i, from (N, k) neighbour arrays; its mean is MKNN."""
    if nn_a.shape != nn_b.shape:
        raise ValueError(f"neighbour arrays differ in shape: {nn_a.shape} vs {nn_b.shape}")
    return overlap_counts(nn_a, nn_b) / nn_a.shape[1]


def _null_summary(observed: float, null: np.ndarray) -> dict:
    has = len(null) > 0
    tau = float(null.mean()) if has else float("nan")
    return {
        "null_mean": tau, "null_std": float(null.std(ddof=1)) if len(null) > 1 else float("nan"),
        "p_value": float((1 + (null >= observed).sum()) / (1 + len(null))) if has else float("nan"),
        "calibrated": float((observed - tau) / (1 - tau)) if has and tau < 1 else float("nan"),
        "n_permutations": int(len(null)),
    }


def _scored(x_a: np.ndarray, x_b: np.ndarray, k: int, n_permutations: int, seed: int) -> dict:
    nn_a, nn_b = knn(x_a, k), knn(x_b, k)
    observed = mknn(nn_a, nn_b, k)
    null = permutation_null(nn_a, nn_b, k, n_permutations, seed) if n_permutations else np.zeros(0)
    return {"mknn": observed, "chance": chance_level(len(x_a), k), **_null_summary(observed, null)}


def binned_mknn(x_a: np.ndarray, x_b: np.ndarray, bins, k: int = 10, n_permutations: int = 1000, seed: int = 0,
                min_size: int | None = None) -> pd.DataFrame:
    """MKNN within each bin (one row per distinct label of ``bins``, sorted; NaN is a bin of its own).

    Neighbours are searched among the bin's rows only, so the score says whether the two spaces agree on
    which objects are alike *among objects of that kind*; each bin gets its own null (``n_permutations``
    shuffles within the bin) and chance level k / (n_bin - 1). A bin with fewer than max(k + 1, min_size)
    rows is reported with skipped = True and the reason, its scores NaN, never silently dropped.
    Columns: bin, n, k, mknn, chance, null_mean, null_std, p_value, calibrated, n_permutations, skipped,
    reason.
    """
    if len(x_a) != len(x_b) or len(bins) != len(x_a):
        raise ValueError(f"rows differ: {len(x_a)} (A), {len(x_b)} (B), {len(bins)} bin labels")
    need = max(k + 1, min_size or 0)
    groups = pd.Series(np.arange(len(x_a))).groupby(pd.Series(np.asarray(bins)), dropna=False, sort=True).indices
    rows = []
    for label, idx in groups.items():
        row = {"bin": label, "n": len(idx), "k": k}
        if len(idx) < need:
            nan = float("nan")
            row.update(mknn=nan, chance=nan, null_mean=nan, null_std=nan, p_value=nan, calibrated=nan,
                       n_permutations=0, skipped=True, reason=f"{len(idx)} rows < {need} needed")
            log.info("bin %s skipped: %s", label, row["reason"])
        else:
            row.update(_scored(x_a[idx], x_b[idx], k, n_permutations, seed), skipped=False, reason="")
        rows.append(row)
    return pd.DataFrame(rows)


def residualise(x: np.ndarray, covariates) -> np.ndarray:
    """x minus its least-squares fit on the covariates (with an intercept), every column at once.

    ``covariates``: (N,) or (N, c), e.g. redshift and brightness. What is left is what the embedding holds
    beyond a linear function of them. NaN in either is refused.
    """
    x = np.asarray(x, np.float64)
    c = np.asarray(covariates, np.float64)
    c = c[:, None] if c.ndim == 1 else c
    if len(c) != len(x):
        raise ValueError(f"{len(c)} covariate rows for {len(x)} embedding rows")
    if not (np.isfinite(c).all() and np.isfinite(x).all()):
        raise ValueError("residualise: NaN or inf in the covariates or the embedding")
    design = np.column_stack([np.ones(len(x)), c])
    beta, *_ = np.linalg.lstsq(design, x, rcond=None)
    return x - design @ beta


def partial_mknn(x_a: np.ndarray, x_b: np.ndarray, covariates, k: int = 10, n_permutations: int = 1000,
                 seed: int = 0) -> dict:
    """MKNN of the two spaces after the same covariates are regressed out of both (``residualise``).

    Keys: k, n, mknn (residualised), mknn_raw (before), chance, null_mean, null_std, p_value, calibrated,
    n_permutations (the null shuffles the residualised B). Agreement that was only the covariates falls to
    chance; agreement beyond them stays.
    """
    res_a, res_b = residualise(x_a, covariates), residualise(x_b, covariates)
    raw = mknn(knn(x_a, k), knn(x_b, k), k)
    return {"k": k, "n": len(x_a), **_scored(res_a, res_b, k, n_permutations, seed), "mknn_raw": raw}


def bootstrap_delta(differences: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap of the mean of paired per-object differences.

    Objects are resampled with replacement ``n_boot`` times. Returns delta (the mean), lo, hi (the
    equal-tailed ``level`` interval) and p_value, two-sided: min(1, 2 min(1 + #{boot <= 0}, 1 + #{boot >= 0})
    / (1 + n_boot)), small when the bootstrap distribution lies on one side of 0.
    """
    d = np.asarray(differences, np.float64)
    n = len(d)
    if n < 2:
        raise ValueError(f"need at least 2 objects to bootstrap, got {n}")
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    step = max(1, 4_000_000 // n)  # bootstrap replicates per block: bounded memory
    for start in range(0, n_boot, step):
        m = min(step, n_boot - start)
        boot[start:start + m] = d[rng.integers(0, n, size=(m, n))].mean(axis=1)
    # a resample mean that is 0 in exact arithmetic (overlaps are multiples of 1/k) comes out as +-1e-19 from
    # the order of summation, which differs between code paths and machines: call it 0, so a verdict never
    # hangs on rounding (an interval edge at exactly 0 is undecided)
    boot[np.abs(boot) <= 1e-9 * max(float(np.abs(d).max()), 1e-300)] = 0.0
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    tail = min((boot <= 0).sum(), (boot >= 0).sum())
    return {"delta": float(d.mean()), "lo": float(lo), "hi": float(hi),
            "p_value": float(min(1.0, 2 * (1 + tail) / (1 + n_boot))), "n_boot": n_boot, "level": level}


def paired_bootstrap_delta(x_a1: np.ndarray, x_b: np.ndarray, x_a2: np.ndarray, k: int = 10, n_boot: int = 2000,
                           seed: int = 0, level: float = 0.95) -> dict:
    """CI for MKNN(a2, b) - MKNN(a1, b): e.g. the next model size against the smaller, on the same partner b.

    Per-object overlaps o1_i = |N_a1(i) ∩ N_b(i)| and o2_i are computed once on the full sample; objects are
    resampled with replacement and the statistic is mean(o2 - o1) / k over the resample (``bootstrap_delta``).
    The neighbour sets stay those of the full sample (no search is repeated): this is the standard
    per-object bootstrap of a mean of paired per-object scores, conditional on the sample's neighbourhoods.
    It leaves out the variance that comes from the neighbourhoods themselves (objects share neighbours), so
    across fresh samples of objects it is too narrow: on a Gaussian simulation (N = 500, k = 10, 8-d) the
    95% interval covered the expected difference 83% of the time (its width implied a standard deviation
    of 0.0075 against 0.0118 across samples). Read it as an interval for these objects' neighbourhoods.
    Keys: delta, lo, hi, p_value, n_boot, level, mknn_1, mknn_2, n, k.
    """
    if not len(x_a1) == len(x_b) == len(x_a2):
        raise ValueError(f"rows differ: {len(x_a1)} (a1), {len(x_b)} (b), {len(x_a2)} (a2)")
    nn_b = knn(x_b, k)
    o1 = per_object_overlap(knn(x_a1, k), nn_b)
    o2 = per_object_overlap(knn(x_a2, k), nn_b)
    out = bootstrap_delta(o2 - o1, n_boot, seed, level)
    return {**out, "mknn_1": float(o1.mean()), "mknn_2": float(o2.mean()), "n": len(x_b), "k": k}


# One pair: every crossmodal comparison, per object, within bins, after covariates; adjacent-size deltas ----

COVARIATES = ("redshift", "brightness", "environment", "sky_region")  # the binned covariates, in this order
PARTIAL_COVARIATES = ("redshift", "brightness")  # regressed out for the partial MKNN (when present)


def quantile_bins(values, n_bins: int) -> np.ndarray:
    """Quantile bins 0 .. n_bins - 1 of a numeric property as floats; NaN where the value is missing."""
    from .curves import class_bins

    values = np.asarray(values, float)
    labels = class_bins(values, n_bins).astype(float)
    labels[labels < 0] = np.nan
    return labels


def covariate_labels(covariates: pd.DataFrame, n_bins: int) -> dict[str, np.ndarray]:
    """The bin label of every object for each binned covariate present: quantile bins of redshift and
    brightness, the environment bins (few, moderate, many) and the sky regions as they are."""
    out = {}
    for name in COVARIATES:
        if name not in covariates:
            continue
        values = covariates[name]
        if name in ("redshift", "brightness"):
            out[name] = quantile_bins(values.to_numpy(float), n_bins)
        else:
            out[name] = values.to_numpy(object)
    return out


def _bin_ranges(values: np.ndarray, labels: np.ndarray) -> dict:
    """bin -> (lowest, highest) value of its objects, for numeric covariates."""
    frame = pd.DataFrame({"v": values, "bin": labels}).dropna()
    return {b: (g["v"].min(), g["v"].max()) for b, g in frame.groupby("bin")}


def _comparison_columns(pair: str, fo, fr) -> dict:
    return {"pair": pair, "model_a": fo.model, "model_b": fr.model, "family": fr.family, "size": fr.size,
            "params_m": fr.params_m}


def pair_conditional(pair: str, reference: str, other: str, files, covariates: pd.DataFrame, k: int, n_bins: int,
                     n_permutations: int, n_bootstrap: int, min_bin_objects: int, models: str, seed: int,
                     skipped: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per_object, conditional, size_deltas) of one pair's crossmodal comparisons at ``k``.

    ``covariates``: indexed by object id, any of the columns redshift, brightness (numbers), environment,
    sky_region (labels); ``skipped``: covariate -> why it is absent (reported as a skipped row).
    - per_object: each object's overlap |N_a(i) ∩ N_b(i)| / k in every crossmodal comparison, with its
      covariates (neighbours of the whole sample; the mean over objects is the comparison's MKNN);
    - conditional: for the comparisons chosen by ``models`` (all, or the largest of each family), MKNN on
      all objects with its permutation null (covariate 'all'), within each bin of each covariate
      (``binned_mknn``: neighbours among the bin's objects only, its own null), and after regressing
      redshift and brightness out of both spaces (``partial_mknn``, covariate 'partial');
    - size_deltas: MKNN(larger) - MKNN(smaller) for adjacent sizes of each family against the pair's other
      side, with the paired object bootstrap CI of ``bootstrap_delta`` over the per-object overlaps, and
      beside it the family's count of increases and its binomial trend test (``stats.trend_test``).
    """
    from .scores import adjacent_sizes, crossmodal_comparisons, load_cached, paired
    from .stats import count_increases, trend_test
    from .suite import NeighbourCache, largest_of_each_family

    comparisons = crossmodal_comparisons(reference, other, files)
    if models not in ("largest", "all"):
        raise ValueError(f"models must be 'largest' or 'all', got {models!r}")
    chosen = {(fo.path, fr.path) for fo, fr in
              (largest_of_each_family(comparisons) if models == "largest" else comparisons)}
    labels_spec = [c for c in COVARIATES if c in covariates]
    cache: dict = {}
    neighbours = NeighbourCache(k)
    overlaps: dict[tuple[str, str], pd.Series] = {}
    per_object, rows = [], []
    for fo, fr in comparisons:
        ids, xa, xb = paired(load_cached(fo, cache), load_cached(fr, cache))
        if len(ids) <= k:
            raise ValueError(f"{pair}: only {len(ids)} objects shared by {fo.path} and {fr.path}, k = {k}")
        nn_a, nn_b = neighbours(fo, ids, xa), neighbours(fr, ids, xb)
        overlap = per_object_overlap(nn_a, nn_b)
        overlaps[fo.path, fr.path] = pd.Series(overlap, index=ids)
        cov = covariates.reindex(ids)
        frame = pd.DataFrame({"object_id": ids, **_comparison_columns(pair, fo, fr), "k": k, "overlap": overlap})
        per_object.append(pd.concat([frame, cov.reset_index(drop=True)], axis=1))
        if (fo.path, fr.path) not in chosen:
            continue
        log.info("%s: %s vs %s, conditional on %s", pair, fo.model, fr.model, labels_spec)
        lead = _comparison_columns(pair, fo, fr)
        null = permutation_null(nn_a, nn_b, k, n_permutations, seed) if n_permutations else np.zeros(0)
        observed = float(overlap.mean())
        rows.append({**lead, "covariate": "all", "bin": "all", "lo": np.nan, "hi": np.nan, "n": len(ids), "k": k,
                     "mknn": observed, "chance": chance_level(len(ids), k), **_null_summary(observed, null),
                     "skipped": False, "reason": ""})
        for name, labels in covariate_labels(cov, n_bins).items():
            has = pd.notna(labels)
            binned = binned_mknn(xa[has], xb[has], labels[has], k, n_permutations, seed, min_bin_objects)
            if name == "environment":  # few, moderate, many: in order of companions, not of the alphabet
                from ..probes.robustness import ENV_BINS

                binned = binned.sort_values("bin", key=lambda b: b.map({v: i for i, v in enumerate(ENV_BINS)}),
                                            kind="stable")
            ranges = _bin_ranges(cov[name].to_numpy(float), labels) if name in ("redshift", "brightness") else {}
            for row in binned.to_dict("records"):
                lo, hi = ranges.get(row["bin"], (np.nan, np.nan))
                label = int(row["bin"]) if isinstance(row["bin"], float) else row["bin"]
                reason = row["reason"] + (f"; {int((~has).sum())} objects without a value left out"
                                          if (~has).any() else "")
                rows.append({**lead, "covariate": name, **row, "bin": label, "lo": lo, "hi": hi,
                             "reason": reason.lstrip("; ")})
        for name, why in (skipped or {}).items():
            rows.append({**lead, "covariate": name, "bin": "", "n": len(ids), "k": k, "skipped": True, "reason": why})
        partial = [c for c in PARTIAL_COVARIATES if c in cov]
        if partial:
            values = cov[partial].to_numpy(float)
            has = np.isfinite(values).all(axis=1)
            result = partial_mknn(xa[has], xb[has], values[has], k, n_permutations, seed)
            rows.append({**lead, "covariate": "partial", "bin": "+".join(partial), "lo": np.nan, "hi": np.nan,
                         **result, "skipped": False,
                         "reason": f"{int((~has).sum())} objects without a value left out" if (~has).any() else ""})
    conditional = pd.DataFrame(rows)
    if len(conditional):
        lead_columns = ["pair", "model_a", "model_b", "family", "size", "params_m", "covariate", "bin", "lo", "hi",
                        "n", "k", "mknn", "chance", "null_mean", "null_std", "p_value", "calibrated",
                        "n_permutations", "mknn_raw", "skipped", "reason"]
        conditional = conditional.reindex(columns=lead_columns)

    deltas = []
    for (fo1, fr1), (fo2, fr2) in adjacent_sizes(comparisons):
        o1, o2 = overlaps[fo1.path, fr1.path], overlaps[fo2.path, fr2.path]
        common = o1.index.intersection(o2.index)
        out = bootstrap_delta((o2[common] - o1[common]).to_numpy(), n_bootstrap, seed)
        verdict = "up" if out["lo"] > 0 else "down" if out["hi"] < 0 else "inconclusive"
        deltas.append({"pair": pair, "side": other, "family": fr1.family, "model_1": fr1.model, "model_2": fr2.model,
                       "model_a_1": fo1.model, "model_a_2": fo2.model, "params_1": fr1.params_m,
                       "params_2": fr2.params_m, "k": k, "n": len(common), "mknn_1": float(o1[common].mean()),
                       "mknn_2": float(o2[common].mean()), **out, "verdict": verdict})
    size_deltas = pd.DataFrame(deltas)
    if len(size_deltas):  # the family's binomial trend test (the Platonic Universe's count), beside its CIs
        for family, sub in size_deltas.groupby("family", sort=False):
            increases, total = count_increases([sub["mknn_1"].iloc[0], *sub["mknn_2"]])
            size_deltas.loc[sub.index, "family_increases"] = increases
            size_deltas.loc[sub.index, "family_comparisons"] = total
            size_deltas.loc[sub.index, "family_trend_p"] = trend_test(increases, total)
    return pd.concat(per_object, ignore_index=True), conditional, size_deltas


def delta_trend_tests(deltas: pd.DataFrame) -> pd.DataFrame:
    """The two readings of 'alignment grows with size', side by side, per pair and over the groups of
    ``tables.trend_tests`` (crossmodal: JWST, Legacy, DESI; crossmodal_sdss):

    - binomial: the Platonic Universe's test, increases among adjacent-size steps whatever their size
      (``stats.trend_test``, one-sided);
    - bootstrap: the same steps read with their paired object-bootstrap CIs: how many are significantly up
      (CI above 0), significantly down, or inconclusive, and the binomial test on the decided steps only
      (significant increases among significant changes).

    Random-weights controls (family ``<family>_random``) stay out of these groups; where they ran, the same
    groups over the controls and over the learned families they mirror follow (as ``tables.trend_tests``).
    """
    from ..registry import is_control_family, learned_family
    from .stats import trend_test

    control = deltas["family"].map(is_control_family).astype(bool) if len(deltas) else pd.Series(dtype=bool)
    sets = [("", ~control)]
    if control.any():
        twins = {learned_family(f) for f in deltas.loc[control, "family"]}
        sets += [(": learned, with a control", deltas["family"].isin(twins)), (": random controls", control)]
    groups = []
    for suffix, members in sets:
        groups += [(f"pair:{p}{suffix}", members & (deltas["pair"] == p)) for p in dict.fromkeys(deltas["pair"])]
        groups += [("crossmodal" + suffix, members & deltas["side"].isin(["jwst", "legacysurvey", "desi"])),
                   ("crossmodal_sdss" + suffix, members & (deltas["side"] == "sdss"))]
    rows = []
    for name, mask in groups:
        sub = deltas[mask]
        if sub.empty:
            continue
        increases, total = int((sub["delta"] > 0).sum()), len(sub)
        up, down = int((sub["verdict"] == "up").sum()), int((sub["verdict"] == "down").sum())
        rows.append({"test": name, "comparisons": total, "increases": increases,
                     "binomial_p": trend_test(increases, total), "significant_up": up, "significant_down": down,
                     "inconclusive": total - up - down, "decided_p": trend_test(up, up + down),
                     "mean_delta": float(sub["delta"].mean())})
    return pd.DataFrame(rows)


def conditional_figure(conditional: pd.DataFrame, deltas: pd.DataFrame, path) -> None:
    """One row of panels per pair: calibrated MKNN per bin of each covariate (one line per compared model,
    its all-object value dotted), MKNN before and after regressing out the covariates, and the size deltas
    with their bootstrap CIs (filled: CI clear of 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure
    from .tables import DATASET_LABELS

    pairs = list(dict.fromkeys([*(conditional["pair"] if len(conditional) else []),
                                *(deltas["pair"] if len(deltas) else [])]))
    done = conditional[~conditional["skipped"].astype(bool)] if len(conditional) else conditional
    binned = [c for c in COVARIATES if len(done) and (done["covariate"] == c).any()]
    columns = binned + ["partial", "size deltas"]
    fig, axes = plt.subplots(max(1, len(pairs)), len(columns), figsize=(3.1 * len(columns), 2.6 * max(1, len(pairs))),
                             squeeze=False)
    for row, pair in enumerate(pairs):
        sub = done[done["pair"] == pair] if len(done) else done
        title = DATASET_LABELS.get(pair.split("_")[0], pair)
        for col, name in enumerate(binned):
            ax = axes[row][col]
            for j, (model, m) in enumerate(sub[sub["covariate"] == name].groupby("model_b", sort=False)):
                colour = f"C{j}"
                ax.plot(m["bin"].astype(str), m["calibrated"], marker="o", ms=3, color=colour, label=model)
                overall = sub[(sub["covariate"] == "all") & (sub["model_b"] == model)]["calibrated"]
                if len(overall):
                    ax.axhline(overall.iloc[0], color=colour, lw=0.8, ls=":")
            ax.axhline(0, color="0.5", lw=0.8, ls="--")
            ax.set_title(f"{title} vs HSC: by {name}", fontsize=8)
            ax.tick_params(axis="x", labelsize=6, rotation=30)
            if col == 0:
                ax.set_ylabel("calibrated MKNN", fontsize=8)
            if row == 0 and col == 0:
                ax.legend(fontsize=5)
        ax = axes[row][len(binned)]
        part = sub[sub["covariate"] == "partial"] if len(sub) else sub
        if len(part):
            x = np.arange(len(part))
            ax.bar(x - 0.2, part["mknn_raw"], 0.4, label="raw")
            ax.bar(x + 0.2, part["mknn"], 0.4, label="covariates regressed out")
            ax.plot(x, part["null_mean"], "k_", ms=12, label="null mean")
            ax.set_xticks(x, part["model_b"], fontsize=6, rotation=30)
            ax.legend(fontsize=5)
        ax.set_title(f"{title}: partial MKNN", fontsize=8)
        ax = axes[row][-1]
        d = deltas[deltas["pair"] == pair] if len(deltas) else deltas
        if len(d):
            x = np.arange(len(d))
            for xi, r in zip(x, d.itertuples()):
                decided = r.verdict != "inconclusive"
                ax.errorbar(xi, r.delta, yerr=[[r.delta - r.lo], [r.hi - r.delta]], fmt="o",
                            color="C3" if r.delta < 0 else "C0", mfc=None if decided else "white", ms=4)
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_xticks(x, [f"{m1.split('-')[0]} {m1.split('-')[1]}>{m2.split('-')[1]}"
                              for m1, m2 in zip(d["model_1"], d["model_2"])], fontsize=5, rotation=60)
        ax.set_title(f"{title}: MKNN(larger) - MKNN(smaller)", fontsize=8)
    write_figure(path, fig)
