"""Released embeddings: files in the Platonic Universe's layout, audited (one deliberately scrambled), and
the alignment rebuilt from them by the workflow."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from samesky.registry import get_spec
from samesky.released import (NOT_RELEASED, ReleasedError, audit_file, fetch_released, list_repository,
                              released_column, released_meta, released_name, released_path, resolve, same_spectra,
                              to_embeddings, to_layers)

from conftest import copy_repo

N = 300
IMAGE_MODELS = [("dinov2", "small"), ("dinov2", "base"), ("astropt", "small"), ("astropt", "base")]


def _lists(x):
    return pa.array(list(x.astype(np.float32)), type=pa.list_(pa.float32()))


def write_released(root, scrambled=(), with_ids=(), n=N, seed=0, models=IMAGE_MODELS, names=None, absent=(),
                   layerwise=None):
    """The released files as platonic-universe's experiments.py writes them (polars there, pyarrow here:
    one list column per side, named ``{model}_{size without leading zeros}_{survey}``), at
    ``{mode}/{model}_{size}.parquet`` unless ``names`` gives a (mode, family, size) another name the peer's
    code uses. Every model sees the same objects through its own random projection; ``scrambled`` files
    get one side's rows shuffled, as num_workers > 0 did; ``with_ids`` files also carry object ids;
    ``absent`` ones are not written. ``layerwise``: a second folder given every block (3 a side) as the
    peer's extract_layerwise.py writes them, ``{mode}/{model}_{size}_blocks_layerwise.parquet``."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 6))
    spectra = latent @ rng.normal(size=(6, 24)) + 0.3 * rng.normal(size=(n, 24))  # one precomputed set
    for mode in ("jwst", "desi"):
        for family, size in models:
            spec = get_spec(family, size)
            hsc = latent @ rng.normal(size=(6, 32)) + 0.3 * rng.normal(size=(n, 32))
            other = spectra if mode == "desi" else latent @ rng.normal(size=(6, 32)) + 0.3 * rng.normal(size=(n, 32))
            if (mode, family, size) in scrambled:
                other = other[rng.permutation(n)]
            columns = {released_column(spec, "hsc"): _lists(hsc), released_column(spec, mode): _lists(other)}
            if (mode, family, size) in with_ids:
                columns["object_id"] = pa.array([f"hsc{i}" for i in range(n)])
            if (mode, family, size) not in absent:
                alias, rsize = released_name(spec)
                path = root / (names or {}).get((mode, family, size), "{mode}/{alias}_{size}.parquet").format(
                    mode=mode, alias=alias, size=rsize)
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.table(columns), path)
            if layerwise is not None:
                alias, rsize = released_name(spec)
                blocks = {f"blocks.{i}_hsc": _lists(hsc + rng.normal(size=hsc.shape) * (3 - i)) for i in range(3)}
                if mode == "desi":
                    blocks["desi_embedding"] = _lists(spectra)
                else:
                    blocks.update({f"blocks.{i}_{mode}": _lists(other + rng.normal(size=other.shape) * (3 - i))
                                   for i in range(3)})
                path = layerwise / mode / f"{alias}_{rsize}_blocks_layerwise.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.table(blocks), path)
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
    same = same_spectra({m: root / released_path("desi", spec) for m, spec in specs.items()},
                        {m: released_column(spec, "desi") for m, spec in specs.items()})
    assert same == {"dinov2-small": True, "dinov2-base": True, "astropt-small": True, "astropt-base": False}


def test_a_file_in_another_layout_is_named(tmp_path):
    (tmp_path / "jwst").mkdir()
    pq.write_table(pa.table({"embeddings": _lists(np.ones((4, 2)))}), tmp_path / "jwst" / "dino_small.parquet")
    with pytest.raises(ReleasedError, match=r"dino_small.parquet: no column\(s\) \['dino_small_hsc', 'dino_small_jwst'\]; "
                                            r"has \['embeddings'\]"):
        audit_file(tmp_path / "jwst" / "dino_small.parquet", "jwst_hsc", get_spec("dinov2", "small"), "hsc", "jwst",
                   10, 50, 0.01, 0)


GIO = "{mode}_gio/{mode}_{alias}_{size}.parquet"
PREFIXED = "{mode}/{mode}_{alias}_{size}.parquet"


def test_the_listing_resolves_every_name_the_peers_code_uses_and_names_what_it_lacks(tmp_path):
    root = write_released(tmp_path / "repo", names={("desi", "dinov2", "small"): PREFIXED, ("jwst", "dinov2", "base"): GIO},
                          absent={("jwst", "astropt", "base")})
    listing = list_repository(str(root), "main")
    assert listing["revision_resolved"].startswith("sha256:") and "desi/desi_dino_small.parquet" in listing["files"]
    found = {(mode, f, s): resolve(listing["files"], mode, get_spec(f, s), "hsc", mode)
             for mode in ("jwst", "desi") for f, s in IMAGE_MODELS}
    assert found["desi", "dinov2", "small"]["paths"] == {"hsc": "desi/desi_dino_small.parquet",
                                                          "desi": "desi/desi_dino_small.parquet"}
    assert found["jwst", "dinov2", "base"]["name"] == GIO and found["jwst", "dinov2", "base"]["paths"]["jwst"] == \
        "jwst_gio/jwst_dino_base.parquet"
    assert found["jwst", "dinov2", "small"]["name"] == "{mode}/{alias}_{size}.parquet"
    missing = found["jwst", "astropt", "base"]
    assert missing["status"] == NOT_RELEASED and missing["paths"] == {}
    assert missing["tried"][:3] == ["jwst/astropt_095M.parquet", "jwst/jwst_astropt_095M.parquet",
                                    "jwst_gio/jwst_astropt_095M.parquet"]

    # fetched, every variant comes out in one layout; a model not released is a file with no rows, saying so
    out = tmp_path / "out"
    fetch_released(listing, found["desi", "dinov2", "small"], get_spec("dinov2", "small"), "hsc", "desi", out / "a.parquet")
    assert released_meta(out / "a.parquet")["paths"]["desi"] == "desi/desi_dino_small.parquet"
    assert to_embeddings(out / "a.parquet", get_spec("dinov2", "small"), "desi")[1].shape == (N, 24)
    fetch_released(listing, missing, get_spec("astropt", "base"), "hsc", "jwst", out / "b.parquet")
    row = audit_file(out / "b.parquet", "jwst_hsc", get_spec("astropt", "base"), "hsc", "jwst", 10, 50, 0.01, 0)
    assert row["rows"] == 0 and row["verdict"].startswith("not released (tried jwst/astropt_095M.parquet")


def test_one_side_a_file_and_columns_named_otherwise_are_read(tmp_path):
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(200, 5))
    root = tmp_path / "repo"
    (root / "cosmosweb").mkdir(parents=True)
    for side in ("hsc", "jwst"):  # the cosmosweb files: one telescope a file, one `embeddings` column, 015M
        name = f"cosmosweb/{side}_embeddings_cosmosweb-hsc-jwst-high-snr-pil2_astropt_015M_45000.parquet"
        pq.write_table(pa.table({"embeddings": _lists(latent @ rng.normal(size=(5, 16)))}), root / name)
    (root / "jwst").mkdir()  # a two-column file whose columns end in the side's survey, named otherwise
    pq.write_table(pa.table({"dinov2_s_hsc": _lists(latent @ rng.normal(size=(5, 8))),
                             "dinov2_s_jwst": _lists(latent @ rng.normal(size=(5, 8)))}), root / "jwst/dino_small.parquet")
    listing = list_repository(str(root), "main")
    small = get_spec("astropt", "small")
    found = resolve(listing["files"], "cosmosweb", small, "hsc", "jwst")
    assert found["layout"] == "one side a file" and sorted(found["paths"]) == ["hsc", "jwst"]
    fetch_released(listing, found, small, "hsc", "jwst", tmp_path / "cw.parquet")
    row = audit_file(tmp_path / "cw.parquet", "cosmosweb_hsc", small, "hsc", "jwst", 10, 200, 0.01, 0)
    assert row["verdict"] == "paired" and row["rows"] == 200 and "hsc_embeddings_cosmosweb" in row["repository_files"]

    dino = get_spec("dinov2", "small")
    fetch_released(listing, resolve(listing["files"], "jwst", dino, "hsc", "jwst"), dino, "hsc", "jwst",
                   tmp_path / "d.parquet")
    assert pq.read_schema(tmp_path / "d.parquet").names == ["dino_small_hsc", "dino_small_jwst"]
    pq.write_table(pa.table({"a_jwst": _lists(np.ones((3, 2))), "b_jwst": _lists(np.ones((3, 2))),
                             "c_hsc": _lists(np.ones((3, 2)))}), root / "jwst/dino_small.parquet")
    with pytest.raises(ReleasedError, match=r"jwst/dino_small.parquet: cannot tell the jwst side's column \(no "
                                            r"'dino_small_jwst', and 2 ending _jwst\)"):
        fetch_released(listing, resolve(listing["files"], "jwst", dino, "hsc", "jwst"), dino, "hsc", "jwst",
                       tmp_path / "e.parquet")


def test_layerwise_files_resolve_audit_and_read_block_by_block(tmp_path):
    layerwise = tmp_path / "platonic-embeddings"
    write_released(tmp_path / "repo", models=[("dinov2", "small")], layerwise=layerwise)
    listing = list_repository(str(layerwise), "main")
    spec = get_spec("dinov2", "small")
    for mode, other_blocks in (("jwst", ["blocks.0", "blocks.1", "blocks.2"]), ("desi", ["desi_embedding"])):
        found = resolve(listing["files"], mode, spec, "hsc", mode, layerwise=True)
        assert found["paths"]["hsc"] == f"{mode}/dino_small_blocks_layerwise.parquet"
        fetch_released(listing, found, spec, "hsc", mode, tmp_path / f"{mode}.layers.parquet")
        row = audit_file(tmp_path / f"{mode}.layers.parquet", f"{mode}_hsc", spec, "hsc", mode, 10, 200, 0.01, 0,
                         layerwise=True)
        assert row["verdict"] == "paired" and row["kind"] == "layers", row
        ids, names, arrays = to_layers(tmp_path / f"{mode}.layers.parquet", "hsc", "hsc", mode)
        assert names == ["blocks.0", "blocks.1", "blocks.2"] and len(ids) == N and arrays[0].shape == (N, 32)
        assert to_layers(tmp_path / f"{mode}.layers.parquet", mode, "hsc", mode)[1] == other_blocks


def test_strict_stops_at_a_file_not_released_and_names_what_was_tried(tmp_path):
    from samesky.steps import STEPS

    root = write_released(tmp_path / "repo", models=[("dinov2", "small")], absent={("desi", "dinov2", "small")})
    requests = [{"pair": f"{m}_hsc", "model": "dinov2-small", "kind": "final", "mode": m, "reference": "hsc",
                 "other": m} for m in ("jwst", "desi")]
    settings = {"released_embeddings": {"source": str(root), "revision": "main", "strict": True,
                                        "layerwise": None},
                "alignment": {"layers": "final"}, "requests": requests}
    with pytest.raises(ReleasedError, match=r"not in the repository at this revision:\n  desi_hsc dinov2-small "
                                            r"\(final\): tried desi/dino_small.parquet, desi/desi_dino_small.parquet"):
        STEPS["list_released"]({}, {"listing": str(tmp_path / "listing.json")}, settings)
    settings["released_embeddings"]["strict"] = False
    STEPS["list_released"]({}, {"listing": str(tmp_path / "listing.json")}, settings)
    listing = yaml.safe_load((tmp_path / "listing.json").read_text())
    assert [r["status"] for r in listing["resolutions"]] == ["released", NOT_RELEASED]


def _snakemake(work, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/released.yaml",
                           "local.yaml", *args], cwd=work, capture_output=True, text=True, timeout=900,
                          env={**os.environ})


def test_the_workflow_rebuilds_tables_1_2_and_figure_1_from_released_files_refusing_a_scrambled_one(tmp_path):
    work = copy_repo(tmp_path / "samesky")
    # a newer family of the peer's code (issue 30) beside the paper's: clip_{base,large} files
    # one file under another of the peer's names, one not released at all, and the layerwise repository
    write_released(work / "resources" / "pu-embeddings", scrambled={("jwst", "dinov2", "base")},
                   models=[*IMAGE_MODELS, ("clip", "base"), ("clip", "large")],
                   names={("desi", "dinov2", "small"): PREFIXED}, absent={("desi", "clip", "large")},
                   layerwise=work / "resources" / "platonic-embeddings")
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
    assert len(audit) == 12 and (audit["verdict"] == "paired").sum() == 10
    assert audit.loc[audit["model"] == "dinov2-base", "pair"].tolist() == ["jwst_hsc", "desi_hsc"]
    absent = audit[audit["verdict"].str.startswith("not released")]
    assert absent[["pair", "model"]].values.tolist() == [["desi_hsc", "clip-large"]]
    found = audit.set_index(["pair", "model"])["repository_files"]
    assert found["desi_hsc", "dinov2-small"] == "desi/desi_dino_small.parquet"

    # the reviewer leaves the scrambled model out: the tables come out of the ten good files, the file
    # not released noted under them; the layer grids read the layerwise repository, audited too
    local["models"][0]["sizes"] = ["small"]
    local["alignment"].update({"layers": "all", "layer_permutations": 20})
    local["released_embeddings"]["layerwise"] = {"source": "resources/platonic-embeddings", "revision": "main"}
    (work / "local.yaml").write_text(yaml.safe_dump(local))
    done = _snakemake(work)
    assert done.returncode == 0, done.stderr[-3000:]
    audit = pd.read_csv(work / "results/released/tables/released_audit.csv", keep_default_na=False)
    layers = audit[audit["kind"] == "layers"]
    assert len(layers) == 10 and (layers["verdict"] == "paired").all()
    assert "Not released at this revision, so not in the table: desi_hsc: clip-large." in \
        (work / "results/released/tables/table2_crossmodal.md").read_text()
    grids = pd.read_csv(work / "results/released/alignment/jwst_hsc/layer_grids.csv")
    assert grids["layer_a"].nunique() == 3 and len(grids) > 0
    table2 = pd.read_csv(work / "results/released/tables/table2_crossmodal.csv")
    assert (work / "results/released/figures/figure1_crossmodal.pdf").stat().st_size > 0
    assert (work / "results/released/tables/table1_intramodal.csv").exists()
    scores = pd.read_csv(work / "results/released/alignment/jwst_hsc/scores.csv")
    crossmodal = scores[(scores["kind"] == "crossmodal") & (scores["k"] == 10)]
    assert (crossmodal["p_value"] < 0.05).all() and len(table2) > 0
    assert set(table2.loc[table2["family"] == "clip", "size"]) == {"base", "large"}  # read like the paper's families
