"""Full local copies of the Multimodal Universe's parent samples (format mmu_hdf5): read as MMU's builder
scripts yield them, plus positions, from files written in MMU's own layout (tests/mmu_layout.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from datasets import Dataset

from samesky.io import load_dataset_dir
from samesky.mini_universe.build import image_features, spectrum_features
from samesky.mmu_data import MMUFormatError, convert_mmu_hdf5, n_rows, positions, read_sample

from mmu_layout import write_mmu_parent

N, PIX = 10, 6


def _image_set(bands, rng):
    rows = [{"object_id": str(1000 + i), "ra": 150 + i * 1e-3, "dec": 2 + i * 1e-3, "mag_r": 20.0 + i / 10,
             "image": {"band": list(bands), "flux": list(rng.normal(size=(len(bands), PIX, PIX)).astype("float32")),
                       "ivar": list(np.ones((len(bands), PIX, PIX), "float32")),
                       "mask": list(rng.random((len(bands), PIX, PIX)) < 0.2),
                       "psf_fwhm": [0.6] * len(bands), "scale": [0.168] * len(bands)}} for i in range(N)]
    return Dataset.from_list(rows, features=image_features(bands, PIX))


def _spectrum_set(npix, rng, zwarn, span=(3800, 9200)):
    rows = [{"object_id": str(39627000000 + i), "ra": 150 + i * 1e-3, "dec": 2 + i * 1e-3, "Z": 0.1, "ZERR": 1e-4,
             "ZWARN": zwarn[i], "FLUX_G": 1.0, "FLUX_R": 1.0, "FLUX_Z": 1.0, "IS_BGS_BRIGHT": True,
             "IS_BGS_FAINT": False,
             "spectrum": {"flux": rng.normal(size=npix).astype("float32"), "ivar": np.ones(npix, "float32"),
                          "lsf_sigma": np.ones(npix, "float32"), "lambda": np.linspace(*span, npix, dtype="float32"),
                          "mask": np.zeros(npix, bool)}} for i in range(N)]
    return Dataset.from_list(rows, features=spectrum_features())


def _planes(image, field):
    return np.stack(image[field])


@pytest.mark.parametrize("survey, bands, config_name", [
    ("hsc", ["hsc-g", "hsc-r", "hsc-i", "hsc-z", "hsc-y"], "pdr3_dud_22.5"),
    ("legacysurvey", ["des-g", "des-r", "des-i", "des-z"], "dr10_south_21"),
    ("jwst", ["f115w", "f150w", "f200w", "f277w", "f356w", "f444w"], "ngdeep"),
])
def test_image_parents_are_read_with_positions_bands_and_masks_as_stored(tmp_path, survey, bands, config_name):
    """Each image survey's file layout (image_array or image_flux, Legacy's one mask, byte or integer ids)
    reads back into the builders' features with ra, dec, healpix; masks True = clean, as MMU stores them."""
    source = _image_set(bands, np.random.default_rng(0))
    ids = write_mmu_parent(source, tmp_path, survey, config_name)
    info = convert_mmu_hdf5(tmp_path, tmp_path / "out", config_name, survey)
    ds = load_dataset_dir(tmp_path / "out")
    assert info["n_rows"] == N == len(ds) == n_rows(tmp_path, config_name)
    assert info["revision_resolved"].startswith("sha256:") and info["format"] == "mmu_hdf5"
    assert set(ds["healpix"]) == {100, 101} and ds.features["object_id"].dtype == "string"
    by_id = {row["object_id"]: row for row in ds.with_format("numpy")}
    for row in source.with_format("numpy"):
        got = by_id[ids[row["object_id"]]]
        assert (got["ra"], got["dec"]) == (row["ra"], row["dec"])
        assert list(got["image"]["band"]) == bands
        assert np.array_equal(_planes(got["image"], "flux"), _planes(row["image"], "flux"))
        bad = _planes(row["image"], "mask")
        expected = ~bad.any(axis=0) if survey == "legacysurvey" else ~bad  # Legacy: one mask for all bands
        assert np.array_equal(_planes(got["image"], "mask"), np.broadcast_to(expected, bad.shape))
    if survey == "legacysurvey":
        assert all("-" in i for i in ds["object_id"])  # BRICK-OBJID decoded
    if survey == "hsc":
        assert np.allclose(ds["i_cmodel_mag"], source["mag_r"])
    ra, dec = positions(tmp_path, config_name)
    assert sorted(ra) == sorted(source["ra"])


def test_spectra_keep_mmus_flag_polarity_and_sdss_padding(tmp_path):
    """DESI's raw ZWARN (0 = good) is read as MMU's script yields it, True = no warning; SDSS's ZWARNING
    True = a warning; SDSS spectra keep their -1 padding, which the resampler drops."""
    rng = np.random.default_rng(1)
    zwarn = [0, 4, 0, 0, 1, 0, 0, 0, 0, 0]
    write_mmu_parent(_spectrum_set(7781, rng, zwarn, span=(3600, 9824)), tmp_path / "desi", "desi", "dr1_main")
    desi = read_sample(tmp_path / "desi", "dr1_main", "desi", N)
    assert set(desi["object_id"]) == {str(70000000000000000 + k) for k in range(N)}  # MMU's int ids, as strings
    assert sorted(desi["ZWARN"]) == sorted(z == 0 for z in zwarn)
    write_mmu_parent(_spectrum_set(3000, rng, zwarn), tmp_path / "sdss", "sdss", "boss")
    sdss = read_sample(tmp_path / "sdss", "*", "sdss", 4)
    assert len(sdss) == 4 and "ZWARNING" in sdss.column_names and sdss.features["ZWARNING"].dtype == "bool"
    lam = np.asarray(sdss.with_format("numpy")[0]["spectrum"]["lambda"])
    assert len(lam) == 3016 and (lam[-16:] == -1).all() and lam[0] == 3800


def test_a_folder_not_in_mmus_layout_is_named_with_what_it_holds(tmp_path):
    (tmp_path / "hsc" / "pdr3_wide").mkdir(parents=True)
    with pytest.raises(MMUFormatError, match=r"pdr3_dud_22.5: no file healpix=<n>/\*.hdf5 .*holds \['pdr3_wide'\]"):
        n_rows(tmp_path / "hsc", "pdr3_dud_22.5")
    folder = tmp_path / "hsc" / "pdr3_dud_22.5" / "healpix=7"
    folder.mkdir(parents=True)
    with h5py.File(folder / "001-of-001.hdf5", "w") as f:
        f["object_id"] = np.arange(3)
        f["dec"] = np.zeros(3)
    with pytest.raises(MMUFormatError, match=r"healpix=7/001-of-001.hdf5: no dataset 'ra'; has \['dec', 'object_id'\]"):
        read_sample(tmp_path / "hsc", "pdr3_dud_22.5", "hsc", 2)
