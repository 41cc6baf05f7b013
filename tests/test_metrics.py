"""The alignment-metric suite: each metric against a reference computation, its null, and the protocol."""

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import orthogonal_procrustes, subspace_angles
from scipy.spatial.distance import pdist
from scipy.stats import ortho_group, spearmanr

from samesky.align import curves
from samesky.align.knn import brute_force_knn
from samesky.align.metrics import (GLOBAL_METRICS, LOCAL_METRICS, METRICS, calibrated, cka_debiased, cka_linear,
                                   cknna, cycle_knn, edit_knn, evaluate, jaccard_knn, lcs_knn, mutual_knn,
                                   procrustes, rsa, scores_and_nulls, size_curve, svcca)
from samesky.align.stats import debiased_cka, linear_cka


def related(n=300, d=12, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = np.tanh(x @ rng.normal(size=(d, d + 5))) + noise * rng.normal(size=(n, d + 5))
    return x, y


def call(name, x, y, k=5):
    spec = METRICS[name]
    return spec.function(x, y, k) if spec.has_k else spec.function(x, y)


def test_registry_is_consistent():
    assert set(LOCAL_METRICS) | set(GLOBAL_METRICS) == set(METRICS)
    for name, spec in METRICS.items():
        assert spec.name == name and spec.reference
        assert spec.has_k == spec.local
        assert (spec.scorer is None) == spec.local and (spec.sample is None) == spec.local


@pytest.mark.parametrize("name", list(METRICS))
def test_identical_spaces_score_one(name):
    x = np.random.default_rng(1).normal(size=(200, 8))
    if name == "cycle_knn":  # not 1 for isolated points (see its docstring): the dense reference is the truth
        assert call(name, x, x) == pytest.approx(dense_cycle(x, x, 5)) and call(name, x, x) > 0.95
    else:
        assert call(name, x, x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", ["procrustes", "cka_linear", "cka_debiased", "svcca", "rsa", "mknn", "cknna_own"])
def test_a_rotation_and_scaling_changes_nothing(name):
    x = np.random.default_rng(2).normal(size=(250, 10))
    rotated = 3.7 * x @ ortho_group.rvs(10, random_state=3)
    assert call(name, x, rotated) == pytest.approx(1.0, abs=1e-9)


def test_independent_spaces_score_about_their_null():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 10)), rng.normal(size=(300, 14))
    for row in evaluate(x, y, ks=[5], n_permutations=60, n_permutations_matrix=30, seed=1):
        assert abs(row["score"] - row["null_mean"]) < 4 * row["null_std"] + 1e-12, row
        assert row["p_value"] > 0.01, row
    # related spaces: every metric beats all its shuffles, except cknna with the mutual mask in its
    # self-terms, a cosine of mostly positive vectors that sits near 1 with or without alignment
    for row in evaluate(*related(), ks=[5], n_permutations=60, n_permutations_matrix=30, seed=1):
        if row["metric"] == "cknna":
            assert row["null_mean"] > 0.9 and row["score"] > 0.9
            continue
        assert row["p_value"] == pytest.approx(1 / 61 if row["kind"] == "local" else 1 / 31), row


def test_jaccard_and_mknn_equal_brute_force_sets():
    x, y = related(80, seed=5, noise=1.0)
    a, b = brute_force_knn(x, 6), brute_force_knn(y, 6)
    sets = [(set(a[i]), set(b[i])) for i in range(80)]
    assert jaccard_knn(x, y, 6) == pytest.approx(np.mean([len(p & q) / len(p | q) for p, q in sets]), abs=1e-12)
    assert mutual_knn(x, y, 6) == pytest.approx(np.mean([len(p & q) / 6 for p, q in sets]), abs=1e-12)
    assert 0 < jaccard_knn(x, y, 6) < mutual_knn(x, y, 6) < 1


def sequence_dp(p, q, lcs):
    """Textbook dynamic programme: LCS length, or Levenshtein distance."""
    m = len(p)
    dp = [[0] * (m + 1) for _ in range(m + 1)]
    for i in range(m + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                dp[i][j] = 0 if lcs else i + j
            elif lcs:
                dp[i][j] = dp[i - 1][j - 1] + 1 if p[i - 1] == q[j - 1] else max(dp[i - 1][j], dp[i][j - 1])
            else:
                dp[i][j] = min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (p[i - 1] != q[j - 1]))
    return dp[m][m]


def test_lcs_and_edit_distance_equal_the_textbook_programmes():
    x, y = related(90, seed=6, noise=0.3)
    a, b = brute_force_knn(x, 7), brute_force_knn(y, 7)
    assert lcs_knn(x, y, 7) == pytest.approx(np.mean([sequence_dp(p, q, True) for p, q in zip(a, b)]) / 7)
    assert edit_knn(x, y, 7) == pytest.approx(1 - np.mean([sequence_dp(p, q, False) for p, q in zip(a, b)]) / 7)


def test_lcs_and_edit_shortcuts_for_rows_with_under_two_matches_equal_the_programmes():
    """Rows sharing 0 or 1 neighbour skip the dynamic programmes (closed forms): the scores, and their
    permutation null, equal the textbook programmes row by row, on lists with 0, 1 and many matches."""
    from samesky.align.metrics import _local_scores

    rng = np.random.default_rng(3)
    n, k = 400, 6
    a = np.array([rng.choice(40, k, replace=False) for _ in range(n)])
    b = np.array([rng.choice(40, k, replace=False) for _ in range(n)])
    b[:50] = a[:50, ::-1]  # many matches, reversed
    b[50:60] = a[50:60]  # identical lists
    common = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))
    assert {0, 1} <= set(common) and (common >= 2).sum() > 60
    got = _local_scores(a, b, [3, k], ["lcs_knn", "edit_knn"])
    for kk in (3, k):
        assert got["lcs_knn", kk] == pytest.approx(np.mean([sequence_dp(p[:kk], q[:kk], True) for p, q in zip(a, b)]) / kk)
        assert got["edit_knn", kk] == pytest.approx(
            1 - np.mean([sequence_dp(p[:kk], q[:kk], False) for p, q in zip(a, b)]) / kk)


def dense_cycle(x, y, k, first_hop=None):
    """platonic-rep: compute_knn_accuracy(knn_A[knn_B])."""
    knn_a, knn_b = brute_force_knn(x, k), brute_force_knn(y, k)[:, :first_hop or k]
    back = knn_a[knn_b]  # (N, h, k)
    return float((back == np.arange(len(x))[:, None, None]).reshape(len(x), -1).any(1).mean())


def test_cycle_knn_equals_platonic_reps_dense_form():
    x, y = related(120, seed=7, noise=0.8)
    assert cycle_knn(x, y, 5) == pytest.approx(dense_cycle(x, y, 5))
    assert cycle_knn(x, y, 5, first_hop=1) == pytest.approx(dense_cycle(x, y, 5, 1))
    assert cycle_knn(x, y, 5, first_hop=1) < cycle_knn(x, y, 5)


def dense_cknna(x, y, k, own=False):
    """N x N reference: centred cosine kernels, masks from the dense kNN."""
    def centred(z):
        u = z / np.linalg.norm(z, axis=1, keepdims=True)
        h = np.eye(len(z)) - 1 / len(z)
        return h @ (u @ u.T) @ h

    n = len(x)
    kc, lc = centred(x), centred(y)
    mask_a, mask_b = np.zeros((n, n)), np.zeros((n, n))
    np.put_along_axis(mask_a, brute_force_knn(x, k), 1, axis=1)
    np.put_along_axis(mask_b, brute_force_knn(y, k), 1, axis=1)
    mutual = mask_a * mask_b
    kk = (mask_a if own else mutual) * kc * kc
    ll = (mask_b if own else mutual) * lc * lc
    return (mutual * kc * lc).sum() / np.sqrt(kk.sum() * ll.sum())


@pytest.mark.parametrize("own", [False, True])
def test_cknna_equals_a_dense_n_by_n_computation(own):
    x, y = related(60, d=6, seed=8, noise=0.7)
    assert cknna(x, y, 8, self_mask="own" if own else "mutual") == pytest.approx(dense_cknna(x, y, 8, own), rel=1e-10)


def test_svcca_equals_the_cosines_of_the_principal_angles():
    x, y = related(400, d=15, seed=9, noise=1.0)

    def top(z, dims):
        z = (z - z.mean(0)) / z.std(0)
        return np.linalg.svd(z, full_matrices=False)[0][:, :dims]

    reference = np.cos(subspace_angles(top(x, 10), top(y, 10))).mean()
    assert svcca(x, y) == pytest.approx(reference, abs=1e-10)
    assert 0.3 < reference < 0.99
    # 99%-variance variant, centred only (platonic-universe's)
    z = x - x.mean(0)
    s = np.linalg.svd(z, compute_uv=False)
    keep = int(np.searchsorted(np.cumsum(s**2) / (s**2).sum(), 0.99) + 1)
    yc = y - y.mean(0)
    s_y = np.linalg.svd(yc, compute_uv=False)
    keep_y = int(np.searchsorted(np.cumsum(s_y**2) / (s_y**2).sum(), 0.99) + 1)
    ua = np.linalg.svd(z, full_matrices=False)[0][:, :keep]
    ub = np.linalg.svd(yc, full_matrices=False)[0][:, :keep_y]
    assert svcca(x, y, dims=None, standardise=False) == pytest.approx(np.cos(subspace_angles(ua, ub)).mean(), abs=1e-10)


def test_rsa_equals_spearman_of_pdist_also_on_its_row_sample():
    x, y = related(150, seed=10)
    assert rsa(x, y) == pytest.approx(spearmanr(pdist(x, "cosine"), pdist(y, "cosine")).statistic, abs=1e-12)
    ties = np.round(y, 1)  # many tied distances: average ranks, as spearmanr
    assert rsa(x, ties) == pytest.approx(spearmanr(pdist(x, "cosine"), pdist(ties, "cosine")).statistic, abs=1e-12)
    results = scores_and_nulls(x, y, ["rsa"], n_permutations_matrix=0, rsa_rows=60, seed=3)
    score, _, rows = results["rsa", None]
    assert rows == 60
    sample = np.sort(np.random.default_rng([3, 1]).choice(150, 60, replace=False))
    assert score == pytest.approx(spearmanr(pdist(x[sample], "cosine"), pdist(y[sample], "cosine")).statistic)
    assert rsa(x, y, max_rows=60, seed=3) == pytest.approx(score)


def test_procrustes_is_one_minus_half_the_squared_residual_of_scipys_fit():
    x, y = related(200, d=8, seed=11, noise=1.0)  # 8 and 13 columns: the narrower is padded

    def unit(z):
        z = z - z.mean(0)
        return z / np.linalg.norm(z)

    a, b = unit(x), unit(y)
    a = np.pad(a, ((0, 0), (0, b.shape[1] - a.shape[1])))
    r, _ = orthogonal_procrustes(a, b)
    assert procrustes(x, y) == pytest.approx(1 - np.linalg.norm(a @ r - b) ** 2 / 2, abs=1e-10)
    assert 0 < procrustes(x, y) < 1


def test_cka_wrappers_are_the_stats_functions_on_the_sample():
    x, y = related(300, seed=12)
    assert cka_linear(x, y) == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert cka_debiased(x, y) == pytest.approx(debiased_cka(x, y), abs=1e-12)
    sample = np.sort(np.random.default_rng([5, 1]).choice(300, 100, replace=False))
    assert cka_linear(x, y, max_rows=100, seed=5) == pytest.approx(linear_cka(x[sample], y[sample]), abs=1e-12)


def test_nulls_equal_recomputing_each_metric_on_shuffled_rows():
    x, y = related(120, d=6, seed=13, noise=0.6)
    results = scores_and_nulls(x, y, ks=[3, 6], n_permutations=3, n_permutations_matrix=3, seed=21)
    rng = np.random.default_rng(21)
    perms = [rng.permutation(120) for _ in range(3)]
    for (name, k), (score, null, rows) in results.items():
        assert len(null) == 3 and rows == 120
        assert score == pytest.approx(call(name, x, y, k), abs=1e-12), name
        for j, pi in enumerate(perms):
            assert null[j] == pytest.approx(call(name, x, y[pi], k), abs=1e-10), (name, k, j)
    # the same seed gives the same numbers; a different one does not
    again = scores_and_nulls(x, y, ["mknn", "svcca"], ks=[3], n_permutations=3, n_permutations_matrix=3, seed=21)
    assert np.array_equal(again["mknn", 3][1], results["mknn", 3][1])
    other = scores_and_nulls(x, y, ["mknn"], ks=[3], n_permutations=3, seed=22)
    assert not np.array_equal(other["mknn", 3][1], results["mknn", 3][1])


def test_calibration_and_p_values():
    assert calibrated(0.2, 0.2) == 0 and calibrated(1.0, 0.2) == 1 and calibrated(0.6, 0.2) == pytest.approx(0.5)
    assert np.isnan(calibrated(1.0, 1.0))
    x, y = related(150, seed=14, noise=2.0)
    rows = evaluate(x, y, ["mknn", "procrustes"], ks=[5], n_permutations=40, n_permutations_matrix=20, seed=2)
    results = scores_and_nulls(x, y, ["mknn", "procrustes"], ks=[5], n_permutations=40, n_permutations_matrix=20,
                               seed=2)
    for row in rows:
        score, null, _ = results[row["metric"], row["k"]]
        assert row["null_mean"] == pytest.approx(null.mean()) and row["null_std"] == pytest.approx(null.std(ddof=1))
        assert row["calibrated"] == pytest.approx((score - null.mean()) / (1 - null.mean()))
        assert row["p_value"] == pytest.approx((1 + (null >= score).sum()) / (1 + len(null)))
    table = pd.DataFrame(rows)
    assert list(table.columns) == ["metric", "kind", "k", "n", "score", "null_mean", "null_std", "p_value",
                                   "calibrated", "n_permutations", "sample_rows"]
    no_null = evaluate(x, y, ["mknn"], ks=[5], n_permutations=0)[0]
    assert np.isnan(no_null["null_mean"]) and np.isnan(no_null["p_value"]) and no_null["n_permutations"] == 0


def test_size_curve_uses_the_nested_subsets_of_curves_py():
    x, y = related(400, seed=15)
    table = size_curve(x, y, ["mknn", "cka_linear"], ks=[1, 10], seeds=[0, 1])
    reference = curves.size_curve(x, y, ks=[1, 10], seeds=[0, 1])
    mine = table[table["metric"] == "mknn"].sort_values(["seed", "n", "k"])
    assert np.allclose(mine["score"].to_numpy(), reference.sort_values(["seed", "n", "k"])["mknn"].to_numpy())
    assert sorted(set(table["n"])) == curves.subset_sizes(400)
    cka = table[table["metric"] == "cka_linear"]
    order = np.random.default_rng(1).permutation(400)[:256]
    row = cka[(cka["seed"] == 1) & (cka["n"] == 256)]
    assert row["score"].item() == pytest.approx(linear_cka(x[order], y[order]))
    assert table["null_mean"].isna().all()
    small = size_curve(x, y, ["mknn"], sizes=[8, 50], ks=[10], seeds=[0])
    assert list(small["n"]) == [50]  # k = 10 needs more than 10 rows: size 8 has no local score


def test_bad_inputs_are_refused():
    x = np.zeros((20, 3))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(x, x, ["mknn", "nope"])
    with pytest.raises(ValueError, match="row-paired"):
        evaluate(x, x[:10])
    with pytest.raises(ValueError, match="self_mask"):
        cknna(x, x, 3, self_mask="both")
