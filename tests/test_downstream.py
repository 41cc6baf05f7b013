"""Issue 18's package on hand-built cases: morphology classes from vote fractions, seed 003's protocol,
the redshift scores and similarity search."""

import numpy as np
import pandas as pd
import pytest

from samesky.downstream import classify, labels, redshift, retrieval

FRACTIONS = [0.1, 0.3, 0.5, 1.0]


def _votes(**answers):
    """A one-row GZD-5 catalogue: every fraction 0 (NaN for questions nobody was asked) but those given."""
    row = {c: 0.0 for c in labels.FRACTION_COLUMNS}
    row.update({"ra": 10.0, "dec": 1.0})
    for key, value in answers.items():
        question, answer = key.split("__")
        row[f"{question.replace('_', '-')}_{answer.replace('_', '-')}_fraction"] = value
    return pd.DataFrame([row])


@pytest.mark.parametrize("answers, expected", [
    ({"smooth_or_featured__smooth": 0.8, "how_rounded__round": 0.7, "how_rounded__cigar_shaped": 0.2}, "smooth_round"),
    ({"smooth_or_featured__smooth": 0.8, "how_rounded__round": 0.2, "how_rounded__cigar_shaped": 0.6}, "smooth_cigar"),
    ({"smooth_or_featured__featured_or_disk": 0.9, "disk_edge_on__yes": 0.8}, "edge_on_disk"),
    ({"smooth_or_featured__featured_or_disk": 0.9, "disk_edge_on__no": 0.9, "has_spiral_arms__yes": 0.8,
      "bar__no": 0.7, "bar__weak": 0.3}, "unbarred_spiral"),
    ({"smooth_or_featured__featured_or_disk": 0.9, "disk_edge_on__no": 0.9, "has_spiral_arms__yes": 0.8,
      "bar__strong": 0.5, "bar__weak": 0.2, "bar__no": 0.3}, "barred_spiral"),
    ({"smooth_or_featured__smooth": 0.9, "merging__merger": 0.4, "merging__major_disturbance": 0.2}, "merger"),
    ({"smooth_or_featured__artifact": 0.6, "merging__merger": 0.9}, ""),
    ({"smooth_or_featured__featured_or_disk": 0.9, "disk_edge_on__no": 0.9, "has_spiral_arms__no": 0.8}, ""),
])
def test_the_decision_tree_reads_each_class_off_the_vote_fractions(answers, expected):
    cat = _votes(**answers)
    assert labels.morphology_classes(cat)[0] == expected
    if expected:  # the soft label of the class read off is the largest
        soft = labels.soft_labels(cat).iloc[0]
        assert soft.idxmax() == expected


def test_a_catalogue_without_the_gzd5_columns_is_refused_by_name():
    with pytest.raises(labels.LabelError, match="gz.csv: missing column.*bar_strong_fraction"):
        labels.morphology_classes(_votes().drop(columns=["bar_strong_fraction"]), "gz.csv")


def test_the_debiased_fractions_and_the_vote_cut_are_read_as_configured():
    """AstroCLIP's choice: GZD-5's _debiased fractions, and at least 3 answers to the first question."""
    cat = _votes(smooth_or_featured__smooth=0.8, how_rounded__round=0.7)
    debiased = {c.replace("_fraction", "_debiased"): 0.0 for c in labels.FRACTION_COLUMNS}
    debiased.update({"smooth-or-featured_featured-or-disk_debiased": 0.9, "disk-edge-on_yes_debiased": 0.8})
    cat = pd.concat([cat.assign(**debiased)] * 3, ignore_index=True)
    cat[labels.TOTAL_VOTES] = [2, 3, 40]
    assert list(labels.morphology_classes(cat, kind="fraction")) == ["smooth_round"] * 3
    assert list(labels.morphology_classes(cat, kind="debiased")) == ["edge_on_disk"] * 3
    assert labels.soft_labels(cat, "debiased").iloc[0].idxmax() == "edge_on_disk"
    assert list(labels.enough_votes(cat, 3)) == [False, True, True] and labels.enough_votes(cat, 0).all()
    with pytest.raises(labels.LabelError, match=r"missing column\(s\) \['smooth-or-featured_total-votes'\]"):
        labels.check_columns(cat.drop(columns=[labels.TOTAL_VOTES]), "gz.csv", "debiased", min_total_votes=3)


def _classes(n_per_class=40, seed=0):
    rng = np.random.default_rng(seed)
    counts = {"smooth_round": n_per_class, "edge_on_disk": n_per_class, "merger": n_per_class // 4}
    return rng.permutation(np.concatenate([[c] * n for c, n in counts.items()]).astype(object))


def test_label_fractions_are_nested_stratified_subsets_of_the_training_objects():
    y = _classes()
    is_test = classify.test_split(y, 0.2, 42)
    train = np.flatnonzero(~is_test)
    for seed in (0, 1, 2):
        subsets = classify.nested_subsets(y[train], FRACTIONS, seed)
        previous = set()
        for f in FRACTIONS:
            chosen = set(train[subsets[f]])
            assert previous <= chosen and not chosen & set(np.flatnonzero(is_test))  # nested; the test set untouched
            assert set(y[list(chosen)]) == set(y)  # every class present, the rare one too
            previous = chosen
        assert previous == set(train)  # 100% = every training object
    assert classify.test_split(y, 0.2, 42).tolist() == is_test.tolist()
    shares = pd.Series(y[is_test]).value_counts(normalize=True)
    assert shares["merger"] == pytest.approx(10 / 90, abs=0.03)  # stratified


def test_different_seeds_draw_different_small_subsets():
    y = _classes()
    a, b = (classify.nested_subsets(y, [0.1], s)[0.1] for s in (0, 1))
    assert len(a) == len(b) and set(a) != set(b)


def test_a_perfectly_separable_embedding_scores_f1_one_at_every_fraction_with_every_head():
    y = _classes()
    rng = np.random.default_rng(1)
    # every class its own point in every dimension, a spread far below the distances between classes
    centres = dict(zip(sorted(set(y)), 3 * rng.normal(size=(3, 8))))
    x = np.stack([centres[c] for c in y]) + rng.normal(0, 0.05, (len(y), 8))
    is_test = classify.test_split(y, 0.2, 42)
    runs = classify.classify_embedding(x, y, is_test, FRACTIONS, [0, 1, 2], classify.HEADS, labels.CLASSES)
    heads = runs[runs["head"] != "chance"]
    assert len(heads) == 3 * 4 * 3
    assert (heads["macro_f1"] == 1).all() and (heads["accuracy"] == 1).all()
    assert runs.loc[runs["head"] == "chance", "macro_f1"].mean() < 0.6
    assert heads[["f1_smooth_round", "f1_edge_on_disk", "f1_merger"]].eq(1).all().all()
    assert heads["f1_barred_spiral"].isna().all()  # a class absent from the test set has no F1


def test_noise_features_score_near_chance():
    y = _classes(60)
    x = np.random.default_rng(2).normal(size=(len(y), 16))
    is_test = classify.test_split(y, 0.2, 42)
    runs = classify.classify_embedding(x, y, is_test, [1.0], [0], ["linear"], labels.CLASSES)
    assert runs.loc[runs["head"] == "linear", "macro_f1"].iloc[0] < 0.6


def test_whitening_gives_the_training_features_an_identity_covariance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 4)) @ np.array([[3, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0.1, 0], [0, 0, 0, 2.0]])
    mean, w = classify._zca(x, shrink=0)
    assert np.cov((x - mean) @ w, rowvar=False) == pytest.approx(np.eye(4), abs=1e-8)


def test_the_summary_averages_the_seeds():
    runs = pd.DataFrame({"survey": "hsc", "model": "m", "head": "linear", "label_fraction": 0.1, "seed": [0, 1, 2],
                         "n_train": 10, "macro_f1": [0.5, 0.6, 0.7], "accuracy": [0.6, 0.6, 0.6]})
    row = classify.summarise(runs).iloc[0]
    assert row["macro_f1"] == pytest.approx(0.6) and row["macro_f1_std"] == pytest.approx(0.1) and row["seeds"] == 3


def test_redshift_scores_of_a_perfect_and_a_biased_prediction():
    z = np.linspace(0.05, 1.0, 200)
    perfect = redshift.redshift_scores(z, z)
    assert perfect == {"r2": 1.0, "sigma_nmad": 0.0, "outlier_fraction": 0.0, "bias": 0.0}
    biased = redshift.redshift_scores(z, z + 0.2 * (1 + z))
    assert biased["bias"] == pytest.approx(0.2) and biased["outlier_fraction"] == 1.0
    assert biased["sigma_nmad"] == pytest.approx(0.0, abs=1e-12)  # a pure offset has no scatter


def test_the_redshift_probes_learn_a_redshift_written_in_the_embedding():
    rng = np.random.default_rng(4)
    z = rng.uniform(0.05, 1.0, 400)
    x = np.column_stack([z, z**2, rng.normal(size=(400, 6)) * 0.01])
    is_test = np.arange(400) % 5 == 0
    for method, pred in redshift.probe_redshift(x, z, is_test, 0, 16, "hidden32").items():
        assert redshift.redshift_scores(z[is_test], pred)["r2"] > 0.9, method


def test_recall_at_one_of_identical_spaces_is_one():
    x = np.random.default_rng(5).normal(size=(300, 12))
    ranks = retrieval.true_match_ranks(x, x)
    assert (ranks == 0).all() and retrieval.recall_at(ranks, [1, 5]) == {1: 1.0, 5: 1.0}


def test_recall_of_unrelated_spaces_is_chance_and_ties_count_against_the_true_object():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    assert retrieval.recall_at(retrieval.true_match_ranks(x, y), [10])[10] == pytest.approx(0.01, abs=0.01)
    same = np.ones((5, 3))  # every gallery row equally similar: the own object ranks last among the ties
    assert (retrieval.true_match_ranks(same, same) == 4).all()
    # matches the brute-force rank
    sims = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    brute = (sims >= np.diag(sims)[:, None]).sum(1) - 1
    assert (retrieval.true_match_ranks(x, y, chunk=64) == brute).all()


def test_a_cca_finds_the_shared_space_of_two_views_in_different_dimensions():
    rng = np.random.default_rng(7)
    shared = rng.normal(size=(600, 5))
    a = shared @ rng.normal(size=(5, 20)) + 0.05 * rng.normal(size=(600, 20))
    b = shared @ rng.normal(size=(5, 12)) + 0.05 * rng.normal(size=(600, 12))
    train = np.arange(600) < 480
    q, g = retrieval.cca_common_space(a[train], b[train], a[~train], b[~train], 5)
    assert retrieval.recall_at(retrieval.true_match_ranks(q, g), [1])[1] > 0.9
    noise = rng.normal(size=(600, 12))
    q, g = retrieval.cca_common_space(a[train], noise[train], a[~train], noise[~train], 5)
    assert retrieval.recall_at(retrieval.true_match_ranks(q, g), [1])[1] < 0.1


def test_neighbour_agreement_of_clustered_classes_and_of_noise():
    rng = np.random.default_rng(8)
    y = np.repeat(["a", "b", "c"], 100).astype(object)
    z = np.repeat([0.1, 0.5, 0.9], 100)
    x = np.repeat(np.eye(3) * 10, 100, axis=0) + rng.normal(0, 0.1, (300, 3))
    out = retrieval.neighbour_agreement(retrieval.neighbours(x, 5), y, z)
    assert out["same_class"] == 1.0 and out["median_dz"] == 0.0
    assert out["same_class_chance"] == pytest.approx(1 / 3)
    noise = retrieval.neighbour_agreement(retrieval.neighbours(rng.normal(size=(300, 3)), 5), y, z)
    assert noise["same_class"] == pytest.approx(1 / 3, abs=0.08) and noise["median_dz"] > 0.1


def _step_inputs(tmp_path):
    """A saved pair dataset, a GZD-5-format CSV (some rows offset within 1 arcsec, some unmatched),
    embeddings that see the class, and prepared RGB images."""
    from datasets import Dataset

    from samesky.io import save_dataset, write_embeddings

    rng = np.random.default_rng(9)
    n = 240
    classes = np.array(["smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral"])[np.arange(n) % 4]
    ids = [f"{36407000000000000 + 7919 * i}" for i in range(n)]
    ra, dec = (np.arange(n) % 16) * 10 / 3600, 1.0 + (np.arange(n) // 16) * 10 / 3600  # a 10 arcsec grid
    z = rng.uniform(0.05, 0.6, n)
    pair = tmp_path / "pair"
    save_dataset(Dataset.from_dict({"object_id": ids, "ra": ra, "dec": dec, "desi_Z": z}), pair)
    rows = []
    for c, r, d in zip(classes, ra, dec):
        answers = {"smooth_round": {"smooth_or_featured__smooth": 0.9, "how_rounded__round": 0.8},
                   "smooth_cigar": {"smooth_or_featured__smooth": 0.9, "how_rounded__cigar_shaped": 0.8},
                   "edge_on_disk": {"smooth_or_featured__featured_or_disk": 0.9, "disk_edge_on__yes": 0.9},
                   "unbarred_spiral": {"smooth_or_featured__featured_or_disk": 0.9, "disk_edge_on__no": 0.9,
                                       "has_spiral_arms__yes": 0.9, "bar__no": 0.9}}[c]
        row = _votes(**answers).iloc[0].to_dict()
        row.update({"iauname": "J0", "ra": r + 0.3 / 3600, "dec": d})  # 0.3 arcsec off: matched
        rows.append(row)
    rows += [{**rows[0], "ra": 359.0, "dec": -5.0}]  # far away: unmatched
    pd.DataFrame(rows).to_csv(tmp_path / "gz_decals_volunteers_5.csv", index=False)
    centres = dict(zip(sorted(set(classes)), 3 * rng.normal(size=(4, 6))))
    x = np.stack([centres[c] for c in classes]) + rng.normal(0, 0.3, (n, 6))
    write_embeddings(tmp_path / "emb" / "hsc.parquet", ids, np.column_stack([x, z]).astype(np.float32))
    write_embeddings(tmp_path / "emb" / "desi.parquet", ids, rng.normal(size=(n, 5)).astype(np.float32))
    np.save(tmp_path / "rgb.npy", rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8))
    pd.DataFrame({"object_id": ids}).to_parquet(tmp_path / "objects.parquet")
    return pair, classes


def _entry(tmp_path, survey, model, modality):
    return {"survey": survey, "model": model, "family": model.split("-")[0], "size": model.split("-")[1],
            "params_m": 10.0, "modality": modality, "path": str(tmp_path / "emb" / f"{survey}.parquet")}


def test_the_steps_join_gzd5_votes_by_position_and_run_every_analysis(tmp_path, repo):
    from samesky import steps

    pair, classes = _step_inputs(tmp_path)
    down = {"morphology": {"pair": "desi_hsc", "radius_arcsec": 1.0, "test_fraction": 0.2, "split_seed": 42,
                           "label_fractions": [0.1, 1.0], "seeds": [0, 1], "heads": ["linear", "mlp"],
                           "votes": {"kind": "fraction", "min_total_votes": 0}},
            "redshift": {"pair": "desi_hsc", "column": "desi_Z", "test_fraction": 0.2, "split_seed": 42,
                         "n_neighbours": 16, "mlp": "hidden32"},
            "similarity": {"k": [1, 5]}}
    sample = tmp_path / "sample.parquet"
    steps.morphology_sample(
        {"dataset": str(pair)}, {"sample": str(sample), "labels": str(tmp_path / "labels.csv")},
        {"downstream": down, "catalogue": str(tmp_path / "gz_decals_volunteers_5.csv")})
    got = pd.read_parquet(sample).set_index("object_id")
    assert len(got) == 240 and got["catalogue_separation_arcsec"].between(0.29, 0.31).all()
    assert got["z"].notna().all() and set(got["split"]) == {"train", "test"}
    counts = pd.read_csv(tmp_path / "labels.csv").set_index("label")["objects"]
    assert counts.to_dict() == {c: 60 for c in ("smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral")}
    entries = [_entry(tmp_path, "hsc", "vit-base", "image"), _entry(tmp_path, "desi", "specformer-base", "spectrum")]
    out = {k: str(tmp_path / f"{k}.{ext}") for k, ext in (("runs", "csv"), ("summary", "csv"), ("markdown", "md"),
                                                         ("fraction_figure", "pdf"), ("params_figure", "pdf"))}
    steps.morphology_classification(
        {"sample": str(sample)}, out,
        {"downstream": down, "embeddings": entries, "caption": str(repo / "workflow/report/morphology_f1.rst")})
    summary = pd.read_csv(out["summary"]).set_index(["model", "head", "label_fraction"])["macro_f1"]
    assert summary["vit-base", "linear", 1.0] > 0.95 and summary["specformer-base", "linear", 1.0] < 0.5
    assert "| linear | hsc/vit-base |" in open(out["markdown"]).read()
    red = {k: str(tmp_path / f"z_{k}") for k in ("table", "predictions", "figure")}
    red["figure"] += ".pdf"
    steps.redshift_probe({"dataset": str(pair)}, red, {"downstream": down, "embeddings": entries})
    table = pd.read_csv(red["table"]).set_index(["model", "method"])
    assert table.loc[("vit-base", "mlp"), "r2"] > 0.5 > table.loc[("specformer-base", "knn"), "r2"]
    task = {"kind": "image -> image", "pair": "p", "model": "vit-base", "map": "direct", "query": entries[0]["path"],
            "gallery": entries[0]["path"], "query_label": "hsc", "gallery_label": "hsc"}
    sim = {k: str(tmp_path / f"sim_{k}.{'pdf' if 'figure' in k else 'csv'}")
           for k in ("recall", "neighbours", "recall_figure", "examples_figure")}
    images = {"images": str(tmp_path / "rgb.npy"), "image_objects": str(tmp_path / "objects.parquet")}
    steps.similarity_search(
        {"sample": str(sample), **images},
        sim, {"downstream": down, "tasks": [task], "neighbour_embeddings": entries,
              "examples": {**entries[0], "neighbours": 3}})
    assert pd.read_csv(sim["recall"])["recall@1"].tolist() == [1.0]  # a space against itself
    agreement = pd.read_csv(sim["neighbours"]).set_index(["model", "k"])
    same_class = agreement["same_class"]
    assert same_class["vit-base", 5] > 0.9 and same_class["specformer-base", 5] < 0.5


def test_the_cnn_from_scratch_learns_classes_that_are_plain_in_the_pixels():
    from samesky.downstream import supervised

    rng = np.random.default_rng(10)
    y = np.array(["smooth_round", "edge_on_disk", "merger"] * 40, dtype=object)
    images = rng.integers(0, 40, (len(y), 16, 16, 3)).astype(np.uint8)
    images[y == "smooth_round", 5:11, 5:11] = 250  # a round blob
    images[y == "edge_on_disk", 7:9, 1:15] = 250  # a thin line (rotations keep it a line)
    images[y == "merger", 3:6, 3:6] = 250  # two blobs
    images[y == "merger", 10:13, 10:13] = 250
    test = np.arange(len(y)) % 4 == 0
    pred = supervised.fit_predict_cnn(images[~test], y[~test], images[test], seed=0, epochs=40)
    assert classify.scores(y[test], pred, labels.CLASSES)["macro_f1"] > 0.9
    again = supervised.fit_predict_cnn(images[~test], y[~test], images[test], seed=0, epochs=40)
    assert (pred == again).all()  # same seed, same predictions
