"""The Multimodal Universe's parent samples as their builders write them, read into the Hub layout.

A full local copy of an MMU parent set (``MultimodalUniverse/hsc``, ``legacysurvey``, ``jwst``, ``desi``,
``sdss``) is a folder of HDF5 files, ``<root>/<config>/healpix=<n>/001-of-001.hdf5`` (e.g. ``pdr3_dud_22.5``,
``dr10_south_21``, ``dr1_main``; the builders' ``DataFilesPatternsDict``), each with flat datasets whose first
axis is the object. MMU's own readers are ``datasets`` loading scripts, which ``datasets`` 4 and later no
longer run, so this module reads the files itself and writes what those scripts yield (the Hub previews'
features), plus what the scripts leave out and a crossmatch needs: ``ra``, ``dec`` and ``healpix``.

Facts from MultimodalUniverse 2dcff3d (scripts/<survey>/<survey>.py and build_parent_sample.py):
- images: ``image_band`` (N, bands) bytes, ``image_array`` (HSC, Legacy) or ``image_flux`` (JWST) and
  ``image_ivar`` (N, bands, H, W), ``image_mask`` (N, bands, H, W), or (N, H, W) for all bands (Legacy),
  True for clean pixels (kept as stored: the dataset's ``image_mask: clean`` inverts it where pairs are
  made), ``image_psf_fwhm`` and ``image_scale`` (N, bands);
- spectra: ``spectrum_flux``, ``spectrum_ivar``, ``spectrum_lambda``, ``spectrum_mask`` (True = bad),
  ``spectrum_lsf_sigma`` (N, L); SDSS pads ``lambda`` with -1 (the resampler drops lambda <= 0);
- ``object_id``: int (HSC, JWST), ``BRICK-OBJID`` bytes (Legacy), TARGETID (DESI), SPECOBJID (SDSS): all
  read as strings, as the scripts yield them;
- flags: the DESI script yields ``ZWARN`` as ``not bool(flag)`` (True = no warning), the SDSS one
  ``ZWARNING`` as ``bool(flag)``; read the same way here, so a cut means the same on a preview and a copy.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .surveys import modality_of

log = logging.getLogger(__name__)

KEY_COLUMNS = ("object_id", "ra", "dec", "healpix")
IMAGE_FLUX = ("image_array", "image_flux")  # HSC and Legacy Survey; JWST
IMAGE_PLANES = {"ivar": "image_ivar", "mask": "image_mask"}
IMAGE_PER_BAND = {"psf_fwhm": "image_psf_fwhm", "scale": "image_scale"}
SPECTRUM_FIELDS = ("flux", "ivar", "lsf_sigma", "lambda", "mask")
NEGATED_FLAGS = {"desi": ("ZWARN",)}  # scripts/desi/desi.py: example[f] = not bool(data[f][i])
FLAGS = {"desi": ("ZWARN",), "sdss": ("ZWARNING",)}
CHUNK_ROWS = 256  # rows read from a file at once: a few hundred MB of HSC cutouts at most


class MMUFormatError(ValueError):
    """A folder or file that is not in the Multimodal Universe's parent layout."""


def mmu_files(root: str | os.PathLike, config_name: str | None) -> list[Path]:
    """The HDF5 files of one configuration (a folder name, or a pattern: ``*`` for every configuration, as
    the builders' ``all``), in healpix order."""
    if not config_name:
        raise MMUFormatError(f"{root}: format mmu_hdf5 needs the configuration's folder name in config_name "
                             "(e.g. pdr3_dud_22.5, dr10_south_21, dr1_main)")
    folder = Path(root) / config_name
    files = sorted(Path(root).glob(f"{config_name}/healpix=*/*.hdf5"), key=lambda p: (_healpix(p), str(p)))
    if not files:
        found = sorted(p.name for p in Path(root).iterdir()) if Path(root).is_dir() else "no such folder"
        raise MMUFormatError(f"{folder}: no file healpix=<n>/*.hdf5 (the Multimodal Universe's layout); "
                             f"{root} holds {found}")
    return files


def _healpix(path: Path) -> int:
    try:
        return int(path.parent.name.split("=", 1)[1])
    except ValueError:
        raise MMUFormatError(f"{path}: folder '{path.parent.name}' is not healpix=<integer>") from None


def n_rows(root, config_name) -> int:
    """Rows of a configuration: the length of every file's ``object_id``."""
    import h5py

    total = 0
    for path in mmu_files(root, config_name):
        with h5py.File(path, "r") as f:
            total += len(_dataset(f, "object_id", path))
    return total


def positions(root, config_name) -> tuple[np.ndarray, np.ndarray]:
    """Every object's ra and dec (deg), read without the cutouts or spectra: for the preflight's overlap."""
    import h5py

    ra, dec = [], []
    for path in mmu_files(root, config_name):
        with h5py.File(path, "r") as f:
            ra.append(np.asarray(_dataset(f, "ra", path), float))
            dec.append(np.asarray(_dataset(f, "dec", path), float))
    return np.concatenate(ra), np.concatenate(dec)


def _dataset(f, key: str, path):
    if key not in f:
        raise MMUFormatError(f"{path}: no dataset '{key}'; has {sorted(f.keys())}")
    return f[key]


def _strings(values) -> list[str]:
    return [v.decode().strip() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def file_layout(path, survey: str) -> dict:
    """What one file holds: its rows, image or spectrum shape, and the scalar columns read from it."""
    import h5py

    with h5py.File(path, "r") as f:
        n = len(_dataset(f, "object_id", path))
        for key in KEY_COLUMNS[1:3]:
            _dataset(f, key, path)
        scalars = {k: f[k].dtype for k in sorted(f.keys()) if k not in KEY_COLUMNS and isinstance(f[k], h5py.Dataset)
                   and f[k].shape == (n,)}
        layout = {"rows": n, "scalars": scalars, "healpix": "healpix" in f}
        if modality_of(survey) == "image":
            flux = next((k for k in IMAGE_FLUX if k in f), None)
            if flux is None or "image_band" not in f:
                raise MMUFormatError(f"{path}: a {survey} image file needs 'image_band' and one of {IMAGE_FLUX}; "
                                     f"has {sorted(f.keys())}")
            if f[flux].ndim != 4 or f[flux].shape[0] != n:
                raise MMUFormatError(f"{path}: '{flux}' has shape {f[flux].shape}, not (objects, bands, H, W)")
            layout.update(flux=flux, shape=f[flux].shape[2:],
                          fields=[k for k, v in {**IMAGE_PLANES, **IMAGE_PER_BAND}.items() if v in f])
        else:
            if "spectrum_flux" not in f:
                raise MMUFormatError(f"{path}: a {survey} spectrum file needs 'spectrum_flux'; has {sorted(f.keys())}")
            layout.update(fields=[k for k in SPECTRUM_FIELDS if f"spectrum_{k}" in f])
    return layout


def features_of(layout: dict, survey: str):
    """The ``datasets`` features of the rows: MMU's scripts' (image or spectrum struct, scalars, a string
    ``object_id``) with ``ra``, ``dec`` and ``healpix``."""
    from datasets import Array2D, Features, Sequence, Value

    features = {"object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64")}
    if layout["healpix"]:
        features["healpix"] = Value("int64")
    if modality_of(survey) == "image":
        planes = {"flux": "float32", "ivar": "float32", "mask": "bool"}
        fields = {"band": Value("string")}
        fields.update({k: Array2D(tuple(layout["shape"]), planes[k]) for k in ("flux", *IMAGE_PLANES)
                       if k == "flux" or k in layout["fields"]})
        fields.update({k: Value("float32") for k in IMAGE_PER_BAND if k in layout["fields"]})
        features["image"] = Sequence(fields)
    else:
        features["spectrum"] = Sequence({k: Value("bool" if k == "mask" else "float32") for k in layout["fields"]})
    for key, dtype in layout["scalars"].items():
        if key in FLAGS.get(survey, ()) or dtype.kind == "b":
            features[key] = Value("bool")
        elif dtype.kind in "SUO":
            features[key] = Value("string")
        elif dtype.kind in "iu":
            features[key] = Value("int64")
        elif dtype.kind == "f":
            features[key] = Value("float64" if dtype.itemsize == 8 else "float32")
    return Features(features)


def iter_rows(files, survey: str, limit: int | None = None, progress: bool = False):
    """The rows of the files, as MMU's scripts yield them (plus ra, dec, healpix); at most ``limit``."""
    import h5py
    from tqdm import tqdm

    first = file_layout(files[0], survey)
    image = modality_of(survey) == "image"
    done = 0
    bar = tqdm(desc=f"read {survey}", unit="rows", disable=not progress, mininterval=10)
    for path in files:
        layout = file_layout(path, survey)
        if layout.get("shape") != first.get("shape") or layout["fields"] != first["fields"]:
            raise MMUFormatError(f"{path}: layout {layout.get('shape')} {layout['fields']} differs from "
                                 f"{files[0]}'s {first.get('shape')} {first['fields']}")
        with h5py.File(path, "r") as f:
            for start in range(0, layout["rows"], CHUNK_ROWS):
                stop = min(layout["rows"], start + CHUNK_ROWS)
                if limit is not None:
                    stop = min(stop, start + limit - done)
                    if stop <= start:
                        return
                yield from _chunk(f, path, survey, layout, first, slice(start, stop), image)
                done += stop - start
                bar.update(stop - start)
    bar.close()


def _chunk(f, path, survey: str, layout: dict, first: dict, rows: slice, image: bool):
    ids = _strings(f["object_id"][rows])
    keys = {"ra": f["ra"][rows].astype(float), "dec": f["dec"][rows].astype(float)}
    if first["healpix"]:
        keys["healpix"] = (f["healpix"][rows] if "healpix" in f else np.full(len(ids), _healpix(Path(path))))
    scalars = {}
    for key in first["scalars"]:
        values = f[key][rows] if key in f else np.full(len(ids), None)
        if key in NEGATED_FLAGS.get(survey, ()):
            values = ~np.asarray(values).astype(bool)
        elif key in FLAGS.get(survey, ()):
            values = np.asarray(values).astype(bool)
        elif values.dtype.kind in "SO":
            values = np.asarray(_strings(values), dtype=object)
        scalars[key] = values
    if image:
        bands = f["image_band"][rows]
        flux = f[layout["flux"]][rows]
        planes = {k: f[IMAGE_PLANES[k]][rows] for k in IMAGE_PLANES if k in layout["fields"]}
        per_band = {k: f[IMAGE_PER_BAND[k]][rows] for k in IMAGE_PER_BAND if k in layout["fields"]}
    else:
        spectra = {k: f[f"spectrum_{k}"][rows] for k in layout["fields"]}
    for i, oid in enumerate(ids):
        row = {"object_id": oid, **{k: v[i].item() for k, v in keys.items()},
               **{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in scalars.items()}}
        if image:
            nb = flux.shape[1]
            names = _strings(bands[i] if np.ndim(bands) == 2 else bands)
            record = {"band": names, "flux": list(flux[i].astype(np.float32))}
            for k, v in planes.items():
                plane = v[i] if v[i].ndim == 3 else np.broadcast_to(v[i], (nb, *v[i].shape))  # Legacy: one mask
                record[k] = list(plane.astype(np.float32 if k == "ivar" else bool))
            for k, v in per_band.items():
                record[k] = [float(x) for x in np.broadcast_to(v[i], (nb,))]
            row["image"] = record
        else:
            row["spectrum"] = {k: v[i].astype(bool if k == "mask" else np.float32).ravel() for k, v in spectra.items()}
        yield row


def read_sample(root, config_name, survey: str, n: int):
    """The first ``n`` rows as a ``datasets.Dataset`` (the preflight's sample)."""
    from datasets import Dataset

    files = mmu_files(root, config_name)
    rows = list(iter_rows(files, survey, limit=n))
    if not rows:
        raise MMUFormatError(f"{root}/{config_name}: no rows")
    return Dataset.from_list(rows, features=features_of(file_layout(files[0], survey), survey))


def convert_mmu_hdf5(root, out_dir, config_name: str, survey: str, cache_dir=None) -> dict:
    """Every row of one configuration, written to ``out_dir`` in the Hub layout; returns its record (as
    ``samesky.hub.download_dataset``'s, the revision a content hash of the configuration's files)."""
    from datasets import Dataset

    from .io import save_dataset

    files = mmu_files(root, config_name)
    features = features_of(file_layout(files[0], survey), survey)
    log.info("reading %d files of %s/%s (%s)", len(files), root, config_name, survey)
    tmp = Path(tempfile.mkdtemp(prefix="mmu-", dir=cache_dir))
    try:
        ds = Dataset.from_generator(_rows_of, gen_kwargs={"files": [str(p) for p in files], "survey": survey},
                                    features=features, cache_dir=str(tmp))
        save_dataset(ds, out_dir)
        n, columns = len(ds), list(ds.column_names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved %d rows of %s/%s to %s", n, root, config_name, out_dir)
    return {"source": str(root), "local": True, "revision_requested": None,
            "revision_resolved": "sha256:" + files_digest(root, files), "split": "train", "config_name": config_name,
            "n_rows": n, "columns": columns, "format": "mmu_hdf5", "n_files": len(files)}


def files_digest(root, files) -> str:
    """A content hash of the files read (their paths under ``root`` and bytes): the copy's revision."""
    import hashlib

    h = hashlib.sha256()
    for path in files:
        h.update(str(Path(path).relative_to(root)).encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _rows_of(files, survey):
    yield from iter_rows([Path(p) for p in files], survey, progress=True)
