"""The Snakemake workflow itself: dry runs of both presets, lint, and a small end-to-end run."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import copy_repo
from samesky.io import load_dataset_dir

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(args, cwd, timeout=900, env=None):
    proc = subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


TEST_RUN = ["--configfile", "tests/config/test.yaml"]


def _job_counts(output: str) -> dict:
    """Jobs per rule of a (dry) run's "Job stats"; empty when there is nothing to be done."""
    if "Job stats:" not in output:
        assert "Nothing to be done" in output, output[-2000:]
        return {}
    lines = output.split("Job stats:")[1].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the repository, so the run leaves the developer's results/ alone."""
    return copy_repo(tmp_path_factory.mktemp("repo") / "samesky")


@pytest.fixture(scope="module")
def finished(workdir):
    """The copy after one run of the test config: the one run every test that reads results shares."""
    _snakemake(["--cores", "2", *TEST_RUN], workdir)
    return workdir


def _copy_of(finished, dest, removed=()):
    """A copy of the finished run (results, inputs and Snakemake's records, times kept) with some results
    removed, so a test reruns only what depends on them."""
    shutil.copytree(finished, dest, symlinks=True)
    for sub in removed:
        shutil.rmtree(dest / "results" / sub)
    return dest


# 16 image model sizes on HSC + Specformer on DESI, each probed; then one job per analysis
PROBE_JOBS = {"probe_sample": 1, "probe_regressions": 17, "probe_tables": 1, "probe_environment": 1,
              "probe_brightness": 1, "probe_sky": 1, "probe_structure": 1, "probe_residuals": 1, "probe_net_wins": 1}
# issue 17, per aligned pair and once; the oracle check only where the mini universe's truth exists
METRIC_JOBS = {"metric_suite": 4, "metric_suite_summary": 1, "conditional_alignment": 4, "conditional_summary": 1}
# issue 18: one job per analysis, each reading embeddings that exist already
DOWNSTREAM_JOBS = {"morphology_sample": 1, "morphology_supervised": 1, "morphology_classification": 1,
                   "redshift_probe": 1, "similarity_search": 1}


def test_dry_run_of_the_embedded_default(workdir):
    counts = _job_counts(_snakemake(["-n"], workdir))
    # one embedding job per model size (16 image models, each on 6 image sides: HSC in 4 pairs, JWST,
    # Legacy; Specformer on 2 spectrum sides), and the images of each of the 6 image sides prepared once
    assert counts == {"mini_universe": 1, "download_dataset": 5, "crossmatch": 4, "crossmatch_summary": 1,
                      "crossmatch_truth_recovery": 1, "fetch_model": 17, "pretrain_mini_specformer": 1,
                      "resample_spectra": 1, "prepare_images": 6, "embed": 17, "embedding_summary": 1,
                      "search_neighbours": 4, "align_pair": 4, "alignment_tables": 1, "size_curves": 4,
                      "size_curve_summary": 1, **METRIC_JOBS, "oracle_validation": 1, **PROBE_JOBS, **DOWNSTREAM_JOBS, "all": 1}


def test_dry_run_of_the_paper_preset(workdir):
    counts = _job_counts(_snakemake(["-n", "--configfile", "config/paper.yaml"], workdir))
    # + AstroCLIP's evaluation pair (probes only, no alignment): its file and PROVABGS are downloaded, the
    # 16 image sizes + AstroCLIP image + AstroDINO embed its Legacy Survey side, Specformer + AstroCLIP
    # spectrum its DESI side, and all 20 are probed
    probe_jobs = {**PROBE_JOBS, "probe_regressions": 20}
    assert counts == {"download_dataset": 6, "crossmatch": 5, "crossmatch_summary": 1, "fetch_model": 20,
                      "fetch_shared_weights": 1,  # AstroCLIP's checkpoint, once for its three encoders
                      "resample_spectra": 1, "prepare_images": 7, "embed": 20, "embedding_summary": 1,
                      "search_neighbours": 4, "align_pair": 4, "alignment_tables": 1, "size_curves": 4,
                      "size_curve_summary": 1, **METRIC_JOBS, **probe_jobs,
                      **DOWNSTREAM_JOBS, "all": 1}


def _jobs(dry_run: str, rule: str) -> list[dict]:
    """The input and output lines of every job of one rule in a dry run's printout."""
    jobs = []
    for block in dry_run.split(f"rule {rule}:\n")[1:]:
        block = re.split(r"^(?:local)?rule |^$", block, maxsplit=1, flags=re.M)[0]  # up to the next job
        fields = dict(re.findall(r"^    (input|output): (.*)$", block, re.M))
        jobs.append({k: v.split(", ") for k, v in fields.items()})
    return jobs


def test_paper_preset_has_one_embedding_job_per_model_size_reading_each_of_its_sides(workdir):
    dry = _snakemake(["-n", "--configfile", "config/paper.yaml"], workdir)
    jobs = {re.search(r"embeddings/([\w-]+)$", job["output"][0]).group(1): job["input"] for job in _jobs(dry, "embed")}
    image_models = {m for m in jobs if m.split("-")[0] in ("astropt", "convnextv2", "dinov2", "ijepa", "vit")}
    assert len(jobs) == 20 and len(image_models) == 16
    image_sides = {(pair, side) for pair in ("jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc")
                   for side in ("hsc", pair.split("_")[0]) if side not in ("desi", "sdss")}
    image_sides.add(("astroclip_desi", "legacysurvey"))
    for model in image_models:  # the prepared RGB of every image side, each prepared once for all of them
        sides = {tuple(p.split("/")[-3:-1]) for p in jobs[model] if p.endswith("rgb.npy")}
        assert sides == image_sides, model
    spectra = {p for p in jobs["specformer-base"] if p.endswith("/dataset")}
    assert spectra == {"results/paper/crossmatch/desi_hsc/dataset", "results/paper/spectra/sdss_hsc/dataset",
                       "results/paper/crossmatch/astroclip_desi/dataset"}
    for model in ("astroclip-image", "astrodino-large", "astroclip-spectrum"):  # their own evaluation pair only
        assert {p for p in jobs[model] if p.endswith(("/dataset", "rgb.npy"))} == {
            "results/paper/crossmatch/astroclip_desi/dataset"}, model
    prepared = {tuple(job["output"][0].split("/")[-3:-1]) for job in _jobs(dry, "prepare_images")}
    assert prepared == image_sides
    assert "gpu=1" in dry  # the paper preset's embedding jobs ask for a GPU
    shared = [job["output"][0] for job in _jobs(dry, "fetch_shared_weights")]
    assert shared == ["resources/paper/models/shared/polymathic-ai--astroclip"]
    takes_shared = {job["output"][0].rsplit("/", 1)[1] for job in _jobs(dry, "fetch_model") if job.get("input") == shared}
    assert takes_shared == {"astroclip-image", "astroclip-spectrum", "astrodino-large"}
    # the probe-only pair is crossmatch-audited and probed, never aligned
    assert "alignment/astroclip_desi" not in dry and "results/paper/crossmatch/astroclip_desi/dataset" in dry


def test_dry_run_of_the_released_embeddings_preset(workdir):
    dry = _snakemake(["-n", "--configfile", "config/released.yaml"], workdir)
    counts = _job_counts(dry)
    # the repository listed once; 16 image model sizes x 4 pairs released files, audited once; one
    # embeddings job per model size (Specformer's DESI and SDSS sides come from the image models' files);
    # no download, crossmatch, model
    assert counts == {"list_released": 1, "fetch_released": 64, "audit_released": 1, "released_embeddings": 17, "embedding_summary": 1,
                      "search_neighbours": 4, "align_pair": 4, "alignment_tables": 1, "size_curves": 4, "size_curve_summary": 1, **METRIC_JOBS,
                      "all": 1}
    assert "results/released/tables/table2_crossmodal.csv" in dry and "figure1_crossmodal.pdf" in dry
    # no pair dataset and no truth: the conditional alignment reads the embeddings and their lists only
    for job in _jobs(dry, "conditional_alignment"):
        assert all("/embeddings/" in path or path.endswith("/neighbours.npz") for path in job["input"]), job["input"]


def test_the_paper_zoo_has_one_embedding_job_per_model_size_and_control(workdir):
    """config/paper_zoo.yaml after config/paper.yaml: every size of every family (52) and the random control
    beside each up to 7B (43) get one embedding job; a control's model folder is made from its learned
    model's folder (no download), and it reads what its learned model reads."""
    import yaml

    from samesky.registry import model_specs

    dry = _snakemake(["-n", "--configfile", "config/paper.yaml", "config/paper_zoo.yaml"], workdir)
    with open(workdir / "config" / "paper_zoo.yaml") as fh:
        specs = model_specs(yaml.safe_load(fh)["models"])
    embeds = {re.search(r"embeddings/([\w.-]+)$", job["output"][0]).group(1): job["input"] for job in _jobs(dry, "embed")}
    assert set(embeds) == set(specs) and len(specs) == 95
    controls = {name: spec for name, spec in specs.items() if spec.is_control}
    assert len(controls) == 43 and not any(s.family in ("paligemma2", "llava", "llavaov") for s in controls.values())
    fetches = {re.search(r"models/([\w.-]+)$", job["output"][0]).group(1): job.get("input", [])
               for job in _jobs(dry, "fetch_model")}
    for name, spec in controls.items():
        assert fetches[name] == [f"resources/paper/models/{spec.control_of}"]  # its learned model, not the Hub
        learned_inputs = set(embeds[spec.control_of]) - {f"resources/paper/models/{spec.control_of}"}
        assert set(embeds[name]) - learned_inputs == {f"resources/paper/models/{name}",
                                                      f"resources/paper/models/{spec.control_of}"}
    new = {"clip", "dinov3", "vitmae", "vjepa2", "aion", "siglip", "msn", "resnet", "efficientnet", "paligemma2", "llava",
           "llavaov"}
    assert {s.family for s in specs.values()} >= new


@pytest.mark.parametrize("extra", [[], ["--configfile", "config/paper.yaml"], ["--configfile", "config/released.yaml"],
                                   ["--configfile", "config/zoo.yaml"],
                                   ["--configfile", "config/paper.yaml", "config/paper_zoo.yaml"]])
def test_lint_is_clean(workdir, extra):
    out = _snakemake(["--lint"] + extra, workdir)
    assert "Congratulations, your workflow is in a good condition!" in out


@pytest.mark.workflow
def test_end_to_end_on_a_small_mini_universe(finished):
    results = finished / "results"
    summary = pd.read_csv(results / "crossmatch" / "summary.csv")
    assert list(summary["pair"]) == ["jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"]
    assert (summary["matched"] > 0).all() and (summary["max_separation_arcsec"] <= 1.0).all()
    recovery = pd.read_csv(results / "crossmatch" / "truth_recovery.csv")
    assert (recovery["completeness"] >= 0.99).all(), recovery
    paired = load_dataset_dir(results / "crossmatch" / "desi_hsc" / "dataset")
    assert {"object_id", "separation_arcsec", "hsc_image", "desi_spectrum", "desi_Z"} <= set(paired.column_names)
    embeddings = pd.read_csv(results / "embeddings" / "summary.csv")
    # 3 image sizes x 6 image sides + Specformer on DESI and on SDSS resampled to the DESI grid
    assert len(embeddings) == 20
    spec = embeddings[embeddings["family"] == "specformer"].set_index("survey")
    assert set(spec.index) == {"desi", "sdss"}
    matched = summary.set_index("pair")["matched"]
    hsc = embeddings[(embeddings["survey"] == "hsc")]
    assert all(hsc["n_objects"] == hsc["pair"].map(matched))
    cross = pd.read_csv(results / "tables" / "table2_crossmodal.csv")
    null = cross[cross["family"] == "π (null)"].iloc[0]
    models = cross[cross["family"] != "π (null)"]
    for side in ("jwst", "legacysurvey", "desi", "sdss"):
        assert (models[side] > null[side]).all(), side  # every crossmodal score sits above its null
    scores = pd.concat([pd.read_csv(p) for p in (results / "alignment").glob("*/scores.csv")])
    crossmodal = scores[scores["kind"] == "crossmodal"]
    # k = 10: every crossmodal score beats its permutation null. k = 1 on 48-375 objects is left out: a
    # handful of mutual nearest neighbours decides it (the null's 97.5% point is 3 of 66 on JWST)
    assert (crossmodal.loc[crossmodal["k"] == 10, "p_value"] < 0.05).all()
    assert set(pd.read_csv(results / "tables" / "table1_intramodal.csv")["family"]) == {"vit"}
    assert (results / "figures" / "figure1_crossmodal.pdf").stat().st_size > 0
    assert "\\begin{tabular}" in (results / "tables" / "table2_crossmodal.tex").read_text()
    cka = pd.read_csv(results / "tables" / "crossmodal_cka.csv")
    assert len(cka) == len(models) and cka[["jwst", "legacysurvey", "desi", "sdss"]].notna().all().all()
    curves = pd.read_csv(results / "tables" / "size_curves.csv")
    assert set(curves["pair"]) == {"jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"}
    # issue 17: every comparison of align_pair with every metric; MKNN is align_pair's own score
    suite = pd.read_csv(results / "tables" / "metric_suite.csv")
    assert set(suite["metric"]) == {"mknn", "jaccard_knn", "cycle_knn", "lcs_knn", "edit_knn", "cknna", "cknna_own",
                                    "svcca", "rsa", "procrustes", "cka_linear", "cka_debiased"}
    merged = suite[suite["metric"] == "mknn"].merge(scores, on=["pair", "kind", "side", "model_a", "model_b", "k"])
    assert len(merged) == len(scores[scores["k"] == 10]) and np.allclose(merged["score"], merged["mknn"])
    assert len(suite.drop_duplicates(["pair", "kind", "side", "model_a", "model_b"])) == len(
        scores.drop_duplicates(["pair", "kind", "side", "model_a", "model_b"]))
    wide = pd.read_csv(results / "tables" / "metric_suite_crossmodal.csv")
    assert len(wide) == len(crossmodal[crossmodal["k"] == 10]) and wide["mknn"].notna().all()
    metric_trends = pd.read_csv(results / "tables" / "metric_trend_tests.csv")
    mknn_trends = metric_trends[(metric_trends["metric"] == "mknn") & (metric_trends["measure"] == "score")]
    assert mknn_trends["p_value"].tolist() == pytest.approx(
        pd.read_csv(results / "tables" / "trend_tests.csv")["p_value"].tolist(), nan_ok=True)
    assert set(pd.read_csv(results / "tables" / "metric_size_curves.csv")["model_b"]) == {"vit-large", "astropt-small"}
    oracle = pd.read_csv(results / "tables" / "oracle_summary.csv").set_index("metric")
    assert oracle.loc["mknn", "spearman"] > 0.8 and oracle.loc["mknn", "range"] > 0
    per_object = pd.read_parquet(results / "alignment" / "desi_hsc" / "per_object.parquet")
    assert {"object_id", "overlap", "redshift", "brightness", "environment"} <= set(per_object.columns)
    desi = crossmodal[(crossmodal["pair"] == "desi_hsc") & (crossmodal["k"] == 10)].set_index("model_b")["mknn"]
    assert np.allclose(per_object.groupby("model_b")["overlap"].mean()[desi.index], desi)
    conditional = pd.read_csv(results / "tables" / "conditional_alignment.csv")
    assert set(conditional["covariate"]) == {"all", "redshift", "brightness", "environment", "partial"}
    deltas = pd.read_csv(results / "tables" / "size_deltas.csv")
    assert len(deltas) == 4 and set(deltas["model_1"] + ">" + deltas["model_2"]) == {"vit-base>vit-large"}
    assert (deltas["lo"] <= deltas["delta"]).all() and (deltas["delta"] <= deltas["hi"]).all()
    assert set(pd.read_csv(results / "tables" / "size_delta_trends.csv")["test"]) >= {"crossmodal", "crossmodal_sdss"}
    for figure in ("metric_suite", "metric_size_curves", "oracle", "conditional_alignment"):
        assert (results / "figures" / f"{figure}.pdf").stat().st_size > 0
    assert curves["class_a"].notna().all() and set(curves["k"]) == {1, 10}
    r2 = pd.read_csv(results / "tables" / "probe_r2_test.csv")
    assert len(r2) == 2 * 4 and set(r2["method"]) == {"knn", "mlp"}  # 3 image sizes + Specformer, 2 probes
    assert r2[["log_mstar", "log_z_mw", "t_age", "log_ssfr"]].notna().all().all()
    oof_r2 = pd.read_csv(results / "tables" / "probe_r2_oof.csv")
    assert len(oof_r2) == len(r2) and (oof_r2["n"] > 5 * r2["n"]).all()  # every object, not only the test split
    boot = pd.read_csv(results / "tables" / "probe_bootstrap.csv")
    assert len(boot) == 2 * 2 * 4 and set(boot["split"]) == {"test", "oof"}
    assert (boot["delta_lo"] <= boot["delta"]).all() and (boot["delta"] <= boot["delta_hi"]).all()
    n = boot.groupby("split")["n"].first()
    assert n["oof"] > 5 * n["test"]  # out of fold uses every object of the sample, test only the 10% split
    wins = pd.read_csv(results / "tables" / "residual_net_wins.csv")
    overall = wins[wins["error_from"].isna()]
    assert len(overall) == 2 * 4 * 5 and (overall["net"] == overall["a_better"] - overall["b_better"]).all()
    assert (overall.groupby(["method", "target"])["n"].sum() == n["test"]).all()  # the bins split the test objects
    env = pd.read_csv(results / "tables" / "probe_environment.csv")
    assert set(env["env_bin"]) <= {"few", "moderate", "many"} and set(env["model"]) == {"vit-large", "specformer-base"}
    assert set(pd.read_csv(results / "tables" / "probe_brightness.csv")["brightness"]) == {"bright", "faint"}
    assert pd.read_csv(results / "tables" / "probe_sky.csv")["sky_group"].nunique() == 10
    ami = pd.read_csv(results / "tables" / "structure_ami.csv")
    assert len(ami) == 2 and ami[["log_mstar", "log_ssfr"]].abs().le(1).all().all()
    assert (results / "figures" / "structure_umap_kmeans.pdf").stat().st_size > 0
    assert len(pd.read_csv(results / "tables" / "residual_outliers.csv")) > 0
    # issue 18: labels joined by position, every embedding of the DESI-HSC pair classified, redshift, retrieval
    labels = pd.read_csv(results / "tables" / "morphology_labels.csv")
    assert labels["objects"].sum() > 50 and labels["label_is_true_class"].notna().all()
    runs = pd.read_csv(results / "tables" / "morphology_f1_runs.csv")
    assert set(runs["model"]) == {"vit-base", "vit-large", "astropt-small", "specformer-base", "cnn-scratch"}
    assert set(runs["head"]) == {"chance", "linear", "whitened", "mlp", "cnn"} and set(runs["seed"]) == {0, 1, 2}
    assert runs.groupby("label_fraction")["n_train"].max().is_monotonic_increasing
    assert runs["n_test"].nunique() == 1 and runs["macro_f1"].between(0, 1).all()
    summary = pd.read_csv(results / "tables" / "morphology_f1.csv")
    assert len(summary) == (4 * 4 + 1) * 2  # (embeddings x heads, chance included, + the CNN) x label fractions
    redshift = pd.read_csv(results / "tables" / "redshift_probe.csv")
    assert len(redshift) == 4 * 2 and redshift[["r2", "sigma_nmad", "outlier_fraction"]].notna().all().all()
    recall = pd.read_csv(results / "tables" / "similarity_recall.csv")
    assert set(recall["kind"]) == {"image -> image", "spectrum -> spectrum", "image -> spectrum"}
    assert recall["recall@1"].between(0, 1).all() and (recall["recall@10"] >= recall["recall@1"]).all()
    neighbours = pd.read_csv(results / "tables" / "similarity_neighbours.csv")
    assert neighbours[["same_class", "same_class_chance", "median_dz"]].notna().all().all()
    for figure in ("morphology_f1_fraction", "morphology_f1_params", "redshift_scatter", "similarity_recall",
                   "similarity_examples"):
        assert (results / "figures" / f"{figure}.pdf").stat().st_size > 0
    for rule_log in ["mini_universe.log", "crossmatch/desi_hsc.log", "download_dataset/hsc.log",
                     "pretrain_mini_specformer/specformer-base.log", "embed/specformer-base.log",
                     "prepare_images/desi_hsc/hsc.log", "resample_spectra/sdss_hsc.log"]:
        assert (results / "logs" / rule_log).stat().st_size > 0
    # issue 28: a local run's jobs ran in warm copies (samesky.steps.warm), all but the first few, which start
    # while the servers import; the killed-run test below shows that a cold run gives the same tables
    logs = list((results / "logs").rglob("*.log"))
    warm = [p for p in logs if "ran in a warm copy" in p.read_text()]
    assert len(warm) > len(logs) / 2, f"{len(warm)} of {len(logs)} jobs ran warm"
    # a second run finds nothing to do
    assert "Nothing to be done" in _snakemake(["--cores", "2", *TEST_RUN], finished)


ZOO_TARGETS = [f"results/tables/{t}" for t in ("table1_intramodal.csv", "table2_crossmodal.csv", "trend_tests.csv",
                                                "table2_crossmodal.md", "layer_best.csv")] + \
              ["results/figures/figure1_crossmodal.pdf"]


@pytest.mark.workflow
def test_the_zoo_and_every_layer_reach_the_tables_figure_1_the_trend_tests_and_the_layer_grids(finished, tmp_path):
    """The finished run with the zoo (tests/config/zoo.yaml: every family of config/zoo.yaml, EfficientNet-Lite's
    real weights beside their random twins, a model by config alone and one by adapter class) and every
    layer (config/layers.yaml): the new models are made and embedded, the test config's models rerun to write
    their layers; Tables 1-2, Figure 1, the trend tests and the layer grids hold every model, the controls as
    rows of their own; the finished run's scores do not change (each comparison is scored on its own, with
    its own seed); the final-layer cell of every grid is the final-layer table's own MKNN, bit for bit."""
    import yaml

    from samesky.registry import model_specs

    with open(finished / "config" / "zoo.yaml") as fh:
        full = {m["family"] for m in yaml.safe_load(fh)["models"]}
    with open(finished / "tests" / "config" / "zoo.yaml") as fh:
        ci = yaml.safe_load(fh)["models"]
    assert full <= {m["family"] for m in ci}  # the CI zoo leaves no family of the preset out
    work = _copy_of(finished, tmp_path / "zoo")
    import transformers as tf

    user = work / "resources" / "user_models" / "galaxyvit"  # your own model, saved with save_pretrained
    tf.ViTModel(tf.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                             image_size=32, patch_size=8), add_pooling_layer=False).save_pretrained(user)
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(user)
    (work / "fewer_permutations.yaml").write_text("alignment: {layer_permutations: 20}\n")
    configs = [*TEST_RUN, "config/layers.yaml", "tests/config/zoo.yaml", "fewer_permutations.yaml"]
    counts = _job_counts(_snakemake(["--cores", "2", *ZOO_TARGETS, *configs], work, timeout=1800))  # targets first
    specs = model_specs(ci)
    image_models = {name for name, spec in specs.items() if spec.modality == "image"}
    assert counts["embed"] == len(specs) and counts["layer_grids"] == 4
    results = work / "results" / "tables"
    table2 = pd.read_csv(results / "table2_crossmodal.csv")
    families = {name.split("-")[0] for name in image_models}
    assert set(table2["family"]) - {"π (null)"} == families  # every image family, the controls as their own rows
    assert {"efficientnet_random", "tiny_random", "galaxyvit", "tiny", "aion"} <= families
    aion = table2[table2["family"] == "aion"]
    assert aion["legacysurvey"].notna().all() and aion["jwst"].isna().all()  # AION reads HSC and Legacy, not JWST
    markdown = (results / "table2_crossmodal.md").read_text()
    for label in ("EfficientNet-Lite (random)", "GalaxyViT", "PaliGemma 2", "V-JEPA 2", "LLaVA-OneVision"):
        assert f"| {label} |" in markdown
    table1 = pd.read_csv(results / "table1_intramodal.csv")
    assert {"efficientnet", "efficientnet_random", "tiny", "tiny_random", "vit"} <= set(table1["family"])
    trends = pd.read_csv(results / "trend_tests.csv").set_index("test")
    assert {"crossmodal", "crossmodal: random controls", "crossmodal: learned, with a control"} <= set(trends.index)
    assert trends.loc["crossmodal: random controls", "comparisons"] == 2 * 3  # 2 families x (JWST, Legacy, DESI)
    best = pd.read_csv(results / "layer_best.csv")
    assert image_models <= set(best["model_b"]) | set(best["model_a"])
    depth = best.drop_duplicates("model_b").set_index("model_b")["layers_b"]  # layers of each model
    assert depth["efficientnet-lite0"] == 8 and depth["llava-7b"] == 2  # 7 stages + head; 2 language layers
    assert depth["aion-base"] == 2  # a flux model's layers too: its 2 encoder blocks
    record = json.loads((work / "results" / "embeddings" / "galaxyvit-tiny" / "jwst_hsc" / "hsc.provenance.json")
                        .read_text())
    assert record["model"]["weights"] == "local" and record["model"]["revision"].startswith("sha256:")
    control = json.loads((work / "results" / "embeddings" / "efficientnet_random-lite1" / "legacysurvey_hsc" /
                          "legacysurvey.provenance.json").read_text())["model"]
    assert control["weights"] == "random control" and control["control_of"] == "efficientnet-lite1"
    assert control["learned_weights"] == "package"
    # the layers: the finished run's scores unchanged, every grid's final-layer cell the table's own score
    keys = ["pair", "kind", "side", "model_a", "model_b", "k"]
    for pair in ("jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"):
        before = pd.read_csv(finished / "results" / "alignment" / pair / "scores.csv")
        after = pd.read_csv(work / "results" / "alignment" / pair / "scores.csv")
        kept = before.merge(after, on=keys, suffixes=("", "_zoo"))
        assert len(kept) == len(before) and (kept["mknn"] == kept["mknn_zoo"]).all()
        assert (kept["null_mean"] == kept["null_mean_zoo"]).all()
    scores = pd.concat([pd.read_csv(work / "results" / "alignment" / p / "scores.csv") for p in best["pair"].unique()])
    merged = best.merge(scores[scores["k"] == 10], on=["pair", "kind", "side", "model_a", "model_b"])
    assert len(merged) == len(best) == len(scores[scores["k"] == 10])
    assert (merged["mknn_reference"] == merged["mknn"]).all()
    assert (best["p_max"] >= best["p_cell"]).all() and (best["mknn_best"] >= best["mknn_reference"]).all()
    gap = best["mknn_best"] - best["mknn_reference"]  # the final layers within tolerance of the best: a near-tie
    assert (best.loc[best["reference_near_best"], "mknn_best"] - best.loc[best["reference_near_best"], "mknn_reference"]
            <= 0.025).all() and best.loc[gap == 0, "reference_near_best"].all()
    assert depth["vit-large"] == 3 and depth["vit-base"] == 2 and depth["astropt-small"] == 2  # mini depths
    figures = work / "results" / "figures"
    for pair in best["pair"].unique():
        assert (figures / f"layer_grids_{pair}.pdf").stat().st_size > 0
        grid = pd.read_csv(work / "results" / "alignment" / pair / "layer_grids.csv")
        assert len(grid.groupby(["kind", "side", "model_a", "model_b"]).size()) == (best["pair"] == pair).sum()
    assert (figures / "layer_depth.pdf").stat().st_size > 0
    # the layers sit beside each embeddings file; the embeddings file itself is the reference layer
    from samesky.io import read_embeddings, read_layers

    path = work / "results" / "embeddings" / "vit-large" / "jwst_hsc" / "hsc.parquet"
    ids, names, arrays, meta = read_layers(path)
    assert names == ["block_01", "block_02", "final"] and meta["reference_layer"] == "final"
    assert np.array_equal(arrays[-1], read_embeddings(path)[1])


def test_a_single_figure_needs_only_its_own_jobs(workdir):
    counts = _job_counts(_snakemake(["-n", "results/figures/figure1_crossmodal.pdf"], workdir))
    assert counts["alignment_tables"] == 1 and counts["align_pair"] == 4
    for unrelated in ("size_curves", "size_curve_summary", "crossmatch_truth_recovery", "embedding_summary",
                      "crossmatch_summary", "all"):
        assert unrelated not in counts
    counts = _job_counts(_snakemake(["-n", "results/tables/table1_intramodal.csv"], workdir))
    assert counts["alignment_tables"] == 1
    # the environment analysis probes only its two embeddings, and aligns nothing
    counts = _job_counts(_snakemake(["-n", "results/figures/probe_environment.pdf"], workdir))
    assert counts["probe_regressions"] == 2 and counts["probe_environment"] == 1
    assert "align_pair" not in counts and "probe_tables" not in counts


def test_changing_the_compared_pairs_reruns_only_the_comparison_rules(finished):
    workdir = finished
    other = workdir / "compare_other.yaml"
    other.write_text("probes:\n  compare:\n"
                     "    - [{survey: desi, model: specformer-base}, {survey: hsc, model: vit-base}]\n")
    counts = _job_counts(_snakemake(["-n", "--configfile", "tests/config/test.yaml", str(other)], workdir))
    assert counts["probe_tables"] == 1 and counts["probe_net_wins"] == 1
    for untouched in ("probe_sample", "probe_regressions", "probe_environment", "probe_structure", "align_pair"):
        assert untouched not in counts, untouched


def _readme_commands(repo) -> list[list[str]]:
    """Every snakemake command the README shows, in code blocks or inline, without comments and pipes."""
    import shlex

    text = (repo / "README.md").read_text()
    lines = [ln for block in re.findall(r"```bash\n(.*?)```", text, re.S) for ln in block.splitlines()]
    lines += re.findall(r"`(snakemake [^`]*)`", text)
    commands = [ln.split("#", 1)[0].split("|", 1)[0].strip() for ln in lines]
    return [shlex.split(c)[1:] for c in dict.fromkeys(commands) if c.startswith("snakemake") and "..." not in c]


def _rebuild_table(repo) -> dict:
    """The rebuild table (docs/outputs.md, linked from the README): each target file (braces expanded) ->
    the rule it names."""
    text = (repo / "docs" / "outputs.md").read_text()
    section = re.split(r"^## ", text.split("## Rebuilding one figure or table", 1)[1], flags=re.M)[0]
    targets = {}
    for row in re.findall(r"^\| (`results/.*)$", section, re.M):
        cells = [c.strip() for c in row.split("|")]
        rule = cells[-2].strip("`")
        folder = None
        for path in re.findall(r"`([^`]+)`", cells[0]):
            if "/" not in path:  # a file in the previous path's folder
                path = f"{folder}/{path}"
            folder = path.rsplit("/", 1)[0]
            m = re.match(r"(.*)\{(.*)\}(.*)", path)
            for option in (m.group(2).split(",") if m else [""]):
                targets[f"{m.group(1)}{option}{m.group(3)}" if m else path] = rule
    return targets


@pytest.mark.workflow
def test_every_command_the_readme_shows_runs_what_it_says(finished, repo):
    """Each README command, dry-run: a target runs its own rule and not `all` (a target after a
    multi-valued option such as --forcerun or --configfile would be swallowed), --forcerun reruns only the
    forced rule, and every row of the rebuild table names the rule that makes its files."""
    workdir = finished
    rebuild = _rebuild_table(repo)
    assert len(rebuild) >= 30 and set(rebuild.values()) >= {"alignment_tables", "probe_tables", "probe_structure"}
    commands = _readme_commands(repo)
    assert len(commands) >= 10
    for args in commands:
        if "--report" in args:
            continue  # builds the report from finished results: test_report_is_built_with_every_figure_and_table
        if {"--summary", "--list-rules", "--rulegraph", "--dag"} & set(args):  # they run nothing
            _snakemake(args, workdir)
            continue
        config = [] if "--configfile" in args else ["--configfile", "tests/config/test.yaml"]
        targets = [a for a in args if a.startswith("results/")]
        if "--forcerun" in args:  # on the finished test run: only the forced rule reruns
            forced = args[args.index("--forcerun") + 1]
            assert _job_counts(_snakemake(args + config + ["-n"], workdir)) == {forced: 1}, args
        elif targets:  # from scratch (-F): the target's own rule and what it needs, never `all`
            counts = _job_counts(_snakemake(args + config + ["-n", "-F"], workdir))
            rule = rebuild[targets[0].replace("results/paper/", "results/")]
            assert rule in counts and "all" not in counts, (args, counts)
        else:
            _snakemake(args + config + (["-n"] if "-n" not in args else []), workdir)
    # the rebuild table against Snakemake's own account of which rule writes each file
    # (with config/layers.yaml and the adaptation preset: the DAG then holds the layer grids and the adaptation
    # study too; --summary runs nothing)
    summary = _snakemake(["--summary", "--configfile", "tests/config/test.yaml", "config/layers.yaml",
                          "tests/config/adaptation.yaml"], workdir)
    writer = dict(line.split("\t")[0:3:2] for line in summary.splitlines() if line.startswith("results/"))
    for target, rule in rebuild.items():
        assert writer.get(target) == rule, (target, rule, writer.get(target))


PROVENANCE = {  # each table's record, and the datasets and models it rests on
    "tables/alignment_tables.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss"}, 4),
    "tables/size_curves.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss"}, 4),
    "embeddings/summary.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss"}, 4),
    "crossmatch/summary.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss"}, 0),
    "crossmatch/truth_recovery.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss"}, 0),
    "alignment/sdss_hsc/provenance.json": ({"hsc", "sdss"}, 4),
    "spectra/sdss_hsc/provenance.json": ({"hsc", "sdss"}, 0),
    "tables/probe_tables.provenance.json": ({"hsc", "desi", "probes_catalogue"}, 4),
    "tables/metric_suite.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss"}, 4),
    "tables/conditional_alignment.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss"}, 4),
    "alignment/desi_hsc/conditional.provenance.json": ({"hsc", "desi"}, 4),
    "tables/oracle.provenance.json": (set(), 0),  # the mini universe's truth: no dataset, no model
    "tables/morphology_f1.provenance.json": ({"hsc", "desi", "morphology_catalogue"}, 4),
    "tables/redshift_probe.provenance.json": ({"hsc", "desi"}, 4),
    "tables/similarity.provenance.json": ({"hsc", "jwst", "legacysurvey", "desi", "sdss", "morphology_catalogue"}, 4),
}


@pytest.mark.workflow
def test_every_table_records_datasets_models_config_versions_and_seed(finished):
    workdir = finished
    hashes = set()
    for path, (datasets, n_models) in PROVENANCE.items():
        rec = json.loads((workdir / "results" / path).read_text())
        assert set(rec["datasets"]) == datasets, path
        for name, ds in rec["datasets"].items():
            assert ds["source"] and ds["revision_resolved"].startswith("sha256:"), (path, name)
        assert len(rec["models"]) == n_models, path
        for name, model in rec["models"].items():
            assert {"hub_id", "revision", "weights", "seed", "pooling"} <= set(model), (path, name)
            if name.startswith("specformer"):  # pre-trained on the mini DESI spectra, and says on what
                pre = model["pretraining"]
                assert model["weights"] == "mini-pretrained" and pre["settings"]["steps"] == 20, path
                assert pre["n_spectra"] > 32 and set(pre["source"]["datasets"]) == {"desi"}, path
            else:
                assert model["weights"] == "mini-random", (path, name)
        assert rec["seed"] == 42 and rec["preset"] == "test"
        assert {"samesky", "torch", "transformers", "faiss-cpu", "snakemake"} <= set(rec["versions"])
        hashes.add(rec["config_sha256"])
    assert len(hashes) == 1 and len(hashes.pop()) == 64  # one config behind every result


TABLES = ["tables/probe_r2_test.csv", "tables/probe_bootstrap.csv", "tables/probe_environment.csv",
          "tables/structure_ami.csv", "tables/table1_intramodal.csv", "tables/table2_crossmodal.csv", "tables/crossmodal_cka.csv",
          "tables/trend_tests.csv", "tables/size_curves.csv", "crossmatch/summary.csv",
          "crossmatch/truth_recovery.csv", "embeddings/summary.csv", "spectra/sdss_hsc/resampling.csv",
          "alignment/desi_hsc/scores.csv", "tables/metric_suite.csv", "tables/conditional_alignment.csv",
          "tables/size_deltas.csv", "tables/oracle_summary.csv", "tables/morphology_f1.csv", "tables/redshift_probe.csv",
          "tables/similarity_recall.csv"]


@pytest.mark.workflow
def test_report_is_built_with_every_figure_and_table(finished):
    workdir = finished
    _snakemake(["--configfile", "tests/config/test.yaml", "--report", "report.html"], workdir)
    html = (workdir / "report.html").read_text(errors="replace")
    for name in ("figure1_crossmodal.pdf", "size_curves.pdf", "agreement_decomposition.pdf",
                 "table1_intramodal.csv", "table2_crossmodal.csv", "crossmodal_cka.csv", "trend_tests.csv",
                 "probe_r2_test.csv", "probe_r2_oof.csv", "probe_bootstrap.csv", "probe_environment.pdf",
                 "structure_umap_kmeans.pdf", "residuals.pdf", "residual_net_wins.pdf", "metric_suite.pdf",
                 "metric_suite_crossmodal.csv", "metric_trend_tests.csv", "metric_size_curves.pdf", "oracle.pdf",
                 "oracle_summary.csv", "conditional_alignment.pdf", "conditional_alignment.csv", "size_delta_trends.csv"):
        assert name in html, name
    assert "The Platonic Universe, Figure 1" in html


def _write_astroclip_files(root, n_groups=10, per_group=12, seed=0):
    """AstroCLIP's evaluation file (HDF5 groups of images, spectra, redshifts, targetids) and PROVABGS in the
    Multimodal Universe's schema (Parquet, TARGETID in object_id), at tests/config/astroclip.yaml's paths.
    Stellar mass scales the spectra's flux, so the spectrum side has something to find."""
    import h5py

    rng = np.random.default_rng(seed)
    folder = root / "resources" / "test_astroclip"
    (folder / "provabgs").mkdir(parents=True, exist_ok=True)
    rows = []
    with h5py.File(folder / "astroclip_desi.h5", "w") as f:
        for g in range(n_groups):
            tid = 39627000000000000 + 1000 * g + np.arange(per_group)
            logm = rng.uniform(9, 11.5, per_group)
            shape = 1 + 0.3 * np.sin(np.linspace(0, 20, 7781))
            grp = f.create_group(str(g))
            grp["images"] = rng.normal(0, 0.02, (per_group, 152, 152, 3)).astype(np.float32)
            grp["spectra"] = (10 ** (logm - 10)[:, None] * shape + rng.normal(0, 0.1, (per_group, 7781))).astype(np.float32)
            grp["redshifts"] = rng.uniform(0.05, 0.4, per_group).astype(np.float32)
            grp["targetids"] = tid
            rows += [{"object_id": str(t), "ra": 150 + rng.uniform(0, 2), "dec": 2 + rng.uniform(0, 2),
                      "LOG_MSTAR": m, "Z_MW": 10 ** rng.normal(-1.8, 0.2), "TAGE_MW": rng.uniform(1, 10),
                      "AVG_SFR": 10 ** rng.normal(0, 0.5), "MAG_R": rng.uniform(17, 20.2)} for t, m in zip(tid, logm)]
    pd.DataFrame(rows).to_parquet(folder / "provabgs" / "train-00000-of-00001.parquet")


@pytest.mark.workflow
def test_astroclip_probes_run_end_to_end_on_local_files_in_the_released_layouts(workdir):
    _write_astroclip_files(workdir)
    _snakemake(["--cores", "2", "--configfile", "tests/config/astroclip.yaml"], workdir)
    results = workdir / "results" / "astroclip"
    assert not (results / "alignment").exists()  # a probe-only pair
    sample = pd.read_parquet(results / "probes" / "sample.parquet")
    assert len(sample) == 120 and np.isfinite(sample[["ra", "dec"]].to_numpy()).all()  # positions from PROVABGS
    assert set(sample["brightness"]) <= {"bright", "faint", ""} and (sample["brightness"] == "bright").any()
    r2 = pd.read_csv(results / "tables" / "probe_r2_test.csv")
    assert set(r2["survey"] + "/" + r2["model"]) == {"legacysurvey/astroclip-image", "legacysurvey/astrodino-large",
                                                    "desi/astroclip-spectrum", "desi/specformer-base"}
    boot = pd.read_csv(results / "tables" / "probe_bootstrap.csv")
    oof = boot[(boot["split"] == "oof") & (boot["method"] == "knn") & (boot["target"] == "log_mstar")].set_index("a")
    # the spectra's flux scales with stellar mass and the images are noise: the probes must see that
    assert oof.loc["desi/astroclip-spectrum", "r2_a"] > 0.3 and oof.loc["legacysurvey/astroclip-image", "r2_a"] < 0.1
    for table in ("probe_environment", "probe_brightness", "probe_sky", "structure_kmeans", "residual_net_wins"):
        assert len(pd.read_csv(results / "tables" / f"{table}.csv")) > 0, table
    # Table 18 lists every count 1..4 per embedding and method, zeros included: 12 test objects may have no outlier
    outliers = pd.read_csv(results / "tables" / "residual_outliers.csv")
    assert len(outliers) == 2 * 2 * 4 and set(outliers["outlier_in_n_properties"]) == {1, 2, 3, 4}
    assert (outliers["test_objects"] == 12).all()
    prov = json.loads((results / "embeddings" / "astroclip-image" / "astroclip_desi" / "legacysurvey.provenance.json")
                      .read_text())
    assert "astroclip" in json.dumps(prov) and "Legacy Survey viewer" in json.dumps(prov)
    # the pair's own Specformer pooling (AstroCLIP's probe code pools every token) reaches the job
    spec = json.loads((results / "embeddings" / "specformer-base" / "astroclip_desi" / "desi.provenance.json").read_text())
    assert spec["preprocessing"]["specformer_pooling"] == "all_tokens"


# what depends on the embeddings: rerunning them reruns the alignment, the probes and every table
DOWNSTREAM_OF_EMBEDDINGS = ("embeddings", "alignment", "probes/predictions", "tables", "figures")


@pytest.mark.workflow
def test_killed_run_resumes_to_the_same_tables_as_an_uninterrupted_one(finished, tmp_path):
    """SIGKILL the whole workflow during an embedding job, rerun it, and compare every table byte for byte
    with the uninterrupted run (which also shows that two runs give identical tables). The run starts from
    a copy of the finished one without its embeddings and what follows them: the part a kill can hurt.
    The kill takes the warm servers and their copies with it (one process group); the rerun is cold
    (SAMESKY_WARM=0), so its tables equal to the byte the warm run's (issue 28)."""
    import os
    import signal
    import time

    from samesky.io import read_embeddings

    other = _copy_of(finished, tmp_path / "samesky", DOWNSTREAM_OF_EMBEDDINGS)
    proc = subprocess.Popen(SNAKEMAKE + ["--cores", "2", *TEST_RUN], cwd=other, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    embed_logs, embeddings = other / "results" / "logs" / "embed", other / "results" / "embeddings"

    def running_embedding_jobs():  # a job's log is newer than the copy and its model's folder not there yet
        logs = embed_logs.glob("*.log") if embed_logs.exists() else []
        return [p for p in logs if _modified_after(p, start) and not (embeddings / p.stem).exists()]

    start = time.time()
    deadline = start + 600
    while time.time() < deadline and proc.poll() is None and not running_embedding_jobs():
        time.sleep(0.05)  # mini embedding jobs last a few seconds: kill as soon as one is under way
    assert proc.poll() is None, "the workflow ended before an embedding job started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    gone = time.time() + 10
    while _live_in_group(proc.pid) and time.time() < gone:
        time.sleep(0.1)
    assert not _live_in_group(proc.pid), "nothing of the run is left: Snakemake, its jobs, the warm servers, copies"
    written = list(embeddings.rglob("*.parquet")) if embeddings.exists() else []
    assert len(written) < 10, "killed before every embedding was written"
    assert any(not (embeddings / p.stem).exists() for p in embed_logs.glob("*.log")), "killed inside a job"
    for path in written:  # whatever exists is complete: it reads back whole
        ids, emb, meta = read_embeddings(path)
        assert len(ids) == meta["data"]["n_objects"]
    # SIGKILL leaves Snakemake's lock behind; the documented recovery is --unlock, then the same command
    _snakemake(["--unlock", *TEST_RUN], other)
    _snakemake(["--cores", "2", *TEST_RUN], other, env={**os.environ, "SAMESKY_WARM": "0"})
    assert not any("ran in a warm copy" in p.read_text() for p in embed_logs.glob("*.log")), "the rerun was cold"
    assert not list((other / "results").rglob("*.partial")), "no temporary output is left behind"
    for table in TABLES:
        assert (other / "results" / table).read_bytes() == (finished / "results" / table).read_bytes(), table


# the rules no torch kernel reaches: numpy, astropy and specutils only (src/samesky/mini_universe, crossmatch.py,
# embed/images.py, embed/spectra.py); the mini universe's files are the same with any number of workers
NUMPY_ONLY_RULES = {"mini_universe", "download_dataset", "crossmatch", "crossmatch_summary",
                    "crossmatch_truth_recovery", "prepare_images", "resample_spectra"}


@pytest.mark.workflow
def test_another_kernel_set_and_thread_count_reach_the_same_conclusions(finished, tmp_path):
    """Issue 27: the test config again under torch's generic CPU kernels (ATEN_CPU_CAPABILITY=default) and
    one OpenMP/BLAS thread: what another computer changes. Every rule runs again but the data rules, which
    no torch kernel reaches (numpy and astropy; NUMPY_ONLY_RULES): their files are the shared run's, so the
    test spends its time where a kernel set can change a number (issue 28). Against the shared run,
    `python -m samesky.compare` finds every number within its tolerance and every conclusion the same (it
    exits 0)."""
    other = _copy_of(finished, tmp_path / "samesky")
    shutil.rmtree(other / "results" / "astroclip", ignore_errors=True)  # another preset's (the AstroCLIP test)
    rules = set(_job_counts(_snakemake(["-n", "-F", *TEST_RUN], other))) - {"all"}  # the rules of the run's DAG
    assert NUMPY_ONLY_RULES < rules
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    counts = _job_counts(_snakemake(["--cores", "2", "--forcerun", *sorted(rules - NUMPY_ONLY_RULES), *TEST_RUN],
                                    other, env={**os.environ, "ATEN_CPU_CAPABILITY": "default", **threads}))
    assert not NUMPY_ONLY_RULES & set(counts) and {"fetch_model", "pretrain_mini_specformer", "embed",
                                                   "morphology_supervised", "probe_regressions"} <= set(counts)
    record = json.loads((other / "results" / "tables" / "alignment_tables.provenance.json").read_text())
    assert record["machine"]["ATEN_CPU_CAPABILITY"] == "default"
    embedded = json.loads(next((other / "results" / "embeddings").glob("*/*/*.provenance.json")).read_text())
    assert embedded["machine"]["torch_cpu_capability"] == "DEFAULT"  # the jobs that run torch used them
    # the shared run's folder also holds another preset's results (results/astroclip/, by the AstroCLIP test)
    native = tmp_path / "native"
    top = str(finished / "results")
    shutil.copytree(top, native, ignore=lambda folder, names: ["astroclip"] if folder == top else [])
    proc = subprocess.run([sys.executable, "-m", "samesky.compare", str(native), str(other / "results"),
                           "--spread", str(tmp_path / "spread.csv")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    spread = pd.read_csv(tmp_path / "spread.csv")
    assert spread["within"].all() and len(spread) > 100
    print(proc.stdout.splitlines()[0])  # how many tables were identical and how many within tolerance


def _live_in_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that still run (not zombies), from /proc."""
    from pathlib import Path

    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            live.append(int(stat.parent.name))
    return live


def _modified_after(path, when) -> bool:
    """Whether ``path`` changed after ``when``; False if it is gone (Snakemake removes a job's old log as the
    job starts, so a file listed a moment ago may have been replaced)."""
    try:
        return path.stat().st_mtime > when
    except FileNotFoundError:
        return False


def _slurm_available() -> str:
    """Why the SLURM test cannot run here, or '' if it can (installing Debian's slurm needs root)."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurm is not installed and installing it needs root and apt-get"
    return ""


@pytest.mark.workflow
@pytest.mark.slurm
def test_the_slurm_profile_runs_the_workflow_on_a_real_slurm_with_the_same_tables(finished, tmp_path, repo):
    """A single-node SLURM on this machine (tools/slurm_local.sh): the user's slurm profile, with the job
    status read by squeue (no accounting database here), reruns the embeddings of the test config with GPU
    requests, and from them one pair's scores (its neighbour lists searched in a GPU job) and the probe
    tables; the results equal the local run's, GPU rules went to the gpu partition with --gpus=1, CPU rules
    to the cpu partition without."""
    import yaml

    reason = _slurm_available()
    if reason:
        pytest.skip(reason)
    tool = repo / "tools" / "slurm_local.sh"
    subprocess.run(["bash", str(tool), "install"], check=True, timeout=600)
    cluster = tmp_path / "cluster"
    other = _copy_of(finished, tmp_path / "samesky", DOWNSTREAM_OF_EMBEDDINGS)
    profile = yaml.safe_load((repo / "slurm" / "config.yaml").read_text())
    # no sacct without slurmdbd; a one-node cluster answers at once, so poll it often (the test's speed)
    profile.update({"slurm-status-command": "squeue", "latency-wait": 5, "seconds-between-status-checks": 2,
                    "slurm-init-seconds-before-status-checks": 1})
    (other / "slurm-test").mkdir()
    (other / "slurm-test" / "config.yaml").write_text(yaml.safe_dump(profile))
    targets = ["results/alignment/desi_hsc/scores.csv", "results/tables/probe_r2_test.csv"]
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")}
    started = subprocess.run(["bash", str(tool), "start", str(cluster)], capture_output=True, text=True, timeout=120)
    pids = {}
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pids = {f: int((cluster / f).read_text()) for f in ("slurmctld.pid", "slurmd.pid", "munge/munged.pid")}
        proc = subprocess.run(SNAKEMAKE + [*targets, "--profile", "slurm-test", "--verbose", "--configfile",
                                           "tests/config/test.yaml", "tests/config/slurm.yaml"],
                              cwd=other, env=env, capture_output=True, text=True, timeout=1800)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-5000:]
    finally:
        subprocess.run(["bash", str(tool), "stop", str(cluster)], timeout=120)
    calls = [line.split("sbatch call:", 1)[1].strip() for line in out.splitlines() if "sbatch call:" in line]
    embed = [c for c in calls if "rule_embed_" in c]
    search = [c for c in calls if "rule_search_neighbours_" in c]
    other_rules = [c for c in calls if "rule_embed_" not in c and "rule_search_neighbours_" not in c]
    assert len(embed) == 4 and other_rules  # one embedding job per model size: 3 image models and Specformer
    assert len(search) == 1  # the pair's neighbour lists, searched once
    assert all("-p gpu" in c and "--gpus=1" in c for c in embed + search), embed[0]
    assert all("-p cpu" in c and "--gpus" not in c for c in other_rules), other_rules[0]
    print("GPU rule:", embed[0].split(" --wrap")[0][:600])
    print("CPU rule:", other_rules[0].split(" --wrap")[0][:600])
    for table in targets + ["results/tables/probe_bootstrap.csv", "results/tables/probe_r2_oof.csv"]:
        assert (other / table).read_bytes() == (finished / table).read_bytes(), table
    for pid in pids.values():  # everything it started is down
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not os.path.lexists("/etc/slurm/slurm.conf") or os.path.realpath("/etc/slurm/slurm.conf") != str(
        cluster / "slurm.conf"), "the config link is removed"


def test_dry_run_of_the_adaptation_preset_prepares_each_variants_images_once_for_every_model(workdir):
    """config/adaptation.yaml on the embedded default: one preparation job per (variant, pair, image side),
    whose images every RGB model's embedding job of that variant reads; each variant's pairs aligned once."""
    import yaml

    out = _snakemake(["-n", "--configfile", "config/adaptation.yaml"], workdir)
    counts = _job_counts(out)
    with open(workdir / "config" / "adaptation.yaml") as fh:
        preset = yaml.safe_load(fh)
    variants = [v["name"] for v in preset["preprocessing"]["variants"]]
    assert counts["prepare_variant_images"] == 6 * len(variants)  # HSC in 4 pairs, JWST, Legacy
    assert counts["embed_variant"] == 16 * len(variants) and counts["align_variant"] == 4 * len(variants)
    assert counts["fine_tune"] == len(set(preset["adaptation"]["models"]) | set(preset["adaptation"]["scratch"]))
    assert counts["attention_maps"] == len(preset["adaptation"]["attention"]["models"])
    jobs = out.split("\nrule ")  # each job's block: its inputs and outputs
    shared = f"results/preprocessing/{variants[0]}/images/desi_hsc/hsc/rgb.npy"
    readers = [j for j in jobs if j.startswith("embed_variant") and shared in j.split("output:")[0]]
    makers = [j for j in jobs if j.startswith("prepare_variant_images") and shared in j.split("output:")[1]]
    assert len(makers) == 1 and len(readers) == 16  # prepared once, read by every RGB model
    assert "embed:" not in out.split("Job stats:")[1].split("total")[0]  # the run's own embeddings are reused


@pytest.mark.workflow
def test_the_adaptation_preset_runs_on_the_test_config(finished, tmp_path):
    """tests/config/adaptation.yaml over the finished test run: a variant with every preprocessing path, a
    backbone frozen / fine-tuned / LoRA-adapted, an architecture from scratch and an attention figure; the
    run's own results are read, not recomputed."""
    work = _copy_of(finished, tmp_path / "adaptation")
    configs = [*TEST_RUN, "tests/config/adaptation.yaml"]
    counts = _job_counts(_snakemake(["--cores", "2", *configs], work))
    assert "embed" not in counts and "align_pair" not in counts and counts["embed_variant"] == 3
    tables = work / "results" / "tables"
    conclusions = pd.read_csv(tables / "preprocessing_conclusions.csv")
    assert set(conclusions["variant"]) == {"default", "zscale_crop96"}
    assert conclusions.loc[conclusions["variant"] == "default", "same_as_default"].all()
    scores = pd.read_csv(tables / "preprocessing_alignment.csv")
    own = pd.read_csv(finished / "results" / "alignment" / "desi_hsc" / "scores.csv")
    own = own[own["k"] == 10].set_index(["kind", "model_a", "model_b"])["mknn"]
    default = scores[(scores["variant"] == "default") & (scores["pair"] == "desi_hsc")]
    assert np.allclose(default.set_index(["kind", "model_a", "model_b"])["mknn"].sort_index(), own.sort_index())
    variant = scores[scores["variant"] == "zscale_crop96"]
    assert len(variant) == len(scores[scores["variant"] == "default"]) and (variant["delta_mknn"] != 0).any()
    record = json.loads((work / "results" / "preprocessing" / "zscale_crop96" / "embeddings" / "vit-base" /
                         "desi_hsc" / "hsc.provenance.json").read_text())
    assert record["preprocessing_variant"]["size"] == 96
    assert np.load(work / "results" / "preprocessing" / "zscale_crop96" / "images" / "desi_hsc" / "hsc" / "rgb.npy",
                   mmap_mode="r").shape[1:] == (96, 96, 3)
    morphology = pd.read_csv(tables / "preprocessing_morphology.csv")
    assert set(morphology["variant"]) == {"default", "zscale_crop96"}
    adaptation = pd.read_csv(tables / "adaptation_f1.csv")
    methods = set(zip(adaptation["model"], adaptation["method"]))
    assert {("vit-base", "frozen"), ("vit-base", "full"), ("vit-base", "lora"), ("resnet-18", "lora"),
            ("resnet-18", "scratch"), ("cnn-scratch", "scratch")} <= methods
    lora = adaptation[adaptation["method"] == "lora"].iloc[0]
    assert 0 < lora["params_fraction"] < 0.2 and lora["params_trainable"] < lora["params_total"]
    full = adaptation[adaptation["method"] == "full"].iloc[0]
    assert full["params_fraction"] == 1.0
    record = json.loads((tables / "adaptation_f1.provenance.json").read_text())  # the models and data behind it
    assert {"vit-base", "resnet-18"} <= set(record["models"]) and "morphology_catalogue" in record["datasets"]
    runs = pd.read_csv(tables / "adaptation_f1_runs.csv")
    assert {"precision_smooth_round", "recall_smooth_round", "f1_smooth_round"} <= set(runs.columns)
    figures = work / "results" / "figures"
    for name in ("adaptation_f1", "adaptation_per_class", "attention_vit-base", "preprocessing_alignment",
                 "preprocessing_morphology"):
        assert (figures / f"{name}.pdf").stat().st_size > 1000
    assert "Nothing to be done" in _snakemake(["--cores", "2", *configs], work)
