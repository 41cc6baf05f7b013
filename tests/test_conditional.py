"""Per-object, binned and partial MKNN, and the paired bootstrap of an MKNN difference."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from samesky.align.conditional import (binned_mknn, bootstrap_delta, paired_bootstrap_delta, partial_mknn,
                                       per_object_overlap, residualise)
from samesky.align.knn import chance_level, knn, mknn


def test_per_object_overlap_by_hand():
    nn_a = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    nn_b = np.array([[2, 1], [2, 3], [3, 2], [2, 3]])
    assert per_object_overlap(nn_a, nn_b).tolist() == [1.0, 0.5, 0.0, 0.0]
    assert per_object_overlap(nn_a, nn_b).mean() == mknn(nn_a, nn_b)
    with pytest.raises(ValueError, match="shape"):
        per_object_overlap(nn_a, nn_b[:, :1])


def test_binned_mknn_scores_each_bin_on_its_own_and_reports_small_bins():
    rng = np.random.default_rng(0)
    n0, n1, n2 = 200, 150, 5
    x_a = rng.normal(size=(n0 + n1 + n2, 8))
    x_b = np.concatenate([x_a[:n0] @ np.linalg.qr(rng.normal(size=(8, 8)))[0],  # bin 0: same geometry
                          rng.normal(size=(n1 + n2, 8))])  # bin 1 (and the tiny bin 2): unrelated
    bins = np.repeat(["a", "b", "c"], [n0, n1, n2])
    shuffle = rng.permutation(len(bins))  # bins need not be contiguous
    table = binned_mknn(x_a[shuffle], x_b[shuffle], bins[shuffle], k=5, n_permutations=100, seed=1)
    t = table.set_index("bin")
    assert list(t.index) == ["a", "b", "c"] and t["n"].tolist() == [n0, n1, n2]
    assert t.loc["a", "mknn"] == 1.0 and t.loc["a", "p_value"] == pytest.approx(1 / 101)
    assert t.loc["b", "mknn"] < 3 * chance_level(n1, 5) and t.loc["b", "p_value"] > 0.01
    assert t.loc["b", "chance"] == pytest.approx(5 / (n1 - 1))
    idx = np.flatnonzero(bins[shuffle] == "b")  # neighbours among the bin's rows only
    assert t.loc["b", "mknn"] == mknn(knn(x_a[shuffle][idx], 5), knn(x_b[shuffle][idx], 5))
    assert t.loc["c", "skipped"] and np.isnan(t.loc["c", "mknn"]) and t.loc["c", "reason"] == "5 rows < 6 needed"
    assert not t.loc["a", "skipped"]
    assert binned_mknn(x_a, x_b, bins, k=5, n_permutations=0, min_size=160).set_index("bin")["skipped"].tolist() \
        == [False, True, True]


def test_residualise_equals_a_linear_regression_fit():
    rng = np.random.default_rng(2)
    cov = rng.normal(size=(100, 2))
    x = 3 + cov @ rng.normal(size=(2, 5)) + rng.normal(size=(100, 5))
    res = residualise(x, cov)
    assert np.allclose(res, x - LinearRegression().fit(cov, x).predict(cov))
    one = x[:, 0] - LinearRegression().fit(cov[:, :1], x[:, 0]).predict(cov[:, :1])  # 1-d covariate and column
    assert np.allclose(residualise(x[:, 0], cov[:, 0]), one)
    assert np.allclose(res.mean(0), 0) and np.allclose(cov.T @ res, 0)
    with pytest.raises(ValueError, match="NaN"):
        residualise(x, np.where(np.arange(100) == 4, np.nan, cov[:, 0]))


def test_partial_mknn_falls_to_chance_when_the_agreement_is_only_the_covariates():
    rng = np.random.default_rng(3)
    n, k = 600, 10
    cov = rng.normal(size=(n, 2))  # e.g. redshift and brightness
    only_cov_a = cov @ rng.normal(size=(2, 16)) + 0.05 * rng.normal(size=(n, 16))
    only_cov_b = cov @ rng.normal(size=(2, 24)) + 0.05 * rng.normal(size=(n, 24))
    out = partial_mknn(only_cov_a, only_cov_b, cov, k=k, n_permutations=100, seed=4)
    assert out["mknn_raw"] > 0.2  # raw agreement, carried by the covariates alone
    assert out["mknn"] < 2.5 * chance_level(n, k) and out["p_value"] > 0.01
    assert out["chance"] == chance_level(n, k)
    # agreement beyond the covariates survives
    shared = rng.normal(size=(n, 6))
    a = np.column_stack([only_cov_a, shared])
    b = np.column_stack([only_cov_b, shared @ rng.normal(size=(6, 6))])
    kept = partial_mknn(a, b, cov, k=k, n_permutations=100, seed=4)
    assert kept["mknn"] > 0.2 and kept["p_value"] == pytest.approx(1 / 101)


def test_paired_bootstrap_intervals_cover_the_true_difference_at_their_nominal_rate():
    rng = np.random.default_rng(5)
    k, n, delta, reps = 10, 300, 0.04, 200
    covered, rejected_null = 0, 0
    for rep in range(reps):
        p = rng.uniform(0.1, 0.5, n)  # objects differ; the two models' overlaps are paired through p
        o1 = rng.binomial(k, p)
        o2 = rng.binomial(k, p + delta)  # E[(o2 - o1) / k] = delta exactly
        out = bootstrap_delta((o2 - o1) / k, n_boot=800, seed=rep)
        covered += out["lo"] <= delta <= out["hi"]
        same = bootstrap_delta((rng.binomial(k, p) - o1) / k, n_boot=800, seed=rep)  # no true difference
        rejected_null += same["p_value"] < 0.05
    assert 0.90 <= covered / reps <= 0.99
    assert 0.01 <= rejected_null / reps <= 0.10


def test_paired_bootstrap_delta_on_embeddings():
    rng = np.random.default_rng(6)
    x_b = rng.normal(size=(400, 10))
    small = x_b + 1.2 * rng.normal(size=(400, 10))
    large = x_b + 0.5 * rng.normal(size=(400, 10))  # the larger model is closer to b
    out = paired_bootstrap_delta(small, x_b, large, k=10, n_boot=1000, seed=0)
    nn_b = knn(x_b, 10)
    assert out["mknn_1"] == pytest.approx(mknn(knn(small, 10), nn_b))
    assert out["mknn_2"] == pytest.approx(mknn(knn(large, 10), nn_b))
    assert out["delta"] == pytest.approx(out["mknn_2"] - out["mknn_1"])
    assert 0 < out["lo"] < out["delta"] < out["hi"] and out["p_value"] == pytest.approx(2 / 1001)
    none = paired_bootstrap_delta(small, x_b, small, k=10, n_boot=200)
    assert none["delta"] == none["lo"] == none["hi"] == 0 and none["p_value"] == 1.0


def test_a_resample_mean_that_is_zero_up_to_rounding_counts_as_zero():
    """Overlap differences cancel exactly in some resamples; their float means come out as 1e-18 either
    side of 0 depending on the order of summation. A verdict must not hang on that: those means are 0."""
    from samesky.align.conditional import bootstrap_delta

    d = np.tile([0.1, -0.1, 0.3, -0.3, 0.7, -0.7], 5)
    rng = np.random.default_rng(0)
    raw = d[rng.integers(0, len(d), size=(2000, len(d)))].mean(axis=1)
    assert ((raw != 0) & (np.abs(raw) < 1e-12)).any()  # the rounding noise is there to be removed
    for seed in range(10):
        for values in (d, d[::-1], np.random.default_rng(seed).permutation(d)):
            out = bootstrap_delta(values, 2000, seed)
            assert all(v == 0 or abs(v) > 1e-9 for v in (out["lo"], out["hi"]))
            assert out["lo"] <= 0 <= out["hi"]
