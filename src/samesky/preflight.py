"""Preflight: will a run go through? Checked in minutes, without a GPU, before the cluster spends hours.

For every configured dataset the first rows are streamed at the pinned revision (``datasets`` streaming,
the same ``load_dataset`` the download uses) and put through the checks the run itself makes (the pair
audit: renames, side columns and fields, ids and repeats, positions), plus what the embedding and analysis
stages read: band names and image shapes, spectrum fields and length, the size-curve class column, the
probes' join and catalogue columns, the downstream tasks' position and redshift columns. Every model
repository's files are listed at its revision and checked for what the download takes (weights, in
safetensors or .bin, and the file the model loads). A dataset given by URL (AstroCLIP's evaluation file,
the Galaxy Zoo DECaLS votes) gets a HEAD request (reachable, size).

The result is a Markdown report and one line per problem, each naming the dataset or model, the field and
what was found. Without network the preflight stops at once with "cannot reach the Hub", before any check.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import embedding_jobs, pair_datasets, pair_surveys
from .crossmatch import CrossmatchError
from .hub import is_local
from .registry import specs_of
from .surveys import DESI_NPIX, SPECTRUM_RANGE_ANGSTROM, SURVEY_BANDS, band_letter, modality_of

log = logging.getLogger(__name__)

HUB_ENDPOINT = os.environ.get("HF_ENDPOINT", "https://huggingface.co")


class PreflightError(RuntimeError):
    """The run would not go through: one line per problem."""


@dataclass
class Findings:
    """What the checks found: report rows by table, and the problems."""

    rows: dict = field(default_factory=lambda: {"datasets": [], "sides": [], "models": []})
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    cost: dict = field(default_factory=dict)  # the estimate (samesky.cost): its rows and totals

    def problem(self, what: str, where: str, found: str) -> str:
        line = f"{what}: {where}: {found}"
        self.problems.append(line)
        return "problem"


# Reaching the Hub ----------------------------------------------------------------------------------------


def needs_network(config: dict, models: bool = True) -> list[str]:
    """The sources that are not on this machine (Hub datasets, URLs, and, with ``models``, Hub model weights)."""
    remote = [d["source"] for d in config["datasets"] if is_remote(d["source"])]
    if models and config["model_weights"] == "hub":
        remote += sorted({s.hub_id for s in specs_of(config).values() if s.weights == "hub" and not s.is_control
                          and not is_local(s.hub_id)})
    if config["model_weights"] == "released":  # the datasets are not read, only the released files
        remote = [config["released_embeddings"]["source"]] if is_remote(config["released_embeddings"]["source"]) else []
    return remote


def is_remote(source: str) -> bool:
    """A URL, or a Hub id ('owner/name') that is not a folder here; anything else is a local path."""
    import re

    if source.startswith(("http://", "https://")):
        return True
    return not is_local(source) and re.fullmatch(r"[\w.-]+/[\w.-]+", source) is not None and source != "mini"


def check_hub_reachable(timeout_s: float) -> None:
    """Raise PreflightError at once if huggingface.co cannot be reached (offline, HF_HUB_OFFLINE, no DNS)."""
    import concurrent.futures

    import requests

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise PreflightError(f"cannot reach the Hub ({HUB_ENDPOINT}): HF_HUB_OFFLINE is set")
    # in a thread with a deadline: a stalled DNS lookup is not covered by requests' own timeout
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        pool.submit(requests.head, HUB_ENDPOINT, timeout=timeout_s).result(timeout=timeout_s + 1)
    except Exception as exc:  # noqa: BLE001 (any failure to connect is the same answer)
        raise PreflightError(f"cannot reach the Hub ({HUB_ENDPOINT}): {_reason(exc)}. The preflight needs network "
                             "access to huggingface.co (on a cluster: a login node)") from None
    finally:
        pool.shutdown(wait=False)


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} bytes"


def _reason(exc: BaseException) -> str:
    """The first line of an error, the innermost cause of a urllib3 retry error (DNS, refused, timeout)."""
    import re

    text = str(exc).splitlines()[0] if str(exc) else f"no answer ({type(exc).__name__})"
    cause = re.search(r"\(Caused by \w+\(\"?(?:[^:]*: )?(.*?)\"?\)\)$", text)
    return cause.group(1) if cause else text


# Datasets ------------------------------------------------------------------------------------------------


def sample_dataset(entry: dict, source: str, n_rows: int):
    """The first ``n_rows`` rows of a dataset at its revision, streamed, as a ``datasets.Dataset``."""
    from datasets import Dataset, load_dataset

    if entry["format"] == "mmu_hdf5":  # a Multimodal Universe parent copy: its first files' rows
        from .mmu_data import read_sample

        return read_sample(source, entry["config_name"], entry["survey"], n_rows)
    local = is_local(source)
    stream = load_dataset(source, name=entry["config_name"], split=entry["split"], streaming=True,
                          revision=None if local else entry["revision"])
    rows = list(itertools.islice(iter(stream), n_rows))
    if not rows:
        raise ValueError("no rows")
    features = stream.features
    return Dataset.from_list(rows, features=features) if features is not None else Dataset.from_list(rows)


def head_size(url: str, timeout_s: float) -> int:
    """The size in bytes of a file at a URL (HEAD request) or a local path; raises OSError if unreachable."""
    if not is_remote(url):
        return Path(url).stat().st_size
    import requests

    response = requests.head(url, allow_redirects=True, timeout=timeout_s)
    if response.status_code >= 400:
        raise OSError(f"HTTP {response.status_code}")
    return int(response.headers.get("Content-Length", -1))


def _id_facts(ds) -> tuple[str, int]:
    """(the object id column's type, how many ids repeat in the sample)."""
    column = "object_id" if "object_id" in ds.column_names else next(
        (c for c in ds.column_names if c.endswith("_object_id")), None)
    if column is None:
        return "absent", 0
    ids = np.asarray(ds[column]).astype(str)
    return f"{column}: {ds.features[column].dtype}", len(ids) - len(np.unique(ids))


def check_side(found: Findings, name: str, pair: str, survey: str, ds, needs: dict, tol: dict | None = None) -> None:
    """One side of a pair (the data column ``<survey>_<modality>``): band names and image shapes, or the
    spectrum's fields and length, against what the run's models and rules read; then its values
    (:func:`check_side_values`, tolerances ``tol``: config preflight.values)."""
    kind = modality_of(survey)
    column = f"{survey}_{kind}"
    row = {"pair": pair, "side": survey, "column": column, "fields": "", "bands / length": "", "shape": "",
           "finite": "", "ivar > 0": "", "masked": "", "constant rows": "", "wavelength (A)": "", "status": "ok"}
    found.rows["sides"].append(row)
    what = f"dataset {name}"
    # there, with its fields (the callers ran the audit's checks); formatted once: a column of a formatted
    # dataset formats every row again on each pass, and the checks make several (most of a preflight's time)
    values = list(ds.with_format("numpy")[column])
    first = values[0]
    row["fields"] = ", ".join(sorted(first))
    if kind == "image":
        flux = np.asarray(first["flux"])
        if "band" in first:
            letters = [band_letter(str(b)) for b in first["band"]]
        else:
            letters = [band_letter(b) for b in SURVEY_BANDS.get(survey, ())][:len(flux)]
            found.notes.append(f"{what}: column '{column}' has no 'band' field; read in {survey}'s documented "
                               f"order {letters}")
        row["bands / length"] = " ".join(letters)
        row["shape"] = "x".join(map(str, flux.shape))
        missing = [b for b in needs.get("bands", ()) if b not in letters]
        if missing:
            row["status"] = found.problem(what, f"column '{column}' field 'band'",
                                          f"bands {missing} needed, found {letters}")
        if flux.ndim != 3 or flux.shape[1] != flux.shape[2]:
            row["status"] = found.problem(what, f"column '{column}' field 'flux'",
                                          f"shape {flux.shape}, not (bands, n, n)")
        shapes = {np.asarray(v["flux"]).shape for v in values}
        if len(shapes) > 1:
            row["status"] = found.problem(what, f"column '{column}' field 'flux'", f"shapes differ: {sorted(shapes)}")
    else:
        lengths = sorted({len(np.asarray(v["flux"])) for v in values})
        row["bands / length"] = str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]} (varies)"
        if survey == "desi" and lengths != [DESI_NPIX]:
            row["status"] = found.problem(what, f"column '{column}' field 'flux'",
                                          f"length {lengths}, the DESI grid has {DESI_NPIX} pixels")
        if "lambda" in first and any(len(np.asarray(v["lambda"])) != len(np.asarray(v["flux"])) for v in values):
            row["status"] = found.problem(what, f"column '{column}' field 'lambda'", "length differs from 'flux'")
    if tol is not None:
        check_side_values(found, what, column, survey, values, row, tol)


# Values on the sampled rows: what the schema allows but the run does not assume ----------------------------


def _frac(x: float) -> str:
    return f"{x:.1%}"


def _share(flags) -> float:
    """The share of True over a side's boolean arrays (one a row)."""
    flags = list(flags)
    return sum(int(f.sum()) for f in flags) / max(1, sum(f.size for f in flags))


def check_side_values(found: Findings, what: str, column: str, survey: str, values, row: dict, tol: dict) -> None:
    """The values of one side's sampled rows: finite flux, inverse variances > 0, rows that would embed as
    constants, image planes against the band list, and a spectrum's wavelength grid against its survey's
    range in Angstrom. Each departure beyond its tolerance is one problem line; the facts go in ``row``."""
    key = "preflight.values"
    fluxes = [np.asarray(v["flux"], dtype=np.float64) for v in values]
    finite = _share(np.isfinite(f) for f in fluxes)
    row["finite"] = _frac(finite)
    if finite < tol["min_finite_fraction"]:
        row["status"] = found.problem(what, f"column '{column}' field 'flux'",
                                      f"{_frac(finite)} of the sampled pixels finite (at least "
                                      f"{_frac(tol['min_finite_fraction'])}: {key}.min_finite_fraction)")
    if "ivar" in values[0]:
        ivars = [np.asarray(v["ivar"], dtype=np.float64) for v in values]
        if any(i.shape != f.shape for i, f in zip(ivars, fluxes)):
            row["status"] = found.problem(what, f"column '{column}' field 'ivar'",
                                          f"shape {ivars[0].shape} differs from 'flux' {fluxes[0].shape}")
        else:
            positive = _share(np.isfinite(i) & (i > 0) for i in ivars)
            row["ivar > 0"] = _frac(positive)
            if positive < tol["min_positive_ivar_fraction"]:
                row["status"] = found.problem(what, f"column '{column}' field 'ivar'",
                                              f"{_frac(positive)} of the sampled pixels with inverse variance > 0 "
                                              f"(at least {_frac(tol['min_positive_ivar_fraction'])}: "
                                              f"{key}.min_positive_ivar_fraction)")
    if "mask" in values[0]:  # read as True = bad, as every step reads it
        masked = _share(np.asarray(v["mask"], dtype=bool) for v in values)
        row["masked"] = _frac(masked)
        if masked > tol["max_masked_fraction"]:
            row["status"] = found.problem(what, f"column '{column}' field 'mask'",
                                          f"{_frac(masked)} of the sampled pixels masked (at most "
                                          f"{_frac(tol['max_masked_fraction'])}: {key}.max_masked_fraction), read as True = bad; "
                                          "is the polarity reversed? The Multimodal Universe's image masks are True "
                                          "for clean pixels: set the dataset's image_mask: clean")
    constant = sum(1 for f in fluxes if not np.isfinite(f).any() or np.ptp(f[np.isfinite(f)]) == 0)
    row["constant rows"] = f"{constant} of {len(fluxes)}"
    if constant / len(fluxes) > tol["max_constant_fraction"]:
        row["status"] = found.problem(what, f"column '{column}' field 'flux'",
                                      f"{constant} of {len(fluxes)} sampled rows constant or empty: they would embed "
                                      f"as one constant (at most {_frac(tol['max_constant_fraction'])}: "
                                      f"{key}.max_constant_fraction)")
    if "band" in values[0]:
        mismatched = [(len(np.asarray(v["band"])), f.shape[0]) for v, f in zip(values, fluxes)
                      if f.ndim >= 1 and len(np.asarray(v["band"])) != f.shape[0]]
        if mismatched:
            row["status"] = found.problem(what, f"column '{column}' field 'band'",
                                          f"{len(mismatched)} of {len(fluxes)} sampled rows name {mismatched[0][0]} "
                                          f"bands for {mismatched[0][1]} flux planes")
    if "lambda" in values[0] and survey in SPECTRUM_RANGE_ANGSTROM:
        lams = [np.asarray(v["lambda"], dtype=np.float64) for v in values]
        lams = [lam[np.isfinite(lam) & (lam > 0)] for lam in lams]
        if any(len(lam) == 0 for lam in lams):
            row["status"] = found.problem(what, f"column '{column}' field 'lambda'", "a sampled row has no positive wavelength")
            return
        start, end = min(lam.min() for lam in lams), max(lam.max() for lam in lams)
        row["wavelength (A)"] = f"{start:.6g}-{end:.6g}"
        low, high = SPECTRUM_RANGE_ANGSTROM[survey]
        off = max(max(abs(lam.min() - low), abs(lam.max() - high)) for lam in lams)
        if off > tol["wavelength_tolerance_angstrom"]:
            unit = " (microns?)" if end < 2 else " (nm?)" if end < 2000 else ""
            row["status"] = found.problem(what, f"column '{column}' field 'lambda'",
                                          f"spans {start:.6g}-{end:.6g}{unit}; {survey} spans {low:.0f}-{high:.0f} A "
                                          f"(within {tol['wavelength_tolerance_angstrom']:g} A: "
                                          f"{key}.wavelength_tolerance_angstrom)")
        if any(np.any(np.diff(lam) <= 0) for lam in lams):
            row["status"] = found.problem(what, f"column '{column}' field 'lambda'", "not increasing in a sampled row")


def value_range(column: str, reader: str, ranges: dict) -> tuple[str, list] | None:
    """(role, [low, high]) of a column a later rule reads: by role (positions, redshift, magnitude), else by
    its name (PROVABGS); None for ids and classes."""
    name, role = column.lower(), column
    for position in ("ra", "dec"):
        if name == position or name.endswith(f"_{position}"):
            role = position
    if "redshift" in reader:
        role = "redshift"
    elif "brightness" in reader or "magnitude" in reader:
        role = "magnitude"
    return (role, list(ranges[role])) if role in ranges else None  # settings: no .get


def check_column_values(found: Findings, name: str, ds, columns: dict, tol: dict) -> None:
    """The values of each column a later rule reads, against its range (config preflight.values.ranges):
    more than ``max_outside_fraction`` of the sampled values outside it or not finite is a problem, any is
    a note."""
    for column, reader in columns.items():
        if column not in ds.column_names:
            continue  # check_columns names it
        bounds = value_range(column, reader, tol["ranges"])
        if bounds is None:
            continue
        role, (low, high) = bounds
        try:
            values = np.asarray(ds[column], dtype=np.float64)
        except (TypeError, ValueError):
            found.problem(f"dataset {name}", f"column '{column}' ({reader})",
                          f"not numeric ({ds.features[column]}); read as a {role}")
            continue
        bad = ~np.isfinite(values) | (values < low) | (values > high)
        if not bad.any():
            continue
        seen = values[np.isfinite(values)]
        facts = (f"{int(bad.sum())} of {len(values)} sampled values outside [{low:g}, {high:g}] ({role}) or not finite"
                 f" (found {seen.min():.4g} to {seen.max():.4g})" if len(seen) else
                 f"{len(values)} of {len(values)} sampled values not finite"
                 + (" (the set carries no positions)" if role in ("ra", "dec") else ""))
        if bad.mean() > tol["max_outside_fraction"]:
            found.problem(f"dataset {name}", f"column '{column}' ({reader})",
                          f"{facts}; at most {_frac(tol['max_outside_fraction'])}: preflight.values.max_outside_fraction")
        else:
            found.notes.append(f"dataset {name}: column '{column}' ({reader}): {facts}; within the tolerance")


def check_paired(found: Findings, name: str, pair: dict, ds, surveys, config: dict, needs: dict):
    """A set paired upstream: the pair audit itself on the sample, then each side and the columns read later."""
    from .pairs import audit_crossmatched

    cross = config["crossmatch"]
    try:
        paired, _, summary = audit_crossmatched(ds, *surveys, cross["radius_arcsec"], rename=pair["rename"],
                                                name=name, require_positions=cross["require_positions"],
                                                repeated_ids=cross["repeated_ids"])
    except CrossmatchError as exc:
        found.problem(f"dataset {name}", f"pair {pair['name']}", str(exc).removeprefix(f"{name}: "))
        return None
    if summary["audit_status"] == "unverifiable":
        found.notes.append(f"dataset {name}: no positions of both sides, pair separations unverifiable "
                           "(recorded as such in crossmatch/summary.csv)")
    for survey in surveys:
        check_side(found, name, pair["name"], survey, paired, needs.get(survey, {}), config["preflight"]["values"])
    return paired


def check_parent(found: Findings, name: str, entry: dict, ds, needs: dict, tol: dict | None = None) -> None:
    """A parent dataset, crossmatched here: the crossmatch's column checks, then its side as a pair has it."""
    from .pairs import REQUIRED_PARENT_COLUMNS, _prefixed, check_side_columns, require_columns

    survey = entry["survey"]
    try:
        require_columns(ds.column_names, REQUIRED_PARENT_COLUMNS, name)
        prefixed = _prefixed(ds, survey)
        check_side_columns(prefixed, (survey,), name)
    except CrossmatchError as exc:
        found.problem(f"dataset {name}", "parent", str(exc).removeprefix(f"{name}: "))
        return
    check_side(found, name, "(parent)", survey, prefixed, needs, tol)


def check_columns(found: Findings, name: str, ds, columns: dict) -> None:
    """Columns a later rule reads, by what reads them."""
    for column, reader in columns.items():
        if column not in ds.column_names:
            found.problem(f"dataset {name}", f"column '{column}' ({reader})", f"absent; has {ds.column_names}")


# What the run reads --------------------------------------------------------------------------------------


def side_needs(config: dict) -> dict:
    """(pair, survey) -> what the configured models read of it: the RGB bands, AstroCLIP's flux bands, and
    F200W where the paper code's blank rule looks at it."""
    from .embed.images import RGB_BANDS

    needs: dict = {}
    specs = specs_of(config)
    for pair, survey, model in embedding_jobs(config, specs=specs):
        spec = specs[model]
        bands = needs.setdefault((pair, survey), [])
        if spec.takes == "rgb":
            bands += RGB_BANDS.get(survey, ())
        elif spec.takes == "flux":  # AstroCLIP's image encoders: Legacy g, r, z; AION: every band it knows
            from .embed.families import adapter_of

            bands += adapter_of(spec.adapter).flux_bands_for(survey)
    if config["embedding"]["blank_rule"] == "platonic_universe":
        datasets = {d["name"]: d for d in config["datasets"]}
        for p in config["pairs"]:
            if "jwst" in pair_surveys(p, datasets):
                needs.setdefault((p["name"], "jwst"), []).append("f200w")
    return {side: {"bands": tuple(dict.fromkeys(bands))} for side, bands in needs.items()}


def later_columns(config: dict, pair: dict, surveys) -> dict:
    """Columns of a pair's dataset that rules after the crossmatch read: the size-curve classes, the
    conditional alignment's redshift and brightness, the join of the probes."""
    columns = {}
    conditional = config["alignment"]["conditional"]
    named = [(config["alignment"]["size_curves"]["classes"], "alignment.size_curves.classes"),
             (conditional["redshift"], "alignment.conditional.redshift")]
    for spec, key in named:
        if pair["align"] and spec and spec["source"] == "pair" and (
                spec["only_pairs"] is None or pair["name"] in spec["only_pairs"]):
            columns[spec["column"].replace("{other}", surveys[1])] = key
    if pair["align"] and conditional["brightness"] is not None:
        columns[conditional["brightness"]] = "alignment.conditional.brightness"
    if "probes" in config and config["probes"]["pair"] == pair["name"]:
        columns[config["probes"]["join_on"]] = "probes.join_on"
    down = config["downstream"] if "downstream" in config else None  # settings have no .get
    if down and down["morphology"]["pair"] == pair["name"]:  # Galaxy Zoo is matched to the pair by position
        columns.update({"ra": "downstream.morphology.pair", "dec": "downstream.morphology.pair"})
    if down and down["redshift"]["pair"] == pair["name"]:
        columns[down["redshift"]["column"]] = "downstream.redshift.column"
    return columns


def check_morphology_catalogue(found: Findings, config: dict, timeout_s: float) -> None:
    """The Galaxy Zoo vote catalogue of the paper preset: a HEAD request (its columns are read at the
    morphology_sample job; GZD-5's CSV is large)."""
    if "downstream" not in config or config["downstream"]["morphology"]["catalogue"]["source"] != "file":
        return
    catalogue = config["downstream"]["morphology"]["catalogue"]
    row = {"dataset": "downstream.morphology.catalogue", "source": catalogue["path"], "revision": "",
           "rows sampled": "", "object id": "", "repeats in sample": "", "status": "ok"}
    found.rows["datasets"].append(row)
    try:
        size = head_size(catalogue["path"], timeout_s)
        row["status"] = f"ok ({_size(size)})" if size >= 0 else "ok (size not given)"
    except Exception as exc:  # noqa: BLE001
        row["status"] = found.problem("downstream.morphology.catalogue", f"file {catalogue['path']}",
                                      f"unreachable: {exc}")


def catalogue_columns(config: dict) -> dict:
    from .probes.targets import PROVABGS_COLUMNS

    probes = config["probes"]
    columns = {probes["catalogue_id"]: "probes.catalogue_id"}
    columns.update({c: "probe targets" for c in PROVABGS_COLUMNS if c != "TARGETID"})
    if probes["positions_from_catalogue"]:
        columns.update({"ra": "probes.positions_from_catalogue", "dec": "probes.positions_from_catalogue"})
    if probes["brightness_from_magnitude"]:
        columns[probes["brightness_from_magnitude"]["column"]] = "probes.brightness_from_magnitude"
    return columns


# Models --------------------------------------------------------------------------------------------------


def hub_model_files(hub_id: str, revision: str) -> tuple[str, list[str]]:
    """(resolved commit, file names) of a model repository at a revision, as the download lists them."""
    from .embed.models import repository_files

    return repository_files(hub_id, revision)


def hub_model_access(hub_id: str) -> None:
    """Raise where this machine's Hugging Face token cannot download a gated repository's files."""
    from huggingface_hub import HfApi

    HfApi().auth_check(hub_id)


def check_models(found: Findings, config: dict, list_files=hub_model_files, check_access=hub_model_access) -> None:
    """Every model's repository at its revision: its files, the weights and the file the loader starts
    from; a gated repository's access with this machine's token; code a repository ships only where its
    entry allows it. Random controls, packaged weights and local folders are checked here without the Hub."""
    from .embed.models import ModelLoadError, hub_download_plan

    for spec in specs_of(config).values():
        row = {"model": spec.name, "repository": spec.hub_id or "", "revision": spec.revision, "files": "",
               "weights": "", "loads": "", "status": "ok"}
        found.rows["models"].append(row)
        if spec.is_control:
            row.update(repository=f"(random weights: {spec.control_of}'s architecture)", revision="",
                       status="ok (built here)")
            continue
        if spec.weights == "package":
            row.update(repository="(pip package)", revision="", status="ok (installed with the environment)")
            continue
        local = is_local(spec.hub_id)
        if config["model_weights"] != "hub" and not local:
            row.update(repository="(made here)", revision="", status="ok (model_weights: mini)")
            continue
        try:
            if local:
                resolved = "local"
                files = [str(p.relative_to(spec.hub_id)) for p in Path(spec.hub_id).rglob("*") if p.is_file()]
            else:
                resolved, files = list_files(spec.hub_id, spec.revision)
        except Exception as exc:  # noqa: BLE001 (no such repository, revision, or access)
            row["status"] = found.problem(f"model {spec.name}", f"repository {spec.hub_id}@{spec.revision}",
                                          f"cannot list its files: {str(exc).splitlines()[0] if str(exc) else exc}")
            continue
        row["revision"] = f"{spec.revision} -> {resolved[:12]}"
        row["files"] = str(len(files))
        code = sorted(f for f in files if f.endswith(".py") and "/" not in f)
        if code and not spec.trust_remote_code:
            row["status"] = found.problem(f"model {spec.name}", f"repository {spec.hub_id}",
                                          f"ships its own code ({', '.join(code[:3])}); to run it, set "
                                          "trust_remote_code: true in its models entry")
            continue
        try:
            patterns, entry, fmt = hub_download_plan(spec, files)
        except ModelLoadError as exc:
            row["status"] = found.problem(f"model {spec.name}", f"repository {spec.hub_id}",
                                          str(exc).split("': ", 1)[-1])
            continue
        row.update(weights=fmt, loads=entry)
        if spec.gated and not local:
            try:
                check_access(spec.hub_id)
                row["status"] = "ok (gated: access granted)"
            except Exception as exc:  # noqa: BLE001 (GatedRepoError, no token)
                row["status"] = found.problem(
                    f"model {spec.name}", f"repository {spec.hub_id}",
                    f"gated: accept its licence at https://huggingface.co/{spec.hub_id} and log in "
                    f"(`hf auth login`, or HF_TOKEN) on the machines that download it ({_reason(exc)})")


def hub_dataset_files(repo_id: str, revision: str) -> tuple[str, list[str]]:
    """(resolved commit, file names) of a released repository, listed as the run's list_released lists it."""
    from .released import list_repository

    listing = list_repository(repo_id, revision)
    return listing["revision_resolved"], listing["files"]


def check_released(found: Findings, config: dict, list_files=hub_dataset_files) -> None:
    """model_weights released: every file the run reads, found in the released repository at its revision
    among the names the peer's code uses (and in the layerwise one where the layer grids read it). A file
    not released is a note (the run goes on without it), or a problem with ``released_embeddings.strict``."""
    from .released import NOT_RELEASED, resolve

    r = config["released_embeddings"]
    datasets = {d["name"]: d for d in config["datasets"]}
    repositories = {"final": r}
    if config["alignment"]["layers"] != "final" and r["layerwise"]:
        repositories["layers"] = r["layerwise"]
    specs = specs_of(config)
    needed = dict.fromkeys((p, m) for p, _, m in embedding_jobs(config, specs=specs) if specs[m].modality == "image")
    pairs = {p["name"]: p for p in config["pairs"]}
    for kind, repo in repositories.items():
        try:
            resolved, files = list_files(repo["source"], repo["revision"])
        except Exception as exc:  # noqa: BLE001 (no such repository, revision, or access)
            found.problem("released embeddings", f"repository {repo['source']}@{repo['revision']}",
                          f"cannot list its files: {_reason(exc)}")
            continue
        for pair_name, model in needed:  # as the workflow's released_files: each image model's file of each pair
            spec = specs[model]
            reference, other = pair_surveys(pairs[pair_name], datasets)
            mode = (r["modes"] or {}).get(pair_name, other)
            hit = resolve(files, mode, spec, reference, other, layerwise=kind == "layers")
            paths = " ".join(sorted(set(hit["paths"].values())))
            row = {"model": spec.name, "repository": repo["source"], "revision": f"{repo['revision']} -> {resolved[:12]}",
                   "files": f"{pair_name} ({kind})", "weights": "released embeddings", "loads": paths or "-",
                   "status": "ok"}
            found.rows["models"].append(row)
            if hit["status"] == NOT_RELEASED:
                what, where = f"released embeddings {spec.name}", f"pair {pair_name} ({kind})"
                because = f"not in {repo['source']}@{repo['revision']} (tried {', '.join(hit['tried'])})"
                if r["strict"]:
                    row["status"] = found.problem(what, where, because)
                else:
                    row["status"] = "not released (left out)"
                    found.notes.append(f"{what}: {where}: {because}; the run goes on without it "
                                       "(released_embeddings.strict: true stops it)")


# The whole check -----------------------------------------------------------------------------------------


def run_preflight(config: dict, sample_rows: int = 32, timeout_s: float = 20.0, list_files=hub_model_files,
                  check_access=hub_model_access, throughputs: str | Path | None = None) -> Findings:
    """Every check of the configured run; raises PreflightError at once if a needed source is unreachable.
    With ``throughputs`` (benchmarks/measured/embed_throughput_h200.txt), a run on the Hub's weights also
    gets its cost estimate (samesky.cost)."""
    found = Findings()
    remote = needs_network(config, models=list_files is hub_model_files)
    if remote:
        check_hub_reachable(timeout_s)
    datasets = {d["name"]: d for d in config["datasets"]}
    needs = side_needs(config)
    pairs_of = {name: [p for p in config["pairs"] if name in pair_datasets(p)] for name in datasets}
    samples = {}
    if config["model_weights"] == "released":
        check_released(found, config)
        return found
    for name, entry in datasets.items():
        row = {"dataset": name, "source": entry["source"], "revision": entry["revision"] or "",
               "rows sampled": "", "object id": "", "repeats in sample": "", "status": "ok"}
        found.rows["datasets"].append(row)
        if entry["source"] == "mini":
            row.update(source="(mini universe, made here)", status="ok (made here)")
            continue
        if entry["format"] == "astroclip_h5":  # a HEAD request (a local file: its layout is read as well)
            try:
                size = head_size(entry["source"], timeout_s)
                row.update(status=f"ok ({_size(size)})" if size >= 0 else "ok (size not given)")
            except Exception as exc:  # noqa: BLE001
                row["status"] = found.problem(f"dataset {name}", f"file {entry['source']}", f"unreachable: {exc}")
                continue
            if not is_remote(entry["source"]):
                from .astroclip_data import check_layout

                try:
                    check_layout(entry["source"])
                except Exception as exc:  # noqa: BLE001 (not HDF5, or another layout)
                    row["status"] = found.problem(f"dataset {name}", f"file {entry['source']}", str(exc))
            continue
        try:
            ds = sample_dataset(entry, entry["source"], sample_rows)
        except Exception as exc:  # noqa: BLE001 (missing repository, revision, split, bad files)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            row["status"] = found.problem(f"dataset {name}", f"source {entry['source']}@{entry['revision']}",
                                          f"cannot stream its rows: {reason}")
            continue
        if entry["image_mask"] == "clean":  # as the crossmatch will read them: True = bad
            from .pairs import image_mask_columns, invert_masks

            ds = invert_masks(ds, image_mask_columns(ds), name)
        id_type, repeats = _id_facts(ds)
        row.update({"rows sampled": len(ds), "object id": id_type, "repeats in sample": repeats})
        n_before = len(found.problems)
        tol = config["preflight"]["values"]
        if entry["kind"] == "catalogue":
            columns = catalogue_columns(config) if "probes" in config and config["probes"] else {}
            for p in config["pairs"]:  # a catalogue that gives a pair its positions (pairs[].positions_from)
                if p["positions_from"] and p["positions_from"]["dataset"] == name:
                    columns.update({p["positions_from"]["catalogue_id"]: f"pairs {p['name']} positions_from",
                                    "ra": f"pairs {p['name']} positions_from", "dec": f"pairs {p['name']} positions_from"})
            check_columns(found, name, ds, columns)
            check_column_values(found, name, ds, columns, tol)
        elif entry["kind"] in ("image", "spectrum"):  # a parent: what every pair made from it reads
            bands = [b for p in pairs_of[name] for b in needs.get((p["name"], entry["survey"]), {}).get("bands", ())]
            check_parent(found, name, entry, ds, {"bands": tuple(dict.fromkeys(bands))}, tol)
        for pair in (pairs_of[name] if entry["kind"] == "paired" else []):
            surveys = pair_surveys(pair, datasets)
            pair_needs = {s: needs.get((pair["name"], s), {}) for s in surveys}
            paired = check_paired(found, name, pair, ds, surveys, config, pair_needs)
            if paired is not None:
                later = later_columns(config, pair, surveys)
                check_columns(found, name, paired, later)
                if pair["positions_from"]:  # filled by id at the crossmatch: read in the catalogue instead
                    source = pair["positions_from"]
                    later = {c: r for c, r in later.items() if c not in ("ra", "dec")}
                    found.notes.append(f"dataset {name}: pair {pair['name']} takes ra/dec from {source['dataset']} "
                                       f"joined on {source['pair_id']} = {source['catalogue_id']} where its own are missing")
                    if source["pair_id"] not in paired.column_names:
                        found.problem(f"dataset {name}", f"pair {pair['name']} positions_from.pair_id",
                                      f"no column '{source['pair_id']}'; has {paired.column_names}")
                    else:
                        check_positions_join(found, pair, paired, datasets[source["dataset"]])
                check_column_values(found, name, paired, later, tol)
                note_skipped_without_positions(found, name, pair, paired, config)
        if len(found.problems) > n_before:
            row["status"] = "problem"
        samples[name] = ds
    check_crossmatch_overlap(found, config, samples)
    check_morphology_catalogue(found, config, timeout_s)
    check_models(found, config, list_files, check_access)
    counts = check_sizes(found, config)
    if throughputs is not None and config["model_weights"] == "hub":
        from .cost import cost_section

        notes, rows, totals = cost_section(config, counts, throughputs)
        found.notes += notes
        found.cost = {"rows": rows, "totals": totals}
    return found


def catalogue_ids(entry: dict, column: str) -> set[str]:
    """Every value of one column of a catalogue at its revision, streamed alone (a few MB for PROVABGS)."""
    from datasets import load_dataset

    local = is_local(entry["source"])
    stream = load_dataset(entry["source"], name=entry["config_name"], split=entry["split"], streaming=True,
                          revision=None if local else entry["revision"], columns=[column])
    return {str(row[column]) for row in stream}


def check_positions_join(found: Findings, pair: dict, paired, catalogue: dict) -> None:
    """pairs[].positions_from: how many of the sampled pair ids the catalogue holds. None is a problem (the
    ids are of another survey, or written differently); some is a note with the share."""
    opts = pair["positions_from"]
    what = f"pair {pair['name']} positions_from"
    try:
        ids = catalogue_ids(catalogue, opts["catalogue_id"])
    except Exception as exc:  # noqa: BLE001 (the catalogue's own row names why)
        found.notes.append(f"{what}: the ids of {catalogue['name']} could not be read ({_reason(exc)})")
        return
    sampled = [str(v) for v in paired[opts["pair_id"]]]
    hits = sum(v in ids for v in sampled)
    if hits == 0:
        found.problem(what, f"{opts['pair_id']} = {catalogue['name']}.{opts['catalogue_id']}",
                      f"none of the {len(sampled)} sampled ids (e.g. {sampled[:2]}) is among the catalogue's "
                      f"{len(ids)} (e.g. {sorted(ids)[:2]}): no object would get a position")
    else:
        found.notes.append(f"{what}: {hits} of the {len(sampled)} sampled ids found among {catalogue['name']}'s "
                           f"{len(ids)} {opts['catalogue_id']}s; the others stay without a position")


def note_skipped_without_positions(found: Findings, name: str, pair: dict, paired, config: dict) -> None:
    """A pair whose sampled rows have no position and that takes none from a catalogue: the analyses that
    need positions and skip them (reporting so in their tables), named before the run."""
    ra = np.asarray(paired["ra"], float) if "ra" in paired.column_names else np.array([np.nan])
    if pair["positions_from"] or np.isfinite(ra).any():
        return
    conditional = config["alignment"]["conditional"]
    skipped = [what for what, on in (("environment", conditional["environment"]),
                                     ("sky regions", conditional["sky_regions"])) if on and pair["align"]]
    if skipped:
        found.notes.append(f"dataset {name}: pair {pair['name']} has no positions: the conditional alignment skips "
                           f"its {' and '.join(skipped)} (so reported in conditional_alignment.csv); "
                           "pairs[].positions_from can take them from a catalogue by id")


def check_sizes(found: Findings, config: dict) -> dict:
    """The rows each dataset holds at its revision (samesky.cost.dataset_rows: Parquet footers, or an HDF5's
    size), against ``expected_rows`` where given: a source holding fewer is a preview, named in a note.
    Returns {dataset: rows or None}."""
    from .cost import dataset_rows

    counts = {}
    rows = {r["dataset"]: r for r in found.rows["datasets"]}
    for entry in config["datasets"]:
        name = entry["name"]
        if entry["source"] == "mini":
            counts[name] = None
            continue
        try:
            counts[name], how = dataset_rows(entry)
        except Exception as exc:  # noqa: BLE001 (unreachable: the dataset checks above name it)
            counts[name], how = None, f"not counted ({_reason(exc)})"
        if name in rows:
            rows[name]["rows at revision"] = counts[name] if counts[name] is not None else how
            rows[name]["expected"] = entry["expected_rows"] or ""
        if counts[name] is not None and entry["expected_rows"] and counts[name] < entry["expected_rows"]:
            found.notes.append(f"dataset {name}: {counts[name]} rows at this revision of {entry['expected_rows']} "
                               f"expected ({counts[name] / entry['expected_rows']:.0%}): a preview, or a subset; every "
                               "later count is out of these rows (and a join may lose objects not at random)")
    return counts


def check_crossmatch_overlap(found: Findings, config: dict, samples: dict) -> None:
    """Pairs crossmatched here: how many of the sampled rows of the two parents match within the radius.
    The samples are each set's first rows, which need not cover the same sky: a low count says little, a
    count of matches says the positions agree in frame and units."""
    from .crossmatch import match_one_to_one

    radius = config["crossmatch"]["radius_arcsec"]
    datasets = {d["name"]: d for d in config["datasets"]}
    for p in config["pairs"]:
        if "reference_dataset" not in p:
            continue
        entries = datasets[p["reference_dataset"]], datasets[p["other_dataset"]]
        if all(e["format"] == "mmu_hdf5" and e["name"] in samples for e in entries):
            _overlap_of_all_rows(found, p, entries, radius)
            continue
        ref, other = samples.get(p["reference_dataset"]), samples.get(p["other_dataset"])
        if ref is None or other is None or not {"ra", "dec"} <= set(ref.column_names) & set(other.column_names):
            continue
        try:
            match = match_one_to_one(np.asarray(ref["ra"], float), np.asarray(ref["dec"], float),
                                     np.asarray(other["ra"], float), np.asarray(other["dec"], float), radius)
            found.notes.append(f"pair {p['name']}: {match.n_matched} of the sampled {len(ref)} x {len(other)} rows "
                               f"match within {radius:g} arcsec (the first rows of each set; the full sets overlap "
                               "more where they cover the same sky)")
        except Exception as exc:  # noqa: BLE001 (bad coordinates: the value checks name them)
            found.notes.append(f"pair {p['name']}: the sampled rows could not be matched ({_reason(exc)})")


def _overlap_of_all_rows(found: Findings, pair: dict, entries, radius: float) -> None:
    """Two local Multimodal Universe copies: every row's position is cheap to read, so the preflight runs
    the crossmatch's own one-to-one match on all of them and says how many pairs the run will make."""
    from .crossmatch import match_one_to_one
    from .mmu_data import positions

    try:
        (ra1, dec1), (ra2, dec2) = (positions(e["source"], e["config_name"]) for e in entries)
        good1, good2 = np.isfinite(ra1) & np.isfinite(dec1), np.isfinite(ra2) & np.isfinite(dec2)
        match = match_one_to_one(ra1[good1], dec1[good1], ra2[good2], dec2[good2], radius)
    except Exception as exc:  # noqa: BLE001 (bad files or coordinates: the dataset checks name them)
        found.notes.append(f"pair {pair['name']}: the positions could not be matched ({_reason(exc)})")
        return
    text = (f"pair {pair['name']}: the crossmatch will pair {match.n_matched} objects ({len(ra1)} x {len(ra2)} rows "
            f"matched within {radius:g} arcsec, one-to-one, as the run will)")
    if match.n_matched == 0:
        found.problem(f"pair {pair['name']}", "crossmatch", f"no pair within {radius:g} arcsec of {len(ra1)} x "
                      f"{len(ra2)} positions: do the two sets cover the same sky?")
    else:
        found.notes.append(text)


def report(found: Findings, title: str) -> str:
    """The Markdown report: one table each for datasets, pair sides and models, then notes and problems."""
    parts = [f"# Preflight: {title}", ""]
    verdict = (f"**{len(found.problems)} problem(s)**: the run would fail; see the list at the end."
               if found.problems else "**No problem found**: every dataset and model the run reads is there, "
                                      "in the layout it expects.")
    parts += [verdict, ""]
    for key, heading in (("datasets", "Datasets (first rows, streamed at the pinned revision)"),
                         ("sides", "Pair sides (what the embedding jobs read)"),
                         ("models", "Models (repository files at the pinned revision)")):
        if found.rows[key]:
            parts += [f"## {heading}", "", markdown_table(found.rows[key]), ""]
    if found.cost:
        rows = [{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()} for r in found.cost["rows"]]
        t = found.cost["totals"]
        parts += ["## What the run will cost (estimate: samesky.cost)", "", markdown_table(rows), "",
                  f"**Total: {t['GPU-hours']:.1f} GPU-hours, {t['CPU-hours']:.1f} CPU-hours (alignment searches); "
                  f"the largest embedding job needs {t['largest GPU memory (GB)']:.0f} GB of GPU memory.** N per pair "
                  "is the rows each dataset holds at its revision (column 'rows at revision' above).", ""]
    if found.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in found.notes] + [""]
    if found.problems:
        parts += ["## Problems", ""] + [f"- {p}" for p in found.problems] + [""]
    return "\n".join(parts)


def markdown_table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(c, "")).replace("|", "\\|") for c in head) + " |" for r in rows]
    return "\n".join(lines)
