"""Paired datasets: two surveys' rows of the same objects, joined by object id.

Every pair dataset has the same layout whichever way it was made (crossmatched here from two parent
datasets, or downloaded pre-crossmatched and audited):

- ``object_id``, ``ra``, ``dec``: the reference survey's (HSC's) id and position;
- ``separation_arcsec``: the on-sky distance of the pair (NaN where a pre-crossmatched set lacks one side's
  position);
- ``<survey>_<column>`` for each parent column, e.g. ``hsc_image``, ``legacysurvey_image``,
  ``desi_spectrum``, ``desi_Z``, ``hsc_object_id``, ``desi_ra`` (the Smith42 crossmatched sets' naming).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .crossmatch import (
    CrossmatchError,
    check_unique_ids,
    match_one_to_one,
    nearest_separation_arcsec,
    separation_arcsec,
)

from .surveys import IMAGE_FIELDS, SPECTRUM_CATALOGUE_COLUMNS, SPECTRUM_FIELDS, SURVEY_BANDS, modality_of

log = logging.getLogger(__name__)

REQUIRED_PARENT_COLUMNS = ("object_id", "ra", "dec")


def require_columns(column_names, required, name: str) -> None:
    missing = [c for c in required if c not in column_names]
    if missing:
        raise CrossmatchError(f"{name}: missing column(s) {missing}; has {sorted(column_names)}")


def _finite_rows(ds, name: str) -> tuple[np.ndarray, int]:
    ra = np.asarray(ds["ra"], dtype=float)
    dec = np.asarray(ds["dec"], dtype=float)
    good = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    n_bad = int((~good).sum())
    if n_bad:
        log.warning("%s: dropping %d rows with missing or invalid ra/dec before matching", name, n_bad)
    return np.flatnonzero(good), n_bad


def crossmatch_datasets(ref, other, ref_survey: str, other_survey: str, radius_arcsec: float,
                        ref_name: str = "reference", other_name: str = "other"):
    """Match two parent datasets one-to-one within the radius and join their rows.

    Returns ``(pair_dataset, pairs_frame, summary)``. Rows with invalid coordinates are dropped and
    counted; duplicate object ids and an empty match are errors.
    """
    from datasets import concatenate_datasets

    if ref_survey == other_survey:
        raise CrossmatchError(f"cannot pair survey '{ref_survey}' with itself: column names would collide")
    for ds, name in ((ref, ref_name), (other, other_name)):
        require_columns(ds.column_names, REQUIRED_PARENT_COLUMNS, name)
        check_unique_ids(ds["object_id"], name)
    ref_rows, ref_bad = _finite_rows(ref, ref_name)
    other_rows, other_bad = _finite_rows(other, other_name)
    ref_ra, ref_dec = np.asarray(ref["ra"], float)[ref_rows], np.asarray(ref["dec"], float)[ref_rows]
    oth_ra, oth_dec = np.asarray(other["ra"], float)[other_rows], np.asarray(other["dec"], float)[other_rows]

    match = match_one_to_one(ref_ra, ref_dec, oth_ra, oth_dec, radius_arcsec, names=(ref_name, other_name))
    if match.n_matched == 0:
        nearest = nearest_separation_arcsec(ref_ra, ref_dec, oth_ra, oth_dec)
        raise CrossmatchError(
            f"crossmatch of {ref_name} ({len(ref_rows)} objects) and {other_name} ({len(other_rows)} objects) "
            f"found no pair within {radius_arcsec} arcsec (closest separation: {nearest:.3g} arcsec); "
            "check that the two datasets cover the same sky"
        )
    ref_idx = ref_rows[match.left_index]
    oth_idx = other_rows[match.right_index]
    left = _prefixed(ref.select(ref_idx), ref_survey)
    right = _prefixed(other.select(oth_idx), other_survey)
    paired = concatenate_datasets([left, right], axis=1)
    paired = _add_key_columns(
        paired,
        object_id=np.asarray(ref["object_id"]).astype(str)[ref_idx],
        ra=ref_ra[match.left_index],
        dec=ref_dec[match.left_index],
        sep=match.separation_arcsec,
    )
    pairs = pd.DataFrame({
        "object_id": paired["object_id"],
        f"{ref_survey}_object_id": paired[f"{ref_survey}_object_id"],
        f"{other_survey}_object_id": paired[f"{other_survey}_object_id"],
        f"{ref_survey}_ra": ref_ra[match.left_index],
        f"{ref_survey}_dec": ref_dec[match.left_index],
        f"{other_survey}_ra": oth_ra[match.right_index],
        f"{other_survey}_dec": oth_dec[match.right_index],
        "separation_arcsec": match.separation_arcsec,
    })
    summary = {"method": "crossmatch", "radius_arcsec": radius_arcsec, **match.summary(),
               "dropped_bad_coordinates_left": ref_bad, "dropped_bad_coordinates_right": other_bad,
               "repeated_ids_dropped": 0}
    return paired, pairs, summary


def audit_crossmatched(ds, ref_survey: str, other_survey: str, radius_arcsec: float, rename: dict | None = None,
                       name: str = "dataset", require_positions: bool = True, repeated_ids: str = "keep_closest"):
    """Bring a downloaded pre-crossmatched set into the pair layout and check it against the radius.

    ``rename`` maps the set's own column names to ours (e.g. ``{"image": "hsc_image"}``); the scalar
    columns of a spectroscopic parent then get its prefix (``Z`` -> ``desi_Z``, :func:`prefix_spectrum_columns`).
    Each side's data column must be there. A reference id that repeats (MMU's cross-match is many-to-one)
    keeps its closest pair, or its first row where separations are unknown, unless ``repeated_ids`` is
    ``error``. Pairs further apart than the radius are dropped and counted. Where one side's position
    columns are absent the separations cannot be checked: that is an error if ``require_positions``, else
    logged and recorded.
    """
    rename = dict(rename or {})
    missing = [src for src in rename if src not in ds.column_names]
    if missing:
        raise CrossmatchError(f"{name}: columns {missing} named in the config's 'rename' are absent; has {ds.column_names}")
    ds = ds.rename_columns(rename) if rename else ds
    ds = prefix_spectrum_columns(ds, other_survey, name)
    check_side_columns(ds, (ref_survey, other_survey), name)
    if "object_id" not in ds.column_names:
        if f"{ref_survey}_object_id" not in ds.column_names:
            raise CrossmatchError(f"{name}: no 'object_id' or '{ref_survey}_object_id' column; has {ds.column_names}")
        ds = ds.add_column("object_id", [str(v) for v in ds[f"{ref_survey}_object_id"]])

    pos = [f"{s}_{c}" for s in (ref_survey, other_survey) for c in ("ra", "dec")]
    absent = [c for c in pos if c not in ds.column_names]
    n_total = len(ds)
    if absent:
        message = f"{name}: cannot check pair separations, position column(s) {absent} absent"
        if require_positions:
            raise CrossmatchError(message + " (set crossmatch.require_positions: false to accept it unchecked)")
        log.warning(message + "; the set is taken as matched by its authors, separations recorded as NaN")
        sep = np.full(n_total, np.nan)
        keep = np.arange(n_total)
        status = "unverifiable"
    else:
        sep = separation_arcsec(ds[pos[0]], ds[pos[1]], ds[pos[2]], ds[pos[3]])
        good = np.isfinite(sep) & (sep <= radius_arcsec)
        keep = np.flatnonzero(good)
        if len(keep) < n_total:
            log.warning("%s: dropping %d of %d pairs further apart than %s arcsec or without positions",
                        name, n_total - len(keep), n_total, radius_arcsec)
        status = "checked"
    keep, repeats = drop_repeated_ids(np.asarray(ds["object_id"]).astype(str), sep, keep, name, repeated_ids)
    if len(keep) == 0:
        raise CrossmatchError(f"{name}: no pair left within {radius_arcsec} arcsec after the audit")
    ds = ds.select(keep)
    ra_col = f"{ref_survey}_ra" if f"{ref_survey}_ra" in ds.column_names else "ra"
    dec_col = f"{ref_survey}_dec" if f"{ref_survey}_dec" in ds.column_names else "dec"
    ids = np.asarray(ds["object_id"]).astype(str)
    if status == "unverifiable" and not {ra_col, dec_col} <= set(ds.column_names):
        # no position at all (AstroCLIP's evaluation file): NaN, and the probes take the catalogue's
        ra = dec = np.full(len(ids), np.nan)
    else:
        require_columns(ds.column_names, [ra_col, dec_col], name)
        ra, dec = np.asarray(ds[ra_col], float), np.asarray(ds[dec_col], float)
    ds = ds.remove_columns([c for c in ("object_id", "ra", "dec", "separation_arcsec") if c in ds.column_names])
    paired = _add_key_columns(ds, object_id=ids, ra=ra, dec=dec, sep=sep[keep])
    pairs = pd.DataFrame({"object_id": ids, "ra": ra, "dec": dec, "separation_arcsec": sep[keep]})
    finite = sep[keep][np.isfinite(sep[keep])]
    summary = {
        "method": "audit", "radius_arcsec": radius_arcsec, "audit_status": status,
        "n_left": n_total, "n_right": n_total, "matched": len(keep),
        "unmatched_left": n_total - len(keep), "unmatched_right": n_total - len(keep),
        "beyond_radius": n_total - len(keep) - repeats, "repeated_ids_dropped": repeats,
        "max_separation_arcsec": float(finite.max()) if len(finite) else float("nan"),
        "median_separation_arcsec": float(np.median(finite)) if len(finite) else float("nan"),
    }
    return paired, pairs, summary


def prefix_spectrum_columns(ds, survey: str, name: str):
    """``Z`` -> ``desi_Z``: the spectroscopic parent's scalar columns under the names a pair crossmatched
    here gives them (MMU's cross-match keeps each parent's own names; surveys.SPECTRUM_CATALOGUE_COLUMNS)."""
    columns = [c for c in SPECTRUM_CATALOGUE_COLUMNS.get(survey, ()) if c in ds.column_names]
    clash = [f"{survey}_{c}" for c in columns if f"{survey}_{c}" in ds.column_names]
    if clash:
        raise CrossmatchError(f"{name}: cannot prefix {survey}'s columns, {clash} exist already")
    if columns:
        log.info("%s: %s's columns %s renamed to %s_<column>", name, survey, columns, survey)
        ds = ds.rename_columns({c: f"{survey}_{c}" for c in columns})
    return ds


def check_side_columns(ds, surveys, name: str) -> None:
    """Each side's data column (``<survey>_image`` or ``<survey>_spectrum``) is there, with the fields the
    study reads; an image struct without ``band`` is read in the survey's documented band order (logged)."""
    for survey in surveys:
        kind = modality_of(survey)
        column = f"{survey}_{kind}"
        if column not in ds.column_names:
            raise CrossmatchError(
                f"{name}: no column '{column}' (the {survey} side's {kind}); has {ds.column_names}. Name it "
                f"with the pair's 'rename' (e.g. {{{kind}: {column}}})")
        fields = struct_fields(ds.features[column])
        if fields is None:
            raise CrossmatchError(f"{name}: column '{column}' is {ds.features[column]}, not a struct of {kind} fields")
        wanted = IMAGE_FIELDS if kind == "image" else SPECTRUM_FIELDS.get(survey, SPECTRUM_FIELDS["desi"])
        absent = [f for f in wanted if f not in fields]
        if absent:
            raise CrossmatchError(f"{name}: column '{column}' has no field(s) {absent}; has {sorted(fields)}")
        if kind == "image" and "band" not in fields:
            log.warning("%s: column '%s' has no 'band' field; its bands are read in %s's documented order %s",
                        name, column, survey, SURVEY_BANDS.get(survey))
            if survey not in SURVEY_BANDS:
                raise CrossmatchError(f"{name}: column '{column}' has no 'band' field and survey '{survey}' has no "
                                      f"documented band order (known: {sorted(SURVEY_BANDS)})")


def struct_fields(feature) -> set[str] | None:
    """The field names of an image or spectrum feature (a struct, or a Sequence of one), else None."""
    inner = getattr(feature, "feature", feature)
    if isinstance(inner, dict):
        return set(inner)
    if isinstance(inner, list) and inner and isinstance(inner[0], dict):
        return set(inner[0])
    return None


def drop_repeated_ids(ids: np.ndarray, sep: np.ndarray, keep: np.ndarray, name: str, repeated_ids: str):
    """(rows kept, how many dropped): of the kept rows sharing an id, the closest pair stays (the first in
    dataset order on a tie or where separations are unknown); ``repeated_ids: error`` refuses any repeat."""
    kept_ids = ids[keep]
    values, counts = np.unique(kept_ids, return_counts=True)
    repeated = values[counts > 1]
    if not len(repeated):
        return keep, 0
    if repeated_ids == "error":
        check_unique_ids(kept_ids, name)
    order = np.lexsort((keep, np.nan_to_num(sep[keep], nan=np.inf), kept_ids))  # by id, then separation, then row
    first = np.ones(len(order), bool)
    first[1:] = kept_ids[order][1:] != kept_ids[order][:-1]
    chosen = np.sort(keep[order[first]])
    n_dropped = len(keep) - len(chosen)
    log.warning("%s: %d rows repeat an object id already paired (%d ids, e.g. %s); each id keeps its closest pair "
                "(first row where separations are unknown); set crossmatch.repeated_ids: error to refuse them",
                name, n_dropped, len(repeated), [str(v) for v in repeated[:20]])
    return chosen, n_dropped


def _prefixed(ds, survey: str):
    return ds.rename_columns({c: f"{survey}_{c}" for c in ds.column_names})


def _add_key_columns(ds, object_id, ra, dec, sep):
    ds = ds.flatten_indices() if getattr(ds, "_indices", None) is not None else ds
    for col, values in (("separation_arcsec", sep), ("dec", dec), ("ra", ra), ("object_id", object_id)):
        ds = ds.add_column(col, list(values))
    order = ["object_id", "ra", "dec", "separation_arcsec"]
    return ds.select_columns(order + [c for c in ds.column_names if c not in order])


# Image mask polarity ------------------------------------------------------------------------------------
# Every step reads an image mask as True = bad pixel. The Multimodal Universe's builders write the opposite
# (HSC: True where bits 0, 1, 8 are clear; Legacy Survey: maskbits clear; JWST: inverse variance > 0), so a
# dataset configured `image_mask: clean` has its image masks inverted once, where its pair is made.


def image_mask_columns(ds) -> list[str]:
    """The image columns of a dataset that carry a mask: struct columns with a ``mask`` field and a ``band``
    field or a name ending in ``image`` (spectra have masks too, never bands)."""
    out = []
    for name in ds.column_names:
        fields = struct_fields(ds.features[name])
        if fields and "mask" in fields and ("band" in fields or name.endswith("image")):
            out.append(name)
    return out


def invert_masks(ds, columns, name: str = "dataset"):
    """The dataset with the ``mask`` field of each image column inverted (True = clean -> True = bad), done
    on the Arrow buffers in batches (no per-pixel Python); features, row order and every other field kept."""
    import pyarrow as pa

    columns = list(columns)
    if not columns:
        return ds
    log.info("%s: image masks of %s inverted (the dataset marks clean pixels True; the run reads True as bad)",
             name, columns)

    def invert(table: pa.Table) -> pa.Table:
        for column in columns:
            i = table.schema.get_field_index(column)
            table = table.set_column(i, column, _invert_mask_field(table.column(column).combine_chunks()))
        return table

    ds = ds.flatten_indices() if getattr(ds, "_indices", None) is not None else ds
    return ds.with_format("arrow").map(invert, batched=True, batch_size=256, features=ds.features,
                                       desc=f"invert masks of {name}").with_format(None)


def _invert_mask_field(arr):
    """Rebuild a struct / list / extension array with every boolean under a field named ``mask`` inverted."""
    import pyarrow as pa

    if isinstance(arr, pa.ExtensionArray):
        return pa.ExtensionArray.from_storage(arr.type, _invert_mask_field(arr.storage))
    if pa.types.is_struct(arr.type):
        children = [_invert_all(arr.field(i)) if f.name == "mask" else _invert_mask_field(arr.field(i))
                    for i, f in enumerate(arr.type)]
        return pa.StructArray.from_arrays(children, fields=list(arr.type), mask=arr.is_null())
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return _relist(arr, _invert_mask_field(arr.values))
    return arr


def _invert_all(arr):
    """Every boolean leaf of a (nested) array inverted; nulls stay null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ExtensionArray):
        return pa.ExtensionArray.from_storage(arr.type, _invert_all(arr.storage))
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        return _relist(arr, _invert_all(arr.values))
    if pa.types.is_boolean(arr.type):
        return pc.invert(arr)
    raise CrossmatchError(f"an image mask holds {arr.type}, not booleans: cannot invert its polarity")


def _relist(arr, values):
    """A list array like ``arr`` (its offsets, slice and nulls) over new child values."""
    import pyarrow as pa

    if pa.types.is_fixed_size_list(arr.type):
        start = arr.offset * arr.type.list_size
        values = values.slice(start, len(arr) * arr.type.list_size)
        return pa.FixedSizeListArray.from_arrays(values, arr.type.list_size, mask=arr.is_null())
    cls = pa.LargeListArray if pa.types.is_large_list(arr.type) else pa.ListArray
    out = cls.from_arrays(arr.offsets, values, mask=arr.is_null() if arr.null_count else None)
    return out.cast(arr.type) if out.type != arr.type else out
