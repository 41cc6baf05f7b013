"""The Snakemake workflow itself: dry runs of both presets, lint, and a small end-to-end run."""

import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from samesky.io import load_dataset_dir

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(args, cwd, timeout=900):
    proc = subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _job_counts(output: str) -> dict:
    lines = output.split("Job stats:")[1].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, repo):
    """A copy of the repository, so the run leaves the developer's results/ alone."""
    dest = tmp_path_factory.mktemp("repo") / "samesky"
    shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(".venv", "results", ".snakemake", ".git", "*.egg-info"))
    return dest


def test_dry_run_of_the_embedded_default(workdir):
    counts = _job_counts(_snakemake(["-n"], workdir))
    # 16 image model sizes x 6 image sides (HSC in 4 pairs, JWST, Legacy) + Specformer x 2 spectrum sides
    assert counts == {"mini_universe": 1, "download_dataset": 5, "crossmatch": 4, "crossmatch_summary": 1,
                      "crossmatch_truth_recovery": 1, "fetch_model": 17, "resample_spectra": 1, "embed": 98,
                      "embedding_summary": 1, "align_pair": 4, "alignment_tables": 1, "size_curves": 4,
                      "size_curve_figures": 1, "all": 1}


def test_dry_run_of_the_paper_preset(workdir):
    counts = _job_counts(_snakemake(["-n", "--configfile", "config/paper.yaml"], workdir))
    assert counts == {"download_dataset": 4, "crossmatch": 4, "crossmatch_summary": 1, "fetch_model": 17,
                      "resample_spectra": 1, "embed": 98, "embedding_summary": 1, "align_pair": 4,
                      "alignment_tables": 1, "size_curves": 4, "size_curve_figures": 1, "all": 1}


def test_paper_preset_has_one_embedding_job_per_model_size_pair_and_side(workdir):
    dry = _snakemake(["-n", "--configfile", "config/paper.yaml"], workdir)
    jobs = set(re.findall(r"results/paper/embeddings/(\w+)/(\w+)/([\w-]+)\.parquet", dry))
    image_models = 16
    expected = {(pair, side) for pair in ("jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc")
                for side in ("hsc", pair.split("_")[0])}
    assert {(p, s) for p, s, _ in jobs} == expected
    for pair, side in expected:
        models = {m for p, s, m in jobs if (p, s) == (pair, side)}
        assert len(models) == (1 if side in ("desi", "sdss") else image_models), (pair, side, models)
    assert "gpu=1" in dry  # the paper preset's embedding jobs ask for a GPU


@pytest.mark.parametrize("extra", [[], ["--configfile", "config/paper.yaml"]])
def test_lint_is_clean(workdir, extra):
    out = _snakemake(["--lint"] + extra, workdir)
    assert "Congratulations, your workflow is in a good condition!" in out


@pytest.mark.workflow
def test_end_to_end_on_a_small_mini_universe(workdir):
    _snakemake(["--cores", "2", "--configfile", "tests/config/test.yaml"], workdir)
    results = workdir / "results"
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
    assert (scores.loc[scores["kind"] == "crossmodal", "p_value"] < 0.05).mean() > 0.8
    assert set(pd.read_csv(results / "tables" / "table1_intramodal.csv")["family"]) == {"vit"}
    assert (results / "figures" / "figure1_crossmodal.pdf").stat().st_size > 0
    assert "\\begin{tabular}" in (results / "tables" / "table2_crossmodal.tex").read_text()
    cka = pd.read_csv(results / "tables" / "crossmodal_cka.csv")
    assert len(cka) == len(models) and cka[["jwst", "legacysurvey", "desi", "sdss"]].notna().all().all()
    curves = pd.read_csv(results / "tables" / "size_curves.csv")
    assert set(curves["pair"]) == {"jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"}
    assert curves["class_a"].notna().all() and set(curves["k"]) == {1, 10}
    for rule_log in ["mini_universe.log", "crossmatch/desi_hsc.log", "download_dataset/hsc.log",
                     "embed/desi_hsc/desi/specformer-base.log", "resample_spectra/sdss_hsc.log"]:
        assert (results / "logs" / rule_log).stat().st_size > 0
    # a second run finds nothing to do
    assert "Nothing to be done" in _snakemake(["--cores", "2", "--configfile", "tests/config/test.yaml"], workdir)
