"""Layer-pair grids: exact agreement with the final-layer score, the null of the grid's maximum, its rate."""

import numpy as np
import pytest

from samesky.align.knn import knn, mknn, overlap_counts, permutation_null
from samesky.align.layers import LayerTable, layer_grid, prh_clamp


def _layers(rng, n, shared, n_layers, d=16, noise=1.0):
    """Layers that see ``shared`` (n, s) through their own projection, plus noise."""
    return [shared @ rng.normal(size=(shared.shape[1], d)) + noise * rng.normal(size=(n, d)) for _ in range(n_layers)]


def test_the_grids_cells_equal_the_mknn_of_their_two_layers_and_the_final_cell_its_null_too():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(150, 4))
    a, b = _layers(rng, 150, shared, 3), _layers(rng, 150, shared, 4, noise=2.0)
    out = layer_grid(a, b, k=5, n_permutations=30, seed=7)
    nn_a, nn_b = [knn(x, 5) for x in a], [knn(x, 5) for x in b]
    for i in range(3):
        for j in range(4):
            assert out["grid"][i, j] == mknn(nn_a[i], nn_b[j], 5)  # exactly, as the final-layer tables
    # the cell's own null is the final-layer null: the same permutations, the same relabelling
    assert np.array_equal(out["null"][:, 2, 3], permutation_null(nn_a[2], nn_b[3], 5, 30, seed=7))


def test_the_merged_table_counts_every_layer_at_once():
    rng = np.random.default_rng(1)
    nn_a = [rng.integers(0, 40, size=(40, 6)) for _ in range(5)]
    nn_b = rng.integers(0, 40, size=(40, 6))
    for a in nn_a:  # neighbour sets have distinct members
        for row in a:
            row[:] = rng.choice(40, 6, replace=False)
    for row in nn_b:
        row[:] = rng.choice(40, 6, replace=False)
    counts = LayerTable(nn_a).counts(nn_b)
    assert counts.tolist() == [int(overlap_counts(a, nn_b).sum()) for a in nn_a]


def test_the_max_null_p_value_is_never_below_the_best_cells_own():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        shared = rng.normal(size=(120, 3))
        out = layer_grid(_layers(rng, 120, shared, 3, noise=3.0), _layers(rng, 120, shared, 3, noise=3.0), k=5,
                         n_permutations=50, seed=seed)
        assert out["p_max"] >= out["p_cell"]
        assert out["max_null_q95"] >= out["cell_null_q95"]


def test_on_independent_spaces_the_max_null_rejects_at_its_nominal_rate():
    """200 pairs of independent 3-layer spaces (N = 100, k = 5, 99 permutations): at alpha = 0.05 the number
    of rejections is Binomial(200, 0.05) if the max-null is valid: mean 10, and 99.9% of draws fall in
    [2, 21]; the uncorrected best-cell p-value rejects far more often (the selection it ignores)."""
    rejected_max = rejected_cell = 0
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        a = [rng.normal(size=(100, 8)) for _ in range(3)]
        b = [rng.normal(size=(100, 8)) for _ in range(3)]
        out = layer_grid(a, b, k=5, n_permutations=99, seed=seed)
        rejected_max += out["p_max"] <= 0.05
        rejected_cell += out["p_cell"] <= 0.05
    assert 2 <= rejected_max <= 21, rejected_max
    assert rejected_cell > 2 * rejected_max, (rejected_cell, rejected_max)


def test_the_prh_clamp_is_the_platonic_rep_outlier_step():
    x = np.array([[1.0, -2.0, 3.0, 100.0], [0.5, 0.5, -50.0, 1.0]], np.float32)
    t = np.mean([np.quantile(np.abs(row), 0.95) for row in x])
    assert np.allclose(prh_clamp(x), np.clip(x, -t, t))
    with pytest.raises(ValueError, match="at most 64 layers"):
        LayerTable([np.zeros((3, 1), np.int64)] * 65)


def test_the_devices_batched_null_equals_the_cpus_one_permutation_at_a_time():
    """The null on a torch device (run here on the CPU) looks many permutations up at once: the same
    permutation sequence, the same grids to the bit; and the CPU's hashed pre-filter drops no held pair."""
    rng = np.random.default_rng(5)
    shared = rng.normal(size=(400, 4))
    a, b = _layers(rng, 400, shared, 6), _layers(rng, 400, shared, 5, noise=2.0)
    cpu = layer_grid(a, b, k=7, n_permutations=25, seed=3)
    device = layer_grid(a, b, k=7, n_permutations=25, seed=3, device="cpu")
    assert np.array_equal(cpu["grid"], device["grid"]) and np.array_equal(cpu["null"], device["null"])
    nn_a, nn_b = [knn(x, 7) for x in a], [knn(x, 7) for x in b]
    assert np.array_equal(cpu["null"][:, 5, 4], permutation_null(nn_a[5], nn_b[4], 7, 25, seed=3))
