"""Property probes: R^2 and bootstrap CIs, the probes themselves, targets, environment proxy, sky
partitions, AMI, MDL and outlier recurrence on cases with known answers."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_mutual_info_score, r2_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from samesky.probes.regress import bootstrap_r2, fit_predict, r2_per_target, run_probes
from samesky.probes.robustness import environment, r2_by_group, sky_partitions
from samesky.probes.structure import ami_with_bins, mdl_bin_count, outlier_recurrence, quantile_bins
from samesky.probes.targets import ProbeDataError, provabgs_targets, split_labels


@pytest.fixture()
def known():
    """y = X w + noise: each target's true R^2 is 0.8 by construction."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    w = rng.normal(size=(6, 2))
    signal = x @ w
    noise = rng.normal(size=signal.shape) * signal.std(0) * 0.5  # var ratio 0.25 -> R^2 = 1/1.25 = 0.8
    return x, signal + noise, signal


def test_r2_and_its_bootstrap_match_scikit_learn(known):
    _, y, signal = known
    assert np.allclose(r2_per_target(y, signal), [r2_score(y[:, j], signal[:, j]) for j in range(2)])
    assert np.allclose(r2_per_target(y, signal), 0.8, atol=0.05)
    worse = signal + np.random.default_rng(1).normal(size=signal.shape) * signal.std(0)
    table = bootstrap_r2(y, [signal, worse], n_boot=300, seed=5)
    # the same resamples drawn by hand and scored by scikit-learn
    rng = np.random.default_rng(5)
    ref = []
    for _ in range(300):
        idx = rng.integers(0, len(y), len(y))
        ref.append([[r2_score(y[idx, j], p[idx, j]) for j in range(2)] for p in (signal, worse)])
    ref = np.array(ref)
    for j in range(2):
        assert table.loc[j, "r2_0"] == pytest.approx(r2_score(y[:, j], signal[:, j]))
        assert (table.loc[j, "lo_0"], table.loc[j, "hi_0"]) == pytest.approx(tuple(np.quantile(ref[:, 0, j], [0.025, 0.975])))
        assert table.loc[j, "lo_0"] < 0.8 < table.loc[j, "hi_0"]  # covers the true value
        diff = np.quantile(ref[:, 0, j] - ref[:, 1, j], [0.025, 0.975])
        assert (table.loc[j, "delta_lo"], table.loc[j, "delta_hi"]) == pytest.approx(tuple(diff))
        assert table.loc[j, "delta_lo"] > 0  # the better prediction is better beyond the noise
    same = bootstrap_r2(y, [signal, signal], n_boot=50)
    assert (same["delta_lo"] == 0).all() and (same["delta_hi"] == 0).all()
    # a constant truth, as scikit-learn scores it: 1 when predicted exactly, else 0
    from samesky.probes.regress import _r2_resampled

    flat = np.ones((1, 5, 2))
    guess = np.stack([np.ones(5), np.arange(5.0)], axis=1)[None]
    assert _r2_resampled(flat, guess).tolist() == [[r2_score(flat[0, :, j], guess[0, :, j]) for j in range(2)]] == [[1.0, 0.0]]


def test_knn_probe_is_scikit_learns_distance_weighted_regressor_on_standardised_data(known):
    x, y, _ = known
    train, test = slice(0, 300), slice(300, None)
    ours = fit_predict(x[train], y[train], {"test": x[test], "train": x[train]}, "knn", n_neighbours=64)
    xs, ys = StandardScaler().fit(x[train]), StandardScaler().fit(y[train])
    ref = KNeighborsRegressor(64, weights="distance").fit(xs.transform(x[train]), ys.transform(y[train]))
    assert np.allclose(ours["test"], ys.inverse_transform(ref.predict(xs.transform(x[test]))))
    # train predictions leave each object out of its own neighbours, so train R^2 is not a trivial 1
    assert 0.3 < r2_per_target(y[train], ours["train"]).min() < 0.99


@pytest.mark.parametrize("mlp", ["hidden32", "astroclip"])
def test_probes_learn_a_linear_signal_and_are_deterministic(known, mlp):
    x, y, _ = known
    split = split_labels(len(x), 0.1, 42)
    assert (split == "test").sum() == 40
    a = run_probes(x, y, split, seed=3, n_folds=5, mlp=mlp)
    b = run_probes(x, y, split, seed=3, n_folds=5, mlp=mlp)
    for method in ("knn", "mlp"):
        assert np.array_equal(a[method]["test"], b[method]["test"])
        assert not np.isnan(a[method]["oof"]).any()
        assert r2_per_target(y[split == "test"], a[method]["test"]).min() > 0.4, (method, mlp)
    noise = np.random.default_rng(9).normal(size=x.shape)
    c = run_probes(noise, y, split, seed=3, n_folds=5, mlp=mlp)
    assert r2_per_target(y[split == "test"], c["knn"]["test"]).max() < 0.2


def test_provabgs_targets_physical_and_anchor_ssfr():
    cat = pd.DataFrame({"TARGETID": [1, 2, 3], "LOG_MSTAR": [10.0, 11.0, -1.0], "Z_MW": [0.019, 0.01, 0.02],
                        "TAGE_MW": [5.0, 9.0, 3.0], "AVG_SFR": [1.0, 0.1, 2.0]})
    phys, dropped = provabgs_targets(cat)
    assert dropped == 1 and list(phys["TARGETID"]) == ["1", "2"]  # LOG_MSTAR <= 0 has no usable mass
    assert phys["log_ssfr"].tolist() == pytest.approx([-10.0, -12.0])
    assert phys["log_z_mw"].tolist() == pytest.approx(np.log10([0.019, 0.01]))
    anchor, _ = provabgs_targets(cat, ssfr="astroclip")
    assert anchor["log_ssfr"].tolist() == pytest.approx([np.log(1.0) - np.log(0.019), np.log(0.1) - np.log(0.01)])
    with pytest.raises(ProbeDataError, match=r"provabgs: missing column\(s\) \['AVG_SFR'\]"):
        provabgs_targets(cat.drop(columns="AVG_SFR"))


def _ring(ra0, dec0, n, radius_arcsec):
    angles = 2 * np.pi * np.arange(n) / n
    return ra0 + radius_arcsec / 3600 * np.cos(angles) / np.cos(np.radians(dec0)), dec0 + radius_arcsec / 3600 * np.sin(angles)


def test_environment_proxy_on_a_hand_built_sky():
    # groups of 9, 5 and 2 members on 0.3" rings (straddling RA = 0), and 3 isolated galaxies
    parts = [_ring(359.9999, 1.0, 9, 0.3), _ring(0.05, 1.0, 5, 0.3), _ring(0.1, 1.2, 2, 0.3)]
    ra = np.concatenate([p[0] for p in parts] + [[0.5, 359.5, 0.3]]) % 360
    dec = np.concatenate([p[1] for p in parts] + [[1.0, 1.0, 2.0]])
    frame, threshold = environment(ra, dec)
    nn = np.r_[[2 * 0.3 * np.sin(np.pi / 9)] * 9, [2 * 0.3 * np.sin(np.pi / 5)] * 5, [0.6] * 2]
    assert np.allclose(frame["nn_sep_arcsec"][:16], nn, atol=1e-3)
    q1, q3 = np.percentile(frame["nn_sep_arcsec"], [25, 75])
    assert threshold == pytest.approx(q3 + 1.5 * (q3 - q1)) and 0.6 < threshold < 1.0
    assert frame["companions"].tolist() == [8] * 9 + [4] * 5 + [1] * 2 + [0] * 3
    assert frame["env_bin"].tolist() == ["many"] * 9 + ["moderate"] * 5 + ["few"] * 5


def test_sky_partitions_do_not_cut_a_field_at_ra_zero():
    rng = np.random.default_rng(2)
    ra = np.r_[rng.normal(0, 0.05, 50) % 360, rng.normal(3, 0.05, 50)]
    dec = np.r_[rng.normal(0, 0.05, 50), rng.normal(0, 0.05, 50)]
    labels = sky_partitions(ra, dec, n_groups=2)
    assert len(set(labels[:50])) == 1 and len(set(labels[50:])) == 1 and labels[0] != labels[-1]


def test_r2_by_group_scores_each_group_and_skips_tiny_ones():
    rng = np.random.default_rng(4)
    y = rng.normal(size=60)
    frame = pd.DataFrame({"g": ["a"] * 30 + ["b"] * 27 + ["c"] * 3, "t": y,
                          "pred_knn_t": y + rng.normal(0, 0.1, 60), "pred_mlp_t": y * 0})
    table = r2_by_group(frame, "g", ["t"]).set_index(["g", "method"])
    assert table.loc[("a", "knn"), "t"] == pytest.approx(r2_score(y[:30], frame["pred_knn_t"][:30]))
    assert table.loc[("b", "mlp"), "n"] == 27 and np.isnan(table.loc[("c", "knn"), "t"])


def test_ami_is_one_for_clusters_that_are_the_bins_and_near_zero_for_unrelated_ones():
    rng = np.random.default_rng(0)
    props = pd.DataFrame({"mass": rng.normal(size=900)})
    bins = quantile_bins(props["mass"].to_numpy(), 3)
    assert np.bincount(bins).tolist() == [300, 300, 300]
    assert ami_with_bins((bins + 1) % 3, props)["mass"] == pytest.approx(1.0)  # label names do not matter
    assert abs(ami_with_bins(rng.integers(0, 3, 900), props)["mass"]) < 0.02
    assert ami_with_bins(bins, props)["mass"] == pytest.approx(adjusted_mutual_info_score(bins, bins))


def test_mdl_bin_count_on_known_shapes():
    rng = np.random.default_rng(1)
    assert mdl_bin_count(rng.uniform(0, 1, 5000)) == 1  # a flat density needs no structure
    spikes = np.r_[rng.normal(0, 0.001, 2500), rng.normal(1, 0.001, 2500)]
    assert mdl_bin_count(spikes, k_max=60) == 60  # two narrow spikes: the finer the better
    k_gauss = mdl_bin_count(rng.normal(size=5000))
    assert 5 <= k_gauss <= 40
    assert mdl_bin_count(np.ones(10)) == 1


def test_outlier_recurrence_counts_objects_per_number_of_properties():
    res = pd.DataFrame(np.ones((40, 3)) + np.linspace(0, 0.1, 40)[:, None], columns=["a", "b", "c"])
    res.iloc[0, :] = 50  # an outlier in all three
    res.iloc[1, 0] = 50  # in one
    res.iloc[2, 1] = 50  # in one
    assert outlier_recurrence(res).to_dict() == {1: 2, 2: 0, 3: 1}
    assert outlier_recurrence(res.iloc[3:]).to_dict() == {1: 0, 2: 0, 3: 0}  # none: still one row per count


@pytest.mark.parametrize("suffix", ["fits", "hdf5", "folder"])
def test_a_catalogue_file_or_hub_folder_reads_through_the_same_path(tmp_path, suffix):
    from astropy.table import Table

    from samesky.probes.targets import read_catalogue

    cat = pd.DataFrame({"TARGETID": np.array([39627, 39628], np.int64), "LOG_MSTAR": [10.2, 9.1],
                        "Z_MW": [0.02, 0.01], "TAGE_MW": [6.0, 2.0], "AVG_SFR": [0.5, 2.0]})
    if suffix == "folder":
        path = tmp_path / "provabgs"
        (path / "data").mkdir(parents=True)
        cat.to_parquet(path / "data" / "train-00000-of-00001.parquet")
    else:
        path = tmp_path / f"provabgs.{suffix}"
        table = Table.from_pandas(cat)
        table["THETA_BF"] = np.zeros((2, 13))  # a vector column, as PROVABGS has: not a target, left out
        table.write(path, **({"path": "provabgs"} if suffix == "hdf5" else {}))
    back = read_catalogue(path)
    assert back["TARGETID"].tolist() == [39627, 39628] and "THETA_BF" not in back
    targets, dropped = provabgs_targets(back)
    assert dropped == 0 and targets["TARGETID"].tolist() == ["39627", "39628"]
    with pytest.raises(ProbeDataError, match="could not read"):
        read_catalogue(tmp_path / "nothing.fits")


def test_the_probe_sample_joins_on_the_named_column_and_says_what_is_missing():
    from samesky.probes.targets import probe_sample

    pair = pd.DataFrame({"object_id": ["b", "a", "c"], "ra": [1.0, 2, 3], "dec": [0.0, 0, 0],
                         "desi_object_id": ["7", "5", "9"]})
    targets = pd.DataFrame({"TARGETID": ["5", "7"], "log_mstar": [10.0, 11.0], "log_z_mw": [0.0, 0.1],
                            "t_age": [1.0, 2.0], "log_ssfr": [-10.0, -11.0]})
    sample = probe_sample(pair, targets, "desi_object_id")
    assert sample["object_id"].tolist() == ["a", "b"] and sample["log_mstar"].tolist() == [10.0, 11.0]
    with pytest.raises(ProbeDataError, match=r"desi_hsc: no column 'TARGETID' to join the catalogue on"):
        probe_sample(pair, targets, "TARGETID", name="desi_hsc")
    with pytest.raises(ProbeDataError, match="no object's 'desi_object_id' is in the catalogue"):
        probe_sample(pair.assign(desi_object_id=["1", "2", "3"]), targets, "desi_object_id")


def test_net_wins_count_per_property_bin_and_error_interval():
    from samesky.probes.analyses import BIN_NAMES, net_wins
    from samesky.probes.targets import TARGETS

    n = 50
    truth = {t: np.arange(n, dtype=float) for t in TARGETS}
    sample = pd.DataFrame({"object_id": [f"o{i}" for i in range(n)], **truth})
    # a is exact on the lower half of every property and off by 1 on the upper half; b is off by 0.5 everywhere
    a_off = np.where(np.arange(n) < n // 2, 0.0, 1.0)
    pred = lambda off: pd.DataFrame({"object_id": sample["object_id"], "split": "test",
                                     **{f"fit_knn_{t}": truth[t] + off for t in TARGETS}})
    table = net_wins(sample, pred(a_off), pred(np.full(n, 0.5)), "knn")
    overall = table[table["error_from"].isna()].set_index(["target", "bin"])["net"]
    for t in TARGETS:  # 10 objects per bin: a wins the two lowest bins, loses the two highest, splits the middle
        assert overall[t].tolist() == [10, 10, 0, -10, -10] and list(overall[t].index) == list(BIN_NAMES)
    by_error = table[table["error_from"].notna()]
    assert (by_error.groupby(["target", "bin"])["net"].sum().reindex(overall.index) == overall).all()  # intervals partition each bin
    assert (by_error["error_from"] < by_error["error_to"]).all()


def test_a_probe_with_too_few_objects_names_both_files():
    from samesky.probes.analyses import probe_embedding

    sample = pd.DataFrame({"object_id": ["a", "b", "c"], "split": "train",
                           **{t: [1.0, 2.0, 3.0] for t in ("log_mstar", "log_z_mw", "t_age", "log_ssfr")}})
    with pytest.raises(ValueError, match=r"only 2 objects have both an embedding in emb\.parquet \(2 objects, field "
                                         r"'object_id'\) and catalogue properties in sample\.parquet \(3 objects\)"):
        probe_embedding(sample, ["a", "b"], np.zeros((2, 4)), 0, 5, 3, "hidden32", name="emb.parquet",
                        sample_name="sample.parquet")


def test_r2_tables_score_the_test_and_train_rows_with_the_fit_and_every_row_out_of_fold():
    from samesky.probes.analyses import r2_table
    from samesky.probes.targets import TARGETS

    rng = np.random.default_rng(3)
    n = 60
    truth = {t: rng.normal(size=n) for t in TARGETS}
    sample = pd.DataFrame({"object_id": [f"o{i}" for i in range(n)], **truth})
    split = np.where(np.arange(n) < 10, "test", "train")
    pred = pd.DataFrame({"object_id": sample["object_id"], "split": split})
    for method in ("knn", "mlp"):  # fit and out-of-fold predictions differ, so each table must pick its column
        for t in TARGETS:
            pred[f"fit_{method}_{t}"] = truth[t] + rng.normal(size=n) * 0.3
            pred[f"oof_{method}_{t}"] = truth[t] + rng.normal(size=n) * 0.8
    preds = {("desi", "spec"): pred.sample(frac=1, random_state=0)}  # row order must not matter
    rows = {s: r2_table(sample, preds, s).set_index("method") for s in ("test", "train", "oof")}
    for s, column, mask in (("test", "fit", split == "test"), ("train", "fit", split == "train"),
                            ("oof", "oof", np.ones(n, bool))):
        assert (rows[s]["n"] == mask.sum()).all()
        for method in ("knn", "mlp"):
            for t in TARGETS:
                expected = r2_score(truth[t][mask], pred.loc[mask, f"{column}_{method}_{t}"])
                assert rows[s].loc[method, t] == pytest.approx(expected), (s, method, t)
    with pytest.raises(ValueError, match="split must be test, train or oof"):
        r2_table(sample, preds, "validation")


UMAP_IN_A_NEW_PROCESS = """
import hashlib, sys
import numpy as np
from numba.core.registry import CPUDispatcher
from samesky.probes.structure import _umap_cached, umap_2d

x = np.random.default_rng(0).normal(size=(60, 8))
projection = umap_2d(x, seed=0)
umap = _umap_cached()
hits = sum(sum(f.stats.cache_hits.values()) for module in (umap.umap_, umap.utils, umap.layouts)
           for f in vars(module).values() if isinstance(f, CPUDispatcher))
print(hits, hashlib.sha256(np.ascontiguousarray(projection).tobytes()).hexdigest())
"""


def test_a_later_process_loads_umaps_compiled_code_from_the_cache_and_projects_the_same():
    """umap compiles its numba functions in every process unless they are cached (~12 s a structure job,
    issue 28): the second of two fresh processes finds them in numba's cache, and projects to the same bits."""
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", UMAP_IN_A_NEW_PROCESS], capture_output=True, text=True,
                           timeout=600, check=True).stdout.split() for _ in range(2)]
    assert int(runs[1][0]) > 0, runs  # functions loaded from the cache, not compiled again
    assert runs[0][1] == runs[1][1]
