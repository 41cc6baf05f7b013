"""The generated mini universe: Hub schema, determinism, shared physics, and a crossmatch that works."""

import numpy as np
import pandas as pd
import pytest
from datasets import load_dataset

from samesky.mini_universe import build_mini_universe
from samesky.mini_universe.truth import truth_recovery
from samesky.pairs import crossmatch_datasets
from samesky.surveys import DESI_NPIX, desi_wavelength


def _load(mini, survey):
    return load_dataset(str(mini["hub"] / survey), split="train")


def test_image_surveys_have_the_mmu_image_schema(mini):
    for survey in ("hsc", "legacysurvey", "jwst"):
        scfg = mini["cfg"]["surveys"][survey]
        ds = _load(mini, survey)
        assert {"object_id", "ra", "dec", "image"} <= set(ds.column_names)
        assert set(ds.features["image"]) == {"band", "flux", "ivar", "mask", "psf_fwhm", "scale"}
        row = ds.with_format("numpy")[0]
        npix, nb = scfg["npix"], len(scfg["bands"])
        assert row["image"]["flux"].shape == (nb, npix, npix)
        assert list(row["image"]["band"]) == scfg["bands"]
        assert row["image"]["mask"].dtype == bool
        assert np.all(row["image"]["ivar"][row["image"]["mask"]] == 0)


def test_spectra_have_the_real_grids_and_sdss_padding(mini):
    desi = _load(mini, "desi").with_format("numpy")
    spec = desi[0]["spectrum"]
    assert len(spec["flux"]) == DESI_NPIX
    assert np.allclose(spec["lambda"], desi_wavelength(), atol=1e-3)
    sdss = _load(mini, "sdss").with_format("numpy")
    lam = np.stack([r["spectrum"]["lambda"] for r in sdss])
    valid = lam > 0
    assert (~valid).any(), "SDSS rows are padded to a common length"
    for row, ok in zip(sdss, valid):
        s = row["spectrum"]
        assert np.all(s["mask"][~ok]) and np.all(s["ivar"][~ok] == 0)
        loglam = np.log10(s["lambda"][ok])
        assert np.allclose(np.diff(loglam), 1e-4, atol=2e-6)
        assert 3780 < s["lambda"][ok][0] < 3830 and 9000 < s["lambda"][ok][-1] < 9250


def test_surveys_see_overlapping_subsets_with_interlopers(mini):
    truth = mini["truth"]
    hsc = truth["hsc_object_id"] != ""
    for survey in ("legacysurvey", "jwst", "desi", "sdss"):
        seen = truth[f"{survey}_object_id"] != ""
        assert 0 < (seen & hsc).sum() < seen.sum(), f"{survey} shares some but not all objects with HSC"
        assert (seen & (truth["kind"] == "interloper")).any()
    # spectra go to bright galaxies only: SDSS shallower than DESI
    assert (truth["sdss_object_id"] != "").sum() < (truth["desi_object_id"] != "").sum()


def test_the_same_seed_gives_the_same_universe_with_any_number_of_workers(mini, tmp_path):
    """Built again in one process (the shared one was rendered by two): the same truth and the same files."""
    again = build_mini_universe(mini["cfg"], 7, tmp_path / "hub", tmp_path / "truth.parquet", workers=1)
    pd.testing.assert_frame_equal(again, mini["truth"])
    files = sorted(f.relative_to(mini["hub"]) for f in mini["hub"].rglob("*") if f.is_file())
    again_files = sorted(f.relative_to(tmp_path / "hub") for f in (tmp_path / "hub").rglob("*") if f.is_file())
    assert files and files == again_files
    for path in files:  # every survey's shards and cards, byte for byte
        assert (mini["hub"] / path).read_bytes() == (tmp_path / "hub" / path).read_bytes(), path


def test_spectra_carry_the_shared_properties(mini):
    """Emission lines follow sSFR: star-forming galaxies show Halpha, quenched ones do not."""
    truth = mini["truth"].set_index("desi_object_id")
    desi = _load(mini, "desi").with_format("numpy")
    wave = desi_wavelength()
    contrast = []
    for row in desi:
        g = truth.loc[row["object_id"]]
        centre = 6564.6 * (1 + g["z"])
        if centre > 9700:
            continue
        flux = row["spectrum"]["flux"]
        core = np.abs(wave - centre) < 4
        side = (np.abs(wave - centre) > 30) & (np.abs(wave - centre) < 80)
        contrast.append((g["log_ssfr"], flux[core].mean() - np.median(flux[side])))
    contrast = np.array(contrast)
    sf, q = contrast[contrast[:, 0] > -10.5, 1], contrast[contrast[:, 0] < -11.5, 1]
    assert len(sf) > 10 and len(q) > 5
    assert np.median(sf) > np.median(q) + 1.0


@pytest.mark.parametrize("other", ["legacysurvey", "jwst", "desi", "sdss"])
def test_crossmatch_recovers_the_true_pairs(mini, other):
    paired, pairs, summary = crossmatch_datasets(_load(mini, "hsc"), _load(mini, other), "hsc", other, 1.0)
    rec = truth_recovery(mini["truth"], pairs, "hsc", other)
    assert rec["completeness"] >= 0.99, rec
    assert pairs["separation_arcsec"].max() <= 1.0
    assert summary["matched"] == len(paired) == len(pairs)
