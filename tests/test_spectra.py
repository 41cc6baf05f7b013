"""SDSS-to-DESI resampling with specutils: lines, flux, edges, padding, bad spectra."""

import numpy as np
import pytest

from samesky.embed.spectra import SpectrumError, clean_flux, resample_to_desi
from samesky.surveys import desi_wavelength, sdss_wavelength

LINES = [(4861.0, 60.0, 3.0), (6563.0, 200.0, 3.5), (8000.0, 80.0, 4.0)]  # centre, integrated flux, sigma (A)


def _sdss_spectrum(pad=50, n=3820):
    wave = sdss_wavelength(3.5800, n)
    flux = 5.0 + 1e-4 * (wave - 6000)
    for centre, total, sigma in LINES:
        flux = flux + total * np.exp(-0.5 * ((wave - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    ivar = np.full(n, 4.0)
    # MMU pads SDSS spectra: lambda = -1, ivar = 0, mask = True
    return (np.concatenate([wave, -np.ones(pad)]), np.concatenate([flux, np.zeros(pad)]),
            np.concatenate([ivar, np.zeros(pad)]), np.concatenate([np.zeros(n, bool), np.ones(pad, bool)]))


def _line_stats(wave, flux, centre, half=25.0):
    sel = np.abs(wave - centre) < half
    cont = np.median(flux[(np.abs(wave - centre) > 40) & (np.abs(wave - centre) < 80)])
    excess = flux[sel] - cont
    dl = np.gradient(wave)[sel]
    total = np.sum(excess * dl)
    return total, np.sum(excess * wave[sel] * dl) / total


def test_line_positions_and_integrated_flux_survive():
    wave, flux, ivar, mask = _sdss_spectrum()
    out = resample_to_desi(wave, flux, ivar, mask)
    target = desi_wavelength()
    assert len(out["flux"]) == 7781 and np.allclose(out["lambda"], target, atol=1e-3)
    good = wave > 0
    for centre, total, _ in LINES:
        before = _line_stats(wave[good], flux[good], centre)
        after = _line_stats(target, out["flux"].astype(float), centre)
        assert after[1] == pytest.approx(centre, abs=0.2)  # line centre within 0.2 A
        assert after[0] == pytest.approx(before[0], rel=0.01)  # integrated line flux within 1%
        assert after[0] == pytest.approx(total, rel=0.03)
    # the continuum over the overlap keeps its integral
    overlap = (target > 3850) & (target < 9150)
    sdss_overlap = good & (wave > 3850) & (wave < 9150)
    integral_desi = np.trapezoid(out["flux"][overlap], target[overlap])
    integral_sdss = np.trapezoid(flux[sdss_overlap], wave[sdss_overlap])
    assert integral_desi == pytest.approx(integral_sdss, rel=2e-3)


def test_the_flux_conserving_resampler_agrees_on_integrated_flux():
    from astropy import units as u
    from astropy.nddata import StdDevUncertainty
    from specutils import Spectrum
    from specutils.manipulation import FluxConservingResampler

    wave, flux, ivar, mask = _sdss_spectrum(pad=0)
    target = desi_wavelength()
    inside = target[(target > wave[1]) & (target < wave[-2])]
    spec = Spectrum(spectral_axis=wave * u.AA, flux=flux * u.Jy, uncertainty=StdDevUncertainty(0.5 * np.ones_like(flux) * u.Jy))
    conserving = FluxConservingResampler()(spec, inside * u.AA).flux.value
    ours = resample_to_desi(wave, flux, ivar, mask)
    ours_inside = ours["flux"][(target > wave[1]) & (target < wave[-2])]
    assert np.trapezoid(ours_inside, inside) == pytest.approx(np.trapezoid(conserving, inside), rel=1e-3)


def test_pixels_outside_sdss_coverage_are_masked_and_never_look_like_data():
    wave, flux, ivar, mask = _sdss_spectrum()
    out = resample_to_desi(wave, flux, ivar, mask)
    target = desi_wavelength()
    good = wave > 0
    outside = (target < wave[good].min()) | (target > wave[good].max())
    assert 800 < outside.sum() < 1300, "about a thousand DESI pixels have no SDSS coverage"
    assert out["n_outside"] == outside.sum()
    assert out["mask"][outside].all() and (out["ivar"][outside] == 0).all()
    # the fill is one flat, noiseless value: the mean of the covered flux (Specformer's mean is unchanged)
    assert np.unique(out["flux"][outside]).size == 1
    assert out["flux"][outside][0] == pytest.approx(out["flux"][~outside].mean(), rel=1e-5)
    assert np.isfinite(out["flux"]).all()
    # the padding (lambda = -1) never reaches the grid: nothing is near zero flux
    assert out["flux"].min() > 4.0


def test_masked_and_zero_ivar_pixels_are_not_used_and_gaps_are_masked():
    wave, flux, ivar, mask = _sdss_spectrum(pad=0)
    gap = (wave > 7000) & (wave < 7020)
    flux = flux.copy()
    flux[gap] = 1e4  # garbage under the mask must not leak
    mask = mask.copy()
    mask[gap] = True
    ivar[(wave > 7500) & (wave < 7503)] = 0
    flux[(wave > 7500) & (wave < 7503)] = np.nan
    out = resample_to_desi(wave, flux, ivar, mask)
    target = desi_wavelength()
    in_gap = (target > 7003) & (target < 7017)
    assert out["mask"][in_gap].all() and (out["ivar"][in_gap] == 0).all()
    assert out["flux"].max() < 100 and np.isfinite(out["flux"]).all()


def test_a_spectrum_without_usable_pixels_is_an_error():
    wave, flux, ivar, mask = _sdss_spectrum()
    with pytest.raises(SpectrumError, match="object 7: 0 usable pixels"):
        resample_to_desi(wave, flux, np.zeros_like(ivar), mask, object_id="7")
    with pytest.raises(SpectrumError, match="no finite flux"):
        clean_flux(np.full(10, np.nan), "8")
    fixed, n = clean_flux(np.array([1.0, np.nan, 3.0]))
    assert n == 1 and fixed[1] == 2.0


def test_flux_matrix_stacks_usable_spectra_and_names_what_it_leaves_out():
    from datasets import Dataset

    from samesky.embed.spectra import SpectrumError, flux_matrix

    def row(oid, flux, ivar):
        return {"object_id": oid, "spectrum": {"flux": flux, "ivar": ivar, "lambda": [1.0, 2.0, 3.0]}}
    ds = Dataset.from_list([row("a", [1.0, float("nan"), 3.0], [1.0, 1.0, 1.0]), row("dead", [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]),
                            row("b", [4.0, 5.0, 6.0], [1.0, 1.0, 1.0])])
    flux, skipped = flux_matrix(ds)
    assert flux.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] and skipped == ["dead"]  # NaN -> mean of the rest
    with pytest.raises(SpectrumError, match="no usable spectrum in the 1 rows of column 'spectrum'"):
        flux_matrix(ds.select([1]))
    ragged = Dataset.from_list([row("a", [1.0, 2.0, 3.0], [1.0] * 3),
                                {"object_id": "c", "spectrum": {"flux": [1.0, 2.0], "ivar": [1.0, 1.0], "lambda": [1.0, 2.0]}}])
    with pytest.raises(SpectrumError, match="object c: spectrum.flux has 2 pixels, the others 3"):
        flux_matrix(ragged)
