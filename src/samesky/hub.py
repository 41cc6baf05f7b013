"""Fetch datasets with Hugging Face ``datasets`` and keep a local copy plus where it came from.

One code path for both presets: ``datasets.load_dataset`` on a Hub id (paper preset) or on a local
folder in the Hub layout (the embedded default, and the offline tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .io import save_dataset

log = logging.getLogger(__name__)


def is_local(source: str | None) -> bool:
    """A folder or file on this machine (else a Hub id or URL; None: no source at all)."""
    return bool(source) and Path(source).exists()


def resolve_revision(source: str, revision: str | None) -> str:
    """The commit a Hub revision points to, or a content hash of a local folder."""
    if is_local(source):
        return "sha256:" + folder_digest(source)
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(source, revision=revision).sha
    except Exception as exc:  # offline, or no such repository/revision
        raise RuntimeError(f"cannot resolve revision '{revision}' of Hub dataset '{source}': {exc}") from exc


def folder_digest(folder: str | os.PathLike) -> str:
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and ".cache" not in path.parts:
            h.update(str(path.relative_to(folder)).encode())
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def download_dataset(source: str, out_dir: str | os.PathLike, revision: str | None = None, split: str = "train",
                     config_name: str | None = None, cache_dir: str | os.PathLike | None = None) -> dict:
    """``load_dataset(source, revision=..., split=...)`` and save it to ``out_dir``; return its record.

    The record names the source, the requested and resolved revision, the split and the row count; it is
    written beside the data by the workflow so every later result can cite it.
    """
    from datasets import load_dataset

    local = is_local(source)
    if not local and not revision:
        raise ValueError(f"dataset '{source}': a Hub source needs a pinned 'revision'")
    resolved = resolve_revision(source, revision)
    log.info("loading %s (revision %s -> %s, split %s)", source, revision, resolved, split)
    tmp_cache = Path(tempfile.mkdtemp(prefix="hf-cache-", dir=cache_dir)) if cache_dir else None
    try:
        ds = load_dataset(
            source, name=config_name, split=split,
            revision=None if local else resolved,
            cache_dir=str(tmp_cache) if tmp_cache else None,
        )
        save_dataset(ds, out_dir)
        n_rows, columns = len(ds), list(ds.column_names)
    finally:
        if tmp_cache is not None:
            shutil.rmtree(tmp_cache, ignore_errors=True)
    log.info("saved %d rows of %s to %s", n_rows, source, out_dir)
    return {
        "source": str(source), "local": local, "revision_requested": revision, "revision_resolved": resolved,
        "split": split, "config_name": config_name, "n_rows": n_rows, "columns": columns,
    }
