"""Alignment across layers: MKNN at every layer pair, and a permutation null of the grid's maximum.

Reading one layer per model hides a choice; reading every pair and reporting the best hides a selection
(the Platonic Representation Hypothesis code takes the maximum over layer pairs with no correction,
minyoungg/platonic-rep ``measure_alignment.py``). Here the grid comes with the null of its maximum: each
permutation relabels B's objects once, for all of B's layers at once, the whole grid is recomputed from
the neighbour sets, and its maximum is kept. The best cell's p-value against that null accounts for
having picked it.

Cost: one exact k-NN search per layer (L_a + L_b, never L_a x L_b). A cell's count is the number of
(object, neighbour) pairs in both spaces. A's layers are merged into one table of (object, neighbour)
codes, each with a bit mask of the layers that hold it, so one sorted lookup of B's (relabelled)
neighbour codes gives every A layer's overlap with that B layer at once (:func:`grid_counts`).
"""

from __future__ import annotations

import numpy as np

from .knn import knn


def prh_clamp(x: np.ndarray, q: float = 0.95) -> np.ndarray:
    """The Platonic Representation Hypothesis code's outlier step (platonic-rep ``metrics.remove_outliers``,
    not exact): every value clamped to +-t, t the mean over objects of each object's q-quantile of |x|."""
    x = np.asarray(x, dtype=np.float32)
    t = float(np.quantile(np.abs(x), q, axis=1).mean())
    return np.clip(x, -t, t)


class LayerTable:
    """The neighbour sets of several layers of one space, merged: sorted codes ``i * N + j`` of every
    (object, neighbour) pair of any layer, with a bit mask of the layers holding it."""

    def __init__(self, neighbours: list[np.ndarray]):
        if len(neighbours) > 64:
            raise ValueError(f"at most 64 layers a side, got {len(neighbours)}")
        self.n, self.k = neighbours[0].shape
        self.n_layers = len(neighbours)
        codes = np.concatenate([self.codes(nn) for nn in neighbours])
        bits = np.repeat(np.uint64(1) << np.arange(self.n_layers, dtype=np.uint64), self.n * self.k)
        order = np.argsort(codes, kind="stable")
        codes, bits = codes[order], bits[order]
        first = np.ones(len(codes), bool)
        first[1:] = codes[1:] != codes[:-1]
        self.keys = codes[first]
        self.masks = np.bitwise_or.reduceat(bits, np.flatnonzero(first))
        # a bit per hashed code, about 16 bits a key: under a permutation few queried pairs are in any A
        # layer, and the filter turns most away before the sorted lookup (a third of its cost, measured)
        self.filter_bits = int(np.clip(np.ceil(np.log2(max(1, len(self.keys)) * 16)), 16, 31))
        self.filter = np.zeros(1 << (self.filter_bits - 3), dtype=np.uint8)
        hashed = self._hash(self.keys)
        np.bitwise_or.at(self.filter, (hashed >> np.uint64(3)).astype(np.intp),
                         np.left_shift(np.uint8(1), (hashed & np.uint64(7)).astype(np.uint8)))

    def _hash(self, codes: np.ndarray) -> np.ndarray:
        """Fibonacci hashing of the codes onto the filter's bits (uint64 products wrap)."""
        return (codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - self.filter_bits)

    def codes(self, nn: np.ndarray) -> np.ndarray:
        return (np.arange(self.n, dtype=np.int64)[:, None] * self.n + nn).ravel()

    def counts(self, nn_b: np.ndarray) -> np.ndarray:
        """Per A layer, how many of B's (object, neighbour) pairs it holds too: (n_layers,) int64."""
        codes = self.codes(nn_b)
        hashed = self._hash(codes)
        maybe = (self.filter[(hashed >> np.uint64(3)).astype(np.intp)] >> (hashed & np.uint64(7)).astype(np.uint8)) & 1
        codes = codes[maybe.astype(bool)]  # every held pair passes; about 1 in 16 others does
        at = np.searchsorted(self.keys, codes)
        at[at == len(self.keys)] = 0
        masks = self.masks[at[self.keys[at] == codes]]  # only the pairs some A layer holds (few, under a null)
        bits = np.unpackbits(masks.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")  # (hits, 64)
        return bits.sum(axis=0, dtype=np.int64)[: self.n_layers]


def grid_counts(table: LayerTable, nn_b: list[np.ndarray], relabel: np.ndarray | None = None,
                rows: np.ndarray | None = None) -> np.ndarray:
    """(L_a, L_b) shared (object, neighbour) pairs. With a permutation, object i of A meets row rows[i] of B,
    whose neighbours are renamed into A's order by ``relabel`` (the inverse permutation)."""
    out = np.empty((table.n_layers, len(nn_b)), dtype=np.int64)
    for m, nn in enumerate(nn_b):
        out[:, m] = table.counts(nn if relabel is None else relabel[nn[rows]])
    return out


NULL_BATCH_CODES = 1 << 22  # (object, neighbour) codes looked up at once in the null: 32 MB of int64


def _relabelled_codes(n: int, nn_b: list[np.ndarray], perms) -> np.ndarray:
    """(permutations x B layers x N x k) codes ``i * N + j`` of B's neighbours under each permutation, renamed
    into A's order, each row's sorted, in (permutation, layer, object) order."""
    k = nn_b[0].shape[1]
    rows = np.arange(n, dtype=np.int64)[:, None] * n
    codes = np.empty((len(perms), len(nn_b), n, k), dtype=np.int64)
    for p, pi in enumerate(perms):
        inverse = np.empty(n, dtype=np.int64)
        inverse[pi] = np.arange(n)
        for m, nn in enumerate(nn_b):
            codes[p, m] = rows + np.sort(inverse[nn[pi]], axis=1)
    return codes.reshape(-1)


class TorchNullLookup:
    """The null's lookups on a torch device (the GPU where there is one), many permutations at once: A's
    table held there, a batch's relabelled codes sent over, ``searchsorted`` and the sums of each
    (permutation, B layer) segment done there. Equal to :func:`grid_counts` one permutation at a time."""

    def __init__(self, table: LayerTable, device: str):
        import torch

        self.table, self.device = table, torch.device(device)
        self.keys = torch.from_numpy(table.keys).to(self.device)
        self.masks = torch.from_numpy(table.masks.view(np.int64)).to(self.device)
        self.layer_bits = torch.arange(table.n_layers, device=self.device)

    def __call__(self, nn_b: list[np.ndarray], perms) -> np.ndarray:
        import torch

        n, k, n_layers = self.table.n, self.table.k, self.table.n_layers
        codes = torch.from_numpy(_relabelled_codes(n, nn_b, perms)).to(self.device)
        at = torch.searchsorted(self.keys, codes).clamp_(max=len(self.keys) - 1)
        hit = torch.nonzero(self.keys[at] == codes).squeeze(1)
        bits = (self.masks[at[hit]][:, None] >> self.layer_bits) & 1  # (hits, L_a)
        counts = torch.zeros((len(perms) * len(nn_b), n_layers), dtype=torch.int64, device=self.device)
        counts.index_add_(0, hit // (n * k), bits)
        return counts.cpu().numpy().reshape(len(perms), len(nn_b), n_layers).transpose(0, 2, 1)


def layer_grid(layers_a: list[np.ndarray], layers_b: list[np.ndarray], k: int, n_permutations: int, seed: int,
               neighbours: tuple | None = None, device: str | None = None) -> dict:
    """MKNN at every layer pair of two row-paired sets of layers, and the permutation null of each cell
    and of the grid's maximum.

    Returns ``grid`` (L_a, L_b) MKNN, ``null`` (P, L_a, L_b) per-permutation grids, ``max_null`` (P,),
    and the best cell with its own p-value, the max-null p-value and the calibrated score
    (s - tau) / (1 - tau), tau the max-null's 95% quantile. The permutations are drawn in sequence from
    ``seed``; on ``device`` (a torch device) they are looked up in batches (:class:`TorchNullLookup`)."""
    nn_a, nn_b = neighbours if neighbours is not None else (
        [knn(x, k) for x in layers_a], [knn(x, k) for x in layers_b])
    nn_a, nn_b = [nn[:, :k] for nn in nn_a], [nn[:, :k] for nn in nn_b]
    n = len(nn_a[0])
    table = LayerTable(nn_a)
    grid = grid_counts(table, nn_b) / n / k
    rng = np.random.default_rng(seed)
    null = np.empty((n_permutations, len(nn_a), len(nn_b)))
    # the CPU looks each permutation up on its own (batching them measured 15% slower: the batch leaves the
    # cache); a device takes them in batches of bounded memory. The permutations are drawn in one sequence.
    batch = max(1, NULL_BATCH_CODES // (n * k * len(nn_b))) if device is not None else 1
    lookup = TorchNullLookup(table, device) if device is not None else None
    for start in range(0, n_permutations, batch):
        perms = [rng.permutation(n) for _ in range(min(batch, n_permutations - start))]
        if lookup is not None:
            null[start:start + len(perms)] = lookup(nn_b, perms) / n / k
            continue
        inverse = np.empty(n, dtype=np.int64)
        inverse[perms[0]] = np.arange(n)
        null[start] = grid_counts(table, nn_b, relabel=inverse, rows=perms[0]) / n / k
    max_null = null.reshape(n_permutations, -1).max(axis=1)
    best = np.unravel_index(int(np.argmax(grid)), grid.shape)
    score = float(grid[best])
    tau = float(np.quantile(max_null, 0.95)) if n_permutations else float("nan")
    cell_null = null[:, best[0], best[1]]
    return {
        "grid": grid, "null": null, "max_null": max_null, "best": (int(best[0]), int(best[1])), "score": score,
        "cell_null_mean": float(cell_null.mean()) if n_permutations else float("nan"),
        "cell_null_q95": float(np.quantile(cell_null, 0.95)) if n_permutations else float("nan"),
        "max_null_mean": float(max_null.mean()) if n_permutations else float("nan"),
        "max_null_q95": tau,
        "p_cell": float((1 + (cell_null >= score).sum()) / (1 + n_permutations)),
        "p_max": float((1 + (max_null >= score).sum()) / (1 + n_permutations)),
        "calibrated": (score - tau) / (1 - tau) if n_permutations else float("nan"),
    }


# One pair's grids ----------------------------------------------------------------------------------------


def pick_layers(names: list[str], layers) -> list[int]:
    """Indices of the layers scored: every one (``all``), or each model's nearest to the relative depths."""
    if layers == "all":
        return list(range(len(names)))
    depths = (np.arange(len(names)) + 1) / len(names)
    return sorted({int(np.argmin(np.abs(depths - d))) for d in layers})


def comparisons(reference: str, other: str, files: list) -> list[tuple[str, str, object, object]]:
    """(kind, side, file a, file b) as align_pair scores them: crossmodal, then intramodal adjacent sizes."""
    from .scores import crossmodal_comparisons

    out = [("crossmodal", other, fo, fr) for fo, fr in crossmodal_comparisons(reference, other, files)]
    for side in (reference, other):
        families: dict = {}
        for f in (f for f in files if f.survey == side):
            families.setdefault(f.family, []).append(f)
        for family_files in families.values():
            family_files.sort(key=lambda f: f.params_m)
            out += [("intramodal", side, small, large) for small, large in zip(family_files, family_files[1:])]
    return out


def pair_layer_grids(pair: str, reference: str, other: str, files: list, k: int, layers, n_permutations: int,
                     seed: int, clamp: float | None = None, device: str | None = None):
    """Every comparison of one pair at every layer pair: (long grid table, one summary row per comparison,
    the grids for the heatmaps). ``device``: a torch device for the searches and the null (the GPU)."""
    import logging

    import pandas as pd

    from ..io import read_layers

    log = logging.getLogger(__name__)
    loaded: dict = {}
    neighbours: dict = {}

    def load(f):
        if f.path not in loaded:
            ids, names, arrays, meta = read_layers(f.path)
            keep = pick_layers(names, layers)
            loaded[f.path] = (np.asarray(ids).astype(str), [names[i] for i in keep], [arrays[i] for i in keep],
                              meta["reference_layer"], len(names), keep)
        return loaded[f.path]

    def search(f, rows, key):
        """k-NN of each selected layer of file f on the given rows (cached: the same rows recur)."""
        if (f.path, key) not in neighbours:
            arrays = load(f)[2]
            neighbours[(f.path, key)] = [knn(prh_clamp(x[rows], clamp) if clamp else x[rows], k, device=device)
                                         for x in arrays]
        return neighbours[(f.path, key)]

    grid_rows, best_rows, grids = [], [], []
    for kind, side, fa, fb in comparisons(reference, other, files):
        ids_a, names_a, _, ref_a, n_a, keep_a = load(fa)
        ids_b, names_b, _, ref_b, n_b, keep_b = load(fb)
        common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
        key = hash(common.tobytes())
        out = layer_grid(None, None, k, n_permutations, seed, neighbours=(search(fa, ia, key), search(fb, ib, key)),
                         device=device)
        depth_a = [(i + 1) / n_a for i in keep_a]
        depth_b = [(j + 1) / n_b for j in keep_b]
        for i, la in enumerate(names_a):
            for j, lb in enumerate(names_b):
                grid_rows.append({"pair": pair, "kind": kind, "side": side, "model_a": fa.model, "model_b": fb.model,
                                  "layer_a": la, "layer_b": lb, "depth_a": depth_a[i], "depth_b": depth_b[j],
                                  "mknn": out["grid"][i, j],
                                  "null_mean": float(out["null"][:, i, j].mean()) if n_permutations else np.nan})
        bi, bj = out["best"]
        ref_cell = (names_a.index(ref_a), names_b.index(ref_b)) if ref_a in names_a and ref_b in names_b else None
        best_rows.append({
            "pair": pair, "kind": kind, "side": side, "model_a": fa.model, "model_b": fb.model,
            "family_a": fa.family, "family_b": fb.family, "params_a_m": fa.params_m, "params_b_m": fb.params_m,
            "n": len(common), "k": k, "layers_a": len(names_a), "layers_b": len(names_b),
            "best_layer_a": names_a[bi], "best_layer_b": names_b[bj], "depth_a": depth_a[bi], "depth_b": depth_b[bj],
            "reference_layer_a": ref_a, "reference_layer_b": ref_b,
            "mknn_best": out["score"], "mknn_reference": out["grid"][ref_cell] if ref_cell else np.nan,
            "cell_null_mean": out["cell_null_mean"], "cell_null_q95": out["cell_null_q95"],
            "max_null_mean": out["max_null_mean"], "max_null_q95": out["max_null_q95"],
            "p_cell": out["p_cell"], "p_max": out["p_max"], "calibrated": out["calibrated"],
            "n_permutations": n_permutations, "prh_clamp": clamp if clamp else "off"})
        grids.append((best_rows[-1], names_a, names_b, out["grid"]))
        log.info("%s %s %s: %s x %s, best %s/%s = %.4f (p_cell %.3g, p_max %.3g)", pair, kind, side, fa.model,
                 fb.model, names_a[bi], names_b[bj], out["score"], out["p_cell"], out["p_max"])
    return pd.DataFrame(grid_rows), pd.DataFrame(best_rows), grids


def heatmaps(grids: list, path, per_page: int = 12) -> None:
    """One heatmap per comparison (layers of A down, layers of B across; the best cell boxed, the
    reference cell, the final-layer tables' own, dotted), ``per_page`` to a page of one PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.patches import Rectangle

    from ..io import atomic_path

    with atomic_path(path) as tmp, PdfPages(tmp, metadata={"CreationDate": None}) as pdf:
        for start in range(0, max(len(grids), 1), per_page):
            page = grids[start:start + per_page]
            fig, axes = plt.subplots(3, 4, figsize=(16, 12), squeeze=False)
            for ax in axes.ravel():
                ax.set_visible(False)
            for ax, (row, names_a, names_b, grid) in zip(axes.ravel(), page):
                ax.set_visible(True)
                im = ax.imshow(grid * 100, cmap="viridis", aspect="auto", origin="upper")
                bi, bj = names_a.index(row["best_layer_a"]), names_b.index(row["best_layer_b"])
                ax.add_patch(Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, ec="red", lw=2))
                if row["reference_layer_a"] in names_a and row["reference_layer_b"] in names_b:
                    ri, rj = names_a.index(row["reference_layer_a"]), names_b.index(row["reference_layer_b"])
                    ax.add_patch(Rectangle((rj - 0.4, ri - 0.4), 0.8, 0.8, fill=False, ec="white", lw=1, ls=":"))
                ax.set_title(f"{row['kind']} {row['side']}: {row['model_a']} vs {row['model_b']}\n"
                             f"best {row['mknn_best'] * 100:.1f}%, p_max {row['p_max']:.3g}", fontsize=8)
                ax.set_yticks(range(len(names_a)), [n.replace("block_", "b").replace("stage_", "s") for n in names_a],
                              fontsize=6)
                ax.set_xticks(range(len(names_b)), [n.replace("block_", "b").replace("stage_", "s") for n in names_b],
                              fontsize=6, rotation=90)
                ax.set_ylabel(row["model_a"], fontsize=7)
                ax.set_xlabel(row["model_b"], fontsize=7)
                fig.colorbar(im, ax=ax, fraction=0.046, label="MKNN (%)")
            fig.tight_layout()
            pdf.savefig(fig)
            plt.close(fig)


def depth_figure(best, path) -> None:
    """Relative depth of the best layer against model size, per family: crossmodal and intramodal panels;
    filled markers the A side's model, open the B side's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_figure

    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker below)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    families = sorted(set(best["family_a"]) | set(best["family_b"]))
    palette = plt.cm.tab10.colors if len(families) <= 10 else plt.cm.tab20.colors  # the zoo has 20 families
    colours = {family: palette[i % len(palette)] for i, family in enumerate(families)}
    for ax, kind in zip(axes, ("crossmodal", "intramodal")):
        rows = best[best["kind"] == kind]
        for family in families:
            a = rows[rows["family_a"] == family]
            b = rows[rows["family_b"] == family]
            ax.scatter(a["params_a_m"], a["depth_a"], color=colours[family], label=family, s=25)
            ax.scatter(b["params_b_m"], b["depth_b"], facecolors="none", edgecolors=colours[family], s=25)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("parameters (M); filled: model A's layer, open: model B's")
        ax.set_title(f"{kind}: the best layer pair's depths")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("relative depth of the best layer (1 = final)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    write_figure(path, fig)
