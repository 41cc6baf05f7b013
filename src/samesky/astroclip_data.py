"""AstroCLIP's evaluation data: the paired DESI EDR spectra and Legacy Survey images it was aligned and
evaluated on, read from the HDF5 file its dataset builder downloads, into the study's pair layout.

Facts from PolymathicAI/AstroCLIP (astroclip/data/dataset.py, downstream_tasks/property_estimation/
property_utils/cross_match.py):

- one HDF5 file (``astroclip_desi.1.1.5.h5``) with groups "0" ... "9";
- each group holds ``images`` (N, 152, 152, 3): Legacy Survey g, r, z in nanomaggies; ``spectra`` (N, 7781):
  DESI coadd flux on the DESI grid; ``redshifts``; ``targetids`` (DESI TARGETID);
- the first 80% of every group is the train split and the rest the test split;
- properties come from PROVABGS, joined on TARGETID.

The file has neither positions nor inverse variances. The pair it becomes has NaN positions; the probe
sample takes positions from the PROVABGS catalogue (``probes.positions_from_catalogue``). Every spectrum
pixel gets unit inverse variance, so none is dropped as unobserved.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .io import save_dataset
from .surveys import DESI_NPIX, desi_wavelength

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "all")
BANDS = ["DES-G", "DES-R", "DES-Z"]  # Legacy Survey g, r, z (the Multimodal Universe's names)
GROUP_KEYS = ("images", "spectra", "redshifts", "targetids")


class AstroCLIPDataError(ValueError):
    """The file is not in the layout of AstroCLIP's dataset."""


def _rows(group, split: str) -> range:
    n = len(group["targetids"])
    cut = int(0.8 * n)
    return {"train": range(0, cut), "test": range(cut, n), "all": range(0, n)}[split]


GROUPS = tuple(str(i) for i in range(10))  # AstroCLIP reads the groups "0" ... "9" by name, nothing else


def _groups(f) -> list[str]:
    """The data groups, by AstroCLIP's names (its dataset script reads f[str(i)] for i in range(10)); any
    other top-level key (metadata a later version adds) is left alone, logged."""
    extra = sorted(k for k in f.keys() if k not in GROUPS)
    if extra:
        log.info("%s: top-level keys %s are not AstroCLIP's data groups; not read", f.filename, extra)
    return [g for g in GROUPS if g in f]


def n_objects(path: str) -> int:
    """The objects of the file's data groups (every split)."""
    import h5py

    with h5py.File(path, "r") as f:
        return sum(len(f[g]["targetids"]) for g in _groups(f))


def check_layout(path: str) -> None:
    """Raise naming the file, group and field where the file differs from AstroCLIP's layout."""
    import h5py

    with h5py.File(path, "r") as f:
        if not _groups(f):
            raise AstroCLIPDataError(f"{path}: no groups '0' ... '9' (has {sorted(f.keys())[:10]})")
        for name in _groups(f):
            group = f[name]
            missing = [k for k in GROUP_KEYS if k not in group]
            if missing:
                raise AstroCLIPDataError(f"{path}: group '{name}' has no {missing} (has {sorted(group)})")
            n = len(group["targetids"])
            images, spectra = group["images"].shape, group["spectra"].shape
            if images != (n, 152, 152, 3) or spectra[0] != n or int(np.prod(spectra[1:])) != DESI_NPIX:
                raise AstroCLIPDataError(f"{path}: group '{name}': field 'images' {images} (want ({n}, 152, 152, 3)), "
                                         f"field 'spectra' {spectra} (want ({n}, {DESI_NPIX}))")


def _examples(path: str, split: str, chunk: int = 256):
    import h5py

    wave = desi_wavelength().astype(np.float32)
    with h5py.File(path, "r") as f:
        for name in _groups(f):
            group = f[name]
            rows = _rows(group, split)
            for start in range(rows.start, rows.stop, chunk):
                stop = min(start + chunk, rows.stop)
                images = np.asarray(group["images"][start:stop], dtype=np.float32)
                spectra = np.asarray(group["spectra"][start:stop], dtype=np.float32).reshape(stop - start, -1)
                for i in range(stop - start):
                    tid = str(int(group["targetids"][start + i]))
                    yield {
                        "object_id": tid,
                        "ra": float("nan"), "dec": float("nan"),
                        "legacysurvey_image": {"band": BANDS, "flux": images[i].transpose(2, 0, 1)},
                        "desi_spectrum": {"flux": spectra[i], "ivar": np.ones_like(spectra[i]), "lambda": wave,
                                          "mask": np.zeros(len(wave), bool)},
                        "desi_TARGETID": tid,
                        "desi_Z": float(group["redshifts"][start + i]),
                    }


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def fetch_astroclip_h5(source: str) -> str:
    """A local path to the file: itself if local, else downloaded once into astropy's cache."""
    if Path(source).exists():
        return str(source)
    from astropy.utils.data import download_file

    log.info("downloading %s (about 60 GB) into astropy's cache", source)
    return download_file(source, cache=True, show_progress=True)


def convert_astroclip_h5(source: str, out_dir: str | os.PathLike, split: str = "test") -> dict:
    """Read AstroCLIP's HDF5 file (a path or URL), keep ``split``, save it in the pair layout at ``out_dir``;
    return its provenance record."""
    from datasets import Array2D, Dataset, Features, Sequence, Value

    if split not in SPLITS:
        raise AstroCLIPDataError(f"split '{split}' is not one of {SPLITS}")
    path = fetch_astroclip_h5(source)
    check_layout(path)
    cache = Path(tempfile.mkdtemp(prefix="astroclip-", dir=Path(out_dir).parent))  # the generator's Arrow shards
    features = Features({
        "object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64"),
        # the Multimodal Universe's layout, as the mini universe writes it too
        "legacysurvey_image": Sequence({"band": Value("string"), "flux": Array2D((152, 152), "float32")}),
        "desi_spectrum": Sequence({"flux": Value("float32"), "ivar": Value("float32"), "lambda": Value("float32"),
                                   "mask": Value("bool")}),
        "desi_TARGETID": Value("string"), "desi_Z": Value("float32"),
    })
    try:
        ds = Dataset.from_generator(_examples, gen_kwargs={"path": path, "split": split}, features=features,
                                    cache_dir=str(cache))
        save_dataset(ds, out_dir)
        n_rows, columns = len(ds), list(ds.column_names)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    log.info("saved %d %s rows of %s to %s", n_rows, split, source, out_dir)
    return {"source": str(source), "local": Path(source).exists(), "revision_requested": None,
            "revision_resolved": "sha256:" + file_digest(path), "split": split, "config_name": None,
            "n_rows": n_rows, "columns": columns, "format": "astroclip_h5"}
