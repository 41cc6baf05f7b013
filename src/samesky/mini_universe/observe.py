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


def _rotate(x, y, angle_deg):
    a = np.radians(angle_deg)
    return x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)


def _b_n(n):
    """The Sersic constant: half the light of an index-n profile lies within r_eff."""
    return 2 * n - 1 / 3 + 0.009876 / n


# the tidal tail: an arc that leaves the companion and winds outward around the main galaxy
TAIL_SPAN = np.radians(100.0)
TAIL_SHARE = 0.1  # of the companion's light
# integral over t in [0, 1] of the tail's fading exp(-2 t) times its radius growth (1 + 0.6 t)
_TAIL_INTEGRAL = (1 - np.exp(-2)) / 2 + 0.6 * (1 - 3 * np.exp(-2)) / 4


def _disk(xr, yr, galaxy, r_eff, q):
    """The disk's light (unit sum): an exponential disk with, in its own plane, spiral arms and a bar."""
    xd, yd = xr, yr / q  # deprojected: coordinates in the disk plane
    r = np.sqrt(xd**2 + yd**2)
    disk = np.exp(-_b_n(1.0) * (r / r_eff - 1))
    arms = galaxy.get("spiral_strength", 0.0)
    if arms > 0:
        # two logarithmic arms, theta = phase + ln(r / r_eff) / tan(pitch), faded in over the inner 0.3 r_eff
        # (the centre belongs to the bulge and bar); they move light around without changing the disk's total
        wind = np.log(np.maximum(r, 1e-3 * r_eff) / r_eff) / np.tan(np.radians(galaxy["arm_pitch_deg"]))
        fade = 1 - np.exp(-((r / (0.3 * r_eff)) ** 2))
        theta = np.arctan2(yd, xd)
        disk = disk * (1 + arms * fade * np.cos(2 * (theta - np.radians(galaxy["arm_phase_deg"]) - wind)))
    disk = disk / disk.sum()
    bar = galaxy.get("bar_strength", 0.0)
    if bar > 0:
        # an elongated Gaussian bar in the disk plane, bar_angle from the line of nodes; its light is the disk's
        xb, yb = _rotate(xd, yd, galaxy["bar_angle_deg"])
        length = 0.9 * r_eff
        prof = np.exp(-((xb / length) ** 2) - (yb / (0.25 * length)) ** 2)
        disk = (1 - bar) * disk + bar * prof / prof.sum()
    return disk


def _companion(x, y, galaxy, r_eff, sub):
    """A merging companion and its tidal tail, in units of the main galaxy's flux (None if not a merger).

    Normalised by its analytic total where that exceeds the cutout's sum, so a companion that falls off
    the cutout loses light rather than piling it into the pixels that remain.
    """
    ratio = galaxy.get("merger_flux_ratio", 0.0)
    if not ratio > 0:
        return None
    sep = galaxy["merger_sep_reff"] * r_eff
    angle = galaxy["merger_angle_deg"]
    cx, cy = sep * np.cos(np.radians(angle)), sep * np.sin(np.radians(angle))
    # a Sersic n = 2 blob of 0.6 r_eff, round-ish, at merger_sep_reff r_eff along merger_angle
    rc, qc, b2 = 0.6 * r_eff, 0.8, _b_n(2.0)
    xr, yr = _rotate(x - cx, y - cy, angle + 90)
    blob = np.exp(-b2 * (np.sqrt(np.sqrt(xr**2 + (yr / qc) ** 2) / rc) - 1))
    blob_total = 2 * np.pi * qc * rc**2 * 2 * np.exp(b2) * 6.0 / b2**4 / sub**2  # Gamma(4) = 6
    # the tail: from the companion's angle, 100 degrees round, its radius growing by 60% as it fades
    t = np.mod(np.arctan2(y, x) - np.radians(angle), 2 * np.pi) / TAIL_SPAN
    width = 0.3 * r_eff
    tail = np.where(t <= 1, np.exp(-0.5 * ((np.sqrt(x**2 + y**2) - sep * (1 + 0.6 * t)) / width) ** 2 - 2 * t), 0.0)
    tail_total = np.sqrt(2 * np.pi) * width * TAIL_SPAN * sep * _TAIL_INTEGRAL / sub**2
    return ratio * ((1 - TAIL_SHARE) * blob / max(blob.sum(), blob_total)
                    + TAIL_SHARE * tail / max(tail.sum(), tail_total))


def render_image(galaxy, bands, band_fluxes, pixel_scale, npix, psf_fwhm, noise, offset_arcsec,
                 rng: np.random.Generator, mask_fraction: float, nan_in_mask: bool, edge_strip_prob: float):
    """One multi-band cutout in nanomaggies per pixel, with ivar, mask (True = bad) and noise.

    The galaxy is a de Vaucouleurs bulge plus an exponential disk sharing one shape; the bulge share
    rises with wavelength, so colour gradients differ between surveys. The galaxy sits off the cutout
    centre by the survey's astrometric error (``offset_arcsec``: true minus catalogued position).

    Its morphology (population.draw_morphology; absent keys count as 0) adds, in the disk plane, two
    spiral arms (``spiral_strength``, ``arm_pitch_deg``, ``arm_phase_deg``) and a bar (``bar_strength``
    of the disk light, at ``bar_angle_deg`` from the major axis); smooth and edge-on galaxies have
    neither. A merger adds a companion with ``merger_flux_ratio`` of the galaxy's flux at
    ``merger_sep_reff`` r_eff along ``merger_angle_deg`` (angles from the x axis, as the position
    angle), plus a faint tidal tail. The main galaxy's flux in the cutout stays ``band_fluxes``.
    """
    sub = pixel_scale / OVERSAMPLE
    half = npix * OVERSAMPLE / 2
    coords = (np.arange(npix * OVERSAMPLE) - half + 0.5) * sub
    x, y = np.meshgrid(coords - offset_arcsec[0], coords - offset_arcsec[1])
    r_eff, q, pa = galaxy["r_eff_arcsec"], galaxy["axis_ratio"], galaxy["position_angle_deg"]
    xr, yr = _rotate(x, y, pa)  # bulge and disk share one orientation
    q_bulge = min(1.0, q + 0.3)
    bulge = np.exp(-_b_n(4.0) * ((np.sqrt(xr**2 + (yr / q_bulge) ** 2) / (0.45 * r_eff)) ** 0.25 - 1))
    bulge /= bulge.sum()
    disk = _disk(xr, yr, galaxy, r_eff, q)
    companion = _companion(x, y, galaxy, r_eff, sub)
    n_b = len(bands)
    flux = np.empty((n_b, npix, npix), np.float32)
    for i, band in enumerate(bands):
        bt = np.clip(galaxy["bulge_fraction"] * (BAND_WAVELENGTH[band] / 6175.0) ** 0.35, 0.02, 0.98)
        model = bt * bulge + (1 - bt) * disk
        if companion is not None:
            model = model + companion
        model = band_fluxes[i] * model
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
