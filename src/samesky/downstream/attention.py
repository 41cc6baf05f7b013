"""Where a vision transformer looks (seed 003's Fig. 6 and appendix A): in every block, the first token's
attention to each image patch, averaged over heads, shown over the galaxy as a contour at the 90th
percentile of the map.

Not wired into the workflow yet (issue 26): the figure rule will call ``attention_maps`` and
``attention_figure`` on example galaxies of each morphology class.
"""

from __future__ import annotations

import numpy as np


def attention_maps(model, pixel_values, grid: tuple[int, int]) -> np.ndarray:
    """(B, blocks, gh, gw): each block's attention from the first token (CLS) to the ``gh x gw`` patches,
    the mean over heads. Register or other extra tokens (between CLS and the patches) are left out: the
    patches are the last gh * gw tokens. The model must return attentions (transformers'
    ``output_attentions``; the eager attention implementation computes them)."""
    import torch

    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.config._attn_implementation = "eager"  # sdpa does not return the weights
    with torch.no_grad():
        out = model(pixel_values=torch.as_tensor(pixel_values, dtype=torch.float32), output_attentions=True)
    if not out.attentions:
        raise ValueError(f"{type(model).__name__} returned no attentions: not a transformer with a CLS token?")
    gh, gw = grid
    maps = []
    for block in out.attentions:  # (B, heads, T, T)
        if block.shape[-1] < gh * gw + 1:
            raise ValueError(f"{block.shape[-1]} tokens cannot hold a CLS token and {gh} x {gw} patches")
        maps.append(block[:, :, 0, -gh * gw:].mean(dim=1).reshape(-1, gh, gw))
    return torch.stack(maps, dim=1).numpy()


def upsample(attention: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (gh, gw) map on an image of ``shape``: each patch's value over its pixels (nearest, as the patches
    tile the image)."""
    gh, gw = attention.shape
    rows = (np.arange(shape[0]) * gh // shape[0]).clip(0, gh - 1)
    cols = (np.arange(shape[1]) * gw // shape[1]).clip(0, gw - 1)
    return attention[np.ix_(rows, cols)]


def top_region(attention: np.ndarray, percentile: float = 90.0) -> np.ndarray:
    """Pixels at or above the map's ``percentile``: the region seed 003 outlines."""
    return attention >= np.percentile(attention, percentile)


def attention_figure(images: np.ndarray, maps: np.ndarray, row_labels: list[str], path, percentile: float = 90.0,
                     title: str = "") -> None:
    """One row per example galaxy (``images``: (N, H, W, 3) uint8), one column per block, the image with the
    block's attention outlined at its ``percentile``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure

    n, blocks = maps.shape[:2]
    fig, axes = plt.subplots(n, blocks, figsize=(1.6 * blocks, 1.6 * n), squeeze=False)
    for i in range(n):
        for b in range(blocks):
            ax = axes[i, b]
            ax.imshow(images[i], origin="lower")
            field = upsample(maps[i, b], images[i].shape[:2])
            ax.contour(field, levels=[np.percentile(field, percentile)], colors="cyan", linewidths=0.8,
                       origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"block {b + 1}", fontsize=8)
            if b == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    write_figure(path, fig)
