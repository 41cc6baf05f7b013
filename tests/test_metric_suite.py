"""The glue of issue 17: the comparisons of a pair, the metric suite and its tables, the conditional
alignment of a pair and its two trend tests, on small embedding files written here."""

import numpy as np
import pandas as pd
import pytest

from samesky.align.scores import (EmbeddingFile, adjacent_sizes, align_pair, comparisons, crossmodal_comparisons,
                                  intramodal_comparisons)
from samesky.io import write_embeddings

N = 160
MODELS = {"vit": [("base", 86.0), ("large", 304.0), ("huge", 632.0)], "astropt": [("small", 15.0), ("base", 95.0)]}


def _write(tmp_path, pair, survey, family, size, params, x, ids):
    path = tmp_path / f"{family}-{size}" / pair / f"{survey}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_embeddings(path, ids, x.astype(np.float32))
    return EmbeddingFile(survey, family, size, params, str(path))


@pytest.fixture(scope="module")
def image_pair(tmp_path_factory):
    """JWST-HSC: each model sees a shared latent, larger sizes more of it (so MKNN grows with size)."""
    tmp = tmp_path_factory.mktemp("suite")
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(N, 6))
    ids = np.array([f"{i:05d}" for i in range(N)])
    files = []
    for family, sizes in MODELS.items():
        for j, (size, params) in enumerate(sizes):
            for survey in ("hsc", "jwst"):
                noise = 2.0 / (j + 1)
                x = latent @ rng.normal(size=(6, 12)) + noise * rng.normal(size=(N, 12))
                order = rng.permutation(N)  # rows in another order in every file: paired by id
                files.append(_write(tmp, "jwst_hsc", survey, family, size, params, x[order], ids[order]))
    return files


def test_the_comparisons_of_a_pair_are_align_pairs_in_its_order(image_pair):
    listed = comparisons("hsc", "jwst", image_pair)
    cross = [c for c in listed if c[0] == "crossmodal"]
    assert len(cross) == 5 and all(a.model == b.model and a.survey == "jwst" for _, _, a, b in cross)
    assert [(s, a.model, b.model) for s, a, b in intramodal_comparisons("hsc", "jwst", image_pair)] == [
        ("hsc", "vit-base", "vit-large"), ("hsc", "vit-large", "vit-huge"), ("hsc", "astropt-small", "astropt-base"),
        ("jwst", "vit-base", "vit-large"), ("jwst", "vit-large", "vit-huge"), ("jwst", "astropt-small", "astropt-base")]
    scores = align_pair("jwst_hsc", "hsc", "jwst", image_pair, [10], 0, 0)  # the rows scores.csv has, in order
    assert list(zip(scores["kind"], scores["side"], scores["model_a"], scores["model_b"])) == [
        (kind, side, a.model, b.model) for kind, side, a, b in listed]
    steps = [(a[1].model, b[1].model) for a, b in adjacent_sizes(crossmodal_comparisons("hsc", "jwst", image_pair))]
    assert steps == [("vit-base", "vit-large"), ("vit-large", "vit-huge"), ("astropt-small", "astropt-base")]


def test_spectra_compare_one_embedding_with_every_image_model_and_step_by_the_image_model():
    files = [EmbeddingFile("desi", "specformer", "base", 43.0, "s")] + [
        EmbeddingFile("hsc", f, s, p, f"{f}-{s}") for f, sizes in MODELS.items() for s, p in sizes]
    cross = crossmodal_comparisons("hsc", "desi", files)
    assert {a.model for a, _ in cross} == {"specformer-base"} and len(cross) == 5
    steps = [(a[1].model, b[1].model) for a, b in adjacent_sizes(cross)]
    assert steps == [("vit-base", "vit-large"), ("vit-large", "vit-huge"), ("astropt-small", "astropt-base")]
    from samesky.align.suite import largest_of_each_family

    assert [b.model for _, b in largest_of_each_family(cross)] == ["vit-huge", "astropt-base"]


@pytest.fixture(scope="module")
def suite(image_pair):
    from samesky.align.suite import pair_metric_suite

    return pair_metric_suite("jwst_hsc", "hsc", "jwst", image_pair, None, [5, 10], 19, 9, 100, 80, 42)


def test_the_suite_scores_every_comparison_with_every_metric_and_mknn_as_align_pair(image_pair, suite):
    from samesky.align.metrics import GLOBAL_METRICS, LOCAL_METRICS

    per = suite.groupby(["kind", "side", "model_a", "model_b"]).size()
    assert len(per) == 11 and (per == 2 * len(LOCAL_METRICS) + len(GLOBAL_METRICS)).all()
    assert {"metric_kind", "score", "null_mean", "p_value", "calibrated", "sample_rows"} <= set(suite.columns)
    assert set(suite.loc[suite["metric_kind"] == "global", "sample_rows"]) == {80, 100}  # rsa_rows, max_rows
    scores = align_pair("jwst_hsc", "hsc", "jwst", image_pair, [5, 10], 19, 42)
    mknn = suite[suite["metric"] == "mknn"].merge(scores, on=["kind", "side", "model_a", "model_b", "k"])
    assert len(mknn) == len(scores)
    assert np.allclose(mknn["score"], mknn["mknn"]) and np.allclose(mknn["null_mean_x"], mknn["null_mean_y"])


def test_the_suite_tables_and_trend_tests(suite):
    from samesky.align.suite import crossmodal_wide, metric_trend_tests
    from samesky.align.tables import trend_tests

    wide = crossmodal_wide(suite, 10)
    assert len(wide) == 5 and list(wide.columns[:5]) == ["pair", "side", "family", "size", "params_m"]
    assert wide["vit" == wide["family"]]["size"].tolist() == ["base", "large", "huge"]
    cell = suite[(suite["kind"] == "crossmodal") & (suite["model_b"] == "vit-large") & (suite["metric"] == "cknna_own")
                 & (suite["k"] == 10)]["calibrated"].iloc[0]
    assert wide.set_index("size").loc["large", "cknna_own"] == cell
    trends = metric_trend_tests(suite, 10)
    assert set(trends["metric"]) == set(suite["metric"]) and set(trends["measure"]) == {"score", "calibrated"}
    mknn = trends[(trends["metric"] == "mknn") & (trends["measure"] == "score")].drop(columns=["metric", "k", "measure"])
    scores = suite[suite["metric"] == "mknn"].rename(columns={"score": "mknn"})
    pd.testing.assert_frame_equal(mknn.reset_index(drop=True), trend_tests(scores, 10))
    cross = trends[(trends["test"] == "crossmodal") & (trends["measure"] == "score")].set_index("metric")
    assert cross.loc["mknn", "increases"] == 3 and cross.loc["mknn", "comparisons"] == 3  # built to grow


def test_the_size_curves_reuse_the_suites_neighbours_exactly(image_pair):
    from samesky.align.suite import NeighbourCache, pair_metric_size_curves

    cache = NeighbourCache(10)
    with_cache = pair_metric_size_curves("jwst_hsc", "hsc", "jwst", image_pair, ["mknn", "lcs_knn", "cka_linear"],
                                         [10], [0, 1], 64, "largest", None, None, cache)
    fresh = pair_metric_size_curves("jwst_hsc", "hsc", "jwst", image_pair, ["mknn", "lcs_knn", "cka_linear"],
                                    [10], [0, 1], 64, "largest", None, None)
    assert len(cache._found) == 4  # the two largest models, both sides, searched once
    assert set(with_cache["model_b"]) == {"vit-huge", "astropt-base"} and set(with_cache["n"]) == {64, 128, N}
    pd.testing.assert_frame_equal(with_cache, fresh)


def test_conditional_alignment_of_a_pair(image_pair):
    from samesky.align.conditional import delta_trend_tests, pair_conditional

    ids = sorted({i for f in image_pair[:1] for i in pd.read_parquet(f.path)["object_id"]})
    rng = np.random.default_rng(1)
    covariates = pd.DataFrame({"redshift": rng.uniform(0, 1, N), "brightness": rng.normal(20, 1, N),
                               "environment": rng.choice(["few", "moderate", "many"], N),
                               "sky_region": rng.choice(["region 0", "region 1"], N)}, index=ids)
    covariates.loc[ids[:5], "redshift"] = np.nan  # objects without a value are left out of its bins
    per_object, conditional, deltas = pair_conditional(
        "jwst_hsc", "hsc", "jwst", image_pair, covariates, 10, 2, 20, 200, 20, "largest", 0, {"other": "why"})
    assert len(per_object) == 5 * N and {"object_id", "overlap", "redshift", "environment"} <= set(per_object.columns)
    mean = per_object.groupby("model_b")["overlap"].mean()
    assert mean["vit-huge"] == conditional.query("covariate == 'all' and model_b == 'vit-huge'")["mknn"].iloc[0]
    assert set(conditional["model_b"]) == {"vit-huge", "astropt-base"}  # binned: the largest of each family
    huge = conditional[conditional["model_b"] == "vit-huge"].set_index(["covariate", "bin"])
    assert huge.loc[("redshift", 0), "n"] + huge.loc[("redshift", 1), "n"] == N - 5
    assert "5 objects without a value left out" in huge.loc[("redshift", 0), "reason"]
    assert huge.loc[("redshift", 0), "lo"] < huge.loc[("redshift", 0), "hi"] <= huge.loc[("redshift", 1), "lo"]
    assert [b for c, b in huge.index if c == "environment"] == ["few", "moderate", "many"]
    assert huge.loc[("other", ""), "skipped"] and huge.loc[("other", ""), "reason"] == "why"
    partial = huge.loc["partial"].iloc[0]
    assert huge.loc["partial"].index[0] == "redshift+brightness" and partial["n"] == N - 5
    assert partial["mknn_raw"] > 0 and np.isfinite(partial["p_value"])
    assert list(zip(deltas["model_1"], deltas["model_2"])) == [
        ("vit-base", "vit-large"), ("vit-large", "vit-huge"), ("astropt-small", "astropt-base")]
    assert (deltas["lo"] <= deltas["delta"]).all() and (deltas["delta"] <= deltas["hi"]).all()
    assert np.allclose(deltas["delta"], deltas["mknn_2"] - deltas["mknn_1"])
    vit = deltas[deltas["family"] == "vit"]
    assert (vit["family_comparisons"] == 2).all() and (vit["family_increases"] == (vit["delta"] > 0).sum()).all()
    trends = delta_trend_tests(deltas).set_index("test")
    assert list(trends.index) == ["pair:jwst_hsc", "crossmodal"]
    row = trends.loc["crossmodal"]
    assert row["comparisons"] == 3 and row["increases"] == (deltas["delta"] > 0).sum()
    assert row["significant_up"] + row["significant_down"] + row["inconclusive"] == 3
    # no covariates at all (the released embeddings): the overlaps, MKNN on all objects and the deltas
    per_object, conditional, again = pair_conditional(
        "jwst_hsc", "hsc", "jwst", image_pair, pd.DataFrame(), 10, 2, 20, 200, 20, "all", 0)
    assert len(per_object) == 5 * N and set(conditional["covariate"]) == {"all"} and len(conditional) == 5
    pd.testing.assert_frame_equal(again, deltas)


def test_the_covariates_of_a_pair_come_from_the_truth_and_the_pair_dataset(tmp_path):
    """Redshift from the truth (by the reference survey's id) or the pair's column; brightness from the pair;
    environment and sky regions from the pair's own positions; what is configured but not there is named."""
    from datasets import Dataset

    from samesky.io import save_dataset
    from samesky.steps.metrics import pair_covariates
    from samesky.steps.runner import Files, Settings

    rng = np.random.default_rng(2)
    n = 120
    ids = [str(1000 + i) for i in range(n)]
    ra, dec = rng.uniform(359.8, 360.2, n) % 360, rng.uniform(-0.2, 0.2, n)  # across RA = 0
    save_dataset(Dataset.from_dict({"object_id": ids, "ra": ra, "dec": dec, "hsc_mag_r": rng.normal(20, 1, n),
                                    "desi_Z": rng.uniform(0, 1, n)}), tmp_path / "dataset")
    truth = pd.DataFrame({"hsc_object_id": ids[:100] + [""] * 5, "z": rng.uniform(0, 1, 105)})
    truth.to_parquet(tmp_path / "truth.parquet")
    conditional = {"redshift": {"source": "truth", "column": "z", "only_pairs": None}, "brightness": "hsc_mag_r",
                   "environment": True, "sky_regions": 3}
    inputs = Files({"truth": str(tmp_path / "truth.parquet"), "dataset": str(tmp_path / "dataset")})

    def covariates(**change):
        settings = Settings({"alignment": {"conditional": {**conditional, **change}}, "pair": "desi_hsc",
                             "surveys": ["hsc", "desi"], "seed": 0})
        return pair_covariates(inputs, settings)

    cov, skipped = covariates()
    assert skipped == {} and set(cov.columns) == {"redshift", "brightness", "environment", "companions", "sky_region"}
    assert cov.loc[ids[:100], "redshift"].tolist() == truth["z"][:100].tolist() and cov["redshift"].isna().sum() == 20
    assert set(cov["environment"]) <= {"few", "moderate", "many"} and cov["sky_region"].nunique() == 3
    cov, _ = covariates(redshift={"source": "pair", "column": "{other}_Z", "only_pairs": None})
    assert cov["redshift"].notna().all()
    cov, skipped = covariates(redshift={"source": "pair", "column": "{other}_Z", "only_pairs": ["sdss_hsc"]},
                              brightness=None, sky_regions=0)
    assert set(cov.columns) == {"environment", "companions"}
    assert skipped == {"redshift": "desi_hsc is not in alignment.conditional.redshift.only_pairs"}
    with pytest.raises(KeyError, match=r"no column 'mag_g' for alignment.conditional.brightness \(pair desi_hsc\)"):
        covariates(brightness="mag_g")
    with pytest.raises(KeyError, match="no column 'desi_z' for alignment.conditional.redshift"):
        covariates(redshift={"source": "pair", "column": "{other}_z", "only_pairs": None})
    save_dataset(Dataset.from_dict({"object_id": ids, "ra": [float("nan")] * n, "dec": [float("nan")] * n}),
                 tmp_path / "no_positions")
    inputs = Files({"dataset": str(tmp_path / "no_positions")})
    cov, skipped = covariates(redshift={"source": "none", "column": "", "only_pairs": None}, brightness=None)
    assert cov.empty and set(skipped) == {"environment", "sky_region"}
    assert skipped["environment"] == "the pair dataset has no positions (0 of 120 objects with ra/dec)"


def test_every_size_step_is_decided_by_its_paired_bootstrap_as_the_conditional_deltas_are(image_pair):
    from samesky.align.conditional import pair_conditional
    from samesky.align.tables import mark_near_ties, trend_steps, trend_tests

    scores, overlaps = align_pair("jwst_hsc", "hsc", "jwst", image_pair, [1, 10], 0, 42, overlap_k=10)
    assert scores.equals(align_pair("jwst_hsc", "hsc", "jwst", image_pair, [1, 10], 0, 42))  # the scores unchanged
    overlaps.insert(0, "pair", "jwst_hsc")
    mean = overlaps.groupby(["kind", "side", "model_a", "model_b"], sort=False)["overlap"].mean() / 10
    assert np.allclose(mean.to_numpy(), scores[scores["k"] == 10]["mknn"].to_numpy())
    steps = trend_steps(scores, 10, overlaps=overlaps, n_bootstrap=200, seed=0)
    # intramodal: (base vs large) -> (large vs huge) on each side; crossmodal: vit 2 steps, astropt 1
    assert (steps["test"] == "intramodal").sum() == 2 and (steps["test"] == "crossmodal").sum() == 3
    assert np.allclose(steps["delta"], steps["score_2"] - steps["score_1"])
    assert ((steps["lo"] <= steps["delta"]) & (steps["delta"] <= steps["hi"])).all()
    _, _, deltas = pair_conditional("jwst_hsc", "hsc", "jwst", image_pair, pd.DataFrame(), 10, 2, 0, 200, 20, "all", 0)
    cross = steps[steps["test"] == "crossmodal"]
    assert cross["verdict"].tolist() == deltas["verdict"].replace("inconclusive", "undecided").tolist()
    assert np.allclose(cross[["lo", "hi"]], deltas[["lo", "hi"]])
    tests = trend_tests(scores, 10, steps).set_index("test")
    raw = trend_tests(scores, 10).set_index("test")
    pd.testing.assert_frame_equal(tests[raw.columns], raw)  # the raw binomial counts unchanged
    row = tests.loc["crossmodal"]
    assert row["decided_up"] == (cross["verdict"] == "up").sum() and row["decided_down"] == (cross["verdict"] == "down").sum()
    assert row["decided_up"] + row["decided_down"] + row["undecided"] == row["comparisons"] == 3
    # near-ties: a verdict whose interval edge lies within the margin of 0
    edge = np.minimum(steps["lo"].abs(), steps["hi"].abs())
    margin = float(edge.median())
    near = mark_near_ties(steps, margin)
    assert (near["near_tie"] == (edge <= margin)).all() and near["near_tie"].any()
    counted = trend_tests(scores, 10, near).set_index("test")
    assert counted.loc["crossmodal", "near_ties"] == near.loc[near["test"] == "crossmodal", "near_tie"].sum()
    # without per-object values: a step is decided when it moves more than the tolerance
    wide = trend_steps(scores, 10, tolerance=1.0)
    assert (wide["verdict"] == "undecided").all() and len(wide) == len(steps)
    assert (trend_steps(scores, 10, tolerance=0.0)["verdict"] == np.where(steps["delta"] > 0, "up", "down")).all()
    tight = mark_near_ties(wide, 0.5)  # |delta| far below the tolerance 1: not near it
    assert not tight["near_tie"].any() and mark_near_ties(wide, 1.0)["near_tie"].all()
