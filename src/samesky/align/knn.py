"""Exact k nearest neighbours with faiss, and the mutual k-NN alignment score built on them.

Cosine similarity by default: rows are L2-normalised, then an exact inner-product index (``IndexFlatIP``)
is searched. faiss computes the similarities in blocks, so memory grows as N*k plus a bounded block,
never N^2. Two things faiss does not do, and we add:
- self-exclusion that holds even when rows are duplicated (the row itself is removed by index, not by
  being the nearest);
- rankings that do not depend on the machine: faiss's float32 similarities change in their last bits
  with the number of threads (and the BLAS kernel), which reordered near-ties and changed the tables with
  the cores a run had. faiss only proposes candidates; their similarities are recomputed in float64, one
  deterministic sum per pair, and neighbours are ordered by those and then by row index, fetching more
  candidates until the k-th is certain: above every candidate not fetched, within faiss's error bound.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class TorchIndex:
    """Exact float32 inner products on a torch device, chunked matrix products with ``topk``: the GPU's
    candidates (TF32 off, so faiss's error bound holds; the float64 re-rank then decides, as on the CPU)."""

    def __init__(self, x: np.ndarray, device: str):
        import torch

        self.device = torch.device(device)
        self.x = torch.from_numpy(x).to(self.device)
        self.chunk = max(1, (1 << 28) // max(1, len(x)))  # a (chunk, N) float32 block: at most 1 GiB

    def search(self, q: np.ndarray, fetch: int):
        import torch

        sims, idx = [], []
        allowed = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.inference_mode():
                for s in range(0, len(q), self.chunk):
                    block = torch.from_numpy(np.ascontiguousarray(q[s:s + self.chunk])).to(self.device)
                    values, rows = torch.topk(block @ self.x.T, fetch, dim=1)  # descending, as faiss returns
                    sims.append(values.cpu().numpy())
                    idx.append(rows.cpu().numpy().astype(np.int64))
        finally:
            torch.backends.cuda.matmul.allow_tf32 = allowed
        return np.concatenate(sims), np.concatenate(idx)


def search_device(gpu: bool) -> str | None:
    """The torch device the search rule takes its candidates from: ``cuda`` when asked for and present;
    None (faiss on the CPU) otherwise."""
    if not gpu:
        return None
    import torch

    if torch.cuda.is_available():
        return "cuda"
    log.warning("alignment.search.gpu is set but torch sees no CUDA device: searching on the CPU (faiss)")
    return None


def _index(x: np.ndarray, use_gpu: bool | None, device: str | None = None):
    if device is not None:  # candidates from torch on that device
        return TorchIndex(x, device)
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    if use_gpu is None:
        use_gpu = hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0
    if use_gpu:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(x)
    return index


def knn(x: np.ndarray, k: int, metric: str = "cosine", block: int = 8192, use_gpu: bool | None = None,
        device: str | None = None) -> np.ndarray:
    """(N, k) row indices of each row's k nearest other rows, nearest first, ties by lower index.

    Where the job holds the rows' lists already (rule search_neighbours, ``align.neighbours``), they are
    read, not searched. ``device``: a torch device (``cuda``) proposes the candidates instead of faiss."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = len(x)
    if n <= k:
        raise ValueError(f"need more than k = {k} objects for k nearest neighbours, got {n}")
    from .neighbours import keep, stored

    found, key = stored(x, k, metric)
    if found is not None:
        return found
    if metric == "cosine":
        x = normalise(x)
    elif metric == "ip":
        x = np.ascontiguousarray(x, dtype=np.float32)
    else:
        raise ValueError(f"unknown metric '{metric}' (cosine or ip)")
    index = _index(x, use_gpu, device)
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    # a float32 dot product of d terms is within d * 2^-24 * |a| |b| of the exact one (doubled for safety)
    error = 2 * x.shape[1] * 2.0**-24 * norms * norms.max() + 1e-12
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        out[rows] = _search_block(index, x, rows, k, n, error[rows])
    keep(key, out)
    return out


def exact_similarities(x: np.ndarray, rows: np.ndarray, candidates: np.ndarray, chunk: int = 16) -> np.ndarray:
    """float64 inner products of rows ``rows`` of x with their candidates ((len(rows), c) row indices).

    Each product is one sum over d, whatever the chunk: small chunks only keep the float64 temporaries in
    cache (16 rows: 3.4x faster than 512 at d = 1024, the same bits)."""
    out = np.empty(candidates.shape)
    for s in range(0, len(rows), chunk):
        q = x[rows[s:s + chunk]].astype(np.float64)[:, None, :]
        out[s:s + chunk] = (q * x[candidates[s:s + chunk]].astype(np.float64)).sum(-1)
    return out


def _search_block(index, x, rows, k, n, error):
    """The k nearest of each of ``rows``: fetch k + 8 candidates, and fetch twice as many again for the rows
    whose k-th is not yet certain (only those: a certain row's k nearest do not change with more)."""
    out = np.empty((len(rows), k), dtype=np.int64)
    pending = np.arange(len(rows))  # positions in ``rows`` still to settle
    fetch = min(n, k + 8)
    while True:
        these = rows[pending]
        approx, idx = index.search(x[these], fetch)
        sims = exact_similarities(x, these, idx)
        # drop the row itself wherever it appears (duplicates may push it off first place)
        sims = np.where(idx == these[:, None], -np.inf, sims)
        order = np.lexsort((idx, -sims), axis=1)  # similarity descending, then index ascending
        sims_sorted = np.take_along_axis(sims, order, axis=1)
        idx_sorted = np.take_along_axis(idx, order, axis=1)
        # every row not fetched has an exact similarity at most the last fetched one's approximate one
        # plus faiss's error: the k-th must lie above that, else a nearer or tied row may be missing
        settled = np.ones(len(these), bool) if fetch == n else sims_sorted[:, k - 1] > approx[:, -1] + error[pending]
        out[pending[settled]] = idx_sorted[settled, :k]
        pending = pending[~settled]
        if not len(pending):
            return out
        fetch = min(n, fetch * 2)


def brute_force_knn(x: np.ndarray, k: int) -> np.ndarray:
    """Dense N x N reference (platonic-rep style): for tests and the benchmark only."""
    x = normalise(x).astype(np.float64)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    idx = np.broadcast_to(np.arange(len(x)), sims.shape)
    order = np.lexsort((idx, -sims), axis=1)
    return order[:, :k]


def overlap_counts(nn_a: np.ndarray, nn_b: np.ndarray) -> np.ndarray:
    """|N_a(i) ∩ N_b(i)| per row, for neighbour index arrays of equal shape (N, k)."""
    return (nn_a[:, :, None] == nn_b[:, None, :]).any(axis=2).sum(axis=1)


def mknn(nn_a: np.ndarray, nn_b: np.ndarray, k: int | None = None) -> float:
    """Mutual k-NN score: mean over objects of the shared fraction of their k nearest neighbours."""
    k = nn_a.shape[1] if k is None else k
    return float(overlap_counts(nn_a[:, :k], nn_b[:, :k]).mean() / k)


DENSE_NULL_BYTES = 256 * 2**20  # the lookup table's size limit: N up to 16k


def permutation_null(nn_a: np.ndarray, nn_b: np.ndarray, k: int, n_permutations: int, seed: int) -> np.ndarray:
    """MKNN of A against B with B's rows shuffled, for many shuffles, from the neighbour sets alone.

    Shuffling B's rows by pi gives object i the row pi(i) of B, whose neighbours, renamed back to the
    shuffled order, are pi^-1(N_B(pi(i))). No neighbour search is repeated. A row of ``knn``'s arrays holds
    distinct indices, so the number of shared neighbours is the number of (row, neighbour) pairs of the
    shuffled B that are also A's: looked up in an N x N table of A's pairs where that fits in
    ``DENSE_NULL_BYTES`` (N k lookups a shuffle), else counted by comparing every A slot with every B slot
    of each row (N k^2, 3 to 5 times slower at the mini universe's N; issue 28).
    """
    rng = np.random.default_rng(seed)
    a, b = nn_a[:, :k], nn_b[:, :k]
    n = len(a)
    rows = np.arange(n)[:, None]
    table = None
    if n * n <= DENSE_NULL_BYTES:
        table = np.zeros((n, n), dtype=bool)
        table[rows, a] = True
    scores = np.empty(n_permutations)
    for j in range(n_permutations):
        pi = rng.permutation(n)
        inverse = np.empty(n, dtype=np.int64)
        inverse[pi] = np.arange(n)
        shuffled = inverse[b[pi]]
        if table is not None:
            shared = np.count_nonzero(table[rows, shuffled])
        else:
            shared = np.count_nonzero(a[:, :, None] == shuffled[:, None, :])
        scores[j] = shared / n / k  # = counts.mean() / k
    return scores


def chance_level(n: int, k: int) -> float:
    """Expected MKNN of unrelated spaces: each of k neighbours is shared with probability k/(N-1)."""
    return k / (n - 1)
