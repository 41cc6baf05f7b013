"""Write the mini universe: a truth catalogue and one Hub-layout parent dataset per survey.

Each survey's dataset is a folder ``<survey>/data/train-00000-of-00001.parquet`` holding the columns and
features of the Multimodal Universe parent sets (``object_id``, ``ra``, ``dec``, ``image`` {band, flux,
ivar, mask, psf_fwhm, scale} or ``spectrum`` {flux, ivar, lsf_sigma, lambda, mask}, plus catalogue
scalars), so ``datasets.load_dataset(folder)`` reads it exactly as it reads a Hub repository.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io import atomic_path, write_parquet
from ..surveys import BAND_WAVELENGTH, desi_wavelength
from .observe import observe_spectrum, pad_spectrum, render_image, sdss_grid
from .population import Z_SUN, band_flux_ratios, draw_positions, draw_properties, offset_positions

log = logging.getLogger(__name__)

SDSS_PAD_LENGTH = 3900


def survey_rng(seed: int, name: str) -> np.random.Generator:
    """An independent, reproducible random stream per survey (adding a survey changes no other)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_population(cfg: dict, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 0])
    sky = cfg["sky"]
    n = cfg["n_galaxies"]
    ra, dec, env = draw_positions(n, rng, sky["ra_center"], sky["dec_center"], sky["width_deg"],
                                  sky["n_clusters"], sky["cluster_fraction"], sky["cluster_radius_arcsec"])
    props = draw_properties(n, rng, env)
    props.insert(0, "galaxy_id", np.arange(n))
    props.insert(1, "kind", "galaxy")
    props.insert(2, "ra", ra)
    props.insert(3, "dec", dec)
    return props


def in_footprint(ra, dec, footprint: dict | None) -> np.ndarray:
    if not footprint:
        return np.ones(len(ra), bool)
    dra = (np.asarray(ra) - footprint["ra_center"] + 180) % 360 - 180
    ddec = np.asarray(dec) - footprint["dec_center"]
    half = footprint["width_deg"] / 2
    return (np.abs(dra * np.cos(np.radians(dec))) <= half) & (np.abs(ddec) <= half)


def select_observed(pop: pd.DataFrame, scfg: dict, rng) -> np.ndarray:
    seen = in_footprint(pop["ra"], pop["dec"], scfg["footprint"])
    seen &= pop["mag_r"].to_numpy() < scfg["mag_limit"]
    seen &= rng.random(len(pop)) < scfg["completeness"]
    return np.flatnonzero(seen)


def make_interlopers(pop: pd.DataFrame, seen: np.ndarray, scfg: dict, rng, first_id: int) -> pd.DataFrame:
    """Objects only this survey sees: close companions of real galaxies, a few blends, and field objects."""
    n = int(round(scfg["interloper_fraction"] * len(seen)))
    if n == 0:
        return pop.iloc[:0].copy()
    props = draw_properties(n, rng)
    hosts = rng.choice(seen, n)
    # separations: 5% blends inside 1 arcsec, 55% close companions at 1.5-6 arcsec, the rest anywhere
    kind = rng.choice(3, n, p=[0.05, 0.55, 0.40])
    sep = np.where(kind == 0, rng.uniform(0.5, 1.0, n), rng.uniform(1.5, 6.0, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    ra, dec = offset_positions(pop["ra"].to_numpy()[hosts], pop["dec"].to_numpy()[hosts],
                               sep * np.cos(angle), sep * np.sin(angle))
    field = kind == 2
    ra[field] = pop["ra"].to_numpy()[rng.choice(seen, field.sum())]
    dec[field] = pop["dec"].to_numpy()[rng.choice(seen, field.sum())]
    ra[field], dec[field] = offset_positions(ra[field], dec[field], rng.uniform(-120, 120, field.sum()),
                                             rng.uniform(-120, 120, field.sum()))
    props.insert(0, "galaxy_id", first_id + np.arange(n))
    props.insert(1, "kind", "interloper")
    props.insert(2, "ra", ra)
    props.insert(3, "dec", dec)
    # interlopers must be visible to this survey
    props["mag_r"] = np.minimum(props["mag_r"], scfg["mag_limit"] - 0.2)
    return props


def object_ids(name: str, n: int, rng, ra, dec) -> np.ndarray:
    """Survey-style ids, in no particular order (so row order never pairs objects by accident)."""
    serial = rng.permutation(n) + 1
    if name.startswith("legacy"):
        bricks = [f"{int(r * 10):04d}{'p' if d >= 0 else 'm'}{int(abs(d) * 10):03d}" for r, d in zip(ra, dec)]
        return np.array([f"{b}-{s}" for b, s in zip(bricks, serial)])
    base = {"hsc": 36407000000000000, "desi": 39627000000000000, "sdss": 2990000000000000000,
            "jwst": 0}.get(name, 10**9)
    if name == "jwst":
        return np.array([f"ceers_{s:06d}" for s in serial])
    return np.array([str(base + s * 7919) for s in serial])


def image_features(bands, npix):
    from datasets import Array2D, Features, Sequence, Value

    return Features({
        "object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64"),
        "image": Sequence({
            "band": Value("string"),
            "flux": Array2D((npix, npix), "float32"),
            "ivar": Array2D((npix, npix), "float32"),
            "mask": Array2D((npix, npix), "bool"),
            "psf_fwhm": Value("float32"),
            "scale": Value("float32"),
        }),
        "mag_r": Value("float32"),
    })


def spectrum_features():
    from datasets import Features, Sequence, Value

    return Features({
        "object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64"),
        "spectrum": Sequence({
            "flux": Value("float32"), "ivar": Value("float32"), "lsf_sigma": Value("float32"),
            "lambda": Value("float32"), "mask": Value("bool"),
        }),
        "Z": Value("float32"), "ZERR": Value("float32"), "ZWARN": Value("int32"),
        "FLUX_G": Value("float32"), "FLUX_R": Value("float32"), "FLUX_Z": Value("float32"),
        "IS_BGS_BRIGHT": Value("bool"), "IS_BGS_FAINT": Value("bool"),
    })


def nanomaggies(mag):
    return 10 ** (-0.4 * (np.asarray(mag) - 22.5))


def image_rows(name, scfg, cat: pd.DataFrame, rng):
    bands = scfg["bands"]
    waves = [BAND_WAVELENGTH[b] for b in bands]
    for row in tqdm(cat.itertuples(index=False), total=len(cat), desc=f"render {name}", mininterval=5):
        g = row._asdict()
        ratios = band_flux_ratios(waves, g["z"], g["t_age_gyr"], g["log_z_mw"], g["log_ssfr"], g["a_v"])
        fluxes = nanomaggies(g["mag_r"]) * ratios
        offset = (g["true_dx_arcsec"], g["true_dy_arcsec"])
        flux, ivar, mask = render_image(g, bands, fluxes, scfg["pixel_scale"], scfg["npix"], scfg["psf_fwhm"],
                                        scfg["noise_nmgy"], offset, rng, scfg["mask_fraction"],
                                        scfg["nan_in_mask"], scfg["edge_strip_probability"])
        yield {
            "object_id": g["object_id"], "ra": g["obs_ra"], "dec": g["obs_dec"],
            "image": {"band": list(bands), "flux": list(flux), "ivar": list(ivar), "mask": list(mask),
                      "psf_fwhm": list(map(float, scfg["psf_fwhm"])), "scale": [float(scfg["pixel_scale"])] * len(bands)},
            "mag_r": g["mag_r"],
        }


def spectrum_rows(name, scfg, cat: pd.DataFrame, rng):
    for row in tqdm(cat.itertuples(index=False), total=len(cat), desc=f"observe {name}", mininterval=5):
        g = row._asdict()
        if scfg["grid"] == "desi":
            wave = desi_wavelength()
        else:
            wave = sdss_grid(rng, SDSS_PAD_LENGTH)
        # a fibre collects the light within its radius; an exponential profile's enclosed fraction
        x = scfg["fibre_diameter_arcsec"] / 2 / max(g["r_eff_arcsec"], 0.05) * 1.678
        fibre_fraction = 1 - (1 + x) * np.exp(-x)
        spec = observe_spectrum(g, wave, scfg["resolution"], scfg["noise"], nanomaggies(g["mag_r"]) * fibre_fraction,
                                rng, scfg["mask_fraction"])
        if scfg["grid"] == "sdss":
            spec = pad_spectrum(spec, SDSS_PAD_LENGTH)
        zerr = 3e-5 * (1 + g["z"])
        bright = g["mag_r"] < scfg["bright_limit"]
        yield {
            "object_id": g["object_id"], "ra": g["obs_ra"], "dec": g["obs_dec"],
            "spectrum": spec,
            "Z": g["z"] + rng.normal(0, zerr), "ZERR": zerr, "ZWARN": 0,
            "FLUX_G": nanomaggies(g["mag_r"]) * 0.6, "FLUX_R": nanomaggies(g["mag_r"]),
            "FLUX_Z": nanomaggies(g["mag_r"]) * 1.5, "IS_BGS_BRIGHT": bool(bright), "IS_BGS_FAINT": bool(not bright),
        }


def write_hub_dataset(make_rows, gen_kwargs: dict, features, folder: Path, description: str) -> None:
    """Write ``make_rows(**gen_kwargs)`` as ``folder/data/train-00000-of-00001.parquet``, atomically."""
    from datasets import Dataset

    with atomic_path(folder, is_dir=True) as tmp:
        cache = tmp / ".cache"
        ds = Dataset.from_generator(make_rows, features=features, gen_kwargs=gen_kwargs, cache_dir=str(cache))
        (tmp / "data").mkdir(parents=True)
        ds.to_parquet(str(tmp / "data" / "train-00000-of-00001.parquet"))
        del ds
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
        (tmp / "README.md").write_text(f"# {folder.name} (samesky mini universe)\n\n{description}\n")


def build_mini_universe(cfg: dict, seed: int, hub_dir: str | Path, truth_path: str | Path) -> pd.DataFrame:
    """Generate the mini universe: one Hub-layout folder per survey under ``hub_dir`` (plus ``provabgs``)
    and the truth catalogue at ``truth_path``. Returns the truth catalogue."""
    with atomic_path(hub_dir, is_dir=True) as tmp:
        truth = _build(cfg, seed, Path(tmp))
    write_parquet(truth_path, truth)
    return truth


def _build(cfg: dict, seed: int, outdir: Path) -> pd.DataFrame:
    pop = make_population(cfg, seed)
    next_id = len(pop)
    observed: dict[str, pd.DataFrame] = {}
    for name, scfg in cfg["surveys"].items():
        rng = survey_rng(seed, name)
        seen = select_observed(pop, scfg, rng)
        inter = make_interlopers(pop, seen, scfg, rng, next_id)
        next_id += len(inter)
        pop = pd.concat([pop, inter], ignore_index=True)
        cat = pd.concat([pop.iloc[seen], pop.iloc[len(pop) - len(inter):]], ignore_index=True)
        # astrometric error: Gaussian per axis, rms (radial) as configured
        sigma = scfg["astrometric_rms_arcsec"] / np.sqrt(2)
        dx, dy = rng.normal(0, sigma, len(cat)), rng.normal(0, sigma, len(cat))
        cat["obs_ra"], cat["obs_dec"] = offset_positions(cat["ra"].to_numpy(), cat["dec"].to_numpy(), dx, dy)
        cat["true_dx_arcsec"], cat["true_dy_arcsec"] = -dx, -dy
        cat["object_id"] = object_ids(name, len(cat), rng, cat["obs_ra"].to_numpy(), cat["obs_dec"].to_numpy())
        cat = cat.iloc[rng.permutation(len(cat))].reset_index(drop=True)
        observed[name] = cat
        log.info("%s observes %d galaxies and %d interlopers", name, len(seen), len(inter))

    truth = pop.copy()
    for name, cat in observed.items():
        ids = pd.Series(cat["object_id"].to_numpy(), index=cat["galaxy_id"].to_numpy())
        truth[f"{name}_object_id"] = truth["galaxy_id"].map(ids).fillna("").astype(str)
        for col in ("obs_ra", "obs_dec"):
            vals = pd.Series(cat[col].to_numpy(), index=cat["galaxy_id"].to_numpy())
            truth[f"{name}_{col[4:]}"] = truth["galaxy_id"].map(vals)

    for name, cat in observed.items():
        scfg = cfg["surveys"][name]
        rng = survey_rng(seed + 1, name)
        if scfg["kind"] == "image":
            make_rows = image_rows
            features = image_features(scfg["bands"], scfg["npix"])
            text = (f"Mini {name} imaging: {len(cat)} cutouts of {scfg['npix']}x{scfg['npix']} px at "
                    f"{scfg['pixel_scale']} arcsec/px in bands {scfg['bands']}; flux in nanomaggies per pixel.")
        else:
            make_rows = spectrum_rows
            features = spectrum_features()
            text = f"Mini {name} spectra: {len(cat)} spectra on the {scfg['grid']} grid; flux in 1e-17 erg/s/cm2/A."
        kwargs = {"name": name, "scfg": scfg, "cat": cat, "rng": rng}
        write_hub_dataset(make_rows, kwargs, features, outdir / name, text)

    # PROVABGS-like value-added catalogue for the DESI-like spectra, joined on TARGETID
    if "desi" in observed:
        d = observed["desi"]
        write_parquet_dataset(pd.DataFrame({
            "TARGETID": d["object_id"].astype(np.int64), "Z_HP": d["z"], "LOG_MSTAR": d["log_mstar"],
            "Z_MW": Z_SUN * 10 ** d["log_z_mw"], "TAGE_MW": d["t_age_gyr"],
            "AVG_SFR": 10 ** (d["log_ssfr"] + d["log_mstar"]),
        }), outdir / "provabgs")
    return truth


def write_parquet_dataset(frame: pd.DataFrame, folder: Path) -> None:
    with atomic_path(folder, is_dir=True) as tmp:
        (tmp / "data").mkdir(parents=True)
        frame.to_parquet(tmp / "data" / "train-00000-of-00001.parquet", index=False)
