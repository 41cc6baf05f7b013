"""AstroCLIP's evaluation data through the real reading path, on a small HDF5 file in its layout, joined to a
PROVABGS table in the Multimodal Universe's schema saved the way the download rule saves it."""

import h5py
import numpy as np
import pandas as pd
import pytest
from datasets import Dataset

from samesky.astroclip_data import AstroCLIPDataError, check_layout, convert_astroclip_h5
from samesky.io import load_dataset_dir, save_dataset
from samesky.pairs import audit_crossmatched
from samesky.probes.targets import (brightness_from_magnitude, fill_positions, probe_sample, provabgs_targets,
                                    read_catalogue)
from samesky.surveys import DESI_NPIX


def _write_h5(path, sizes=(5, 10), seed=0):
    rng = np.random.default_rng(seed)
    ids = []
    with h5py.File(path, "w") as f:
        for g, n in enumerate(sizes):
            tid = 39627000000000000 + 1000 * g + np.arange(n)
            grp = f.create_group(str(g))
            grp["images"] = rng.normal(0, 0.01, (n, 152, 152, 3)).astype(np.float32)
            grp["spectra"] = rng.normal(3, 1, (n, DESI_NPIX)).astype(np.float32)
            grp["redshifts"] = rng.uniform(0.05, 0.4, n).astype(np.float32)
            grp["targetids"] = tid
            ids.append(tid)
    return ids


def test_the_split_is_the_first_80_percent_of_every_group(tmp_path):
    ids = _write_h5(tmp_path / "astroclip.h5")
    info = convert_astroclip_h5(str(tmp_path / "astroclip.h5"), tmp_path / "test", split="test")
    ds = load_dataset_dir(tmp_path / "test")
    want = [str(t) for g in ids for t in g[int(0.8 * len(g)):]]
    assert list(ds["object_id"]) == want and info["n_rows"] == 3 and info["revision_resolved"].startswith("sha256:")
    train = load_dataset_dir(tmp_path / "train") if convert_astroclip_h5(
        str(tmp_path / "astroclip.h5"), tmp_path / "train", split="train") else None
    assert len(train) == 12 and not set(train["object_id"]) & set(ds["object_id"])
    row = ds.with_format("numpy")[0]
    assert row["legacysurvey_image"]["flux"].shape == (3, 152, 152)
    assert list(ds[0]["legacysurvey_image"]["band"]) == ["DES-G", "DES-R", "DES-Z"]
    with h5py.File(tmp_path / "astroclip.h5") as f:  # bands first, values untouched
        np.testing.assert_array_equal(row["legacysurvey_image"]["flux"][2], f["0"]["images"][4][:, :, 2])
        np.testing.assert_array_equal(row["desi_spectrum"]["flux"], f["0"]["spectra"][4])
    assert row["desi_spectrum"]["lambda"][0] == pytest.approx(3600.0) and (row["desi_spectrum"]["ivar"] == 1).all()
    assert np.isnan(row["ra"]) and row["desi_TARGETID"] == want[0]


def test_a_file_in_another_layout_is_named(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_group("0")["images"] = np.zeros((1, 152, 152, 3), np.float32)
    with pytest.raises(AstroCLIPDataError, match=r"group '0' has no \['spectra', 'redshifts', 'targetids'\]"):
        convert_astroclip_h5(str(tmp_path / "bad.h5"), tmp_path / "out")
    with pytest.raises(AstroCLIPDataError, match="split 'val'"):
        convert_astroclip_h5(str(tmp_path / "bad.h5"), tmp_path / "out", split="val")


def test_only_astroclips_groups_are_read_by_name_another_key_is_left_alone(tmp_path):
    """AstroCLIP reads the groups "0" ... "9" by name; a top-level key beside them (metadata a later file
    version might add) neither fails the layout check nor enters the pair."""
    ids = _write_h5(tmp_path / "astroclip.h5")
    with h5py.File(tmp_path / "astroclip.h5", "a") as f:
        f.create_group("metadata")["version"] = np.array([1])
    check_layout(str(tmp_path / "astroclip.h5"))
    convert_astroclip_h5(str(tmp_path / "astroclip.h5"), tmp_path / "all", split="all")
    assert len(load_dataset_dir(tmp_path / "all")) == sum(len(g) for g in ids) == 15


def test_the_pair_takes_positions_and_brightness_from_the_catalogue(tmp_path):
    ids = _write_h5(tmp_path / "astroclip.h5")
    convert_astroclip_h5(str(tmp_path / "astroclip.h5"), tmp_path / "pair", split="all")
    # the audit accepts a pair without positions only when told to, and gives NaN positions
    with pytest.raises(Exception, match="position column"):
        audit_crossmatched(load_dataset_dir(tmp_path / "pair"), "legacysurvey", "desi", 1.0)
    paired, _, summary = audit_crossmatched(load_dataset_dir(tmp_path / "pair"), "legacysurvey", "desi", 1.0,
                                            require_positions=False)
    assert summary["audit_status"] == "unverifiable" and np.isnan(paired["ra"]).all()
    # PROVABGS as the Multimodal Universe serves it: TARGETID in object_id, positions and r magnitude
    all_ids = [str(t) for g in ids for t in g]
    n = len(all_ids) - 2  # two objects have no PROVABGS fit
    cat = Dataset.from_dict({
        "object_id": all_ids[:n], "ra": np.linspace(150, 151, n), "dec": np.linspace(2, 3, n),
        "LOG_MSTAR": np.full(n, 10.0), "Z_MW": np.full(n, 0.02), "TAGE_MW": np.full(n, 5.0),
        "AVG_SFR": np.full(n, 1.0), "MAG_R": np.linspace(18.0, 20.5, n),
        "PROVABGS_THETA_BF": [[0.1] * 13] * n})
    save_dataset(cat, tmp_path / "provabgs")
    catalogue = read_catalogue(tmp_path / "provabgs")
    assert "PROVABGS_THETA_BF" not in catalogue.columns  # only flat columns are targets or labels
    with pytest.raises(ValueError, match=r"missing column\(s\) \['TARGETID'\]"):
        provabgs_targets(catalogue, name="provabgs")
    targets, dropped = provabgs_targets(catalogue, id_column="object_id", keep=("ra", "dec", "MAG_R"))
    assert dropped == 0 and len(targets) == n
    frame = paired.select_columns(["object_id", "ra", "dec", "desi_TARGETID"]).to_pandas()
    sample = fill_positions(probe_sample(frame, targets, "desi_TARGETID"))
    assert len(sample) == n and np.isfinite(sample[["ra", "dec"]].to_numpy()).all()
    assert sample.set_index("object_id").loc[all_ids[0], "ra"] == pytest.approx(150.0)
    labels = brightness_from_magnitude(sample["catalogue_MAG_R"], 19.5, 20.175)
    expect = np.where(sample["catalogue_MAG_R"] < 19.5, "bright", np.where(sample["catalogue_MAG_R"] < 20.175, "faint", ""))
    assert (labels == expect).all() and {"bright", "faint", ""} == set(labels)


def test_objects_without_any_position_are_dropped_and_none_at_all_is_an_error():
    sample = pd.DataFrame({"object_id": ["a", "b", "c"], "ra": [np.nan, 10.0, np.nan], "dec": [np.nan, 1.0, np.nan],
                           "catalogue_ra": [5.0, 6.0, np.nan], "catalogue_dec": [0.5, 0.6, np.nan]})
    out = fill_positions(sample.copy())
    assert list(out["object_id"]) == ["a", "b"] and list(out["ra"]) == [5.0, 10.0]  # the pair's own wins
    with pytest.raises(ValueError, match="no object has a position"):
        fill_positions(sample.iloc[[2]].copy())


def test_astroclip_encoders_embed_the_evaluation_pair(tmp_path):
    from samesky.embed.models import load_model, write_mini_model
    from samesky.embed.run import embed_images, embed_spectra
    from samesky.registry import get_spec

    ids = _write_h5(tmp_path / "astroclip.h5")
    with h5py.File(tmp_path / "astroclip.h5", "r+") as f:
        f["0"]["images"][3] = 0.0  # an off-footprint cut-out: no data
    blank_id = str(ids[0][3])
    convert_astroclip_h5(str(tmp_path / "astroclip.h5"), tmp_path / "pair", split="all")
    ds = load_dataset_dir(tmp_path / "pair")
    for name in ("astroclip-image", "astrodino-large", "astroclip-spectrum"):
        spec = get_spec(*name.split("-", 1))
        write_mini_model(spec, tmp_path / name, seed=0)
        model = load_model(tmp_path / name)
        if spec.modality == "image":
            got, emb, extra, meta = embed_images(ds, "legacysurvey_image", "legacysurvey", model, batch_size=4,
                                                 device="cpu", progress=False)
            assert meta["preprocessing"]["skipped_objects"] == [blank_id] and blank_id not in got
            assert meta["preprocessing"]["flux"]["crop"] == 24
        else:
            got, emb, extra, meta = embed_spectra(ds, "desi_spectrum", model, batch_size=4, device="cpu", progress=False)
            assert len(got) == 15
        assert emb.shape == (len(got), 32) and np.isfinite(emb).all()
