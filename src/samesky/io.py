"""Atomic writes and the workflow's file formats: saved datasets, embeddings files, tables, figures.

Every output of the workflow is written next to its final path under a temporary name and moved into
place only once complete, so an interrupted job never leaves a file that looks finished. Nothing here
imports torch: reading an embeddings file is a Parquet read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it onto ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.partial"):  # left by a job that was killed
        log.info("removing %s, left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    target = tmp if is_dir else tmp / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_figure(path: str | os.PathLike, fig) -> None:
    """Lay out a matplotlib figure, write it atomically (format from the suffix; no creation date, so
    reruns give the same bytes) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, metadata={"CreationDate": None})
    plt.close(fig)


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas frame as CSV with a fixed float format, so equal numbers give equal bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def write_parquet(path: str | os.PathLike, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def save_dataset(dataset, path: str | os.PathLike) -> None:
    """``datasets.Dataset.save_to_disk`` into a temporary directory, then move it into place."""
    with atomic_path(path, is_dir=True) as tmp:
        dataset.save_to_disk(str(tmp))


def load_dataset_dir(path: str | os.PathLike):
    """Load a dataset written by :func:`save_dataset`, with an error that names the path."""
    from datasets import load_from_disk

    path = Path(path)
    if not (path / "dataset_info.json").exists():
        raise FileNotFoundError(
            f"{path} is not a saved dataset (no dataset_info.json); rerun the rule that makes it"
        )
    try:
        return load_from_disk(str(path))
    except Exception as exc:  # a truncated arrow file surfaces here
        raise OSError(f"could not read the dataset at {path}: {exc}") from exc


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def write_embeddings(path: str | os.PathLike, ids, emb, extra=None, metadata: dict | None = None) -> None:
    """Parquet: ``object_id``, ``embedding`` (fixed-size float32 list), any per-object extras (a pandas
    frame with ``object_id``); ``metadata`` (the job's record) goes into the file's schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: duplicate object ids among the embeddings")
    dim = int(emb.shape[1]) if emb.ndim == 2 and len(emb) else 0
    columns = {"object_id": pa.array(list(ids), pa.string()),
               "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), dim)}
    if extra is not None:
        for col in extra.columns:
            if col != "object_id":
                columns[col] = pa.array(extra[col].to_numpy())
    table = pa.table(columns).replace_schema_metadata({"samesky": json.dumps(metadata or {}, sort_keys=True, default=str)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_embeddings(path: str | os.PathLike):
    """(object ids, float32 (N, D) array, metadata) of an embeddings file."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:  # truncated or not parquet
        raise OSError(f"could not read the embeddings at {path}: {exc}; rerun the rule that makes it") from exc
    ids = np.asarray(table.column("object_id").to_pylist(), dtype=object)
    meta = json.loads((table.schema.metadata or {}).get(b"samesky", b"{}"))
    return ids, _float_rows(table.column("embedding")), meta


def _float_rows(column):
    """A fixed-size list column as a float32 (rows, size) array."""
    col = column.combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size).astype("float32")


def not_released(embeddings_path: str | os.PathLike) -> bool:
    """True for a side the released repository does not hold: no embeddings file, and a record beside
    where it would be that says so (released_embeddings); logged, so a table's missing row is explained."""
    path = Path(embeddings_path)
    record = path.with_name(path.name.removesuffix(".parquet") + ".provenance.json")
    if path.exists() or not record.exists():
        return False
    absent = json.loads(record.read_text()).get("not_released")
    if absent:
        logging.getLogger(__name__).warning("%s: not released (%s), left out", path, absent.get("tried"))
    return bool(absent)


def layers_path(embeddings_path: str | os.PathLike) -> Path:
    """Where an embeddings file's layers lie: ``<survey>.parquet`` -> ``<survey>.layers.parquet``."""
    path = Path(embeddings_path)
    return path.with_name(path.name.removesuffix(".parquet") + ".layers.parquet")


def write_layers(path: str | os.PathLike, ids, names: list[str], arrays: list, reference: int,
                 metadata: dict | None = None) -> None:
    """Every layer of one side in one file: ``object_id`` and one fixed-size float32 list column per layer
    (named as the layers); the layer names, the reference layer and the job's record in the metadata."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"object_id": pa.array(list(ids), pa.string())}
    for name, emb in zip(names, arrays):
        emb = np.asarray(emb, np.float32)
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), int(emb.shape[1]))
    meta = {**(metadata or {}), "layers": list(names), "reference_layer": names[reference]}
    table = pa.table(columns).replace_schema_metadata({"samesky": json.dumps(meta, sort_keys=True, default=str)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_layers(path: str | os.PathLike):
    """(object ids, layer names, [float32 (N, D_l) per layer], metadata) of a layers file; without one (a
    model with no layerwise output, or ``alignment.layers: final``), the embeddings file as one layer."""
    import numpy as np
    import pyarrow.parquet as pq

    layered = layers_path(path)
    if not layered.exists():
        ids, emb, meta = read_embeddings(path)
        return ids, ["final"], [emb], {**meta, "layers": ["final"], "reference_layer": "final"}
    try:
        table = pq.read_table(layered)
    except Exception as exc:
        raise OSError(f"could not read the layers at {layered}: {exc}; rerun the rule that makes them") from exc
    meta = json.loads(table.schema.metadata[b"samesky"])
    ids = np.asarray(table.column("object_id").to_pylist(), dtype=object)
    return ids, meta["layers"], [_float_rows(table.column(name)) for name in meta["layers"]], meta
