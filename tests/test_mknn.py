"""Exact k-NN and mutual k-NN: against a dense reference, on known cases, and their nulls."""

import numpy as np
import pytest

from samesky.align.knn import brute_force_knn, chance_level, knn, mknn, permutation_null


@pytest.mark.parametrize("n, d, k", [(50, 8, 1), (200, 16, 10), (333, 5, 7)])
def test_knn_equals_the_dense_reference_exactly(n, d, k):
    x = np.random.default_rng(n).normal(size=(n, d)).astype(np.float32)
    assert np.array_equal(knn(x, k, block=64), brute_force_knn(x, k))


def test_self_is_excluded_and_ties_break_by_index_even_with_duplicates():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 4)).astype(np.float32)
    x = np.concatenate([base, base, base])  # every row has two exact duplicates
    nn = knn(x, 3)
    rows = np.arange(len(x))
    assert not (nn == rows[:, None]).any()
    # the two duplicates come first, the lower index first; then the nearest distinct row
    for i in range(len(x)):
        twins = sorted({i % 20, i % 20 + 20, i % 20 + 40} - {i})
        assert list(nn[i, :2]) == twins
    assert np.array_equal(nn, brute_force_knn(x, 3))
    assert np.array_equal(nn, knn(x, 3, block=7))  # blocks change nothing


def test_identical_spaces_score_one_and_consistent_row_permutations_change_nothing():
    x = np.random.default_rng(1).normal(size=(300, 12))
    y = x @ np.random.default_rng(2).normal(size=(12, 20))  # a different but related space
    nn_x, nn_y = knn(x, 10), knn(y, 10)
    assert mknn(nn_x, nn_x) == 1.0
    perm = np.random.default_rng(3).permutation(300)
    score = mknn(nn_x, nn_y)
    assert mknn(knn(x[perm], 10), knn(y[perm], 10)) == pytest.approx(score, abs=1e-12)
    assert 0.1 < score < 1.0


def test_independent_spaces_score_about_chance():
    rng = np.random.default_rng(4)
    n, k = 2000, 10
    scores = [mknn(knn(rng.normal(size=(n, 16)), k), knn(rng.normal(size=(n, 16)), k)) for _ in range(3)]
    assert np.mean(scores) == pytest.approx(chance_level(n, k), rel=0.25)


def test_the_permutation_null_equals_recomputing_knn_on_shuffled_rows():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(150, 6))
    y = x + 0.3 * rng.normal(size=(150, 6))
    nn_x, nn_y = knn(x, 5), knn(y, 5)
    null = permutation_null(nn_x, nn_y, 5, n_permutations=4, seed=9)
    again = np.random.default_rng(9)
    for j in range(4):
        pi = again.permutation(150)
        assert null[j] == pytest.approx(mknn(nn_x, knn(y[pi], 5)), abs=1e-12)
    assert null.max() < mknn(nn_x, nn_y)
    assert np.array_equal(null, permutation_null(nn_x, nn_y, 5, 4, seed=9))  # same seed, same numbers


def test_bad_k_is_refused():
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn(np.zeros((5, 2)), 0)
    with pytest.raises(ValueError, match="need more than k = 10 objects"):
        knn(np.zeros((5, 2)), 10)
