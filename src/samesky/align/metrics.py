"""A suite of representational-alignment metrics, all scored under one protocol.

Every metric takes two row-paired arrays, (N, d_a) and (N, d_b), and has a maximum of 1 (identical
spaces up to rotation). Two families:

- local (kNN-based; one score per k): ``mknn``, ``jaccard_knn``, ``cycle_knn``, ``lcs_knn``, ``edit_knn``,
  ``cknna``, ``cknna_own``. Neighbours are the exact cosine neighbours of ``knn.knn`` (searched once, at the largest k;
  a smaller k takes the first k columns). Nothing N x N is built: memory is O(N k) plus O(k^2) per row in
  bounded row chunks, so they run on all rows.
- global (matrix): ``svcca``, ``rsa``, ``procrustes``, ``cka_linear``, ``cka_debiased``. They run on a seeded
  random sample of at most ``MAX_ROWS`` rows (``RSA_ROWS`` for RSA, whose cost is quadratic in rows);
  all rows, in their order, when there are no more than that.

``evaluate`` gives each score its permutation null (B's rows shuffled). For the local metrics the
neighbour sets are reused exactly as ``knn.permutation_null`` does (shuffled B's neighbours are
``inverse[nn_b[pi]]``), with the same permutation sequence, so no search is repeated; the global metrics
are recomputed on the sample, from quantities that a row shuffle leaves unchanged (SVDs, norms, ranks).

Formulas: Huh et al. 2024 (platonic-rep ``metrics.py``, ``AlignmentMetrics``) and UniverseTBD/platonic-universe
``src/pu/metrics``; where ours differ from those codes, the metric's docstring says how.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from scipy.linalg import svdvals
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata

from .curves import subset_sizes
from .knn import exact_similarities, knn
from .stats import _hsic_unbiased, debiased_cka, linear_cka

log = logging.getLogger(__name__)

MAX_ROWS = 10_000  # rows sampled for the matrix metrics (O(rows d^2) time, O(rows d) memory)
RSA_ROWS = 2_000  # rows sampled for RSA: rows^2 / 2 distances per space
SVCCA_DIMS = 10  # singular directions kept per space (platonic-rep's cca_dim)
_CHUNK_ELEMENTS = 1 << 22  # rows per chunk * k^2 stays below this in the local metrics


# ---------------------------------------------------------------------------------------------------
# local (kNN) metrics


def _check_pair(x_a: np.ndarray, x_b: np.ndarray) -> None:
    if np.ndim(x_a) != 2 or np.ndim(x_b) != 2:
        raise ValueError(f"embeddings must be 2-d (N, d), got shapes {np.shape(x_a)} and {np.shape(x_b)}")
    if len(x_a) != len(x_b):
        raise ValueError(f"embeddings must be row-paired: {len(x_a)} rows against {len(x_b)}")


def _centred_kernel_slots(x: np.ndarray, nn: np.ndarray) -> np.ndarray:
    """Double-centred cosine kernel on the neighbour pairs only: Kc[i, r] = Kc(i, nn[i, r]), (N, k).

    With unit rows u_i and K = U U^T, HKH_ij = K_ij - m_i - m_j + g where the row means m_i = u_i . u_bar
    and the grand mean g = |u_bar|^2 are O(N d): the N x N kernel is never formed.
    """
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    u = x / np.where(norms > 0, norms, 1.0)
    mean = u.mean(0)
    row_means = u @ mean
    k = exact_similarities(u, np.arange(len(u)), nn)
    return k - row_means[:, None] - row_means[nn] + mean @ mean


def _lcs_lengths(eq: np.ndarray) -> np.ndarray:
    """Longest common subsequence of two ordered lists per row, from their (rows, k, k) match table.

    The textbook programme, one row of the table at a time over every list at once: with t[s] = L[r-1][s-1]
    + 1 where A's r-th item is B's s-th, else L[r-1][s], the new row is the running maximum of t along s
    (a match's value is never below its left or upper neighbour, so the maximum gives it unchanged).
    """
    rows, k, _ = eq.shape
    prev = np.zeros((rows, k + 1), np.int32)
    for r in range(k):
        t = np.where(eq[:, r, :], prev[:, :-1] + 1, prev[:, 1:])
        prev = np.concatenate([prev[:, :1], np.maximum.accumulate(t, axis=1)], axis=1)
    return prev[:, k]


def _edit_distances(eq: np.ndarray) -> np.ndarray:
    """Levenshtein distance between two ordered lists per row (unit insert, delete, substitute).

    The textbook programme, one row of the table at a time over every list at once: with
    u[s] = min(D[r-1][s] + 1, D[r-1][s-1] + (A's r-th item is not B's s-th)) and D[r][0] = r, the row is
    D[r][s] = min(u[s], D[r][s-1] + 1), i.e. D[r][s] - s = the running minimum of u[s'] - s' over s' <= s.
    """
    rows, k, _ = eq.shape
    offsets = np.arange(k + 1, dtype=np.int32)
    prev = np.broadcast_to(offsets, (rows, k + 1)).copy()
    for r in range(k):
        u = np.empty_like(prev)
        u[:, 0] = r + 1
        u[:, 1:] = np.minimum(prev[:, 1:] + 1, prev[:, :-1] + ~eq[:, r, :])
        prev = np.minimum.accumulate(u - offsets, axis=1) + offsets
    return prev[:, k]


def _local_scores(nn_a: np.ndarray, nn_b: np.ndarray, ks: Iterable[int], names: Iterable[str],
                  kc_a: np.ndarray | None = None, lc_b: np.ndarray | None = None,
                  cycle_hop: int | None = None) -> dict[tuple[str, int], float]:
    """Every requested local metric at every k, from (N, k_max) neighbour arrays (nearest first).

    ``kc_a``, ``lc_b``: centred kernel values on the neighbour slots (``_centred_kernel_slots``), needed by
    cknna only. Works in row chunks, so memory is O(N k) whatever N. The match table of a chunk is built
    once and kept as its list of matches (row i, A's slot r, B's slot s): neighbours are distinct, so each
    match is one shared object, a slot matches at most once, and every metric but cycle_knn is a sum over
    the matches (cknna's masked sums too); the dynamic programmes run only on rows with two or more.
    """
    names, ks = list(names), sorted(set(ks))
    n, k_max = nn_a.shape
    sums: dict[tuple[str, int], float] = {}
    cknna_sums = {k: np.zeros(5) for k in ks}
    cknna = "cknna" in names or "cknna_own" in names
    step = max(1, _CHUNK_ELEMENTS // (k_max * k_max))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        m = len(rows)
        a, b = nn_a[rows], nn_b[rows]
        eq = a[:, :, None] == b[:, None, :]  # eq[i, r, s]: A's r-th neighbour is B's s-th
        flat = np.flatnonzero(eq)  # (far quicker than np.nonzero on a 3-d array)
        mi, mr, ms = flat // (k_max * k_max), flat // k_max % k_max, flat % k_max
        if "cycle_knn" in names:
            hop_max = k_max if cycle_hop is None else min(cycle_hop, k_max)
            # rank of i among the A-neighbours of each of its first B-neighbours (k_max: not among them);
            # a list holds i at most once
            flat = np.flatnonzero(nn_a[b[:, :hop_max]] == rows[:, None, None])
            rank = np.full((m, hop_max), k_max)
            rank[flat // (hop_max * k_max), flat // k_max % hop_max] = flat % k_max
        for k in ks:
            inside = (mr < k) & (ms < k)
            i, r, s_ = mi[inside], mr[inside], ms[inside]
            common = np.bincount(i, minlength=m)
            per_row: dict[str, np.ndarray] = {"mknn": common / k, "jaccard_knn": common / (2 * k - common)}
            if "lcs_knn" in names or "edit_knn" in names:
                # Closed forms for rows sharing fewer than two neighbours (almost every row under the null):
                # no match gives LCS 0 and distance k (k substitutions); one match, at slots r and s, gives
                # LCS 1 and distance k - 1 if r == s, else k (aligning it costs max(r, s) + max(k-1-r, k-1-s)
                # = k - 1 + |r - s|). The dynamic programmes run on the other rows only.
                multi = np.flatnonzero(common >= 2)
                e = eq[multi][:, :k, :k]
                if "lcs_knn" in names:
                    lcs = np.minimum(common, 1)
                    lcs[multi] = _lcs_lengths(e)
                    per_row["lcs_knn"] = lcs / k
                if "edit_knn" in names:
                    dist = k - ((common == 1) & (np.bincount(i[r == s_], minlength=m) > 0))
                    dist[multi] = _edit_distances(e)
                    per_row["edit_knn"] = 1 - dist / k
            if "cycle_knn" in names:
                hop = k if cycle_hop is None else min(cycle_hop, k)
                per_row["cycle_knn"] = (rank[:, :hop] < k).any(axis=1)
            if cknna:
                w, v = kc_a[rows, :k], lc_b[rows, :k]
                wm, vm = w[i, r], v[i, s_]
                cknna_sums[k] += [wm @ vm, wm @ wm, vm @ vm, (w**2).sum(), (v**2).sum()]
            for name in names:
                if name in per_row:
                    sums[name, k] = sums.get((name, k), 0.0) + float(per_row[name].sum())
    out = {(name, k): sums[name, k] / n for name in names if not name.startswith("cknna") for k in ks}
    for k in ks:
        kl, kk, ll, kk_own, ll_own = cknna_sums[k]
        if "cknna" in names:
            out["cknna", k] = float(kl / np.sqrt(kk * ll)) if kk > 0 and ll > 0 else 0.0
        if "cknna_own" in names:
            out["cknna_own", k] = float(kl / np.sqrt(kk_own * ll_own)) if kk_own > 0 and ll_own > 0 else 0.0
    return out


def _local(name: str, x_a: np.ndarray, x_b: np.ndarray, k: int, **kw) -> float:
    _check_pair(x_a, x_b)
    nn_a, nn_b = knn(x_a, k), knn(x_b, k)
    kernels = {}
    if name.startswith("cknna"):
        kernels = {"kc_a": _centred_kernel_slots(x_a, nn_a), "lc_b": _centred_kernel_slots(x_b, nn_b)}
    return _local_scores(nn_a, nn_b, [k], [name], **kernels, **kw)[name, k]


def mutual_knn(x_a: np.ndarray, x_b: np.ndarray, k: int) -> float:
    """MKNN: mean_i |N_a(i) ∩ N_b(i)| / k (the paper's score; knn.mknn on freshly searched neighbours)."""
    return _local("mknn", x_a, x_b, k)


def jaccard_knn(x_a: np.ndarray, x_b: np.ndarray, k: int) -> float:
    """mean_i |N_a(i) ∩ N_b(i)| / |N_a(i) ∪ N_b(i)|; stricter than MKNN below 1, equal to it at 0 and 1."""
    return _local("jaccard_knn", x_a, x_b, k)


def cycle_knn(x_a: np.ndarray, x_b: np.ndarray, k: int, first_hop: int | None = None) -> float:
    """Cycle kNN as platonic-rep computes it (``compute_knn_accuracy(knn_A[knn_B])``):

        cycle_knn = mean_i [ i ∈ ∪_{j ∈ N_b^h(i)} N_a^k(j) ],   h = first_hop (default k)

    go from i to its h nearest neighbours in B, come back through A's k nearest neighbours of those, and
    count i if it is reached. ``first_hop=1`` gives mean_i [ i ∈ N_a^k(N_b^1(i)) ]; swap the arguments for
    mean_i [ i ∈ N_b^k(N_a^1(i)) ]. Not symmetric in A and B, and below 1 even for identical spaces
    wherever i is in none of its own neighbours' k-neighbourhoods (an isolated point).
    """
    return _local("cycle_knn", x_a, x_b, k, cycle_hop=first_hop)


def lcs_knn(x_a: np.ndarray, x_b: np.ndarray, k: int) -> float:
    """Mean length of the longest common subsequence of the two ordered k-neighbour lists, over k.

    platonic-rep's ``lcs_knn`` returns the mean length itself (0..k); divided by k here, so the maximum is 1
    like the others. Order-sensitive, unlike MKNN.
    """
    return _local("lcs_knn", x_a, x_b, k)


def edit_knn(x_a: np.ndarray, x_b: np.ndarray, k: int) -> float:
    """1 - mean Levenshtein distance between the ordered k-neighbour lists / k (platonic-rep's
    ``edit_distance_knn``)."""
    return _local("edit_knn", x_a, x_b, k)


def cknna(x_a: np.ndarray, x_b: np.ndarray, k: int, self_mask: str = "mutual") -> float:
    """CKNNA (Huh et al. 2024, appendix): CKA restricted to mutual-neighbour pairs.

    K = U_a U_a^T and L = U_b U_b^T are cosine kernels (rows L2-normalised, as platonic-rep normalises
    features before scoring), double-centred with plain centring (Kc = HKH, Lc = HLH; not the unbiased
    HSIC). With the mutual mask M_ij = 1 iff i != j, j ∈ N_a^k(i) and j ∈ N_b^k(i),

        HSIC_M(K, L) = sum_ij M_ij Kc_ij Lc_ij,   cknna = HSIC_M(K, L) / sqrt(HSIC_M(K, K) HSIC_M(L, L)).

    ``self_mask="mutual"`` (the paper's formula, registry name ``cknna``) uses the same mutual mask in all
    three terms: it is then a cosine between two mostly positive vectors (neighbour pairs have above-average
    similarity in both spaces), near 1 even for unrelated spaces, so read it against its null (calibrated).
    ``self_mask="own"`` (registry ``cknna_own``) gives each self-term its own space's k-neighbour mask, as
    platonic-rep's code does; there the score also falls with the number of mutual pairs. platonic-rep
    further masks the raw kernels before an unbiased HSIC, so neither equals its numbers. 0 when no pair is
    mutual. Kc is evaluated only on the k neighbour pairs of each row (row means in O(N d)): O(N k d)
    time, O(N k) memory, never N x N.
    """
    if self_mask not in ("mutual", "own"):
        raise ValueError(f"self_mask must be 'mutual' or 'own', got {self_mask!r}")
    return _local("cknna" if self_mask == "mutual" else "cknna_own", x_a, x_b, k)


def cknna_own(x_a: np.ndarray, x_b: np.ndarray, k: int) -> float:
    """``cknna(..., self_mask="own")``: self-terms on each space's own k-neighbour mask (platonic-rep's code)."""
    return cknna(x_a, x_b, k, self_mask="own")


# ---------------------------------------------------------------------------------------------------
# global (matrix) metrics: each is a "prepare" step, returning a scorer of B's row permutation


def _sample_rows(n: int, max_rows: int | None, seed: int) -> np.ndarray:
    """All rows in order when n <= max_rows, else a seeded random subset in ascending order."""
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, max_rows, replace=False))


def _scorer_cka_linear(a: np.ndarray, b: np.ndarray) -> Callable[[np.ndarray | None], float]:
    a = a - a.mean(0)
    b = b - b.mean(0)
    denominator = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return lambda pi: float(np.linalg.norm(a.T @ (b if pi is None else b[pi])) ** 2 / denominator)


def _scorer_cka_debiased(a: np.ndarray, b: np.ndarray) -> Callable[[np.ndarray | None], float]:
    denominator = np.sqrt(_hsic_unbiased(a, a) * _hsic_unbiased(b, b))
    return lambda pi: float(_hsic_unbiased(a, b if pi is None else b[pi]) / denominator)


def _unit_frobenius(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else x


def _scorer_procrustes(a: np.ndarray, b: np.ndarray) -> Callable[[np.ndarray | None], float]:
    a, b = _unit_frobenius(a), _unit_frobenius(b)
    return lambda pi: float(svdvals(a.T @ (b if pi is None else b[pi])).sum())


def _singular_basis(x: np.ndarray, dims: int | None, variance: float, standardise: bool) -> np.ndarray:
    x = x - x.mean(0)
    if standardise:
        x = x / (x.std(0) + 1e-8)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    rank = int((s > s[0] * 1e-10).sum()) if len(s) and s[0] > 0 else 0
    if dims is None:
        share = np.cumsum(s**2) / (s**2).sum()
        dims = int(np.searchsorted(share, variance) + 1)
    return u[:, :max(1, min(dims, rank))]


def _scorer_svcca(a: np.ndarray, b: np.ndarray, dims: int | None = SVCCA_DIMS, variance: float = 0.99,
                  standardise: bool = True) -> Callable[[np.ndarray | None], float]:
    u_a = _singular_basis(a, dims, variance, standardise)
    u_b = _singular_basis(b, dims, variance, standardise)
    return lambda pi: float(np.clip(svdvals(u_a.T @ (u_b if pi is None else u_b[pi])), 0, 1).mean())


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """scipy.stats.rankdata's average ranks, by one argsort when there are no ties (the usual case)."""
    order = np.argsort(values)
    if np.all(np.diff(values[order]) > 0):
        ranks = np.empty(len(values))
        ranks[order] = np.arange(1, len(values) + 1)
        return ranks
    return rankdata(values)


def _scorer_rsa(a: np.ndarray, b: np.ndarray) -> Callable[[np.ndarray | None], float]:
    # Spearman = Pearson of ranks. A row shuffle re-pairs B's ranks, never changes them, so the ranks and
    # their norms are computed once; the sum over pairs i < j is half the sum over the full square.
    rank_a, rank_b = _average_ranks(pdist(a, "cosine")), _average_ranks(pdist(b, "cosine"))
    rank_a -= rank_a.mean()
    rank_b -= rank_b.mean()
    denominator = np.sqrt((rank_a @ rank_a) * (rank_b @ rank_b))
    square_a, square_b = squareform(rank_a), squareform(rank_b)
    return lambda pi: float(0.5 * np.vdot(square_a, square_b if pi is None else square_b.take(pi, 0).take(pi, 1))
                            / denominator)


def _global(scorer, x_a, x_b, max_rows, seed, **kw) -> float:
    _check_pair(x_a, x_b)
    rows = _sample_rows(len(x_a), max_rows, seed)
    return scorer(np.asarray(x_a, np.float64)[rows], np.asarray(x_b, np.float64)[rows], **kw)(None)


def svcca(x_a: np.ndarray, x_b: np.ndarray, dims: int | None = SVCCA_DIMS, variance: float = 0.99,
          standardise: bool = True, max_rows: int | None = MAX_ROWS, seed: int = 0) -> float:
    """SVCCA: mean canonical correlation between the top singular subspaces of the two spaces.

    As platonic-rep's ``svcca``: columns centred and standardised, the top ``dims`` (10) left singular
    vectors of each space kept; ``dims=None`` keeps instead the fewest that explain ``variance`` (99%, as
    Raghu et al. and platonic-universe, who centre only: ``standardise=False``). The kept bases are
    orthonormal, so the canonical correlations are the singular values of U_a^T U_b (exact, no iterative
    CCA); the score is their mean (min(dims_a, dims_b) of them).
    """
    return _global(_scorer_svcca, x_a, x_b, max_rows, seed, dims=dims, variance=variance, standardise=standardise)


def rsa(x_a: np.ndarray, x_b: np.ndarray, max_rows: int | None = RSA_ROWS, seed: int = 0) -> float:
    """RSA: Spearman correlation of the two spaces' pairwise cosine distances (upper triangles), on at
    most ``max_rows`` rows (2,000 by default: 2 million pairs)."""
    return _global(_scorer_rsa, x_a, x_b, max_rows, seed)


def procrustes(x_a: np.ndarray, x_b: np.ndarray, max_rows: int | None = MAX_ROWS, seed: int = 0) -> float:
    """Orthogonal Procrustes similarity in [0, 1], 1 for spaces equal up to rotation (and scale).

    Both spaces centred and scaled to unit Frobenius norm, the narrower padded with zero columns; with
    R = argmin ||A R - B|| over orthogonal R, ||A R - B||^2 = 2 - 2 ||A^T B||_* and the similarity is
    ||A^T B||_* = 1 - d^2 / 2 (padding does not change the nuclear norm, so it is computed without it).
    """
    return _global(_scorer_procrustes, x_a, x_b, max_rows, seed)


def cka_linear(x_a: np.ndarray, x_b: np.ndarray, max_rows: int | None = MAX_ROWS, seed: int = 0) -> float:
    """Linear CKA (stats.linear_cka; platonic-rep's biased ``cka``) on the row sample."""
    _check_pair(x_a, x_b)
    rows = _sample_rows(len(x_a), max_rows, seed)
    return linear_cka(np.asarray(x_a)[rows], np.asarray(x_b)[rows])


def cka_debiased(x_a: np.ndarray, x_b: np.ndarray, max_rows: int | None = MAX_ROWS, seed: int = 0) -> float:
    """Debiased CKA (stats.debiased_cka; platonic-rep's ``unbiased_cka``) on the row sample."""
    _check_pair(x_a, x_b)
    rows = _sample_rows(len(x_a), max_rows, seed)
    return debiased_cka(np.asarray(x_a)[rows], np.asarray(x_b)[rows])


# ---------------------------------------------------------------------------------------------------
# registry and the one protocol


@dataclass(frozen=True)
class MetricSpec:
    name: str
    function: Callable[..., float]
    has_k: bool
    local: bool  # kNN-based (all rows, neighbour sets reused by the null) vs global (matrix, row sample)
    reference: str
    sample: str | None = None  # the evaluate() argument that caps a global metric's rows
    scorer: Callable | None = None  # global metrics: (a, b, **params) -> score of B's permutation pi


METRICS: dict[str, MetricSpec] = {s.name: s for s in [
    MetricSpec("mknn", mutual_knn, True, True,
               "Huh et al. 2024, platonic-rep AlignmentMetrics.mutual_knn; The Platonic Universe"),
    MetricSpec("jaccard_knn", jaccard_knn, True, True,
               "UniverseTBD/platonic-universe src/pu/metrics/neighbors.py jaccard"),
    MetricSpec("cycle_knn", cycle_knn, True, True,
               "platonic-rep AlignmentMetrics.cycle_knn: compute_knn_accuracy(knn_A[knn_B])"),
    MetricSpec("lcs_knn", lcs_knn, True, True, "platonic-rep AlignmentMetrics.lcs_knn (mean LCS length), / k"),
    MetricSpec("edit_knn", edit_knn, True, True,
               "platonic-rep AlignmentMetrics.edit_distance_knn: 1 - mean Levenshtein / k"),
    MetricSpec("cknna", cknna, True, True,
               "Huh et al. 2024 appendix A (CKNNA; mutual mask in all three HSIC terms, plain double centring)"),
    MetricSpec("cknna_own", cknna_own, True, True,
               "platonic-rep AlignmentMetrics.cknna's denominator (each self-term on its own space's kNN mask), "
               "with plain double centring"),
    MetricSpec("svcca", svcca, False, False,
               "Raghu et al. 2017; platonic-rep AlignmentMetrics.svcca (standardised, top 10 directions)",
               "max_rows", _scorer_svcca),
    MetricSpec("rsa", rsa, False, False,
               "Kriegeskorte et al. 2008; platonic-universe neighbors.rsa (Spearman, cosine distances)",
               "rsa_rows", _scorer_rsa),
    MetricSpec("procrustes", procrustes, False, False,
               "platonic-universe geometric.procrustes (centred, unit Frobenius); similarity 1 - d^2/2",
               "max_rows", _scorer_procrustes),
    MetricSpec("cka_linear", cka_linear, False, False,
               "Kornblith et al. 2019; stats.linear_cka = platonic-rep AlignmentMetrics.cka (biased HSIC)",
               "max_rows", _scorer_cka_linear),
    MetricSpec("cka_debiased", cka_debiased, False, False,
               "Song et al. 2012 unbiased HSIC; stats.debiased_cka = platonic-rep AlignmentMetrics.unbiased_cka",
               "max_rows", _scorer_cka_debiased),
]}
LOCAL_METRICS = tuple(n for n, s in METRICS.items() if s.local)
GLOBAL_METRICS = tuple(n for n, s in METRICS.items() if not s.local)


def calibrated(score: float, null_mean: float, maximum: float = 1.0) -> float:
    """(s - tau) / (max - tau): 0 at the null mean, 1 at the metric's maximum (1 for all of METRICS)."""
    if not np.isfinite(null_mean) or null_mean >= maximum:
        return float("nan")
    return float((score - null_mean) / (maximum - null_mean))


def _row(name: str, k, n: int, score: float, null: np.ndarray, sample_rows: int) -> dict:
    has = len(null) > 0
    tau = float(null.mean()) if has else float("nan")
    return {
        "metric": name, "kind": "local" if METRICS[name].local else "global", "k": k, "n": n, "score": score,
        "null_mean": tau, "null_std": float(null.std(ddof=1)) if len(null) > 1 else float("nan"),
        "p_value": float((1 + (null >= score).sum()) / (1 + len(null))) if has else float("nan"),
        "calibrated": calibrated(score, tau) if has else float("nan"),
        "n_permutations": int(len(null)), "sample_rows": int(sample_rows),
    }


def _names(metrics: Iterable[str] | None) -> list[str]:
    names = list(METRICS) if metrics is None else list(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    return names


def scores_and_nulls(x_a: np.ndarray, x_b: np.ndarray, metrics: Iterable[str] | None = None,
                     ks: Iterable[int] = (10,), n_permutations: int = 1000, seed: int = 0,
                     n_permutations_matrix: int = 100, max_rows: int | None = MAX_ROWS,
                     rsa_rows: int | None = RSA_ROWS, metric_params: dict[str, dict] | None = None,
                     neighbours: tuple[np.ndarray, np.ndarray] | None = None
                     ) -> dict[tuple[str, int | None], tuple[float, np.ndarray, int]]:
    """(metric, k) -> (score, null scores, rows seen); k is None for the global metrics.

    Local metrics: neighbours searched once at the largest k; ``n_permutations`` shuffles pi of B's rows,
    drawn as ``knn.permutation_null`` draws them (``default_rng(seed).permutation(N)`` in turn), each scored
    from the neighbour sets alone (shuffled B's neighbours are inverse[nn_b[pi]], its kernel slots
    lc_b[pi]): the null equals the metric recomputed on B[pi]. Global metrics: a row sample (``max_rows``,
    ``rsa_rows`` for RSA; ``_sample_rows``), then ``n_permutations_matrix`` shuffles of the sample
    (``default_rng(seed).permutation(m)``), equal to the metric recomputed on (A[s], B[s][pi]).
    ``metric_params``: keyword arguments per global metric, e.g. {"svcca": {"dims": 20}}.
    ``neighbours``: (nn_a, nn_b), x_a's and x_b's own ``knn.knn`` arrays with at least max(ks) columns, when
    the caller has them already (one file compared with several others); searched here when None.
    """
    _check_pair(x_a, x_b)
    names = _names(metrics)
    ks = sorted(set(int(k) for k in ks))
    n = len(x_a)
    out: dict[tuple[str, int | None], tuple[float, np.ndarray, int]] = {}
    local = [m for m in names if METRICS[m].local]
    if local:
        if not ks or ks[0] < 1:
            raise ValueError(f"the local metrics need ks >= 1, got {ks}")
        k_max = ks[-1]
        if neighbours is None:
            nn_a, nn_b = knn(x_a, k_max), knn(x_b, k_max)
        else:
            nn_a, nn_b = (np.asarray(nn) for nn in neighbours)
            if nn_a.shape[0] != n or nn_b.shape[0] != n or min(nn_a.shape[1], nn_b.shape[1]) < k_max:
                raise ValueError(f"neighbours of shapes {nn_a.shape} and {nn_b.shape} do not cover {n} rows and "
                                 f"k = {k_max}")
            nn_a, nn_b = nn_a[:, :k_max], nn_b[:, :k_max]
        kernels = {}
        if "cknna" in local or "cknna_own" in local:
            kernels = {"kc_a": _centred_kernel_slots(x_a, nn_a), "lc_b": _centred_kernel_slots(x_b, nn_b)}
        observed = _local_scores(nn_a, nn_b, ks, local, **kernels)
        null = {key: np.empty(n_permutations) for key in observed}
        rng = np.random.default_rng(seed)
        for j in range(n_permutations):
            pi = rng.permutation(n)
            inverse = np.empty(n, dtype=np.int64)
            inverse[pi] = np.arange(n)
            shuffled = {"kc_a": kernels["kc_a"], "lc_b": kernels["lc_b"][pi]} if kernels else {}
            for key, value in _local_scores(nn_a, inverse[nn_b[pi]], ks, local, **shuffled).items():
                null[key][j] = value
        for name in local:
            for k in ks:
                out[name, k] = (observed[name, k], null[name, k], n)
    params = metric_params or {}
    caps = {"max_rows": max_rows, "rsa_rows": rsa_rows}
    for name in (m for m in names if not METRICS[m].local):
        spec = METRICS[name]
        sample = _sample_rows(n, caps[spec.sample], seed)
        a, b = np.asarray(x_a, np.float64)[sample], np.asarray(x_b, np.float64)[sample]
        scorer = spec.scorer(a, b, **params.get(name, {}))
        rng = np.random.default_rng(seed)
        null = np.array([scorer(rng.permutation(len(sample))) for _ in range(n_permutations_matrix)])
        out[name, None] = (scorer(None), null, len(sample))
    return out


def evaluate(x_a: np.ndarray, x_b: np.ndarray, metrics: Iterable[str] | None = None, ks: Iterable[int] = (10,),
             n_permutations: int = 1000, seed: int = 0, n_permutations_matrix: int = 100,
             max_rows: int | None = MAX_ROWS, rsa_rows: int | None = RSA_ROWS,
             metric_params: dict[str, dict] | None = None,
             neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """Every metric (at every k for the local ones) with its permutation null, as tidy rows.

    Row keys: metric, kind (local/global), k (None for global metrics), n (rows given), score,
    null_mean (tau), null_std, p_value = (1 + #{null >= score}) / (1 + n_permutations),
    calibrated = (score - tau) / (1 - tau), n_permutations, sample_rows (rows the metric saw). The nulls
    are ``scores_and_nulls``'s (``neighbours`` too); with no permutations the null columns are NaN.
    """
    results = scores_and_nulls(x_a, x_b, metrics, ks, n_permutations, seed, n_permutations_matrix, max_rows,
                               rsa_rows, metric_params, neighbours)
    return [_row(name, k, len(x_a), score, null, rows) for (name, k), (score, null, rows) in results.items()]


def size_curve(x_a: np.ndarray, x_b: np.ndarray, metrics: Iterable[str] | None = None,
               sizes: Iterable[int] | None = None, ks: Iterable[int] = (10,), seeds: Iterable[int] = (0,),
               smallest: int = 128, n_permutations: int = 0, n_permutations_matrix: int = 0,
               neighbours: tuple[np.ndarray, np.ndarray] | None = None, **evaluate_kw) -> pd.DataFrame:
    """Score against dataset size (Back into Plato's Cave), as curves.size_curve does for MKNN.

    For each seed, one permutation of the rows (``default_rng(seed).permutation(N)``); size n takes its
    first n rows, so subsets are nested. Sizes default to ``curves.subset_sizes(N, smallest)``. One row per
    (seed, n, metric, k) with evaluate()'s columns plus ``seed``; k above n - 1 is left out. Nulls are off
    by default (their columns NaN); turn them on with ``n_permutations`` / ``n_permutations_matrix``.
    ``neighbours``: (nn_a, nn_b) of all N rows (``knn.knn``, at least max(ks) columns), when the caller has
    them: the size N then needs no search (its neighbours are these, relabelled to the seed's order).
    """
    _check_pair(x_a, x_b)
    n_all = len(x_a)
    sizes = subset_sizes(n_all, smallest) if sizes is None else sorted(set(int(s) for s in sizes))
    if sizes and (sizes[0] < 2 or sizes[-1] > n_all):
        raise ValueError(f"sizes must lie in [2, {n_all}], got {sizes}")
    ks = sorted(set(ks))
    frames = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(n_all)
        for n in sizes:
            idx = order[:n]
            usable = [k for k in ks if k < n]
            names = [m for m in _names(metrics) if usable or not METRICS[m].local]
            given = None
            if neighbours is not None and n == n_all and usable:
                rank = np.empty(n_all, dtype=np.int64)
                rank[order] = np.arange(n_all)  # row order[j] is row j of the subset
                given = tuple(rank[nn[order]] for nn in neighbours)
            rows = evaluate(x_a[idx], x_b[idx], names, usable or [1], n_permutations, seed, n_permutations_matrix,
                            neighbours=given, **evaluate_kw)
            frames.append(pd.DataFrame(rows).assign(seed=seed))
    out = pd.concat(frames, ignore_index=True)
    return out[["seed"] + [c for c in out.columns if c != "seed"]]
