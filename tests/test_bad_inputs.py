"""The bad-input battery: each bad input gets a named error or a documented, logged handling, and
nothing already written is lost. Every case runs the functions the workflow's rules call, on mini
universe data in the real schema (the README lists the cases and what each gets)."""

import logging
import os

import numpy as np
import pytest
from datasets import Dataset

from samesky.crossmatch import CrossmatchError
from samesky.embed.images import ImageError
from samesky.embed.models import ModelLoadError, download_model, load_model, write_mini_model
from samesky.embed.run import embed_images, embed_spectra
from samesky.embed.spectra import resample_dataset
from samesky.hub import download_dataset
from samesky.io import atomic_path, load_dataset_dir, read_embeddings, write_embeddings
from samesky.pairs import crossmatch_datasets
from samesky.registry import ModelSpec, get_spec

N = 12


@pytest.fixture(scope="module")
def parents(mini, tmp_path_factory):
    """The first rows of the mini universe's HSC, DESI and SDSS parents, loaded like the workflow does."""
    root = tmp_path_factory.mktemp("parents")
    out = {}
    for name in ("hsc", "desi", "sdss"):
        download_dataset(str(mini["hub"] / name), root / name, cache_dir=root)
        out[name] = load_dataset_dir(root / name)
    return out


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit") / "vit-base"
    write_mini_model(get_spec("vit", "base"), path, seed=0)
    return load_model(path)


@pytest.fixture(scope="module")
def specformer(tmp_path_factory):
    path = tmp_path_factory.mktemp("specformer") / "specformer-base"
    write_mini_model(get_spec("specformer", "base"), path, seed=0)
    return load_model(path)


def _edited(ds: Dataset, row: int, column: str, edit) -> Dataset:
    """``ds``'s first N rows with ``edit`` applied to one row's ``column`` record (same features)."""
    rows = [ds.with_format("numpy")[i] for i in range(N)]
    record = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in rows[row][column].items()}
    edit(record)
    rows[row] = {**rows[row], column: record}
    return Dataset.from_list(rows, features=ds.features)


def _embed(ds, vit):
    return embed_images(ds, "image", "hsc", vit, batch_size=5, progress=False)


def _band(record, letter):
    return [str(b).lower().endswith(letter) for b in record["band"]].index(True)


def test_nan_and_inf_pixels_are_replaced_counted_and_kept_out_of_the_scaling(parents, vit):
    clean_ids, clean_emb, clean_frame, _ = _embed(parents["hsc"].select(range(N)), vit)

    def poison(rec):
        z = _band(rec, "z")
        rec["flux"][z, 0, 0], rec["flux"][z, 1, 1] = np.nan, np.inf

    ids, emb, frame, _ = _embed(_edited(parents["hsc"], 2, "image", poison), vit)
    assert np.isfinite(emb).all() and list(ids) == list(clean_ids)
    assert frame["n_bad_pixels"].iloc[2] == clean_frame["n_bad_pixels"].iloc[2] + 2
    # NaN/inf never enter the dataset-wide scaling: losing two good pixels from it moves the other
    # objects' embeddings by rounding only
    others = np.arange(N) != 2
    assert np.allclose(emb[others], clean_emb[others], atol=1e-3)


def test_an_all_zero_image_is_not_embedded_and_is_logged(parents, vit, caplog):
    clean_ids = parents["hsc"].select(range(N))["object_id"]

    def blank(rec):
        rec["flux"][:] = 0

    with caplog.at_level(logging.WARNING):
        ids, emb, _, meta = _embed(_edited(parents["hsc"], 4, "image", blank), vit)
    blank_id = clean_ids[4]
    assert blank_id not in ids and len(ids) == N - 1
    assert meta["preprocessing"]["skipped_objects"] == [blank_id]
    assert f"1 blank images (no_data; no data in the RGB bands (all bad or all zero)) not embedded: ['{blank_id}']" \
        in caplog.text
    # the blank image is kept out of the scaling sample too: the rest embed as if it were never there
    without = _embed(parents["hsc"].select([i for i in range(N) if i != 4]), vit)[1]
    assert np.allclose(emb, without, atol=1e-5)


def test_a_missing_band_is_an_error_naming_the_object_and_band(parents, vit):
    def drop_z(rec):
        z = _band(rec, "z")
        for key in ("band", "flux", "ivar", "mask"):
            rec[key] = np.delete(np.asarray(rec[key]), z, axis=0)

    ds = _edited(parents["hsc"], 7, "image", drop_z)
    oid = ds[7]["object_id"]
    with pytest.raises(ImageError, match=rf"object {oid}: band 'z' missing from the image \(has \['g', 'r', 'i', 'y'\]\)"):
        _embed(ds, vit)


def test_a_spectrum_with_zero_inverse_variance_everywhere_is_left_out_and_reported(parents, specformer, caplog):
    def no_ivar(rec):
        rec["ivar"][:] = 0

    desi = _edited(parents["desi"], 3, "spectrum", no_ivar)
    oid = desi[3]["object_id"]
    with caplog.at_level(logging.WARNING):
        ids, emb, _, meta = embed_spectra(desi, "spectrum", specformer, batch_size=4, progress=False)
    assert oid not in ids and len(ids) == N - 1 and np.isfinite(emb).all()
    assert meta["preprocessing"]["skipped_objects"] == [oid]
    assert f"object {oid}: inverse variance is zero over the whole spectrum" in caplog.text
    # SDSS spectra meet the same case in the resampling step, before Specformer
    sdss = _edited(parents["sdss"], 5, "spectrum", no_ivar)
    resampled, report = resample_dataset(sdss, "spectrum", progress=False)
    skipped = report.set_index("object_id").loc[sdss[5]["object_id"]]
    assert skipped["status"] == "skipped" and len(resampled) == N - 1


def test_a_truncated_data_file_is_an_error_naming_the_file(parents, tmp_path):
    path = tmp_path / "emb.parquet"
    write_embeddings(path, ["a", "b"], np.ones((2, 3), np.float32), metadata={"data": {"n_objects": 2}})
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(OSError, match=f"could not read the embeddings at {path}"):
        read_embeddings(path)
    saved = tmp_path / "desi"
    parents["desi"].select(range(N)).save_to_disk(saved)
    arrow = sorted(saved.glob("*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    with pytest.raises(OSError, match=f"could not read the dataset at {saved}"):
        load_dataset_dir(saved)


def test_duplicate_object_ids_are_an_error_naming_the_dataset_and_field(parents):
    hsc = parents["hsc"].select(range(N))
    doubled = hsc.select(list(range(N)) + [0])
    with pytest.raises(CrossmatchError, match=rf"hsc: field 'object_id' has 1 duplicated values, e.g. \['{hsc[0]['object_id']}'\]"):
        crossmatch_datasets(doubled, parents["desi"], "hsc", "desi", 1.0, ref_name="hsc", other_name="desi")
    with pytest.raises(ValueError, match="duplicate object ids among the embeddings"):
        write_embeddings("unused.parquet", ["a", "a"], np.ones((2, 3), np.float32))
    assert not os.path.exists("unused.parquet")


def test_an_empty_crossmatch_is_an_error_naming_both_datasets(parents):
    far = parents["desi"].map(lambda row: {"ra": (row["ra"] + 90.0) % 360})
    with pytest.raises(CrossmatchError, match=r"crossmatch of hsc \(\d+ objects\) and desi \(\d+ objects\) found no pair"):
        crossmatch_datasets(parents["hsc"], far, "hsc", "desi", 1.0, ref_name="hsc", other_name="desi")


def test_a_model_id_that_does_not_exist_offline_is_named_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(**{**get_spec("vit", "base").__dict__, "hub_id": "no-such-org/no-such-model"})
    with pytest.raises(ModelLoadError, match="cannot reach model 'no-such-org/no-such-model' at revision 'main'"):
        download_model(spec, tmp_path / "vit-base")
    assert not list(tmp_path.iterdir())


def test_a_failing_write_leaves_the_previous_output_whole(tmp_path):
    final = tmp_path / "scores.csv"
    final.write_text("the complete previous result\n")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half of a new res")
            raise RuntimeError("the job died here")
    assert final.read_text() == "the complete previous result\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"], "no partial file is left beside it"
