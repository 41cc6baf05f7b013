"""The paper's Tables 1 and 2, the trend tests, and Figure 1, from the per-pair score files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import write_figure
from ..registry import family_label, is_control_family, learned_family
from .stats import count_increases, trend_test

DATASET_LABELS = {"jwst": "JWST", "legacysurvey": "Legacy", "hsc": "HSC", "desi": "DESI", "sdss": "SDSS"}


def intramodal_table(scores: pd.DataFrame, k: int, hsc_pair: str) -> pd.DataFrame:
    """Table 1: MKNN (%) of adjacent sizes per imaging dataset; HSC taken from ``hsc_pair``."""
    intra = scores[(scores["kind"] == "intramodal") & (scores["k"] == k)].copy()
    keep = (intra["side"] != "hsc") | (intra["pair"] == hsc_pair)
    intra = intra[keep & intra["side"].isin(["jwst", "legacysurvey", "hsc"])]
    intra["comparison"] = intra["size_a"] + " vs " + intra["size"]
    table = intra.pivot_table(index=["family", "comparison", "params_m"], columns="side", values="mknn").reset_index()
    table = table.sort_values(["family", "params_m"]).drop(columns="params_m")
    cols = [c for c in ("jwst", "legacysurvey", "hsc") if c in table.columns]
    table[cols] = table[cols] * 100
    return table[["family", "comparison", *cols]].reset_index(drop=True)


def crossmodal_table(scores: pd.DataFrame, k: int, measure: str = "mknn") -> pd.DataFrame:
    """Table 2: MKNN (%) of each model size, each dataset against HSC; last row the permutation null.

    ``measure="cka_debiased"`` (or ``"cka_linear"``) gives the same layout for CKA (x 100, no null row).
    """
    cross = scores[(scores["kind"] == "crossmodal") & (scores["k"] == k)]
    table = cross.pivot_table(index=["family", "size", "params_m"], columns="side", values=measure).reset_index()
    table = table.sort_values(["family", "params_m"]).reset_index(drop=True)
    cols = [c for c in ("jwst", "legacysurvey", "desi", "sdss") if c in table.columns]
    table[cols] = table[cols] * 100
    if measure != "mknn":
        return table[["family", "size", "params_m", *cols]]
    null = cross.groupby("side")["null_mean"].mean() * 100
    null_row = {"family": "π (null)", "size": "", "params_m": np.nan, **{c: null.get(c, np.nan) for c in cols}}
    return pd.concat([table, pd.DataFrame([null_row])], ignore_index=True)[["family", "size", "params_m", *cols]]


TREND_SIDES = {"intramodal": ("jwst", "legacysurvey", "hsc"), "crossmodal": ("jwst", "legacysurvey", "desi"),
               "crossmodal_sdss": ("sdss",)}


def trend_tests(scores: pd.DataFrame, k: int, steps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Binomial tests on the count of increases with size (the Platonic Universe's grouping), over the
    study's models; where random-weights controls ran, the same tests over the controls and over the
    learned families they mirror ('intramodal: random controls', 'intramodal: learned, with a control'),
    so a trend is read against what the architectures alone give.

    With ``steps`` (``trend_steps``: every adjacent-size step with a verdict), each test also counts the steps
    decided up, decided down and undecided, ``decided_p`` (the binomial test on the decided steps only) and
    ``near_ties``: the steps whose verdict another computer may flip (``mark_near_ties``), by which the
    counts may move elsewhere. Those counts are the headline (docs/methods.md, "Trend tests"); the raw count
    counts every step of 0.01 points, which machines flip."""
    families = set(scores["family"])
    controls = {f for f in families if is_control_family(f)}
    groups = [("", families - controls)]
    if controls:
        groups += [(": learned, with a control", {learned_family(f) for f in controls}),
                   (": random controls", controls)]
    rows = []
    for suffix, members in groups:
        group = _trend_rows(scores[scores["family"].isin(members)], k, suffix)
        if steps is not None:
            for row in group:
                row.update(_decided(steps, row["test"].removesuffix(suffix), members))
        rows += group
    return pd.DataFrame(rows)


def _decided(steps: pd.DataFrame, test: str, members) -> dict:
    sub = steps[(steps["test"] == test) & steps["family"].isin(members)] if len(steps) else steps
    up = int((sub["verdict"] == "up").sum()) if len(sub) else 0
    down = int((sub["verdict"] == "down").sum()) if len(sub) else 0
    near = int(sub["near_tie"].sum()) if len(sub) and "near_tie" in sub else 0
    return {"decided_up": up, "decided_down": down, "undecided": len(sub) - up - down,
            "decided_p": trend_test(up, up + down), "near_ties": near, "rule": sub["rule"].iloc[0] if len(sub) else ""}


def trend_steps(scores: pd.DataFrame, k: int, hsc_pair: str | None = None, overlaps: pd.DataFrame | None = None,
                n_bootstrap: int = 1000, seed: int = 0, tolerance: float | str | None = None,
                measure: str = "mknn") -> pd.DataFrame:
    """Every adjacent-size step the trend tests count, one row each, with its verdict: up, down or undecided.

    - ``overlaps`` (``scores.align_pair``'s per-object overlaps at ``k``): the step's paired object bootstrap
      (``conditional.bootstrap_delta``: each object's overlap in the larger comparison minus the smaller,
      objects resampled ``n_bootstrap`` times; decided when the 95% interval is clear of 0);
    - else ``tolerance``: decided when |delta| exceeds it (for metrics that are not a mean over objects; the
      tolerance is what another computer may change, samesky/tolerances.yaml); a column name: each score's
      own, the larger of the two a step compares.

    Intramodal steps go from (s1 vs s2) to (s2 vs s3) on one side; crossmodal from size s to s + 1 of the
    family on the reference side. The rows are those the raw counts count (HSC's intramodal ones from
    ``hsc_pair``, by default the largest pair, as ``trend_tests``)."""
    from .conditional import bootstrap_delta

    hsc_pair = hsc_pair or _first_hsc_pair(scores)
    at_k = scores[scores["k"] == k]
    at_k = at_k[(at_k["kind"] == "crossmodal") | at_k["side"].isin(TREND_SIDES["intramodal"])]
    at_k = at_k[(at_k["kind"] == "crossmodal") | (at_k["side"] != "hsc") | (at_k["pair"] == hsc_pair)]
    if overlaps is not None:
        overlaps = overlaps[overlaps["k"] == k].set_index(["pair", "kind", "side", "model_a", "model_b"]).sort_index()
    rows = []
    for (pair, kind, side, family), sub in at_k.groupby(["pair", "kind", "side", "family"], sort=False):
        test = kind if kind == "intramodal" else "crossmodal_sdss" if side == "sdss" else "crossmodal"
        if side not in TREND_SIDES[test]:
            continue
        sub = sub.sort_values("params_m", kind="stable")
        for (_, one), (_, two) in zip(sub.iterrows(), sub.iloc[1:].iterrows()):
            row = {"test": test, "pair": pair, "kind": kind, "side": side, "family": family,
                   "comparison_1": f"{one['model_a']} vs {one['model_b']}",
                   "comparison_2": f"{two['model_a']} vs {two['model_b']}", "params_1": one["params_m"],
                   "params_2": two["params_m"], "k": k, "score_1": one[measure], "score_2": two[measure],
                   "delta": two[measure] - one[measure]}
            if overlaps is not None:
                o1 = overlaps.loc[(pair, kind, side, one["model_a"], one["model_b"])].set_index("object_id")["overlap"]
                o2 = overlaps.loc[(pair, kind, side, two["model_a"], two["model_b"])].set_index("object_id")["overlap"]
                common = o1.index.intersection(o2.index)
                out = bootstrap_delta((o2[common].to_numpy(float) - o1[common].to_numpy(float)) / k, n_bootstrap, seed)
                verdict = "up" if out["lo"] > 0 else "down" if out["hi"] < 0 else "undecided"
                row.update({"n": len(common), "lo": out["lo"], "hi": out["hi"], "p_value": out["p_value"],
                            "verdict": verdict, "rule": f"paired object bootstrap, {n_bootstrap} resamples, 95%"})
            else:
                tol = (max(one[tolerance], two[tolerance]) if isinstance(tolerance, str) else float(tolerance or 0.0))
                verdict = ("up" if row["delta"] > tol else "down" if row["delta"] < -tol else "undecided")
                row.update({"tolerance": tol, "verdict": verdict, "rule": "|delta| > tolerance"})
            rows.append(row)
    return pd.DataFrame(rows)


def mark_near_ties(steps: pd.DataFrame, margin) -> pd.DataFrame:
    """``steps`` with ``near_tie``: a verdict another computer may flip, its deciding quantity within ``margin``
    (per step, or one number: the tolerances' shift of a delta) of the line. For a bootstrap verdict the line
    is 0 and the quantity the interval's nearer edge; for a tolerance verdict the line is the tolerance and
    the quantity |delta|."""
    steps = steps.copy()
    if steps.empty:
        steps["near_tie"] = pd.Series(dtype=bool)
        return steps
    margin = np.broadcast_to(np.asarray(margin, float), (len(steps),))
    if "lo" in steps:
        edge = np.minimum(steps["lo"].abs(), steps["hi"].abs()).to_numpy()
    else:
        edge = (steps["delta"].abs() - steps["tolerance"]).abs().to_numpy()
    steps["near_tie"] = edge <= margin
    return steps


def _trend_rows(scores: pd.DataFrame, k: int, suffix: str) -> list[dict]:
    rows = []
    intra = intramodal_table(scores, k, hsc_pair=_first_hsc_pair(scores))
    inc = tot = 0
    for _, fam in intra.groupby("family", sort=False):
        for col in [c for c in ("jwst", "legacysurvey", "hsc") if c in fam.columns]:
            i, t = count_increases(fam[col].dropna().tolist())
            inc, tot = inc + i, tot + t
    rows.append({"test": "intramodal" + suffix, "increases": inc, "comparisons": tot, "p_value": trend_test(inc, tot)})
    cross = crossmodal_table(scores, k)
    cross = cross[cross["family"] != "π (null)"]
    groups = {"crossmodal": [c for c in ("jwst", "legacysurvey", "desi") if c in cross.columns],
              "crossmodal_sdss": [c for c in ("sdss",) if c in cross.columns]}
    for name, cols in groups.items():
        inc = tot = 0
        for _, fam in cross.groupby("family", sort=False):
            for col in cols:
                i, t = count_increases(fam.sort_values("params_m")[col].dropna().tolist())
                inc, tot = inc + i, tot + t
        rows.append({"test": name + suffix, "increases": inc, "comparisons": tot, "p_value": trend_test(inc, tot)})
    return rows


def _first_hsc_pair(scores: pd.DataFrame) -> str:
    pairs = scores.loc[(scores["kind"] == "intramodal") & (scores["side"] == "hsc"), "pair"]
    largest = scores[scores["pair"].isin(pairs)].groupby("pair")["n"].max()
    return str(largest.idxmax()) if len(largest) else ""


def _label(value, labels: dict | None = None) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.2f}"
    return DATASET_LABELS.get(str(value)) or family_label(str(value), labels)


def to_markdown(table: pd.DataFrame, caption: str, labels: dict | None = None) -> str:
    """A GitHub-flavoured Markdown table (pandas needs the optional 'tabulate' for this); family names as
    ``labels`` (the config's) or the zoo name them."""
    head = [DATASET_LABELS.get(c, c) for c in table.columns]
    lines = [f"{caption}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_label(v, labels) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    """Text with LaTeX's special characters escaped (a caption's "(%, k = 10)" would otherwise start a comment)."""
    for char in "&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text.replace("π", r"$\pi$").replace("²", r"$^2$")


def to_latex(table: pd.DataFrame, caption: str, label: str, labels: dict | None = None) -> str:
    """A booktabs LaTeX table (pandas' to_latex needs the optional jinja2)."""
    head = [_tex(DATASET_LABELS.get(c, c)) for c in table.columns]
    body = [" & ".join(_tex(_label(v, labels)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    return "\n".join([r"\begin{table}", r"\centering", f"\\caption{{{_tex(caption)}}}", f"\\label{{{label}}}",
                      r"\begin{tabular}{" + "l" * 2 + "r" * (len(head) - 2) + "}", r"\toprule",
                      " & ".join(head) + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
                      r"\end{table}", ""])


def figure1(scores: pd.DataFrame, k: int, path, labels: dict | None = None) -> None:
    """Parameters against crossmodal MKNN, one panel per dataset, with the permutation null band; a random
    control dashed, in its learned family's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cross = scores[(scores["kind"] == "crossmodal") & (scores["k"] == k)]
    sides = [s for s in ("jwst", "legacysurvey", "desi", "sdss") if s in set(cross["side"])]
    fig, axes = plt.subplots(1, len(sides), figsize=(3.6 * len(sides), 3.2), squeeze=False)
    for ax, side in zip(axes[0], sides):
        sub = cross[cross["side"] == side]
        learned = sorted(f for f in set(sub["family"]) if not is_control_family(f))
        colours = {f: f"C{i % 10}" for i, f in enumerate(learned)}
        for family, fam in sub.groupby("family"):
            fam = fam.sort_values("params_m")
            base = learned_family(family)
            colour = colours.get(base) or colours.setdefault(base, f"C{len(colours) % 10}")
            ax.plot(fam["params_m"], fam["mknn"] * 100, marker="o", color=colour,
                    ls="--" if is_control_family(family) else "-", label=family_label(family, labels))
        ax.axhspan(0, sub["null_q975"].max() * 100, color="0.85", zorder=0, label="π (null, 97.5%)")
        ax.axhline(sub["null_mean"].mean() * 100, color="0.5", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_title(f"{DATASET_LABELS.get(side, side)} vs HSC")
        ax.set_xlabel("parameters (M)")
    axes[0][0].set_ylabel(f"MKNN (%), k = {k}")
    axes[0][-1].legend(fontsize=7, loc="best")
    write_figure(path, fig)
