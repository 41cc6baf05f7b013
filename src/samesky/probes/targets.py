"""Probe targets: PROVABGS properties joined to a pair's objects, the fixed split, and the per-object
labels the robustness analyses group by (environment, brightness, sky partition).

PROVABGS columns (DESI EDR value-added catalogue, joined on TARGETID): LOG_MSTAR (log10 M*/Msun), Z_MW
(mass-weighted metallicity, linear), TAGE_MW (Gyr), AVG_SFR (Msun/yr). Targets:
- log_mstar = LOG_MSTAR; log_z_mw = log10 Z_MW; t_age = TAGE_MW;
- log_ssfr = log10(AVG_SFR) - LOG_MSTAR, the physical specific SFR (default), or, with
  ``ssfr="astroclip"``, ln(AVG_SFR) - ln(Z_MW) as AstroCLIP's code computes it (the AstroCLIP benchmark's anchor).
R^2 does not change under an affine map of a target, so log10 vs ln of Z_MW is immaterial.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

TARGETS = ("log_mstar", "log_z_mw", "t_age", "log_ssfr")
LABELS = {"log_mstar": "log M*", "log_z_mw": "log Z_MW", "t_age": "t_age", "log_ssfr": "log sSFR"}
PROVABGS_COLUMNS = ("TARGETID", "LOG_MSTAR", "Z_MW", "TAGE_MW", "AVG_SFR")
SSFR_DEFINITIONS = {
    "physical": "log10(AVG_SFR) - LOG_MSTAR (specific SFR, per yr)",
    "astroclip": "ln(AVG_SFR) - ln(Z_MW) (as in AstroCLIP's code; the AstroCLIP benchmark's anchor)",
}


class ProbeDataError(ValueError):
    """Probe inputs are unusable (missing columns, nothing left to fit)."""


def read_catalogue(source: str | os.PathLike, name: str = "catalogue") -> pd.DataFrame:
    """A value-added catalogue as a flat frame: a folder of Parquet files (Hub layout), a CSV file, or any
    table astropy reads (FITS, HDF5, ECSV); a URL is downloaded to astropy's cache first."""
    path = Path(str(source))
    if (path / "dataset_info.json").exists():  # a dataset this workflow downloaded (config datasets)
        from ..io import load_dataset_dir

        from datasets import Value

        ds = load_dataset_dir(path)
        return ds.select_columns([c for c, f in ds.features.items() if isinstance(f, Value)]).to_pandas()
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise ProbeDataError(f"{name}: no Parquet file under {path}")
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if ".csv" in path.name.lower():  # e.g. GZD-5's gz_decals_volunteers_5.csv?download=1: pandas reads its
        from astropy.utils.data import download_file  # 300k rows far faster than astropy's ASCII reader

        try:
            return pd.read_csv(download_file(str(source), cache=True) if "://" in str(source) else path)
        except Exception as exc:
            raise ProbeDataError(f"{name}: could not read {source} ({exc})") from exc
    from astropy.table import Table

    try:
        table = Table.read(str(source), cache=True) if "://" in str(source) else Table.read(path)
    except Exception as exc:
        raise ProbeDataError(f"{name}: could not read {source} ({exc})") from exc
    flat = [c for c in table.colnames if table[c].ndim <= 1]  # spectra and posteriors are not targets
    return table[flat].to_pandas()


def provabgs_targets(cat: pd.DataFrame, ssfr: str = "physical", name: str = "provabgs", id_column: str = "TARGETID",
                     keep: tuple[str, ...] = ()) -> tuple[pd.DataFrame, int]:
    """(TARGETID + the four targets + ``keep`` columns as ``catalogue_<name>``, rows dropped) from a
    PROVABGS catalogue whose TARGETID is in ``id_column`` (the Multimodal Universe's copy calls it
    ``object_id``).

    Rows without a usable value of every target (non-finite, LOG_MSTAR <= 0, Z_MW <= 0 or AVG_SFR <= 0,
    where a logarithm is undefined) are dropped and counted.
    """
    if id_column != "TARGETID":
        if id_column not in cat.columns:
            raise ProbeDataError(f"{name}: no column '{id_column}' (config probes.catalogue_id); has {sorted(cat.columns)[:20]}")
        cat = cat.drop(columns=[c for c in ("TARGETID",) if c in cat.columns]).rename(columns={id_column: "TARGETID"})
    absent = [c for c in keep if c not in cat.columns]
    if absent:
        raise ProbeDataError(f"{name}: no column(s) {absent} to keep; has {sorted(cat.columns)[:20]}")
    missing = [c for c in PROVABGS_COLUMNS if c not in cat.columns]
    if missing:
        raise ProbeDataError(f"{name}: missing column(s) {missing}; has {sorted(cat.columns)[:20]}")
    if ssfr not in SSFR_DEFINITIONS:
        raise ProbeDataError(f"probes.ssfr: '{ssfr}' is not one of {sorted(SSFR_DEFINITIONS)}")
    c = {k: pd.to_numeric(cat[k], errors="coerce").to_numpy(float) for k in PROVABGS_COLUMNS[1:]}
    ok = np.all([np.isfinite(v) for v in c.values()], axis=0) & (c["LOG_MSTAR"] > 0) & (c["Z_MW"] > 0) & (c["AVG_SFR"] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame({
            "TARGETID": cat["TARGETID"].astype(str).to_numpy(),
            "log_mstar": c["LOG_MSTAR"],
            "log_z_mw": np.log10(c["Z_MW"]),
            "t_age": c["TAGE_MW"],
            "log_ssfr": (np.log10(c["AVG_SFR"]) - c["LOG_MSTAR"]) if ssfr == "physical"
            else (np.log(c["AVG_SFR"]) - np.log(c["Z_MW"])),
            **{f"catalogue_{k}": cat[k].to_numpy() for k in keep},
        })
    n_bad = int((~ok).sum())
    if n_bad:
        log.warning("%s: %d of %d rows have no usable value of every target; dropped", name, n_bad, len(cat))
    out = out[ok].drop_duplicates("TARGETID")
    return out.reset_index(drop=True), n_bad


def split_labels(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """'train'/'test' for n objects: a shuffled split by seed (sklearn's train_test_split, as the MMU
    benchmark does)."""
    from sklearn.model_selection import train_test_split

    _, test = train_test_split(np.arange(n), test_size=test_fraction, random_state=seed, shuffle=True)
    labels = np.full(n, "train", dtype=object)
    labels[test] = "test"
    return labels


def probe_sample(pair: pd.DataFrame, targets: pd.DataFrame, join_on: str, name: str = "pair") -> pd.DataFrame:
    """The pair's objects that have every target: object_id, ra, dec, brightness, targets."""
    if join_on not in pair.columns:
        raise ProbeDataError(f"{name}: no column '{join_on}' to join the catalogue on; has {sorted(pair.columns)}")
    keys = pair[join_on].astype(str)
    sample = pair.assign(TARGETID=keys.to_numpy()).merge(targets, on="TARGETID", how="inner")
    if sample.empty:
        raise ProbeDataError(f"{name}: no object's '{join_on}' is in the catalogue's TARGETID column")
    log.info("%s: %d of %d objects have catalogue properties", name, len(sample), len(pair))
    return sample.sort_values("object_id", kind="stable").reset_index(drop=True)


def fill_positions(sample: pd.DataFrame, name: str = "pair") -> pd.DataFrame:
    """Positions from the catalogue (``catalogue_ra``/``catalogue_dec``) where the pair has none (AstroCLIP's
    evaluation file carries no positions); objects left without a position are dropped and logged, since
    the environment and sky analyses need one."""
    for axis in ("ra", "dec"):
        if f"catalogue_{axis}" in sample.columns:
            own = pd.to_numeric(sample[axis], errors="coerce")
            sample[axis] = own.where(np.isfinite(own), pd.to_numeric(sample[f"catalogue_{axis}"], errors="coerce"))
    ok = np.isfinite(sample["ra"].to_numpy(float)) & np.isfinite(sample["dec"].to_numpy(float))
    if not ok.all():
        log.warning("%s: %d of %d objects have no position in the pair or the catalogue; dropped", name,
                    int((~ok).sum()), len(sample))
        if not ok.any():
            raise ProbeDataError(f"{name}: no object has a position (pair ra/dec or catalogue ra/dec)")
    return sample[ok].reset_index(drop=True)


def brightness_from_magnitude(mag, bright_below: float, faint_below: float) -> np.ndarray:
    """'bright' / 'faint' / '' by an r-band magnitude: the BGS split (Bright r < 19.5, Faint 19.5 <= r <
    20.175), for catalogues that carry the magnitude but not the targeting flags."""
    mag = np.asarray(mag, float)
    return np.where(mag < bright_below, "bright", np.where(mag < faint_below, "faint", ""))


def brightness_labels(bright, faint) -> np.ndarray:
    """'bright' (Low-z, BGS Bright), 'faint' (High-z, BGS Faint) or '' (neither flag set)."""
    bright, faint = np.asarray(bright, bool), np.asarray(faint, bool)
    return np.where(bright, "bright", np.where(faint, "faint", ""))
