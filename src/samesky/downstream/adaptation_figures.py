"""Figures of seed 003's adaptation study (issue 26): macro F1 against the share of labels per backbone and
method (its Fig. 3 layout), and each class's F1, precision and recall with all labels (its Fig. 4)."""

from __future__ import annotations

import pandas as pd

from ..io import write_figure
from .figures import _plt
from .labels import CLASSES

STYLES = {("frozen", "linear"): ("tab:blue", ":"), ("frozen", "whitened"): ("tab:cyan", ":"),
          ("frozen", "mlp"): ("tab:purple", ":"), ("full", "linear"): ("tab:red", "-"),
          ("lora", "linear"): ("tab:orange", "-"), ("scratch", "linear"): ("tab:green", "--"),
          ("scratch", "cnn"): ("black", "--")}


def _label(method: str, head: str) -> str:
    return {"frozen": f"frozen, {head}", "full": "full fine-tuning", "lora": "LoRA",
            "scratch": "CNN from scratch" if head == "cnn" else "from scratch"}.get(method, method)


def f1_by_method(summary: pd.DataFrame, path) -> None:
    """One panel per backbone: macro F1 against training labels, a line per method (and head); the small
    CNN in every panel."""
    plt = _plt()
    models = [m for m in dict.fromkeys(summary["model"]) if m != "cnn-scratch"]
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(4.2 * max(len(models), 1), 3.8), squeeze=False,
                             sharey=True)
    cnn = summary[summary["model"] == "cnn-scratch"].sort_values("label_fraction")
    for ax, model in zip(axes[0], models):
        sub = summary[summary["model"] == model]
        for (method, head), rows in sub.groupby(["method", "head"], sort=False):
            if head == "chance":
                continue
            rows = rows.sort_values("label_fraction")
            colour, style = STYLES.get((method, head), ("grey", "-"))
            ax.errorbar(100 * rows["label_fraction"], rows["macro_f1"], yerr=rows["macro_f1_std"].fillna(0),
                        color=colour, ls=style, marker="o", ms=3, capsize=2, label=_label(method, head))
        if len(cnn):
            ax.errorbar(100 * cnn["label_fraction"], cnn["macro_f1"], yerr=cnn["macro_f1_std"].fillna(0), color="black",
                        ls="--", marker="s", ms=3, capsize=2, label="small CNN from scratch")
        ax.set_title(model)
        ax.set_xlabel("training labels used (%)")
    axes[0][0].set_ylabel("macro F1 (test set)")
    axes[0][-1].legend(fontsize=6)
    write_figure(path, fig)


def per_class(runs: pd.DataFrame, path) -> None:
    """F1, precision and recall of each class with all training labels, mean over seeds: a bar per (model,
    method), the frozen backbones by their linear head."""
    plt = _plt()
    top = runs[(runs["label_fraction"] == runs["label_fraction"].max()) & runs["head"].isin(["linear", "cnn"])]
    classes = [c for c in CLASSES if f"f1_{c}" in top.columns and top[f"f1_{c}"].notna().any()]
    groups = list(top.groupby(["model", "method"], sort=False))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    width = 0.8 / max(len(groups), 1)
    for ax, metric in zip(axes, ("f1", "precision", "recall")):
        for i, ((model, method), rows) in enumerate(groups):
            values = [rows[f"{metric}_{c}"].mean() if f"{metric}_{c}" in rows else float("nan") for c in classes]
            ax.bar([j + i * width for j in range(len(classes))], values, width, label=f"{model}: {method}")
        ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(len(classes))], classes, rotation=30,
                      fontsize=8)
        ax.set_title(metric)
    axes[0].set_ylabel("test set, all training labels")
    axes[-1].legend(fontsize=5, ncol=2)
    write_figure(path, fig)
