"""Oracle embeddings with a known shared fraction, the nuisance pairs, and the curves' summary."""

import numpy as np
import pandas as pd
import pytest

from samesky.align.knn import chance_level
from samesky.align.metrics import cka_linear, evaluate, mutual_knn
from samesky.align.oracle import (PROPERTIES, latent_matrix, nuisance_pair, oracle_curves, oracle_figure,
                                  oracle_pair, summarise)


def fake_truth(n=600, seed=0):
    """A truth table with the mini universe's columns, skewed and correlated much as there."""
    rng = np.random.default_rng(seed)
    z = rng.gamma(3.0, 0.12, n)
    log_mstar = 10.2 + 0.5 * rng.normal(size=n) + 0.3 * z
    log_ssfr = -10.2 - 0.6 * (log_mstar - 10.2) + 0.5 * rng.normal(size=n)
    return pd.DataFrame({
        "z": z, "log_mstar": log_mstar, "log_z_mw": 0.5 * (log_mstar - 10.2) + 0.2 * rng.normal(size=n),
        "t_age_gyr": np.clip(8 - 6 * z + rng.normal(size=n), 0.5, None), "log_ssfr": log_ssfr,
        "a_v": np.abs(0.3 + 0.2 * (log_ssfr + 10.2) + 0.15 * rng.normal(size=n)),
        "r_eff_arcsec": np.exp(-1.5 * z + 0.3 * rng.normal(size=n)),
        "mag_r": 20 + 3 * z - 1.2 * (log_mstar - 10.2) + 0.3 * rng.normal(size=n),
        "bulge_fraction": rng.uniform(size=n), "kind": "galaxy",
    })


@pytest.fixture(scope="module")
def latents():
    return latent_matrix(fake_truth())


def test_latent_matrix_standardises_and_refuses_bad_columns(latents):
    assert list(latents.columns) == list(PROPERTIES) + ["mag_r"]
    assert np.allclose(latents.mean(), 0) and np.allclose(latents.std(ddof=0), 1)
    truth = fake_truth(50)
    # rank-gaussianised: the order of every column is kept, its skew is gone
    assert (np.argsort(latent_matrix(truth)["r_eff_arcsec"]) == np.argsort(truth["r_eff_arcsec"])).all()
    assert np.allclose(latent_matrix(truth, ["z"], "zscore")["z"], (truth.z - truth.z.mean()) / truth.z.std(ddof=0))
    truth.loc[3, "a_v"] = np.nan
    with pytest.raises(ValueError, match="'a_v' has 1 NaN"):
        latent_matrix(truth)
    with pytest.raises(KeyError, match="no column"):
        latent_matrix(truth, ["z", "sfr_100myr"])
    with pytest.raises(ValueError, match="'kind' has 50 NaN"):  # text is not a property
        latent_matrix(truth, ["kind"])
    with pytest.raises(ValueError, match="constant"):
        latent_matrix(truth.assign(z=1.0), ["z"])


def test_f1_gives_identical_signals_up_to_rotation_and_f0_unrelated_ones(latents):
    lat = latents[list(PROPERTIES)]
    a, b = oracle_pair(lat, 1.0, snr=None, seed=3)
    assert np.allclose(a @ a.T, b @ b.T) and not np.allclose(a, b)  # same geometry, another basis
    assert mutual_knn(a, b, 10) == 1.0
    # total signal variance P whatever f; the noise adds P / snr
    for f in (0.0, 0.3, 1.0):
        a, _ = oracle_pair(lat, f, snr=None, seed=4)
        assert a.var(0).sum() == pytest.approx(len(PROPERTIES), rel=1e-9)
    a, _ = oracle_pair(lat, 0.3, snr=4.0, seed=4)
    assert a.var(0).sum() == pytest.approx(len(PROPERTIES) * 1.25, rel=0.05)
    # f = 0: A and B score as unrelated spaces (their permutation null), for both kinds of private part
    for private in ("shuffle", "gaussian"):
        a, b = oracle_pair(lat, 0.0, snr=None, seed=5, private=private)
        for row in evaluate(a, b, ["mknn", "cka_linear"], ks=[10], n_permutations=50, n_permutations_matrix=50):
            assert abs(row["score"] - row["null_mean"]) < 4 * row["null_std"], row
        assert mutual_knn(a, b, 10) < 3 * chance_level(len(a), 10)


def test_pairs_are_deterministic_given_the_seed(latents):
    lat = latents[list(PROPERTIES)]
    a1, b1 = oracle_pair(lat, 0.5, seed=7, nonlinearity="tanh")
    a2, b2 = oracle_pair(lat, 0.5, seed=7, nonlinearity="tanh")
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    assert not np.array_equal(a1, oracle_pair(lat, 0.5, seed=8, nonlinearity="tanh")[0])
    a, b = oracle_pair(lat, 1.0, snr=None, seed=7, nonlinearity="tanh")
    assert np.allclose(a @ a.T, b @ b.T)  # the nonlinearity comes before B's rotation: f = 1 stays identical
    with pytest.raises(ValueError, match="shared_fraction"):
        oracle_pair(lat, 1.2)
    with pytest.raises(ValueError, match="too small"):
        oracle_pair(lat, 0.5, dim=16)


def test_the_nuisance_pair_shares_only_the_nuisance(latents):
    a, b = nuisance_pair(latents, "mag_r", weight=0.5, snr=None, seed=2)
    design = np.column_stack([np.ones(len(a)), latents["mag_r"]])
    for x in (a, b):
        fit = design @ np.linalg.lstsq(design, x, rcond=None)[0]
        assert fit.var(0).sum() / x.var(0).sum() == pytest.approx(0.5, abs=0.02)  # the nuisance's share
        # nothing else about the object: the other properties add next to nothing beyond it
        full = np.column_stack([design, latents[[c for c in PROPERTIES]]])
        fit_all = full @ np.linalg.lstsq(full, x, rcond=None)[0]
        assert fit_all.var(0).sum() / x.var(0).sum() < 0.53
    with pytest.raises(KeyError, match="nuisance 'mag_g'"):
        nuisance_pair(latents, "mag_g")


@pytest.fixture(scope="module")
def oracle(latents):
    return oracle_curves(latents, metrics=["mknn", "cka_linear"], seeds=(0, 1, 2), ks=(10,),
                         n_permutations=10, n_permutations_matrix=10)


def test_the_mknn_oracle_curve_rises_monotonically_with_the_shared_fraction(oracle):
    curves, summary = oracle
    mk = curves[(curves["pair"] == "oracle") & (curves["metric"] == "mknn")]
    for _, seed_curve in mk.groupby("seed"):
        assert np.all(np.diff(seed_curve.sort_values("shared_fraction")["score"].to_numpy()) > 0)
    row = summary.set_index("metric").loc["mknn"]
    assert row["monotone"] and row["tracks"] and row["spearman"] > 0.95
    assert row["range"] > 0.1
    assert set(curves["pair"]) == {"oracle", "nuisance:mag_r", "nuisance:z"}
    assert len(curves) == 3 * (5 + 2) * 2
    # CKA is dominated by the single high-variance nuisance; MKNN is not
    cka = summary.set_index("metric").loc["cka_linear"]
    assert cka["fooled_mag_r"] and cka["fooled_z"]
    assert not row["fooled_mag_r"] and not row["fooled_z"]
    assert row["nuisance_mag_r_fraction"] < 0.5 < cka["nuisance_mag_r_fraction"]


def test_summary_criteria_on_hand_built_curves():
    fractions = np.array([0, 0.25, 0.5, 0.75, 1.0])
    shapes = {"linear": fractions, "saturating": np.minimum(fractions * 2, 1.0), "flat": 0 * fractions + 0.3}
    rows = [{"pair": "oracle", "shared_fraction": f, "seed": seed, "metric": name, "k": None,
             "score": s + 0.01 * seed}
            for name, ys in shapes.items() for seed in (0, 1) for f, s in zip(fractions, ys)]
    rows += [{"pair": "nuisance:mag_r", "shared_fraction": np.nan, "seed": 0, "metric": name, "k": None,
              "score": {"linear": 0.2, "saturating": 1.01, "flat": 0.3}[name], "nuisance_weight": 0.5}
             for name in shapes]
    summary = summarise(pd.DataFrame(rows)).set_index("metric")
    lin, sat = summary.loc["linear"], summary.loc["saturating"]
    assert lin["half_range"] == pytest.approx(0.5) and lin["top_gain"] == pytest.approx(0.25)
    assert lin["spearman"] > 0.9 and lin["monotone"] and lin["tracks"] and not lin["saturates"]
    assert sat["saturates"] and sat["half_range"] == pytest.approx(1.0) and not sat["monotone"]
    assert lin["noise"] == pytest.approx(np.std([0, 0.01], ddof=1))
    assert not lin["fooled_mag_r"] and lin["nuisance_mag_r_fraction"] == pytest.approx(0.2 - 0.005)
    assert sat["fooled_mag_r"] and np.isnan(sat["nuisance_mag_r_fraction"])  # s(0.5) = 1.005 <= 1.01
    assert not summary.loc["flat", "tracks"]


def test_oracle_figure_is_written(oracle, tmp_path):
    oracle_figure(oracle[0], tmp_path / "oracle.png")
    assert (tmp_path / "oracle.png").stat().st_size > 10_000
    assert cka_linear(*oracle_pair(latent_matrix(fake_truth(200))[list(PROPERTIES)], 0.5, seed=1)) > 0
