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


def test_the_lines_are_subtracted_as_one_line_at_a_time_over_the_whole_grid_would():
    """population.line_absorption evaluates the lines together, or each within its window on a sorted grid
    (issue 28: the images' band fluxes ten times faster); on every kind of grid it gives, to the bit, what
    subtracting each line of the three tables in turn over the whole grid gives."""
    from samesky.mini_universe import population as pop

    def one_at_a_time(wave, t_age, log_z):
        metal = 10 ** (1.5 * log_z) * np.clip(t_age / 6.0, 0.2, 1.3) ** 0.5
        balmer = np.exp(-0.5 * (np.log(t_age / 0.6) / 0.9) ** 2)
        absorb = np.ones_like(wave)
        for table, depth_of in ((pop.ABSORPTION_LINES, lambda base: min(max(base * metal, 0), 0.7)),
                                (pop.METAL_FOREST, lambda base: min(max(base * metal, 0), 0.5)),
                                (pop.BALMER_ABSORPTION, lambda base: base * balmer)):
            for centre, width, base in table:
                absorb -= depth_of(base) * np.exp(-0.5 * ((wave - centre) / width) ** 2)
        return absorb

    rest = desi_wavelength() / 1.3
    grids = {"sorted": rest, "unsorted": rest[::-1].copy(), "bands": np.linspace(4000, 9000, 54).reshape(6, 9),
             "one point": np.array([3934.0])}
    for name, wave in grids.items():
        for t_age, log_z in ((3.0, 0.1), (0.5, -0.6), (11.0, 0.3), (0.6, -3.0)):
            expected = one_at_a_time(wave, t_age, log_z)
            assert (expected < 1).any()
            np.testing.assert_array_equal(pop.line_absorption(wave, t_age, log_z), expected, err_msg=name)


def _cutouts(n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):  # rows in the image surveys' layout: two bands of 16 x 16 flux, ivar and mask
        mask = rng.random((2, 16, 16)) < 0.01
        ivar = np.where(mask, 0, np.array([4.0, 2.0])[:, None, None]).astype(np.float32)  # long runs, as real ones
        yield {"object_id": f"g{i}", "ra": rng.uniform(0, 1), "dec": rng.uniform(0, 1),
               "image": {"band": ["HSC-G", "HSC-R"], "flux": list(rng.normal(size=(2, 16, 16)).astype(np.float32)),
                         "ivar": list(ivar), "mask": list(mask), "psf_fwhm": [0.6, 0.7], "scale": [0.17, 0.17]},
               "mag_r": rng.uniform(17, 22)}


def _spectra(n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):  # rows in the spectral surveys' layout, 12 pixels each
        row = {"object_id": str(i), "ra": rng.uniform(0, 1), "dec": rng.uniform(0, 1),
               "spectrum": {"flux": rng.normal(size=12).astype(np.float32),
                            "ivar": rng.uniform(size=12).astype(np.float32), "lsf_sigma": np.full(12, 0.8, np.float32),
                            "lambda": np.linspace(3600, 3611, 12, dtype=np.float32), "mask": rng.random(12) < 0.1}}
        yield row | {k: rng.uniform() for k in ("Z", "ZERR", "FLUX_G", "FLUX_R", "FLUX_Z")} | {
            "ZWARN": 0, "IS_BGS_BRIGHT": bool(i % 2), "IS_BGS_FAINT": not i % 2}


@pytest.mark.parametrize("layout", ["image", "spectrum"])
def test_the_hub_files_are_the_ones_datasets_from_generator_writes(layout, tmp_path):
    """write_hub_dataset builds Arrow record batches itself (issue 28: a third of the mini universe's time
    went to datasets turning each cutout into lists): over more rows than one batch, its parquet is byte for
    byte the one Dataset.from_generator and to_parquet write."""
    from datasets import Dataset

    from samesky.mini_universe.build import image_features, spectrum_features, write_hub_dataset

    rows, features = {"image": (_cutouts, image_features(["HSC-G", "HSC-R"], 16)),
                      "spectrum": (_spectra, spectrum_features())}[layout]
    write_hub_dataset(rows, {"n": 1500, "seed": 3}, features, tmp_path / "ours", "test rows")
    reference = Dataset.from_generator(rows, features=features, gen_kwargs={"n": 1500, "seed": 3},
                                       cache_dir=str(tmp_path / "cache"))
    reference.to_parquet(str(tmp_path / "reference.parquet"))
    ours = (tmp_path / "ours" / "data" / "train-00000-of-00001.parquet").read_bytes()
    assert ours == (tmp_path / "reference.parquet").read_bytes()


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
