"""Figures and the Markdown table of the downstream tasks (matplotlib, PDF)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import write_figure
from .labels import CLASSES

HEAD_LABELS = {"linear": "linear head", "whitened": "whitening + linear", "mlp": "MLP (hidden 32)",
               "cnn": "CNN from scratch (supervised)", "chance": "chance (stratified)"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _name(row) -> str:
    return f"{row['survey']}/{row['model']}"


def f1_markdown(summary: pd.DataFrame, caption: str) -> str:
    """Macro F1 (mean ± spread over seeds) per embedding and label fraction, one block per head."""
    fractions = sorted(summary["label_fraction"].unique())
    lines = [caption, ""]
    head_cols = " | ".join(f"{f:.0%} labels" for f in fractions)
    lines += [f"| head | embedding | params (M) | {head_cols} |", "|---|---|---|" + "---|" * len(fractions)]
    for head in [h for h in (*HEAD_LABELS,) if h in set(summary["head"])]:
        sub = summary[summary["head"] == head]
        for (survey, model), rows in sub.groupby(["survey", "model"], sort=False):
            by = rows.set_index("label_fraction")
            cells = " | ".join(f"{by.loc[f, 'macro_f1']:.3f} ± {np.nan_to_num(by.loc[f, 'macro_f1_std']):.3f}"
                               for f in fractions)
            lines.append(f"| {head} | {survey}/{model} | {rows['params_m'].iloc[0]:g} | {cells} |")
    return "\n".join(lines) + "\n"


def f1_vs_fraction(summary: pd.DataFrame, path) -> None:
    """Seed 003's Figure 3: macro F1 against the share of training labels, one line per embedding, one
    panel per head; the chance floor dashed."""
    plt = _plt()
    heads = [h for h in ("linear", "whitened", "mlp") if h in set(summary["head"])]
    fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads), 3.8), squeeze=False, sharey=True)
    families = sorted(summary["family"].unique())
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    for ax, head in zip(axes[0], heads):
        sub = summary[summary["head"] == head]
        for (survey, model), rows in sub.groupby(["survey", "model"], sort=False):
            rows = rows.sort_values("label_fraction")
            family = rows["family"].iloc[0]
            style = "-" if rows["modality"].iloc[0] == "image" else "--"
            ax.errorbar(100 * rows["label_fraction"], rows["macro_f1"], yerr=rows["macro_f1_std"].fillna(0),
                        color=colours[family], ls=style, marker="o", ms=3, lw=1, capsize=2,
                        label=f"{survey}/{model}")
        chance = summary[summary["head"] == "chance"].groupby("label_fraction")["macro_f1"].mean()
        ax.plot(100 * chance.index, chance.to_numpy(), color="0.5", ls=":", label="chance")
        cnn = summary[summary["head"] == "cnn"].sort_values("label_fraction")  # seed 003's supervised line
        if len(cnn):
            ax.errorbar(100 * cnn["label_fraction"], cnn["macro_f1"], yerr=cnn["macro_f1_std"].fillna(0), color="k",
                        lw=2, marker="s", ms=3, capsize=2, label="CNN from scratch")
        ax.set_title(HEAD_LABELS[head])
        ax.set_xlabel("training labels used (%)")
        ax.set_xticks(sorted(100 * summary["label_fraction"].unique()))
    axes[0][0].set_ylabel("macro F1 (test set)")
    axes[0][-1].legend(fontsize=5, ncol=2, loc="lower right")
    write_figure(path, fig)


def f1_vs_params(summary: pd.DataFrame, path, fraction: float | None = None) -> None:
    """Macro F1 at the full label set (or ``fraction``) against model parameters, one line per family and
    side, one panel per head: does size buy morphology?"""
    plt = _plt()
    fraction = summary["label_fraction"].max() if fraction is None else fraction
    heads = [h for h in ("linear", "whitened", "mlp") if h in set(summary["head"])]
    fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads), 3.6), squeeze=False, sharey=True)
    sub = summary[np.isclose(summary["label_fraction"], fraction)]
    for ax, head in zip(axes[0], heads):
        rows = sub[sub["head"] == head]
        for (family, survey), line in rows.groupby(["family", "survey"], sort=False):
            line = line.sort_values("params_m")
            ax.errorbar(line["params_m"], line["macro_f1"], yerr=line["macro_f1_std"].fillna(0), marker="o", ms=3,
                        lw=1, capsize=2, label=f"{family} ({survey})")
        ax.set_xscale("log")
        ax.set_xlabel("parameters (M, the real model's)")
        ax.set_title(f"{HEAD_LABELS[head]}, {fraction:.0%} labels")
    axes[0][0].set_ylabel("macro F1 (test set)")
    axes[0][-1].legend(fontsize=6)
    write_figure(path, fig)


def redshift_scatter(predictions: pd.DataFrame, table: pd.DataFrame, path, ncols: int = 6) -> None:
    """AstroCLIP's redshift plot per embedding and probe: true against predicted redshift of the test
    objects, coloured by the local density of points, with the 1:1 line and the outlier bounds."""
    from scipy.stats import gaussian_kde

    plt = _plt()
    keys = list(predictions[["survey", "model", "method"]].drop_duplicates().itertuples(index=False, name=None))
    nrows = int(np.ceil(len(keys) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows), squeeze=False)
    scores = table.set_index(["survey", "model", "method"])
    top = float(np.nanmax(np.r_[predictions["z"], predictions["z_pred"]])) * 1.05
    line = np.linspace(0, top, 50)
    for ax, key in zip(axes.flat, keys):
        rows = predictions[(predictions["survey"] == key[0]) & (predictions["model"] == key[1])
                           & (predictions["method"] == key[2])]
        z, zp = rows["z"].to_numpy(), rows["z_pred"].to_numpy()
        try:
            density = gaussian_kde(np.vstack([z, zp]))(np.vstack([z, zp]))
        except (np.linalg.LinAlgError, ValueError):  # a constant prediction has no 2-D density
            density = np.ones(len(z))
        order = np.argsort(density)
        ax.scatter(z[order], zp[order], c=density[order], s=4, cmap="viridis")
        ax.plot(line, line, "k-", lw=0.6)
        for sign in (1, -1):
            ax.plot(line, line + sign * 0.15 * (1 + line), "k:", lw=0.5)
        s = scores.loc[key]
        ax.set_title(f"{key[0]}/{key[1]}\n{'kNN' if key[2] == 'knn' else 'MLP'}: R²={s['r2']:.2f}, "
                     f"σ_NMAD={s['sigma_nmad']:.3f}", fontsize=6)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.tick_params(labelsize=5)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    fig.supxlabel("true redshift")
    fig.supylabel("predicted redshift")
    write_figure(path, fig)


def recall_bars(recall: pd.DataFrame, ks, path) -> None:
    """Recall@k of the same object per retrieval task, one panel per kind, chance marked."""
    plt = _plt()
    kinds = list(dict.fromkeys(recall["kind"])) if len(recall) else []
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(4.5 * max(1, len(kinds)), 0.6 + 0.18 * max(
        [1] + [int((recall["kind"] == k).sum()) for k in kinds])), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = recall[recall["kind"] == kind].reset_index(drop=True)
        labels = [f"{r['model']}: {r['query']} → {r['gallery']}" for _, r in rows.iterrows()]
        for i, k in enumerate(ks):
            ax.barh(np.arange(len(rows)) + i / (len(ks) + 1), rows[f"recall@{k}"], 1 / (len(ks) + 1),
                    label=f"recall@{k}")
            ax.scatter(rows[f"chance@{k}"], np.arange(len(rows)) + i / (len(ks) + 1), marker="|", color="k", s=12)
        ax.set_yticks(np.arange(len(rows)) + 0.3, labels, fontsize=5)
        ax.set_xlim(0, 1)
        ax.set_title(f"{kind} (| = chance)")
        ax.legend(fontsize=6)
    if not kinds:
        axes[0][0].text(0.5, 0.5, "no retrieval task had enough objects", ha="center")
    write_figure(path, fig)


def example_queries(sample: pd.DataFrame, seed: int = 0) -> list[int]:
    """One test object per class (where the class has one), drawn by seed: the rows of the examples."""
    rng = np.random.default_rng(seed)
    rows = []
    for cls in CLASSES:
        members = np.flatnonzero((sample["label"] == cls).to_numpy() & (sample["split"] == "test").to_numpy())
        if len(members):
            rows.append(int(rng.choice(members)))
    return rows


def neighbour_thumbnails(images, image_rows, sample: pd.DataFrame, queries: list[int], nn: np.ndarray, name: str,
                         path) -> None:
    """Each query (left, framed) and its nearest neighbours in one embedding, as the RGB cutouts the
    models saw, titled with class and redshift."""
    plt = _plt()
    k = nn.shape[1]
    fig, axes = plt.subplots(max(1, len(queries)), k + 1, figsize=(1.3 * (k + 1), 1.45 * max(1, len(queries))),
                             squeeze=False)
    z = sample["z"].to_numpy(float) if "z" in sample.columns else np.full(len(sample), np.nan)
    for r, q in enumerate(queries):
        for c, obj in enumerate([q, *nn[q]]):
            ax = axes[r][c]
            row = image_rows[obj]
            if np.isfinite(row):
                ax.imshow(np.asarray(images[int(row)]))
            ax.set_xticks([])
            ax.set_yticks([])
            label = sample["label"].iloc[obj].replace("_", " ")
            ax.set_title(f"{label}\nz={z[obj]:.2f}" if np.isfinite(z[obj]) else label, fontsize=5)
            if c == 0:
                for spine in ax.spines.values():
                    spine.set_color("red")
                    spine.set_linewidth(2)
    fig.suptitle(f"queries (red) and their nearest neighbours in {name}", fontsize=7)
    write_figure(path, fig)


def f1_by_variant(summary: pd.DataFrame, path) -> None:
    """Morphology macro F1 (all training labels) per preprocessing variant: one panel per head, one bar
    group per variant, a bar per model (issue 26: does the preprocessing change what the heads read?)."""
    plt = _plt()
    top = summary[summary["label_fraction"] == summary["label_fraction"].max()]
    heads = [h for h in ("linear", "whitened", "mlp") if h in set(top["head"])]
    variants = list(dict.fromkeys(top["variant"]))
    models = list(dict.fromkeys(top["model"]))
    fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads), 3.6), squeeze=False, sharey=True)
    width = 0.8 / max(len(models), 1)
    for ax, head in zip(axes[0], heads):
        sub = top[top["head"] == head].set_index(["variant", "model"])
        for i, model in enumerate(models):
            values = [sub["macro_f1"].get((v, model), float("nan")) for v in variants]
            ax.bar([j + i * width for j in range(len(variants))], values, width, label=model)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(variants))], variants, rotation=30,
                      fontsize=8)
        ax.set_title(HEAD_LABELS[head])
    axes[0][0].set_ylabel("macro F1 (test set, all labels)")
    axes[0][-1].legend(fontsize=5, ncol=2)
    write_figure(path, fig)
