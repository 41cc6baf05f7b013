"""Figures of the probe stage (matplotlib, PDF)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import write_figure
from .analyses import METHOD_LABELS
from .structure import mdl_bin_count, quantile_bins
from .targets import LABELS, TARGETS


def _figure(n_panels: int, width: float = 3.2, height: float = 2.8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    return fig, axes[0]


def r2_bars(table: pd.DataFrame, path) -> None:
    """Test R^2 of every embedding, per target, zero-shot and few-shot (AstroCLIP benchmark Table 3 as a figure)."""
    fig, axes = _figure(len(TARGETS), 3.4, 3.6)
    names = [f"{s}/{m}" for s, m in table[["survey", "model"]].drop_duplicates().itertuples(index=False)]
    for ax, t in zip(axes, TARGETS):
        for i, method in enumerate(("knn", "mlp")):
            sub = table[table["method"] == method].set_index(["survey", "model"])[t]
            ax.barh(np.arange(len(names)) + 0.4 * i, [sub.loc[tuple(n.split("/", 1))] for n in names], 0.4,
                    label=METHOD_LABELS[method])
        ax.set_yticks(np.arange(len(names)) + 0.2, names if t == TARGETS[0] else [""] * len(names), fontsize=6)
        ax.set_title(LABELS[t])
        ax.set_xlabel("test R²")
        ax.axvline(0, color="k", lw=0.5)
    axes[0].legend(fontsize=6)
    write_figure(path, fig)


def group_r2(table: pd.DataFrame, group: str, path, order=None, extra=None) -> None:
    """R^2 per group value for each embedding (lines) and method (solid kNN, dashed MLP), per target;
    ``extra(ax)`` draws a leading panel (e.g. the distribution the groups come from)."""
    n = len(TARGETS) + (extra is not None)
    fig, axes = _figure(n)
    if extra is not None:
        extra(axes[0])
        axes = axes[1:]
    if table.empty:  # e.g. a pair without brightness flags: say so rather than draw empty axes
        axes[0].text(0.5, 0.5, f"no objects with a '{group}' label", ha="center", transform=axes[0].transAxes)
        write_figure(path, fig)
        return
    order = list(order) if order is not None else sorted(table[group].unique())
    for ax, t in zip(axes, TARGETS):
        for (survey, model), sub in table.groupby(["survey", "model"], sort=False):
            for method, style in (("knn", "-"), ("mlp", "--")):
                s = sub[sub["method"] == method].set_index(group)[t].reindex(order)
                ax.plot(range(len(order)), s.to_numpy(), style, marker="o", ms=3,
                        label=f"{survey}/{model} {method}")
        ax.set_xticks(range(len(order)), [str(o) for o in order], fontsize=7)
        ax.set_title(LABELS[t])
        ax.set_ylabel("R² (out of fold)")
    axes[-1].legend(fontsize=5)
    write_figure(path, fig)


def environment_panel(sample: pd.DataFrame):
    """The AstroCLIP benchmark's Figures 10-11 as a leading panel: nearest-neighbour separations, and the
    population of each environment bin."""
    from .robustness import ENV_BINS

    counts = sample["env_bin"].astype(str).value_counts()

    def draw(ax):
        ax.hist(np.log10(sample["nn_sep_arcsec"]), bins=30, color="grey")
        ax.set_xlabel("log10 nearest-neighbour separation (arcsec)")
        ax.set_title(" ".join(f"{b}: {counts.get(b, 0)}" for b in ENV_BINS), fontsize=7)

    return draw


def sky_panel(sample: pd.DataFrame):
    """The AstroCLIP benchmark's Figure 9 as a leading panel: the partitions on the sky."""

    def draw(ax):
        ra = (sample["ra"] + 180) % 360 - 180
        ax.scatter(ra, sample["dec"], c=sample["sky_group"], s=3, cmap="tab10")
        ax.set_xlabel("RA (deg, wrapped)")
        ax.set_ylabel("Dec (deg)")

    return draw


def inertia_and_umap(inertia: pd.DataFrame, projections: dict, sample: pd.DataFrame, path) -> None:
    """K-means inertia against k per embedding, and each embedding's UMAP coloured by low/high log M*
    and log sSFR (AstroCLIP benchmark Figures 3-8)."""
    fig, axes = _figure(1 + 2 * len(projections), 3.0, 3.0)
    for name, sub in inertia.groupby("embedding", sort=False):
        axes[0].plot(sub["k"], sub["inertia"] / sub["inertia"].iloc[0], marker="o", ms=3, label=name)
    axes[0].set_xlabel("k")
    axes[0].set_ylabel("inertia / inertia(k=1)")
    axes[0].legend(fontsize=6)
    i = 1
    for name, (ids, xy) in projections.items():
        props = sample.set_index("object_id").loc[ids]
        for t in ("log_mstar", "log_ssfr"):
            high = quantile_bins(props[t].to_numpy(), 2) == 1
            for label, sel, colour in (("low", ~high, "tab:blue"), ("high", high, "tab:red")):
                axes[i].scatter(xy[sel, 0], xy[sel, 1], s=3, c=colour, label=f"{label} {LABELS[t]}", alpha=0.6)
            axes[i].set_title(f"{name}\n{LABELS[t]}", fontsize=7)
            axes[i].set_xticks([])
            axes[i].set_yticks([])
            axes[i].legend(fontsize=5, markerscale=2)
            i += 1
    write_figure(path, fig)


def residual_histograms(residuals: dict, path) -> None:
    """Absolute test residuals per target and embedding, bins chosen by MDL (AstroCLIP benchmark Figure 12)."""
    fig, axes = _figure(len(TARGETS))
    for ax, t in zip(axes, TARGETS):
        pooled = np.concatenate([r[t].to_numpy() for r in residuals.values()])
        bins = np.histogram_bin_edges(pooled, bins=mdl_bin_count(pooled))
        for name, r in residuals.items():
            ax.hist(r[t], bins=bins, histtype="step", label=name)
        ax.set_title(f"{LABELS[t]} ({len(bins) - 1} MDL bins)", fontsize=8)
        ax.set_xlabel("|residual|")
    axes[-1].legend(fontsize=6)
    write_figure(path, fig)


def net_wins_bars(table: pd.DataFrame, path) -> None:
    """Net count of test objects where a's residual beats b's, per quantile bin of each property
    (kNN; AstroCLIP benchmark Figures 14-15, summed over error intervals)."""
    fig, axes = _figure(len(TARGETS))
    overall = table[(table["method"] == "knn") & table["error_from"].isna()]
    comparisons = list(dict.fromkeys(zip(overall["a"], overall["b"])))
    for ax, t in zip(axes, TARGETS):
        sub = overall[overall["target"] == t]
        bins = list(dict.fromkeys(sub["bin"]))
        width = 0.8 / max(len(comparisons), 1)
        for i, (a, b) in enumerate(comparisons):
            s = sub[(sub["a"] == a) & (sub["b"] == b)].set_index("bin")["net"].reindex(bins)
            ax.bar(np.arange(len(bins)) + i * width, s.to_numpy(), width, label=f"{a} − {b}")
        ax.set_xticks(np.arange(len(bins)) + 0.4 - width / 2, bins, fontsize=6, rotation=30)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(LABELS[t])
        ax.set_ylabel("net wins of a (test objects)")
    axes[-1].legend(fontsize=5)
    write_figure(path, fig)
