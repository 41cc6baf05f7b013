"""Write a parent dataset in the Multimodal Universe's own layout, for the tests of ``format: mmu_hdf5``.

``write_mmu_parent(ds, root, survey, config_name)`` turns one of the mini universe's Hub-layout parents into
``<root>/<config_name>/healpix=<n>/001-of-001.hdf5`` files as MMU's build_parent_sample.py scripts write
them (MultimodalUniverse 2dcff3d): flat datasets, the object first; ``image_band`` as bytes per object;
``image_array`` (HSC, Legacy) or ``image_flux`` (JWST); image masks True for clean pixels, one mask for all
bands in the Legacy Survey; HSC and JWST ids as integers, Legacy ids as ``BRICK-OBJID`` bytes; DESI's raw
``ZWARN`` integer and SDSS's ``ZWARNING``, with SDSS spectra padded with lambda = -1 to a common length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEALPIX_NSIDE_CELLS = 2  # objects are split over this many healpix folders (by declination)
SDSS_PAD = 16  # SDSS spectra padded by this many pixels (lambda -1, as MMU pads its per-plate lengths)


def _object_ids(ids, survey: str):
    if survey == "legacysurvey":  # BRICK-OBJID as bytes
        return np.array([f"0001m002-{k:05d}".encode() for k in range(len(ids))], dtype="S16"), \
            [f"0001m002-{k:05d}" for k in range(len(ids))]
    numbers = np.array([70000000000000000 + k for k in range(len(ids))], dtype=np.int64)
    return numbers, [str(n) for n in numbers]


def write_mmu_parent(ds, root: Path, survey: str, config_name: str) -> dict:
    """Write ``ds`` (a Hub-layout parent: object_id, ra, dec, image or spectrum, scalars) in MMU's layout;
    returns {the dataset's object_id: the id as MMU's files hold it, read back as a string}."""
    import h5py

    table = ds.with_format("numpy")
    n = len(ds)
    dec = np.asarray(ds["dec"], float)
    cells = np.minimum((np.argsort(np.argsort(dec)) * HEALPIX_NSIDE_CELLS) // n, HEALPIX_NSIDE_CELLS - 1)
    raw_ids, id_strings = _object_ids(ds["object_id"], survey)
    mapping = dict(zip(ds["object_id"], id_strings))
    for cell in range(HEALPIX_NSIDE_CELLS):
        rows = np.flatnonzero(cells == cell)
        folder = Path(root) / config_name / f"healpix={100 + cell}"
        folder.mkdir(parents=True, exist_ok=True)
        with h5py.File(folder / "001-of-001.hdf5", "w") as f:
            f["object_id"] = raw_ids[rows]
            f["ra"] = np.asarray(ds["ra"], float)[rows]
            f["dec"] = dec[rows]
            f["healpix"] = np.full(len(rows), 100 + cell, dtype=np.int64)
            records = [table[int(i)] for i in rows]
            if "image" in ds.column_names:
                _images(f, [r["image"] for r in records], survey)
            else:
                _spectra(f, [r["spectrum"] for r in records], survey)
            for column in ds.column_names:
                if column in ("object_id", "ra", "dec", "image", "spectrum"):
                    continue
                values = np.asarray([r[column] for r in records])
                if column == "ZWARN" and survey == "sdss":
                    column = "ZWARNING"
                if column.lower() == "mag_r" and survey == "hsc":
                    f["i_cmodel_mag"] = values.astype(np.float32)  # HSC's catalogue magnitude
                f[column] = values
    return mapping


def _images(f, images, survey: str) -> None:
    bands = np.array([[b.encode() for b in img["band"]] for img in images])
    flux = np.stack([np.asarray(img["flux"], np.float32) for img in images])
    clean = ~np.stack([np.asarray(img["mask"], bool) for img in images])  # MMU: True = clean
    f["image_band"] = bands
    f["image_flux" if survey == "jwst" else "image_array"] = flux
    f["image_ivar"] = np.stack([np.asarray(img["ivar"], np.float32) for img in images])
    f["image_mask"] = clean.all(axis=1) if survey == "legacysurvey" else clean  # Legacy: one mask for all bands
    f["image_psf_fwhm"] = np.stack([np.asarray(img["psf_fwhm"], np.float32) for img in images])
    f["image_scale"] = np.stack([np.asarray(img["scale"], np.float32) for img in images])


def _spectra(f, spectra, survey: str) -> None:
    pad = SDSS_PAD if survey == "sdss" else 0
    length = max(len(s["flux"]) for s in spectra) + pad
    for field in ("flux", "ivar", "lsf_sigma", "lambda", "mask"):
        if field not in spectra[0]:
            continue
        fill = {"lambda": -1.0, "mask": True}.get(field, 0.0)
        out = np.full((len(spectra), length), fill, dtype=bool if field == "mask" else np.float32)
        for k, s in enumerate(spectra):
            out[k, :len(s[field])] = s[field]
        f[f"spectrum_{field}"] = out
