"""Atomic writes and dataset I/O.

Every output of the workflow is written next to its final path under a temporary name and moved into
place only once complete, so an interrupted job never leaves a file that looks finished.
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


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Send the package's log records to the rule's ``log:`` file and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
