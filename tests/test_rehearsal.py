"""The first real run, rehearsed: the paper and released presets over HTTP, from a local Hub.

A server on 127.0.0.1 (tests/hub_server.py) speaks the Hub's API to ``huggingface_hub`` and ``datasets``
(``HF_ENDPOINT`` points at it) and serves small repositories in their real layouts (tests/rehearsal_hub.py):
the four Smith42 sets in Parquet shards, PROVABGS, each model's repository in its released format, the
released embeddings under the peer's naming variants, and AstroCLIP's HDF5 and GZD-5's CSV by URL. The
paper preset, with an overlay that only points at the server and shrinks N (tests/config/rehearsal.yaml),
runs end to end through its own download path; then the released preset; then a repository removed makes
the preflight fail with its one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_repo, validated
from hub_server import LocalHub

pytestmark = [pytest.mark.workflow, pytest.mark.rehearsal]
OVERLAY = ["--configfile", "config/paper.yaml", "tests/config/rehearsal.yaml", "hub.yaml"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The local Hub's folders, and the server on them for the module's tests."""
    from snakemake.utils import update_config

    from rehearsal_hub import build_hub
    from samesky.registry import specs_of

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for overlay in ("config/paper.yaml", "tests/config/rehearsal.yaml"):
        update_config(config, yaml.safe_load((REPO / overlay).read_text()))
    config = validated(config)
    root = tmp_path_factory.mktemp("hub")
    rows = build_hub(root, list(specs_of(config).values()), validated(yaml.safe_load(
        (REPO / "config.yaml").read_text()))["mini_universe"])
    with LocalHub(root) as server:
        server.rows = rows
        yield server


@pytest.fixture(scope="module")
def work(tmp_path_factory, hub):
    """A copy of the repository whose overlay names the server's URLs (the HDF5 and the CSV)."""
    dest = copy_repo(tmp_path_factory.mktemp("repo") / "samesky")
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for d in paper["datasets"]:
        if d.get("format") == "astroclip_h5":
            d["source"] = f"{hub.url}/files/~flanusse/astroclip_desi.1.1.5.h5"
    (dest / "hub.yaml").write_text(yaml.safe_dump({
        "datasets": paper["datasets"],
        "downstream": {"morphology": {"catalogue": {"source": "file",
                                                    "path": f"{hub.url}/files/gz_decals_volunteers_5.csv"}}}}))
    return dest


def _snakemake(work, hub, *args):
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(work / ".hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=1800)


def test_the_paper_preset_runs_end_to_end_over_http_after_its_preflight_passes(work, hub):
    checked = _snakemake(work, hub, "preflight", "--cores", "1", *OVERLAY)
    assert checked.returncode == 0, checked.stderr[-4000:]
    report = (work / "results" / "rehearsal" / "preflight.md").read_text()
    assert "**No problem found**" in report and "| convnextv2-nano | facebook/convnextv2-nano-22k-224 | main -> " in report
    # the cost estimate, from the rows the server's Parquet footers report
    lines = report.splitlines()
    head = next(line for line in lines if line.startswith("| dataset | source |"))
    cells = [dict(zip(head.strip("| ").split(" | "), line.strip("| ").split(" | "))) for line in lines
             if line.startswith("| ") and "_crossmatched |" in line]
    assert {c["dataset"]: c["rows at revision"] for c in cells} == {name: str(n) for name, n in hub.rows.items()}
    assert "## What the run will cost (estimate: samesky.cost)" in report and "| embed | 9 | " in report

    done = _snakemake(work, hub, "--cores", "2", *OVERLAY)
    assert done.returncode == 0, done.stderr[-4000:]
    results = work / "results" / "rehearsal"
    for table in ("table1_intramodal.md", "table2_crossmodal.csv", "probe_r2_test.csv", "probe_bootstrap.csv",
                  "morphology_f1.csv", "redshift_probe.csv", "similarity_recall.csv"):
        assert len(pd.read_csv(results / "tables" / table, sep="|" if table.endswith(".md") else ",")) > 0, table
    assert (results / "figures" / "figure1_crossmodal.pdf").stat().st_size > 0
    table2 = pd.read_csv(results / "tables" / "table2_crossmodal.csv")
    assert {"dinov2", "convnextv2", "astropt", "vit"} <= set(table2["family"])
    # everything came over HTTP at a resolved revision: the records name the server's commits
    record = json.loads((results / "tables" / "alignment_tables.provenance.json").read_text())
    commit = hub.repo("datasets", "Smith42/desi_hsc_crossmatched").sha
    assert record["datasets"]["desi_hsc_crossmatched"]["revision_resolved"] == commit
    assert record["datasets"]["desi_hsc_crossmatched"]["n_rows"] == hub.rows["desi_hsc_crossmatched"]
    assert record["models"]["convnextv2-nano"]["weights_format"] == "pytorch .bin"
    assert record["models"]["dinov2-small"]["revision"] == hub.repo("models", "facebook/dinov2-with-registers-small").sha
    assert any(r.startswith("GET /datasets/Smith42/desi_hsc_crossmatched/resolve/") and r.endswith(".parquet")
               for r in hub.requests)
    assert any(r == "GET /files/gz_decals_volunteers_5.csv" for r in hub.requests)


def test_the_released_preset_rebuilds_its_tables_over_http(work, hub):
    local = {"results": "results/released_rehearsal", "resources": "resources/released_rehearsal",
             "released_embeddings": {"audit": {"k": 10, "n_permutations": 100, "alpha": 0.01}},
             "pairs": [{"name": "jwst_hsc", "dataset": "jwst_hsc_crossmatched", "reference_survey": "hsc",
                        "other_survey": "jwst"},
                       {"name": "desi_hsc", "dataset": "desi_hsc_crossmatched", "reference_survey": "hsc",
                        "other_survey": "desi"}],
             "models": [{"family": "dinov2", "sizes": ["small", "base", "large"]},
                        {"family": "astropt", "sizes": ["small", "base"]}, {"family": "specformer", "sizes": ["base"]}],
             "alignment": {"n_permutations": 50, "threads": 1, "hsc_pair": "jwst_hsc",
                           "size_curves": {"seeds": [0], "smallest": 32, "decomposition_model": "dinov2-small"},
                           "conditional": {"min_bin_objects": 10, "n_permutations": 20, "n_bootstrap": 100},
                           "metrics": {"n_permutations": 20, "n_permutations_matrix": 5, "max_rows": 200,
                                       "rsa_rows": 100, "size_curve_seeds": [0]}}}
    (work / "released_local.yaml").write_text(yaml.safe_dump(local))
    done = _snakemake(work, hub, "--cores", "2", "--configfile", "config/released.yaml", "released_local.yaml")
    assert done.returncode == 0, done.stderr[-4000:]
    audit = pd.read_csv(work / "results" / "released_rehearsal" / "tables" / "released_audit.csv")
    found = audit.set_index(["pair", "model"])
    assert found.loc[("desi_hsc", "dinov2-small"), "repository_files"] == "desi/desi_dino_small.parquet"
    assert found.loc[("jwst_hsc", "dinov2-large"), "verdict"].startswith("not released")
    assert (audit["verdict"] == "paired").sum() == 8
    note = (work / "results" / "released_rehearsal" / "tables" / "table2_crossmodal.md").read_text()
    assert "Not released at this revision, so not in the table: jwst_hsc: dinov2-large; desi_hsc: dinov2-large." in note
    listing = json.loads((work / "resources" / "released_rehearsal" / "embeddings" / "released_listing.json").read_text())
    assert listing["repositories"]["final"]["revision_resolved"] == hub.repo("datasets", "UniverseTBD/pu-embeddings").sha


def test_a_repository_gone_from_the_hub_fails_the_preflight_with_its_line(work, hub):
    repo = hub.root / "models" / "facebook" / "dinov2-with-registers-small"
    moved = hub.root / "_gone"
    shutil.move(repo, moved)
    try:
        failed = _snakemake(work, hub, "preflight", "--cores", "1", *OVERLAY)
    finally:
        shutil.move(moved, repo)
    assert failed.returncode != 0
    assert ("1 problem(s) (report: results/rehearsal/preflight.md):\nmodel dinov2-small: repository "
            "facebook/dinov2-with-registers-small@main: cannot list its files: ") in failed.stderr


def test_the_parents_preset_crossmatches_mmu_copies_here_and_runs_the_analyses_that_need_positions(work, hub):
    """config/parents.yaml over full local copies in MMU's HDF5 layout: the preflight counts their rows and
    the pairs the crossmatch will make, `snakemake -n` plans it, and the run gives every pair separations
    and runs the morphology match and the conditional alignment's sky regions and environment."""
    parents = yaml.safe_load((REPO / "config" / "parents.yaml").read_text())
    for d in parents["datasets"]:
        if d.get("format") == "mmu_hdf5":
            d["source"] = str(hub.root / "mmu" / d["survey"])
            d["config_name"] = {"jwst": "*", "sdss": "*"}.get(d["survey"], d["config_name"])
        elif d.get("format") == "astroclip_h5":
            d["source"] = f"{hub.url}/files/~flanusse/astroclip_desi.1.1.5.h5"
    local = {"results": "results/parents_rehearsal", "resources": "resources/parents_rehearsal",
             "datasets": parents["datasets"],
             "downstream": {"morphology": {"catalogue": {"source": "file",
                                                         "path": f"{hub.url}/files/gz_decals_volunteers_5.csv"}}}}
    (work / "parents_hub.yaml").write_text(yaml.safe_dump(local))
    overlay = ["--configfile", "config/paper.yaml", "config/parents.yaml", "tests/config/rehearsal.yaml",
               "parents_hub.yaml"]
    planned = _snakemake(work, hub, "-n", "--cores", "2", *overlay)
    assert planned.returncode == 0, planned.stderr[-4000:]
    assert "crossmatch" in planned.stdout and "download_dataset" in planned.stdout
    checked = _snakemake(work, hub, "preflight", "--cores", "1", *overlay)
    assert checked.returncode == 0, checked.stderr[-4000:]
    results = work / "results" / "parents_rehearsal"
    report = (results / "preflight.md").read_text()
    assert "pair desi_hsc: the crossmatch will pair " in report and "one-to-one, as the run will" in report

    targets = [f"results/parents_rehearsal/{t}" for t in (
        "crossmatch/summary.csv", "tables/morphology_f1.csv", "tables/conditional_alignment.csv")]
    done = _snakemake(work, hub, *targets, "--cores", "2", *overlay)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = pd.read_csv(results / "crossmatch" / "summary.csv").set_index("pair")
    aligned = ["jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc"]
    assert (summary.loc[aligned, "method"] == "crossmatch").all()
    assert (summary.loc[aligned, "matched"] > 50).all()
    assert (summary.loc[aligned, "max_separation_arcsec"] <= 1.0).all()
    planned_pairs = int(report.split("pair desi_hsc: the crossmatch will pair ")[1].split()[0])
    assert summary.loc["desi_hsc", "matched"] + summary.loc["desi_hsc", "dropped_redshift_warning"] == planned_pairs
    assert len(pd.read_csv(results / "tables" / "morphology_f1.csv")) > 0
    conditional = pd.read_csv(results / "tables" / "conditional_alignment.csv")
    positional = conditional[conditional["covariate"].isin(["environment", "sky_region"]) & ~conditional["skipped"]]
    assert set(positional["pair"]) == set(aligned)  # every pair has positions: none skipped for want of them
