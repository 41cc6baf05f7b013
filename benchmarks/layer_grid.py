"""Cost of a layer grid with its max-null against the naive way, in one run.

The grid: N objects, two models of L layers each (d dimensions), MKNN at k at every one of the L x L layer
pairs, and the permutation null of the grid's maximum (P permutations): one exact k-NN search per layer
(2L), the neighbour sets of A's layers merged into one table, and per permutation one lookup of each of B's
L relabelled layers (``samesky.align.layers``). The naive way scores each of the L x L cells on its own,
as a final-layer comparison does: two k-NN searches and P permutations of its own null, per cell; a few
cells are timed and the rest extrapolated. Also printed: the extrapolated cost of a grid at the paper's
largest pair (102k objects).

    python benchmarks/layer_grid.py [--n 5000] [--d 1024] [--layers 24] [--perms 1000] [--naive-cells 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from samesky.align.knn import knn, permutation_null
from samesky.align.layers import LayerTable, grid_counts, layer_grid


def _layers(rng, shared, d, n_layers):
    """Layers of one model: its own view of the signal both models share, noisier with depth."""
    n = len(shared)
    proj = rng.normal(size=(shared.shape[1], d)).astype(np.float32)
    base = shared @ proj
    return [(base + (2 + 0.5 * layer) * rng.normal(size=(n, d))).astype(np.float32) for layer in range(n_layers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--perms", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--naive-cells", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(args.n, 32)).astype(np.float32)
    a, b = _layers(rng, shared, args.d, args.layers), _layers(rng, shared, args.d, args.layers)
    cells = args.layers ** 2
    print(f"N = {args.n}, d = {args.d}, k = {args.k}, {args.layers} x {args.layers} layers, {args.perms} permutations")

    # the grid, timed part by part
    t0 = time.perf_counter()
    nn_a, nn_b = [knn(x, args.k) for x in a], [knn(x, args.k) for x in b]
    t_search = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = LayerTable(nn_a)
    t_table = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = layer_grid(None, None, args.k, args.perms, seed=0, neighbours=(nn_a, nn_b))
    t_perms = time.perf_counter() - t0  # the observed grid, the table again and every permutation
    t_grid = t_search + t_perms
    per_perm = t_perms / (args.perms + 1)
    print(f"grid: {t_grid:8.1f} s   = {2 * args.layers} k-NN searches {t_search:.1f} s + table {t_table:.2f} s "
          f"+ {args.perms} permutations of the whole grid {t_perms:.1f} s ({per_perm * 1e3:.1f} ms each)")
    print(f"      best cell {out['best']}: MKNN {out['score']:.4f}, p_cell {out['p_cell']:.4f}, "
          f"p_max {out['p_max']:.4f}, max-null 95% {out['max_null_q95']:.4f}")
    assert grid_counts(table, nn_b).shape == (args.layers, args.layers)

    # the naive way: a few cells, each with its own searches and null, extrapolated to every cell
    t0 = time.perf_counter()
    for c in range(args.naive_cells):
        i, j = divmod(c * 7 % cells, args.layers)
        na, nb = knn(a[i], args.k), knn(b[j], args.k)
        permutation_null(na, nb, args.k, args.perms, seed=c)
    per_cell = (time.perf_counter() - t0) / args.naive_cells
    t_naive = per_cell * cells
    print(f"naive: {t_naive:8.1f} s (extrapolated: {per_cell:.1f} s a cell, timed on {args.naive_cells}, "
          f"x {cells} cells), and no null of the maximum")
    print(f"grid / naive: {t_naive / t_grid:.1f}x cheaper (target: at least 10x)")

    # the paper's largest pair: searches grow as N^2 d (exact), permutations as N k log(N k L)
    scale = 102_000 / args.n
    search_102k = t_search * scale ** 2
    perm_102k = per_perm * scale * np.log(102_000 * args.k * args.layers) / np.log(args.n * args.k * args.layers)
    print(f"102k objects (extrapolated): {2 * args.layers} searches ~{search_102k / 60:.0f} min on this machine's "
          f"CPU (a GPU index is far faster), {perm_102k:.1f} s a permutation: 200 permutations "
          f"~{200 * perm_102k / 60:.0f} min, 1000 ~{1000 * perm_102k / 60:.0f} min")


if __name__ == "__main__":
    main()
