"""Write the mini universe: a truth catalogue and one Hub-layout parent dataset per survey.

Each survey's dataset is a folder ``<survey>/data/train-00000-of-00001.parquet`` holding the columns and
features of the Multimodal Universe parent sets (``object_id``, ``ra``, ``dec``, ``image`` {band, flux,
ivar, mask, psf_fwhm, scale} or ``spectrum`` {flux, ivar, lsf_sigma, lambda, mask}, plus catalogue
scalars), so ``datasets.load_dataset(folder)`` reads it exactly as it reads a Hub repository.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..downstream.labels import FRACTION_COLUMNS, QUESTIONS
from ..io import atomic_path, write_parquet
from ..surveys import BAND_WAVELENGTH, desi_wavelength
from .observe import observe_spectrum, pad_spectrum, render_image, sdss_grid
from .population import (Z_SUN, band_flux_ratios, draw_morphology, draw_positions, draw_properties,
                         offset_positions)

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
    # the morphology has a stream of its own, so adding it changed no other property (spectra stay the same)
    return draw_morphology(props, np.random.default_rng([seed, 1]))


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


def make_interlopers(pop: pd.DataFrame, seen: np.ndarray, scfg: dict, rng, first_id: int,
                     morphology_rng: np.random.Generator) -> pd.DataFrame:
    """Objects only this survey sees: close companions of real galaxies, a few blends, and field objects.

    Their morphology comes from ``morphology_rng``, a stream apart from ``rng`` (which the survey's
    selection, astrometry and ids go on drawing from unchanged)."""
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
    return draw_morphology(props, morphology_rng)


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
    """Write ``make_rows(**gen_kwargs)`` as ``folder/data/train-00000-of-00001.parquet``, atomically.

    The rows go to an Arrow file through ``datasets``' own writer, as ``Dataset.from_generator`` does, but
    a record batch (the writer's 1,000 rows) at a time as Arrow arrays (``rows_table``): ``from_generator``
    turned every 2-D cutout into a list of row arrays, a third of the mini universe's time (issue 28). The
    same record batches, so the parquet is the same, byte for byte (tests/test_mini_universe.py)."""
    from datasets import Dataset
    from datasets.arrow_writer import ArrowWriter

    with atomic_path(folder, is_dir=True) as tmp:
        cache = tmp / ".cache"
        cache.mkdir(parents=True)
        rows = make_rows(**gen_kwargs)
        with ArrowWriter(features=features, path=str(cache / "rows.arrow")) as writer:
            while batch := list(itertools.islice(rows, writer.writer_batch_size)):
                writer.write_table(rows_table(batch, features))
            writer.finalize()
        ds = Dataset.from_file(str(cache / "rows.arrow"))
        (tmp / "data").mkdir(parents=True)
        ds.to_parquet(str(tmp / "data" / "train-00000-of-00001.parquet"))
        del ds
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
        (tmp / "README.md").write_text(f"# {folder.name} (samesky mini universe)\n\n{description}\n")


def rows_table(rows: list[dict], features):
    """``rows`` (dicts in ``features``' layout: scalar columns, and struct columns of lists of scalars or of
    ``Array2D`` cutouts) as one Arrow table of ``features.arrow_schema``, built from flat numpy buffers."""
    import pyarrow as pa

    schema = features.arrow_schema
    columns = []
    for field in schema:
        values = [row[field.name] for row in rows]
        if pa.types.is_struct(field.type):
            children = [_list_column([v[child.name] for v in values], child.type) for child in field.type]
            columns.append(pa.StructArray.from_arrays(children, fields=list(field.type)))
        else:
            columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _list_column(per_row: list, list_type):
    """One list per row: of scalars, or of 2-D arrays (``datasets``' Array2D: a list of row lists)."""
    import pyarrow as pa

    offsets = pa.array(np.concatenate([[0], np.cumsum([len(x) for x in per_row])]).astype(np.int32))
    item_type = list_type.value_type
    if not isinstance(item_type, pa.ExtensionType):
        if all(isinstance(x, np.ndarray) for x in per_row):  # a spectrum's pixels: one buffer
            return pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(per_row), type=item_type))
        return pa.ListArray.from_arrays(offsets, pa.array([item for x in per_row for item in x], type=item_type))
    cutouts = np.stack([np.asarray(a) for x in per_row for a in x])  # (items, rows, columns)
    n_items, n_rows, n_cols = cutouts.shape
    storage = item_type.storage_type  # list<list<dtype>>
    values = pa.array(cutouts.reshape(-1), type=storage.value_type.value_type)
    row_lists = pa.ListArray.from_arrays(pa.array(np.arange(n_items * n_rows + 1, dtype=np.int32) * n_cols), values)
    items = pa.ListArray.from_arrays(pa.array(np.arange(n_items + 1, dtype=np.int32) * n_rows), row_lists)
    return pa.ListArray.from_arrays(offsets, pa.ExtensionArray.from_storage(item_type, items.cast(storage)))


def build_mini_universe(cfg: dict, seed: int, hub_dir: str | Path, truth_path: str | Path,
                        workers: int = 1) -> pd.DataFrame:
    """Generate the mini universe: one Hub-layout folder per survey under ``hub_dir`` (plus ``provabgs``,
    a PROVABGS-like catalogue of the DESI-like spectra, and ``galaxy_zoo``, GZD-5-like volunteer votes for
    the Legacy-like images) and the truth catalogue at ``truth_path``. Returns the truth catalogue.

    The surveys are rendered by ``workers`` processes: each survey draws from its own random stream, so the
    files are the same whatever the number of workers."""
    with atomic_path(hub_dir, is_dir=True) as tmp:
        truth = _build(cfg, seed, Path(tmp), workers)
    write_parquet(truth_path, truth)
    return truth


def _build(cfg: dict, seed: int, outdir: Path, workers: int = 1) -> pd.DataFrame:
    pop = make_population(cfg, seed)
    next_id = len(pop)
    observed: dict[str, pd.DataFrame] = {}
    for name, scfg in cfg["surveys"].items():
        rng = survey_rng(seed, name)
        seen = select_observed(pop, scfg, rng)
        inter = make_interlopers(pop, seen, scfg, rng, next_id, survey_rng(seed + 2, name))
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

    surveys = []
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
        surveys.append((make_rows, kwargs, features, outdir / name, text))
    _render(surveys, workers)

    # PROVABGS-like value-added catalogue for the DESI-like spectra, joined on TARGETID
    if "desi" in observed:
        d = observed["desi"]
        write_parquet_dataset(pd.DataFrame({
            "TARGETID": d["object_id"].astype(np.int64), "Z_HP": d["z"], "LOG_MSTAR": d["log_mstar"],
            "Z_MW": Z_SUN * 10 ** d["log_z_mw"], "TAGE_MW": d["t_age_gyr"],
            "AVG_SFR": 10 ** (d["log_ssfr"] + d["log_mstar"]),
        }), outdir / "provabgs")
    # Galaxy Zoo DECaLS-like volunteer votes for what the Legacy-like survey imaged
    if "legacysurvey" in observed:
        write_parquet_dataset(galaxy_zoo_votes(observed["legacysurvey"], survey_rng(seed + 3, "galaxy_zoo")),
                              outdir / "galaxy_zoo")
    return truth


def _render(surveys: list[tuple], workers: int) -> None:
    """``write_hub_dataset(*args)`` for each survey, the largest first, in ``workers`` processes (rendering
    is most of the mini universe's time, and surveys are independent)."""
    surveys = sorted(surveys, key=lambda args: -len(args[1]["cat"]))
    if workers <= 1 or len(surveys) < 2:
        for args in surveys:
            write_hub_dataset(*args)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(workers, len(surveys))) as pool:
        for done in [pool.submit(write_hub_dataset, *args) for args in surveys]:
            done.result()  # a worker's error is raised here


def write_parquet_dataset(frame: pd.DataFrame, folder: Path) -> None:
    with atomic_path(folder, is_dir=True) as tmp:
        (tmp / "data").mkdir(parents=True)
        frame.to_parquet(tmp / "data" / "train-00000-of-00001.parquet", index=False)


def iau_names(ra, dec) -> np.ndarray:
    """IAU-style names, "JHHMMSS.ss+DDMMSS.s", truncated (not rounded) as the convention asks."""
    ra_cs = np.floor(np.mod(np.asarray(ra, float), 360.0) / 15 * 3600 * 100).astype(np.int64)  # 0.01 s of RA
    dec = np.asarray(dec, float)
    dec_ds = np.floor(np.abs(dec) * 3600 * 10).astype(np.int64)  # 0.1 arcsec of Dec
    return np.array([
        f"J{r // 360000:02d}{r // 6000 % 60:02d}{r % 6000 // 100:02d}.{r % 100:02d}"
        f"{'-' if d < 0 else '+'}{a // 36000:02d}{a // 600 % 60:02d}{a % 600 // 10:02d}.{a % 10}"
        for r, a, d in zip(ra_cs, dec_ds, dec)])


# what volunteers answer for a galaxy they cannot resolve: a smooth, round, undisturbed blob
UNRESOLVED_ANSWER = {"smooth-or-featured": "smooth", "disk-edge-on": "no", "has-spiral-arms": "no",
                     "bar": "no", "how-rounded": "round", "merging": "none"}
VOTE_NOISE = 0.1  # the share of votes cast at random (misclicks, disagreement): the only artifact votes
# the size (arcsec) at which a galaxy counts as resolved; 1.1 makes ~85% of galaxies with r_eff > 1 arcsec
# get their true class from the votes (labels.morphology_classes), ~90% at 1.0, ~78% at 1.2
RESOLVED_ARCSEC = 1.1


def clarity(r_eff_arcsec, mag_r) -> np.ndarray:
    """How well a Legacy-like image (~1.3 arcsec seeing, r < 23.5) shows a galaxy's morphology, 0..1:
    small galaxies are unresolved, faint ones drowned in noise."""
    size = np.clip(1 - np.exp(-(np.asarray(r_eff_arcsec, float) / RESOLVED_ARCSEC) ** 2), 0, 1)
    return size * np.clip((23.5 - np.asarray(mag_r, float)) / 4, 0.2, 1)


def true_answers(cat: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per GZD-5 question, the answer an ideal volunteer gives each galaxy (from its true shape)."""
    shape = cat["shape_class"].to_numpy(str)
    barred = shape == "barred_spiral"
    return {
        "smooth-or-featured": np.where(np.isin(shape, ("smooth_round", "smooth_cigar")), "smooth", "featured-or-disk"),
        "disk-edge-on": np.where(shape == "edge_on_disk", "yes", "no"),
        "has-spiral-arms": np.where(np.isin(shape, ("unbarred_spiral", "barred_spiral")), "yes", "no"),
        "bar": np.where(barred & (cat["bar_strength"].to_numpy(float) >= 0.35), "strong",
                        np.where(barred, "weak", "no")),
        # anything voted smooth is judged by its outline: an edge-on disk called smooth looks cigar-shaped
        "how-rounded": np.where(cat["axis_ratio"].to_numpy(float) < 0.6, "cigar-shaped", "round"),
        "merging": np.where(cat["morphology"].to_numpy(str) == "merger", "merger", "none"),
    }


def galaxy_zoo_votes(cat: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A GZD-5-like volunteer catalogue (columns as labels.FRACTION_COLUMNS) for the objects in ``cat``.

    Each object gets 35-45 volunteers. For every question the votes are multinomial over its answers with
    probabilities ``(1 - noise) * (c * true + (1 - c) * unresolved) + noise * uniform``, ``c`` the clarity:
    resolved, bright galaxies get their true answers, small faint ones drift to "smooth, round", as real
    volunteers call unresolved galaxies smooth. Follow-up questions are asked of the volunteers whose
    answer leads to them (the GZD-5 decision tree); the merging question of everyone. A fraction is the
    answer's votes over those asked, NaN where nobody was.
    """
    n = len(cat)
    c = clarity(cat["r_eff_arcsec"], cat["mag_r"])[:, None]
    truth = true_answers(cat)
    total = rng.integers(35, 46, n)
    votes: dict[tuple[str, str], np.ndarray] = {}
    asked: dict[str, np.ndarray] = {}
    for question, answers in QUESTIONS.items():  # in tree order: every question follows the one it hangs on
        if question in ("smooth-or-featured", "merging"):
            asked[question] = total
        elif question == "disk-edge-on":
            asked[question] = votes["smooth-or-featured", "featured-or-disk"]
        elif question in ("has-spiral-arms", "bar"):
            asked[question] = votes["disk-edge-on", "no"]
        else:  # how-rounded
            asked[question] = votes["smooth-or-featured", "smooth"]
        ans = np.asarray(answers)
        onehot = (truth[question][:, None] == ans[None, :]).astype(float)
        blob = (ans == UNRESOLVED_ANSWER[question]).astype(float)[None, :]
        p = (1 - VOTE_NOISE) * (c * onehot + (1 - c) * blob) + VOTE_NOISE / len(ans)
        counts = rng.multinomial(asked[question], p / p.sum(axis=1, keepdims=True))
        for j, a in enumerate(answers):
            votes[question, a] = counts[:, j]

    out = {"iauname": iau_names(cat["obs_ra"], cat["obs_dec"]), "ra": cat["obs_ra"].to_numpy(float),
           "dec": cat["obs_dec"].to_numpy(float)}
    for question, answers in QUESTIONS.items():
        out[f"{question}_total-votes"] = asked[question].astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            for a in answers:
                out[f"{question}_{a}_fraction"] = np.where(asked[question] > 0,
                                                           votes[question, a] / asked[question], np.nan)
    # GZD-5's column order: names and positions, vote counts, then the fractions question by question
    return pd.DataFrame(out)[["iauname", "ra", "dec", *(f"{q}_total-votes" for q in QUESTIONS), *FRACTION_COLUMNS]]
