"""Each embedding searched once: the neighbour lists of a pair's files, found by rule search_neighbours and
read by every alignment rule.

The search rule finds, for every row set the pair's comparisons use (each file's rows shared with the
file it is compared with, in the sorted-id order ``scores.paired`` gives them), the k nearest neighbours
at the largest k any rule asks for (``knn`` with its float64 re-rank and tie rule; its first k columns
are ``knn`` at any smaller k). The lists are keyed by the rows' content: a hash of the float32 array
``knn`` is given. A job whose rule has the ``neighbours`` input loads them (steps.runner), and ``knn``
returns the stored list for an array it has seen, so every caller (the scores, the metric suite, the
conditional analyses) reads it without being told; any other array (a subset, a residualised space) is
searched as before, and kept for the rest of the job, so a spectrum side binned or residualised for each
image model it meets is searched once. The same bytes give the same neighbours: every table is unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_STORE: dict[tuple, np.ndarray] = {}
_USE = {"read": 0, "searched": 0, "reused": 0}
_ACTIVE = [False]  # inside use_stored: a search made here is kept for the rest of the job too
_FROM_FILE: set[tuple] = set()


def fingerprint(x: np.ndarray, metric: str) -> tuple:
    """(metric, shape, hash of the float32 bytes): ``knn`` reads its input as float32, so arrays with equal
    keys have equal neighbours."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    return metric, a.shape, hashlib.blake2b(a.data, digest_size=20).hexdigest()


def stored(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray | None, tuple | None]:
    """(the stored (N, k) neighbours of ``x`` or None, the key to keep a search under). Outside a job with
    lists (no ``use_stored``), (None, None): ``knn`` just searches."""
    if not _ACTIVE[0]:
        return None, None
    key = fingerprint(x, metric)
    found = _STORE.get(key)
    if found is None or found.shape[1] < k:
        _USE["searched"] += 1
        return None, key
    _USE["read" if key in _FROM_FILE else "reused"] += 1
    return np.array(found[:, :k], dtype=np.int64), key  # a copy: the caller may write to it


def keep(key: tuple | None, nn: np.ndarray) -> None:
    """A search made in the job, kept for the job's later calls on the same rows (the same spectrum side
    residualised or binned for every image model it is compared with, say)."""
    if key is not None and _ACTIVE[0]:
        _STORE[key] = nn


@contextlib.contextmanager
def use_stored(path: str | Path):
    """Within the block, ``knn`` reads the lists of ``path`` (a search_neighbours output) where it can."""
    with np.load(path, allow_pickle=False) as data:
        keys = data["keys"]
        for i, (metric, shape, digest) in enumerate(keys):
            key = (str(metric), tuple(int(v) for v in str(shape).split("x")), str(digest))
            _STORE[key] = data[f"nn_{i}"]
            _FROM_FILE.add(key)
    _USE.update(read=0, searched=0, reused=0)
    _ACTIVE[0] = True
    try:
        yield
    finally:
        log.info("neighbour lists: %d read from %s, %d searched here (subsets or transformed spaces), %d of "
                 "those reused within the job", _USE["read"], path, _USE["searched"], _USE["reused"])
        _STORE.clear()
        _FROM_FILE.clear()
        _ACTIVE[0] = False


DEPTH_MARGIN = 10  # neighbours kept past the largest k: what settles a reordered sample's ties (permuted_knn)


def search_depth(alignment: dict) -> int:
    """How many neighbours the search rule keeps: the largest k of alignment.k, table_k and metrics.k,
    plus ``DEPTH_MARGIN``."""
    return max([*alignment["k"], alignment["table_k"], *alignment["metrics"]["k"]]) + DEPTH_MARGIN


def row_sets(reference: str, other: str, files: list):
    """(file, key, rows) of every distinct row set the pair's comparisons search, one at a time: each compared
    file on the rows it shares with the other file, in ``scores.paired``'s order (sorted ids). Yielded, not
    listed, so only the files and the set being searched are in memory."""
    from .scores import comparisons, load_cached, paired

    cache: dict = {}
    seen = set()
    for _, _, fa, fb in comparisons(reference, other, files):
        _, xa, xb = paired(load_cached(fa, cache), load_cached(fb, cache))
        for f, x in ((fa, xa), (fb, xb)):
            key = fingerprint(x, "cosine")
            if key not in seen:
                seen.add(key)
                yield f, key, x


def search_pair(reference: str, other: str, files: list, k: int, device: str | None = None):
    """The neighbour lists of every row set of one pair: (keys, lists, one record per search; the times are
    logged)."""
    from .knn import knn

    keys, lists, records = [], [], []
    for j, (f, (metric, shape, digest), x) in enumerate(row_sets(reference, other, files)):
        start = time.perf_counter()
        nn = knn(x, k, device=device)
        seconds = time.perf_counter() - start
        keys.append((metric, "x".join(map(str, shape)), digest))
        lists.append(nn.astype(np.int32 if len(x) < 2**31 else np.int64))
        records.append({"file": f.path, "model": f.model, "survey": f.survey, "rows": len(x), "width": x.shape[1],
                        "k": k, "device": device or "cpu (faiss)"})  # no times: the table is the same bytes again
        log.info("search %d: %s %s, %d rows x %d, k = %d on %s: %.1f s", j + 1, f.survey, f.model,
                 len(x), x.shape[1], k, device or "cpu (faiss)", seconds)
    return keys, lists, records


def write_lists(path: str | Path, keys, lists) -> None:
    """One .npz: ``keys`` (metric, shape, hash) and ``nn_<i>``; written atomically."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(keys, dtype=str).reshape(-1, 3), **{f"nn_{i}": nn for i, nn in enumerate(lists)})


def permuted_knn(x: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """``knn(x[order], k)`` for a permutation ``order`` of all of x's rows (a size curve's full sample), from
    x's stored lists where they settle it: each row's stored neighbours renamed into the new order and
    re-ranked by their float64 similarity, then the new row index (``knn``'s tie rule). Certain when a
    row's k-th lies above its last stored neighbour, so no neighbour not stored can enter; otherwise, or
    without lists, a search."""
    from .knn import exact_similarities, knn, normalise

    found = _STORE.get(fingerprint(x, "cosine")) if _ACTIVE[0] else None
    if found is None or found.shape[1] <= k or len(order) != len(x):
        return knn(x[order], k)
    lists = np.asarray(found, dtype=np.int64)[order]  # row p of x[order] is row order[p] of x
    sims = exact_similarities(normalise(x), order, lists)  # the float64 similarities knn ranks by
    inverse = np.empty(len(x), dtype=np.int64)
    inverse[order] = np.arange(len(x))
    renamed = inverse[lists]
    rank = np.lexsort((renamed, -sims), axis=1)
    if not (np.take_along_axis(sims, rank[:, k - 1:k], axis=1)[:, 0] > sims.min(axis=1)).all():
        _USE["searched"] += 1
        return knn(x[order], k)
    _USE["read"] += 1
    return np.take_along_axis(renamed, rank[:, :k], axis=1)
