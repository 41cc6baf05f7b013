"""Released embeddings: files in the Platonic Universe's layout, audited (one deliberately scrambled), and
the alignment rebuilt from them by the workflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from samesky.registry import get_spec
from samesky.released import ReleasedError, audit_file, released_column, released_path, same_spectra, to_embeddings

N = 300
IMAGE_MODELS = [("dinov2", "small"), ("dinov2", "base"), ("astropt", "small"), ("astropt", "base")]


def _lists(x):
    return pa.array(list(x.astype(np.float32)), type=pa.list_(pa.float32()))


def write_released(root, scrambled=(), with_ids=(), n=N, seed=0, models=IMAGE_MODELS):
    """``{mode}/{model}_{size}.parquet`` as platonic-universe's experiments.py writes them (polars there,
    pyarrow here: one list column per side, named ``{model}_{size without leading zeros}_{survey}``). Every model sees the
    same objects through its own random projection; ``scrambled`` (mode, family, size) files get one side's
    rows shuffled, as num_workers > 0 did; ``with_ids`` files also carry object ids."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 6))
    spectra = latent @ rng.normal(size=(6, 24)) + 0.3 * rng.normal(size=(n, 24))  # one precomputed set
    for mode in ("jwst", "desi"):
        (root / mode).mkdir(parents=True, exist_ok=True)
        for family, size in models:
            spec = get_spec(family, size)
            hsc = latent @ rng.normal(size=(6, 32)) + 0.3 * rng.normal(size=(n, 32))
            other = spectra if mode == "desi" else latent @ rng.normal(size=(6, 32)) + 0.3 * rng.normal(size=(n, 32))
            if (mode, family, size) in scrambled:
                other = other[rng.permutation(n)]
            columns = {released_column(spec, "hsc"): _lists(hsc), released_column(spec, mode): _lists(other)}
            if (mode, family, size) in with_ids:
                columns["object_id"] = pa.array([f"hsc{i}" for i in range(n)])
            pq.write_table(pa.table(columns), root / released_path(mode, spec))
    return root


def test_the_paper_codes_file_and_column_names():
    small = get_spec("astropt", "small")
    assert released_path("jwst", small) == "jwst/astropt_015M.parquet"
    assert released_column(small, "hsc") == "astropt_15m_hsc"  # size.lstrip('0'), lower case
    assert released_path("desi", get_spec("dinov2", "giant")) == "desi/dino_giant.parquet"
    assert released_column(get_spec("convnextv2", "nano"), "legacysurvey") == "convnext_nano_legacysurvey"


def test_the_audit_refuses_a_scrambled_file_and_passes_paired_ones(tmp_path):
    root = write_released(tmp_path, scrambled={("jwst", "dinov2", "base")}, with_ids={("jwst", "astropt", "small")})
    rows = {}
    for family, size in IMAGE_MODELS:
        spec = get_spec(family, size)
        rows[spec.name] = audit_file(root / released_path("jwst", spec), "jwst_hsc", spec, "hsc", "jwst", k=10,
                                     n_permutations=100, alpha=0.01, seed=0)
    assert rows["dinov2-base"]["verdict"].startswith("NOT paired")
    assert rows["dinov2-base"]["p_value"] > 0.01
    for name in ("dinov2-small", "astropt-small", "astropt-base"):
        assert rows[name]["verdict"] == "paired" and rows[name]["mknn"] > 5 * rows[name]["null_q99"], rows[name]
    assert rows["astropt-small"]["rows_joined_by"] == "object id" and rows["dinov2-small"]["rows_joined_by"] == "position"
    ids, emb = to_embeddings(root / "jwst/astropt_015M.parquet", get_spec("astropt", "small"), "jwst")
    assert ids[:2] == ["hsc0", "hsc1"] and emb.shape == (N, 32)
    assert to_embeddings(root / "jwst/dino_small.parquet", get_spec("dinov2", "small"), "hsc")[0][:2] == [
        "row-000000", "row-000001"]


def test_spectroscopic_files_must_carry_the_same_spectra_in_the_same_order(tmp_path):
    root = write_released(tmp_path, scrambled={("desi", "astropt", "base")})
    specs = {f"{f}-{s}": get_spec(f, s) for f, s in IMAGE_MODELS}
    same = same_spectra({m: root / released_path("desi", spec) for m, spec in specs.items()}, specs, "desi")
    assert same == {"dinov2-small": True, "dinov2-base": True, "astropt-small": True, "astropt-base": False}


def test_a_file_in_another_layout_is_named(tmp_path):
    (tmp_path / "jwst").mkdir()
    pq.write_table(pa.table({"embeddings": _lists(np.ones((4, 2)))}), tmp_path / "jwst" / "dino_small.parquet")
    with pytest.raises(ReleasedError, match=r"dino_small.parquet: no column\(s\) \['dino_small_hsc', 'dino_small_jwst'\]; "
                                            r"has \['embeddings'\]"):
        audit_file(tmp_path / "jwst" / "dino_small.parquet", "jwst_hsc", get_spec("dinov2", "small"), "hsc", "jwst",
                   10, 50, 0.01, 0)


def _snakemake(work, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/released.yaml",
                           "local.yaml", *args], cwd=work, capture_output=True, text=True, timeout=900,
                          env={**os.environ})


def test_the_workflow_rebuilds_tables_1_2_and_figure_1_from_released_files_refusing_a_scrambled_one(tmp_path, repo):
    work = tmp_path / "samesky"
    shutil.copytree(repo, work, ignore=shutil.ignore_patterns(".venv", "results", "resources", ".snakemake", ".git",
                                                              "*.egg-info"))
    # a newer family of the peer's code (issue 30) beside the paper's: clip_{base,large} files
    write_released(work / "resources" / "pu-embeddings", scrambled={("jwst", "dinov2", "base")},
                   models=[*IMAGE_MODELS, ("clip", "base"), ("clip", "large")])
    local = {
        "released_embeddings": {"source": "resources/pu-embeddings", "revision": "main",
                                "audit": {"k": 10, "n_permutations": 100, "alpha": 0.01}},
        "pairs": [{"name": "jwst_hsc", "dataset": "jwst_hsc_crossmatched", "reference_survey": "hsc",
                   "other_survey": "jwst"},
                  {"name": "desi_hsc", "dataset": "desi_hsc_crossmatched", "reference_survey": "hsc",
                   "other_survey": "desi"}],
        "models": [{"family": "dinov2", "sizes": ["small", "base"]}, {"family": "astropt", "sizes": ["small", "base"]},
                   {"family": "clip", "sizes": ["base", "large"]}, {"family": "specformer", "sizes": ["base"]}],
        "alignment": {"n_permutations": 50, "threads": 1, "hsc_pair": "jwst_hsc",
                      "size_curves": {"seeds": [0], "smallest": 64, "decomposition_model": "dinov2-small"}},
    }
    (work / "local.yaml").write_text(yaml.safe_dump(local))
    failed = _snakemake(work)
    assert failed.returncode != 0
    assert ("embeddings/jwst_hsc/dinov2-base.parquet (jwst/dino_base.parquet): refused, its rows are not paired "
            "(NOT paired (score inside the null") in failed.stderr
    audit = pd.read_csv(work / "results/released/tables/released_audit.csv")
    assert len(audit) == 12 and (audit["verdict"] == "paired").sum() == 11
    assert audit.loc[audit["model"] == "dinov2-base", "pair"].tolist() == ["jwst_hsc", "desi_hsc"]

    # the reviewer leaves the scrambled model out: the tables come out of the eleven good files
    local["models"][0]["sizes"] = ["small"]
    (work / "local.yaml").write_text(yaml.safe_dump(local))
    done = _snakemake(work)
    assert done.returncode == 0, done.stderr[-3000:]
    table2 = pd.read_csv(work / "results/released/tables/table2_crossmodal.csv")
    assert (work / "results/released/figures/figure1_crossmodal.pdf").stat().st_size > 0
    assert (work / "results/released/tables/table1_intramodal.csv").exists()
    scores = pd.read_csv(work / "results/released/alignment/jwst_hsc/scores.csv")
    crossmodal = scores[(scores["kind"] == "crossmodal") & (scores["k"] == 10)]
    assert (crossmodal["p_value"] < 0.05).all() and len(table2) > 0
    assert set(table2.loc[table2["family"] == "clip", "size"]) == {"base", "large"}  # read like the paper's families
