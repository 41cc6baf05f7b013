"""Facts about the surveys of the study: bands, wavelength grids, flux units.

Sources: the Multimodal Universe dataset builders (band names, pixel scales, cutout sizes) and
docs/study.md section 1 (DESI and SDSS grids).
"""

from __future__ import annotations

import numpy as np

# DESI coadd grid: linear in vacuum wavelength, 0.8 A steps (the paper's "3600-9800" rounds it).
DESI_WAVE_MIN, DESI_WAVE_MAX, DESI_NPIX = 3600.0, 9824.0, 7781
# SDSS: log10-lambda grid with 1e-4 dex pixels; each plate starts near 3800 A and ends near 9200 A.
SDSS_LOGLAM_STEP = 1e-4
# A good redshift's warning flag as the Multimodal Universe stores it: its DESI builder writes
# ZWARN = not bool(flag) (True = no warning), its SDSS builder ZWARNING = bool(flag) (True = a warning);
# the Smith42 sets, merged from MMU's, keep them. (column, value of a good redshift), for pairs[].good_redshift.
# The mini universe writes raw DESI's integer ZWARN (0 = good).
GOOD_REDSHIFT = {"desi": ("ZWARN", True), "sdss": ("ZWARNING", False)}
# The wavelength range each spectroscopic survey's `lambda` spans, in Angstrom (the preflight's check)
SPECTRUM_RANGE_ANGSTROM = {"desi": (3600.0, 9824.0), "sdss": (3800.0, 9200.0)}
FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"


def desi_wavelength() -> np.ndarray:
    return np.linspace(DESI_WAVE_MIN, DESI_WAVE_MAX, DESI_NPIX)


def sdss_wavelength(loglam_start: float, npix: int) -> np.ndarray:
    return 10.0 ** (loglam_start + SDSS_LOGLAM_STEP * np.arange(npix))


# Effective wavelengths (A) of the imaging bands, used to give each band its colour and PSF.
BAND_WAVELENGTH = {
    "HSC-G": 4770.0, "HSC-R": 6175.0, "HSC-I": 7711.0, "HSC-Z": 8898.0, "HSC-Y": 9762.0,
    "DES-G": 4800.0, "DES-R": 6400.0, "DES-I": 7800.0, "DES-Z": 9200.0,
    "F090W": 9020.0, "F115W": 11540.0, "F150W": 15010.0, "F200W": 19890.0,
    "F277W": 27620.0, "F356W": 35680.0, "F444W": 44080.0,
}


def band_letter(band: str) -> str:
    """'HSC-G' -> 'g', 'DES-Z' -> 'z', 'F444W' -> 'f444w': the name preprocessing selects bands by."""
    band = band.strip()
    return band.split("-")[-1].lower() if "-" in band else band.lower()


SPECTRUM_SURVEYS = ("desi", "sdss")


def modality_of(survey: str) -> str:
    """Which kind of data a survey's side of a pair holds (image or spectrum)."""
    return "spectrum" if survey in SPECTRUM_SURVEYS else "image"


# Each imaging survey's bands in the order Multimodal Universe's builders write them (scripts/hsc/hsc.py
# `_bands`, scripts/legacysurvey/legacysurvey.py `_bands`, scripts/jwst/jwst.py `bands`): the order an
# image struct without a `band` field is read in (logged where it is used).
SURVEY_BANDS = {
    "hsc": ("HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"),
    "legacysurvey": ("DES-G", "DES-R", "DES-I", "DES-Z"),
    "jwst": ("F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F444W"),
}

# The scalar columns of the spectroscopic parents (MMU scripts/desi/desi.py `_FLOAT_FEATURES`,
# `_BOOL_FEATURES`; scripts/sdss/sdss.py `_FLOAT_FEATURES`, `_BOOL_FEATURES`, `_FLUX_FEATURES` x ugriz).
# MMU's cross-match merges both parents' features under their own names, so a pre-crossmatched set holds
# DESI's redshift as `Z`; the audit renames these to `<survey>_<column>` (`desi_Z`), the name a pair
# crossmatched here gives them.
SPECTRUM_CATALOGUE_COLUMNS = {
    "desi": ("Z", "ZERR", "ZWARN", "EBV", "TARGETID",
             *(f"{kind}_{b}" for kind in ("FLUX", "FLUX_IVAR", "FIBERFLUX", "FIBERTOTFLUX") for b in "GRZ")),
    "sdss": ("VDISP", "VDISP_ERR", "Z", "Z_ERR", "ZWARNING",
             *(f"{kind}_{b}" for kind in ("SPECTROFLUX", "SPECTROFLUX_IVAR", "SPECTROSYNFLUX", "SPECTROSYNFLUX_IVAR")
               for b in "UGRIZ")),
}

# What a side's column must hold (MMU builders): an image struct with these fields, a spectrum with these.
IMAGE_FIELDS = ("flux",)  # `band` too, or the survey's documented order; `mask` where present
# (SDSS spectra are resampled onto the DESI grid from their own `lambda`; DESI's are read on the grid)
SPECTRUM_FIELDS = {"desi": ("flux", "ivar"), "sdss": ("flux", "ivar", "lambda")}
