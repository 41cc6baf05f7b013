"""Spectra for Specformer: SDSS resampled onto the DESI grid with specutils, and flux cleaning.

Resampler choice. SDSS pixels (1e-4 dex, 0.9-2.1 A) are wider than DESI's (0.8 A) everywhere, so this is
upsampling. specutils' ``FluxConservingResampler`` turns upsampling into a staircase and costs ~0.2 s a
spectrum (a Python loop); ``LinearInterpolatedResampler`` costs ~1 ms, keeps line centres, and keeps the
integrated flux over the overlap to well under a percent (checked against the flux-conserving one in the
tests and the benchmark). It fails on an InverseVariance uncertainty with flux units, so the uncertainty
goes in as StdDevUncertainty. No resampler honours ``mask`` and NaNs spread to neighbours, so padding
(lambda <= 0), masked, ivar == 0 and non-finite pixels are dropped before resampling.

Fill rule. About 1000 DESI pixels lie outside SDSS coverage (below ~3800 A and above ~9200 A), and SDSS
gaps leave DESI pixels without a measurement. These get mask = True and ivar = 0; outside coverage the
flux is set to the mean of the covered flux, a flat, noiseless value that leaves the spectrum's mean
(which Specformer standardises by) unchanged and cannot be mistaken for a feature. Inside a gap the
linear interpolation across it is kept as the flux, masked.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from ..surveys import desi_wavelength

log = logging.getLogger(__name__)


class SpectrumError(ValueError):
    """A spectrum has too little good data to use (e.g. ivar == 0 everywhere)."""


def good_pixels(wave, flux, ivar, mask) -> np.ndarray:
    wave, flux, ivar = (np.asarray(a, dtype=float) for a in (wave, flux, ivar))
    mask = np.zeros(len(flux), bool) if mask is None else np.asarray(mask, dtype=bool)
    return (wave > 0) & ~mask & np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)


def resample_to_desi(wave, flux, ivar, mask=None, target=None, object_id="?") -> dict:
    """Resample one spectrum onto the DESI grid; returns flux, ivar, mask (True = bad) and counts."""
    from astropy import units as u
    from astropy.nddata import StdDevUncertainty
    from specutils import Spectrum
    from specutils.manipulation import LinearInterpolatedResampler

    target = desi_wavelength() if target is None else np.asarray(target, float)
    wave, flux, ivar = (np.asarray(a, dtype=float) for a in (wave, flux, ivar))
    good = good_pixels(wave, flux, ivar, mask)
    if good.sum() < 2:
        raise SpectrumError(f"object {object_id}: {int(good.sum())} usable pixels (ivar > 0, unmasked, finite)")
    w, f, sigma = wave[good], flux[good], 1 / np.sqrt(ivar[good])
    order = np.argsort(w)
    w, f, sigma = w[order], f[order], sigma[order]
    unit = u.Unit("1e-17 erg / (s cm2 Angstrom)")
    spec = Spectrum(spectral_axis=w * u.AA, flux=f * unit, uncertainty=StdDevUncertainty(sigma * unit))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = LinearInterpolatedResampler(extrapolation_treatment="nan_fill")(spec, target * u.AA)
    new_flux = np.asarray(out.flux.value, dtype=float)
    new_sigma = np.asarray(out.uncertainty.array, dtype=float) if out.uncertainty is not None else np.full_like(new_flux, np.nan)
    outside = ~np.isfinite(new_flux)
    # a DESI pixel more than one SDSS pixel away from a good SDSS pixel sits in a gap: masked
    step = np.median(np.diff(w)) if len(w) > 2 else np.inf
    nearest = np.abs(w[np.clip(np.searchsorted(w, target), 0, len(w) - 1)] - target)
    nearest = np.minimum(nearest, np.abs(w[np.clip(np.searchsorted(w, target) - 1, 0, len(w) - 1)] - target))
    gap = ~outside & (nearest > 1.5 * step)
    bad = outside | gap | ~np.isfinite(new_sigma) | (new_sigma <= 0)
    covered = ~outside
    fill = float(np.mean(new_flux[covered])) if covered.any() else 0.0
    new_flux[outside] = fill
    new_ivar = np.where(bad, 0.0, 1 / np.where(bad, 1.0, new_sigma) ** 2)
    return {"flux": new_flux.astype(np.float32), "ivar": new_ivar.astype(np.float32), "mask": bad,
            "lambda": target.astype(np.float32), "n_outside": int(outside.sum()), "n_gap": int(gap.sum()),
            "fill_value": fill}


def clean_flux(flux, object_id="?", ivar=None) -> tuple[np.ndarray, int]:
    """Flux ready for Specformer: non-finite values replaced by the mean of the finite ones (counted).

    A spectrum whose inverse variance is zero (or non-finite) everywhere carries no measurement and is
    refused, whatever its flux column holds.
    """
    if ivar is not None:
        ivar = np.asarray(ivar, dtype=float)
        if ivar.size and not np.any(np.isfinite(ivar) & (ivar > 0)):
            raise SpectrumError(f"object {object_id}: inverse variance is zero over the whole spectrum")
    flux = np.asarray(flux, dtype=np.float32)
    bad = ~np.isfinite(flux)
    if bad.all():
        raise SpectrumError(f"object {object_id}: no finite flux value")
    if bad.any():
        flux = flux.copy()
        flux[bad] = flux[~bad].mean()
    return flux, int(bad.sum())


def resample_dataset(ds, column: str, progress: bool = True):
    """Resample every spectrum of ``ds[column]`` onto the DESI grid.

    Returns a dataset with ``object_id`` and ``column`` (now on the DESI grid) and a per-object report;
    spectra without two usable pixels are left out and reported as ``skipped`` (logged).
    """
    import pandas as pd
    from datasets import Dataset, Features, Sequence, Value
    from tqdm import tqdm

    rows, report = [], []
    sub = ds.select_columns(["object_id", column]).with_format("numpy")
    for i in tqdm(range(len(sub)), desc=f"resample {column}", disable=not progress, mininterval=5):
        row = sub[i]
        oid, spec = str(row["object_id"]), row[column]
        try:
            out = resample_to_desi(spec["lambda"], spec["flux"], spec["ivar"], spec.get("mask"), object_id=oid)
        except SpectrumError as exc:
            log.warning("skipping %s", exc)
            report.append({"object_id": oid, "status": "skipped", "n_outside": -1, "n_gap": -1, "fill_value": float("nan")})
            continue
        rows.append({"object_id": oid, column: {k: out[k] for k in ("flux", "ivar", "mask", "lambda")}})
        report.append({"object_id": oid, "status": "resampled", "n_outside": out["n_outside"], "n_gap": out["n_gap"],
                       "fill_value": out["fill_value"]})
    features = Features({"object_id": Value("string"), column: Sequence({
        "flux": Value("float32"), "ivar": Value("float32"), "mask": Value("bool"), "lambda": Value("float32")})})
    new = Dataset.from_list(rows, features=features) if rows else Dataset.from_dict(
        {"object_id": [], column: []}, features=features)
    return new, pd.DataFrame(report)


def usable_fluxes(records, skipped: list):
    """(id, cleaned flux, values replaced) for each (id, spectrum) that ``clean_flux`` accepts; the ids
    of refused spectra are appended to ``skipped`` and logged."""
    for oid, spec in records:
        try:
            flux, n = clean_flux(spec["flux"], oid, spec.get("ivar"))
        except SpectrumError as exc:
            log.warning("skipping %s", exc)
            skipped.append(oid)
            continue
        yield oid, flux, n


def flux_matrix(ds, column: str = "spectrum") -> tuple[np.ndarray, list[str]]:
    """Every usable spectrum's flux as one (spectra, pixels) array, cleaned as for embedding.

    Spectra ``clean_flux`` refuses (zero inverse variance everywhere, no finite flux) are left out; their
    ids are returned (and logged). All spectra must share one grid length (DESI's, or resampled onto it).
    """
    sub = ds.select_columns(["object_id", column]).with_format("numpy")
    rows, skipped = [], []
    records = ((str(row["object_id"]), row[column]) for row in (sub[i] for i in range(len(sub))))
    for oid, flux, _ in usable_fluxes(records, skipped):
        if rows and len(flux) != len(rows[0]):
            raise SpectrumError(f"object {oid}: {column}.flux has {len(flux)} pixels, the others {len(rows[0])}")
        rows.append(flux)
    if not rows:
        raise SpectrumError(f"no usable spectrum in the {len(sub)} rows of column '{column}'")
    return np.stack(rows), skipped
