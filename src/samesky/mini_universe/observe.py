"""How each mini survey observes a galaxy: PSF-convolved two-component images and resolved spectra."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ..surveys import BAND_WAVELENGTH, FLUX_UNIT, desi_wavelength, sdss_wavelength
from .population import C_KMS, continuum, line_fluxes

OVERSAMPLE = 3
# bright night-sky lines (A): noisier pixels where the sky is bright, as in real fibre spectra
SKY_LINES = np.array([5578.9, 5891.6, 6301.7, 6365.5, 6865.0, 7276.0, 7341.0, 7608.0, 7794.0, 7914.0,
                      8344.6, 8399.2, 8430.2, 8827.1, 8885.8, 9376.0, 9441.0, 9714.0])


def _sersic(x, y, r_eff, n, q, pa_deg):
    pa = np.radians(pa_deg)
    xr = x * np.cos(pa) + y * np.sin(pa)
    yr = -x * np.sin(pa) + y * np.cos(pa)
    r = np.sqrt(xr**2 + (yr / q) ** 2)
    b_n = 2 * n - 1 / 3 + 0.009876 / n
    prof = np.exp(-b_n * ((r / r_eff) ** (1 / n) - 1))
    return prof / prof.sum()


def render_image(galaxy, bands, band_fluxes, pixel_scale, npix, psf_fwhm, noise, offset_arcsec,
                 rng: np.random.Generator, mask_fraction: float, nan_in_mask: bool, edge_strip_prob: float):
    """One multi-band cutout in nanomaggies per pixel, with ivar, mask (True = bad) and noise.

    The galaxy is a de Vaucouleurs bulge plus an exponential disk sharing one shape; the bulge share
    rises with wavelength, so colour gradients differ between surveys. The galaxy sits off the cutout
    centre by the survey's astrometric error (``offset_arcsec``: true minus catalogued position).
    """
    sub = pixel_scale / OVERSAMPLE
    half = npix * OVERSAMPLE / 2
    coords = (np.arange(npix * OVERSAMPLE) - half + 0.5) * sub
    x, y = np.meshgrid(coords - offset_arcsec[0], coords - offset_arcsec[1])
    r_eff, q, pa = galaxy["r_eff_arcsec"], galaxy["axis_ratio"], galaxy["position_angle_deg"]
    bulge = _sersic(x, y, 0.45 * r_eff, 4.0, min(1.0, q + 0.3), pa)
    disk = _sersic(x, y, r_eff, 1.0, q, pa)
    n_b = len(bands)
    flux = np.empty((n_b, npix, npix), np.float32)
    for i, band in enumerate(bands):
        bt = np.clip(galaxy["bulge_fraction"] * (BAND_WAVELENGTH[band] / 6175.0) ** 0.35, 0.02, 0.98)
        model = band_fluxes[i] * (bt * bulge + (1 - bt) * disk)
        sigma_pix = psf_fwhm[i] / 2.3548 / sub
        model = gaussian_filter(model, sigma_pix, mode="constant")
        flux[i] = model.reshape(npix, OVERSAMPLE, npix, OVERSAMPLE).sum(axis=(1, 3))
    sigma = np.asarray(noise, np.float32)[:, None, None]
    flux += rng.normal(0, 1, flux.shape).astype(np.float32) * sigma
    ivar = np.broadcast_to(1 / sigma**2, flux.shape).astype(np.float32).copy()
    mask = rng.random(flux.shape) < mask_fraction  # bad pixels: cosmic rays, bad columns
    if rng.random() < edge_strip_prob:  # the cutout runs off the mosaic edge
        width = int(rng.integers(npix // 8, npix // 3))
        mask[:, :, :width] = True
    ivar[mask] = 0
    flux[mask] = np.nan if nan_in_mask else 0.0
    return flux, ivar, mask


def spectrum_model(galaxy, wave_obs, lsf_sigma, fibre_flux_r):
    """Noise-free observed-frame spectrum (1e-17 erg/s/cm2/A) through a fibre."""
    z = galaxy["z"]
    rest = wave_obs / (1 + z)
    args = (galaxy["t_age_gyr"], galaxy["log_z_mw"], galaxy["log_ssfr"], galaxy["a_v"])
    cont = continuum(rest, *args)
    # normalise on the r band: mean f_nu of the continuum over 5600-6800 A equals the fibre flux
    r_wave = np.linspace(5600, 6800, 41)
    f_nu_r = (continuum(r_wave / (1 + z), *args) * r_wave**2).mean()
    target_f_nu = fibre_flux_r * 3631e-23 * 1e-9  # nanomaggies -> erg/s/cm2/Hz
    scale = target_f_nu * 2.99792458e18 / f_nu_r / 1e-17
    flux = cont * scale
    c_halpha = continuum(np.array([6564.6]), *args)[0] * scale
    for wave_rest, line_flux in line_fluxes(galaxy["log_ssfr"], galaxy["log_z_mw"], galaxy["a_v"], c_halpha).values():
        centre = wave_rest * (1 + z)
        if line_flux <= 0 or not (wave_obs[0] - 50 < centre < wave_obs[-1] + 50):
            continue
        sig = np.sqrt((galaxy["sigma_v_kms"] / C_KMS * centre) ** 2 + np.interp(centre, wave_obs, lsf_sigma) ** 2)
        flux = flux + line_flux * (1 + z) * np.exp(-0.5 * ((wave_obs - centre) / sig) ** 2) / (np.sqrt(2 * np.pi) * sig)
    return flux


def observe_spectrum(galaxy, wave_obs, resolution, noise, fibre_flux_r, rng, mask_fraction):
    """A noisy spectrum in the MMU layout: flux, ivar, lsf_sigma (A), lambda (A), mask (True = bad)."""
    lsf_sigma = wave_obs / (2.3548 * resolution)
    model = spectrum_model(galaxy, wave_obs, lsf_sigma, fibre_flux_r)
    sky = 1 + 4 * np.exp(-0.5 * ((wave_obs[:, None] - SKY_LINES[None, :]) / 3.0) ** 2).sum(1)
    edge = 1 + 2.5 * (np.exp(-(wave_obs - wave_obs[0]) / 120) + np.exp(-(wave_obs[-1] - wave_obs) / 200))
    sigma = noise * sky * edge
    flux = model + rng.normal(0, 1, len(wave_obs)) * sigma
    mask = rng.random(len(wave_obs)) < mask_fraction
    ivar = 1 / sigma**2
    ivar[mask] = 0
    return {
        "flux": flux.astype(np.float32), "ivar": ivar.astype(np.float32),
        "lsf_sigma": lsf_sigma.astype(np.float32), "lambda": wave_obs.astype(np.float32), "mask": mask,
    }


def sdss_grid(rng: np.random.Generator, pad_to: int):
    """One SDSS plate's log-lambda grid (~3800-9200 A), as the real spectra vary from plate to plate."""
    start = 3.5798 + rng.uniform(-0.0010, 0.0012)
    npix = int((np.log10(9200.0) - start) / 1e-4) + int(rng.integers(-25, 10))
    return sdss_wavelength(start, min(npix, pad_to))


def pad_spectrum(spec: dict, length: int) -> dict:
    """Pad to a fixed length the way MMU's SDSS set does: lambda = -1, ivar = 0, mask = True."""
    n = len(spec["flux"])
    if n >= length:
        return spec
    pad = length - n
    return {
        "flux": np.concatenate([spec["flux"], np.zeros(pad, np.float32)]),
        "ivar": np.concatenate([spec["ivar"], np.zeros(pad, np.float32)]),
        "lsf_sigma": np.concatenate([spec["lsf_sigma"], np.zeros(pad, np.float32)]),
        "lambda": np.concatenate([spec["lambda"], -np.ones(pad, np.float32)]),
        "mask": np.concatenate([spec["mask"], np.ones(pad, bool)]),
    }


__all__ = ["render_image", "observe_spectrum", "sdss_grid", "pad_spectrum", "desi_wavelength", "FLUX_UNIT"]
