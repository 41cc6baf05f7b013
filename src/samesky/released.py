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

Not every file is named as src/pu/hub.py names it. The repository is listed once at its revision
(:func:`list_repository`) and each (mode, model, size) resolved among the names the peer's own code tries
(:data:`TWO_COLUMN_NAMES`, :data:`ONE_COLUMN_PATTERN`, :data:`LAYERWISE_NAMES`); the name found is recorded.
A (mode, model) the repository does not hold is "not released": the audit says so and the run goes on
with what exists (``released_embeddings.strict`` makes it an error). Whatever the layout, the fetched file
is written in one normalised layout: one column per side named by :func:`released_column`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from .registry import ModelSpec

log = logging.getLogger(__name__)

ID_COLUMNS = ("object_id", "hsc_object_id")  # where a file carries ids, rows are joined by them
NOT_RELEASED = "not released"

# Where the peer's code puts one (mode, model, size), in the order tried. Two sides in one file:
TWO_COLUMN_NAMES = (
    "{mode}/{alias}_{size}.parquet",             # src/pu/hub.py (push_parquet: {mode}_{model}_{size} -> {mode}/...)
    "{mode}/{mode}_{alias}_{size}.parquet",      # desi/desi_..., legacysurvey/legacysurvey_... (branch
    "{mode}_gio/{mode}_{alias}_{size}.parquet",  # crossmodalintramodal, scripts/test_alignment.py, _candidate_urls)
)
# One side a file, in a single `embeddings` column, size unstripped (cosmosweb/hsc_embeddings_cosmosweb-hsc-
# jwst-high-snr-pil2_astropt_015M_45000.parquet): {side} is each side's survey
ONE_COLUMN_PATTERN = r"{mode}/{side}_embeddings_.+_{alias}_{size}_\d+\.parquet"
# Every block's output (the layer grids): experiments/platonic/extract/extract_layerwise.py writes
# {survey}/{model}_blocks_layerwise.parquet to <owner>/platonic-embeddings; src/pu/experiments_layerwise.py
# writes {mode}_{model}_{size}_layerwise.parquet, which push_parquet puts at {mode}/{model}_{size}_layerwise.parquet.
# Columns {block}_hsc and {block}_{survey}; a spectroscopic survey's precomputed embedding as {survey}_embedding.
LAYERWISE_NAMES = ("{mode}/{alias}_{size}_blocks_layerwise.parquet", "{mode}/{alias}_{size}_layerwise.parquet")


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


def list_repository(source: str, revision: str | None) -> dict:
    """Every file of the repository at ``revision``, listed once: {source, revision_requested,
    revision_resolved, files} (a local folder in the repository's layout: its files and content hash)."""
    from .hub import folder_digest, is_local

    if is_local(source):
        root = Path(source)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts)
        resolved = "sha256:" + folder_digest(source)
    else:
        from huggingface_hub import HfApi

        try:
            api = HfApi()
            resolved = api.dataset_info(source, revision=revision).sha
            files = sorted(api.list_repo_files(source, repo_type="dataset", revision=resolved))
        except Exception as exc:  # offline, no such repository or revision
            raise ReleasedError(f"released embeddings: cannot list '{source}' at '{revision}': {exc}") from exc
    return {"source": source, "revision_requested": revision, "revision_resolved": resolved, "files": files}


def resolve(files, mode: str, spec: ModelSpec, reference: str, other: str, layerwise: bool = False) -> dict:
    """Where the listing ``files`` holds one (mode, model size): {status, layout, paths {side: path} (two
    sides in one file: both point to it), name (the pattern found), tried}; status "not released" if none."""
    alias, size = released_name(spec)
    listed = set(files)
    names = LAYERWISE_NAMES if layerwise else TWO_COLUMN_NAMES
    tried = [n.format(mode=mode, alias=alias, size=size) for n in names]
    for name, path in zip(names, tried):
        if path in listed:
            layout = "layerwise" if layerwise else "two sides a file"
            return {"status": "released", "layout": layout, "paths": {reference: path, other: path}, "name": name,
                    "tried": tried}
    if not layerwise:
        paths = {}
        for side in (reference, other):
            pattern = re.compile(ONE_COLUMN_PATTERN.format(mode=re.escape(mode), side=re.escape(side),
                                                           alias=re.escape(alias), size=re.escape(size)))
            found = sorted(f for f in files if pattern.fullmatch(f))
            if found:
                paths[side] = found[0]
        tried.append(ONE_COLUMN_PATTERN.format(mode=mode, side="{side}", alias=alias, size=size))
        if len(paths) == 2:
            return {"status": "released", "layout": "one side a file", "paths": paths, "name": ONE_COLUMN_PATTERN,
                    "tried": tried}
    return {"status": NOT_RELEASED, "layout": None, "paths": {}, "name": None, "tried": tried}


def _download(source: str, revision: str, path: str) -> Path:
    from .hub import is_local

    if is_local(source):
        return Path(source) / path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(source, path, repo_type="dataset", revision=revision))
    except Exception as exc:  # offline, or the file went away since the listing
        raise ReleasedError(f"released embeddings: cannot fetch '{path}' of '{source}' at '{revision}': {exc}") from exc


def _side_column(schema, path: str, side: str, wanted: str | None, layout: str) -> str:
    """The column of one side: ``wanted`` where the file (``schema``) has it, else the one column the peer's
    reader would take (its only list column for one side a file; the only one ending ``_{side}`` otherwise)."""
    names = schema.names
    if wanted in names:
        return wanted
    if layout == "one side a file":
        found = [n for n in names if n not in ID_COLUMNS]
    else:
        found = [n for n in names if n.lower().endswith(f"_{side}")]
    if len(found) != 1:
        raise ReleasedError(f"{path}: cannot tell the {side} side's column (no '{wanted}'"
                            f"{'' if layout == 'one side a file' else f', and {len(found)} ending _{side}'}); has {names}")
    return found[0]


def fetch_released(listing: dict, resolution: dict, spec: ModelSpec, reference: str, other: str,
                   out: str | os.PathLike) -> dict:
    """Download the file(s) of one resolved (mode, model size) at the listed revision and write them in the
    normalised layout (``released_column`` per side, object ids where the file has them); a model the
    repository does not hold gets a file with no rows, its schema metadata saying so. Returns its record."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .io import atomic_path

    source, revision = listing["source"], listing["revision_resolved"]
    meta = {"source": source, "revision_requested": listing["revision_requested"], "revision_resolved": revision,
            "status": resolution["status"], "paths": resolution["paths"], "name": resolution["name"],
            "layout": resolution["layout"], "tried": resolution["tried"]}
    metadata = {"samesky_released": json.dumps(meta, sort_keys=True)}
    if resolution["status"] != NOT_RELEASED and len(set(resolution["paths"].values())) == 1:
        # one file holds both sides (a layerwise one may hold 10^2 columns of 10^5 rows): copied in batches,
        # its columns picked and renamed, never all in memory
        path = next(iter(resolution["paths"].values()))
        reader = pq.ParquetFile(_download(source, revision, path))
        names = reader.schema_arrow.names
        if resolution["layout"] == "layerwise":
            blocks = layer_columns(names, path, reference, other)
            rename = {c: c for side in (reference, other) for c in blocks[side]}
        else:
            rename = {_side_column(reader.schema_arrow, path, side, released_column(spec, side),
                                   resolution["layout"]): released_column(spec, side) for side in (reference, other)}
        rename |= {c: c for c in ID_COLUMNS if c in names}
        with atomic_path(out) as tmp:
            schema = pa.schema([reader.schema_arrow.field(c).with_name(rename[c]) for c in rename], metadata=metadata)
            with pq.ParquetWriter(tmp, schema) as writer:
                for batch in reader.iter_batches(batch_size=4096, columns=list(rename)):
                    writer.write_table(pa.Table.from_batches([batch]).rename_columns(list(rename.values())).cast(schema))
        return meta
    columns = {}
    if resolution["status"] == NOT_RELEASED:
        columns = {released_column(spec, side): pa.array([], pa.list_(pa.float32())) for side in (reference, other)}
    else:  # one side a file
        for side in (reference, other):
            path = resolution["paths"][side]
            table = pq.read_table(_download(source, revision, path))
            wanted = released_column(spec, side)
            columns[wanted] = table.column(_side_column(table.schema, path, side, wanted, resolution["layout"]))
            columns.update({c: table.column(c) for c in ID_COLUMNS if c in table.column_names and c not in columns})
        rows = {name: len(col) for name, col in columns.items()}
        if len(set(rows.values())) != 1:
            raise ReleasedError(f"{resolution['paths']}: the sides have different numbers of rows: {rows}")
    table = pa.table(columns).replace_schema_metadata(metadata)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return meta


def released_meta(path: str | os.PathLike) -> dict:
    """The record a normalised file carries: where it came from, or that it was not released."""
    import pyarrow.parquet as pq

    return json.loads((pq.read_schema(path).metadata or {}).get(b"samesky_released", b"{}"))


def layer_columns(names: list[str], path, reference: str, other: str) -> dict[str, list[str]]:
    """{side: its block columns, shallow to deep} of a layerwise file: ``{block}_{side}``, or a
    spectroscopic side's single precomputed ``{survey}_embedding`` (pu_solve.py's list_blocks)."""
    out = {}
    for side in (reference, other):
        blocks = [n for n in names if n.endswith(f"_{side}")] or [n for n in names if n == f"{side}_embedding"]
        if not blocks:
            raise ReleasedError(f"{path}: no layer columns of the {side} side (no '<block>_{side}' or "
                                f"'{side}_embedding'); has {names[:8]}{' ...' if len(names) > 8 else ''}")
        out[side] = blocks
    return out


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
        arrays[c] = _rows(table.column(c), path, c)
    return ids, arrays


def _rows(column, path, name: str) -> np.ndarray:
    """A list (or fixed-size list) column as a float32 (N, D) array, read in Arrow (no Python lists: the
    paper's files hold 10^5 rows of 10^3 floats)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise ReleasedError(f"{path}: column '{name}' is {col.type}, not one embedding (a list of floats) a row")
    if len(col) == 0:
        return np.zeros((0, 0), np.float32)
    if col.null_count:
        raise ReleasedError(f"{path}: column '{name}' has {col.null_count} empty rows")
    lengths = np.asarray(pc.list_value_length(col))
    if lengths.min() != lengths.max():
        raise ReleasedError(f"{path}: column '{name}' does not hold one fixed-length embedding a row "
                            f"(lengths {lengths.min()} to {lengths.max()})")
    values = col.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(len(col), int(lengths[0]))


def audit_columns(path, spec: ModelSpec, reference: str, other: str, layerwise: bool = False) -> list[str]:
    """The two columns audited: each side's embedding, or (a layerwise file) each side's deepest block."""
    if not layerwise:
        return [released_column(spec, reference), released_column(spec, other)]
    import pyarrow.parquet as pq

    blocks = layer_columns(pq.read_schema(path).names, path, reference, other)
    return [blocks[reference][-1], blocks[other][-1]]


def audit_file(path, pair: str, spec: ModelSpec, reference: str, other: str, k: int, n_permutations: int,
               alpha: float, seed: int, layerwise: bool = False) -> dict:
    """One row of the audit table: are the file's two sides the same objects, row by row?

    With object ids the rows are joined by id (reported). Without, the scramble check: the MKNN of the two
    sides against its permutation null; paired when the observed score's p-value is at most ``alpha``. A
    model the repository does not hold is a row too ("not released"); a layerwise file is checked on each
    side's deepest block."""
    from .align.knn import knn, mknn, permutation_null

    meta = released_meta(path)
    row = {"pair": pair, "model": spec.name, "kind": "layers" if layerwise else "final", "file": str(path),
           "repository_files": " ".join(sorted(set((meta.get("paths") or {}).values()))),
           "name_found": meta.get("name") or ""}
    if meta.get("status") == NOT_RELEASED:
        return {**row, "rows": 0, "rows_joined_by": "", "k": k, "mknn": float("nan"), "null_mean": float("nan"),
                "null_q99": float("nan"), "p_value": float("nan"),
                "verdict": f"{NOT_RELEASED} (tried {', '.join(meta['tried'])})"}
    cols = audit_columns(path, spec, reference, other, layerwise)
    ids, arrays = read_released(path, cols)
    x_ref, x_other = arrays[cols[0]], arrays[cols[1]]
    if len(x_ref) != len(x_other):
        raise ReleasedError(f"{path}: {cols[0]} has {len(x_ref)} rows, {cols[1]} {len(x_other)}")
    nn_ref, nn_other = knn(x_ref, k), knn(x_other, k)
    observed = mknn(nn_ref, nn_other, k)
    null = permutation_null(nn_ref, nn_other, k, n_permutations, seed)
    p_value = float((1 + (null >= observed).sum()) / (1 + len(null)))
    paired = p_value <= alpha
    return {**row, "rows": len(x_ref), "rows_joined_by": "object id" if ids is not None else "position",
            "k": k, "mknn": observed, "null_mean": float(null.mean()), "null_q99": float(np.quantile(null, 0.99)),
            "p_value": p_value, "verdict": "paired" if paired else "NOT paired (score inside the null: rows scrambled)"}


def same_spectra(files: dict[str, str | os.PathLike], columns: dict[str, str]) -> dict[str, bool]:
    """For a spectroscopic mode: does each file (``columns``: the spectrum column of each) carry the same
    spectrum embeddings, in the same row order, as the first (they are one precomputed set): the
    cross-file check of the row order. Files not released are left out."""
    first, reference = None, None
    same = {}
    for model, path in files.items():
        if released_meta(path).get("status") == NOT_RELEASED:
            continue
        _, arrays = read_released(path, [columns[model]])
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


def to_layers(path, survey: str, reference: str, other: str) -> tuple[list[str], list[str], list[np.ndarray]]:
    """(object ids, block names, [(N, D) per block]) of one side of a layerwise file, shallow to deep."""
    import pyarrow.parquet as pq

    columns = layer_columns(pq.read_schema(path).names, path, reference, other)[survey]
    ids, arrays = read_released(path, columns)
    n = len(arrays[columns[0]])
    ids = list(ids) if ids is not None else [f"row-{i:06d}" for i in range(n)]
    names = [c.removesuffix(f"_{survey}") for c in columns]
    return ids, names, [arrays[c] for c in columns]
