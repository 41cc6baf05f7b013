"""Released embeddings as an input: the Platonic Universe team's files, audited, in our embeddings layout.

The paper's code (UniverseTBD/platonic-universe, src/pu/experiments.py and src/pu/hub.py) writes one Parquet
file per comparison mode and model size, ``{mode}/{model}_{size}.parquet`` in a Hub dataset repository
(``UniverseTBD/pu-embeddings``), the mode being the survey compared with HSC (jwst, legacysurvey, desi,
sdss). Each file holds one column per side, ``{model}_{size without leading zeros}_{survey}`` in lower case
(``vit_base_hsc``, ``astropt_15m_jwst``), one embedding per row; a spectroscopic mode's file carries the
precomputed spectrum embeddings beside the image model's HSC ones (``vit_base_desi``).

The rows carry no object id: they are paired by position, in the streaming order of the crossmatched set.
The paper's code scrambled that order when it read with ``num_workers > 0`` (platonic-universe PR #67), so
every file is audited before use (:func:`audit_file`): by its object ids where it has them, otherwise by a
scramble check, the file's own crossmodal MKNN against its permutation null; a score inside the null
means the two sides' rows are not the same objects, and that file is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from .registry import ModelSpec

log = logging.getLogger(__name__)

ID_COLUMNS = ("object_id", "hsc_object_id")  # where a file carries ids, rows are joined by them


class ReleasedError(ValueError):
    """A released file is missing, in another layout, or its rows are not paired."""


def released_name(spec: ModelSpec) -> tuple[str, str]:
    """(model alias, size) as the paper's code names a model size (its model_map, platonic-universe
    src/pu/experiments.py; the zoo's ``released`` key), e.g. astropt-small -> (astropt, 015M)."""
    if not spec.released or spec.is_control:
        raise ReleasedError(f"no released embeddings of {spec.name} (the zoo names none for family '{spec.family}')")
    return spec.released["alias"], (spec.released.get("sizes") or {}).get(spec.size, spec.size)


def released_path(mode: str, spec: ModelSpec) -> str:
    """The file's path in the repository: ``{mode}/{model}_{size}.parquet``."""
    alias, size = released_name(spec)
    return f"{mode}/{alias}_{size}.parquet"


def released_column(spec: ModelSpec, survey: str) -> str:
    """The column of one side: ``{model}_{size without leading zeros}_{survey}``, lower case."""
    alias, size = released_name(spec)
    return f"{alias}_{size.lstrip('0')}_{survey}".lower()


def fetch_released(source: str, revision: str | None, path: str, out: str | os.PathLike) -> dict:
    """Copy one released file from a local folder in the repository's layout, or download it from the Hub
    dataset repository ``source`` at ``revision``; return its record."""
    from .hub import folder_digest, is_local
    from .io import atomic_path

    if is_local(source):
        src = Path(source) / path
        if not src.exists():
            raise ReleasedError(f"released embeddings: no file '{path}' in {source}")
        resolved = "sha256:" + folder_digest(source)
    else:
        from huggingface_hub import HfApi, hf_hub_download

        try:
            resolved = HfApi().dataset_info(source, revision=revision).sha
            src = Path(hf_hub_download(source, path, repo_type="dataset", revision=resolved))
        except Exception as exc:  # offline, no such repository, revision or file
            raise ReleasedError(f"released embeddings: cannot fetch '{path}' of '{source}' at '{revision}': {exc}") from exc
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)
    return {"source": source, "path": path, "revision_requested": revision, "revision_resolved": resolved}


def read_released(path: str | os.PathLike, columns: list[str]) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """(object ids or None, {column: float32 (N, D) array}) of a released file; names a missing column."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ReleasedError(f"{path}: no column(s) {missing}; has {table.column_names}")
    ids = next((np.asarray(table.column(c).to_pylist()).astype(str) for c in ID_COLUMNS if c in table.column_names),
               None)
    arrays = {}
    for c in columns:
        values = table.column(c).to_pylist()
        arrays[c] = np.asarray(values, dtype=np.float32)
        if arrays[c].ndim != 2:
            raise ReleasedError(f"{path}: column '{c}' does not hold one fixed-length embedding a row")
    return ids, arrays


def audit_file(path, pair: str, spec: ModelSpec, reference: str, other: str, k: int, n_permutations: int,
               alpha: float, seed: int) -> dict:
    """One row of the audit table: are the file's two sides the same objects, row by row?

    With object ids the rows are joined by id (reported). Without, the scramble check: the MKNN of the two
    sides against its permutation null; paired when the observed score's p-value is at most ``alpha``."""
    from .align.knn import knn, mknn, permutation_null

    cols = [released_column(spec, reference), released_column(spec, other)]
    ids, arrays = read_released(path, cols)
    x_ref, x_other = arrays[cols[0]], arrays[cols[1]]
    if len(x_ref) != len(x_other):
        raise ReleasedError(f"{path}: {cols[0]} has {len(x_ref)} rows, {cols[1]} {len(x_other)}")
    nn_ref, nn_other = knn(x_ref, k), knn(x_other, k)
    observed = mknn(nn_ref, nn_other, k)
    null = permutation_null(nn_ref, nn_other, k, n_permutations, seed)
    p_value = float((1 + (null >= observed).sum()) / (1 + len(null)))
    paired = p_value <= alpha
    return {"pair": pair, "model": spec.name, "file": str(path), "rows": len(x_ref),
            "rows_joined_by": "object id" if ids is not None else "position",
            "k": k, "mknn": observed, "null_mean": float(null.mean()), "null_q99": float(np.quantile(null, 0.99)),
            "p_value": p_value, "verdict": "paired" if paired else "NOT paired (score inside the null: rows scrambled)"}


def same_spectra(files: dict[str, str | os.PathLike], spec_of: dict[str, ModelSpec], survey: str) -> dict[str, bool]:
    """For a spectroscopic mode: does each file carry the same spectrum embeddings, in the same row order,
    as the first (they are one precomputed set): the cross-file check of the row order."""
    first, reference = None, None
    same = {}
    for model, path in files.items():
        _, arrays = read_released(path, [released_column(spec_of[model], survey)])
        values = next(iter(arrays.values()))
        if first is None:
            first, reference = model, values
        same[model] = bool(values.shape == reference.shape and np.allclose(values, reference, atol=1e-6))
    return same


def to_embeddings(path, spec: ModelSpec, survey: str) -> tuple[list[str], np.ndarray]:
    """(object ids, embeddings) of one side of a released file: its ids, or its row positions ('row-000000')."""
    column = released_column(spec, survey)
    ids, arrays = read_released(path, [column])
    emb = arrays[column]
    ids = list(ids) if ids is not None else [f"row-{i:06d}" for i in range(len(emb))]
    return ids, emb
