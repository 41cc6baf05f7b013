"""CKA (linear and debiased) and the binomial trend test of the Platonic Universe.

CKA works in feature space, O(N d^2) time and O(d^2) memory, so it runs on the 102k Legacy pairs;
the debiased form uses the unbiased HSIC estimator (Song et al. 2012) written with feature sums
instead of N x N Gram matrices.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of column-centred features."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = np.linalg.norm(x.T @ y) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _hsic_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased HSIC of linear kernels, K = x x^T and L = y y^T with zeroed diagonals."""
    n = len(x)
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 objects, got {n}")
    nx = (x * x).sum(1)  # diagonal of K
    ny = (y * y).sum(1)
    trace_kl = np.linalg.norm(x.T @ y) ** 2 - (nx * ny).sum()
    k1 = x @ x.sum(0) - nx  # K~ 1
    l1 = y @ y.sum(0) - ny
    sum_k, sum_l = k1.sum(), l1.sum()
    return float((trace_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 / (n - 2) * (k1 @ l1)) / (n * (n - 3)))


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return float(_hsic_unbiased(x, y) / np.sqrt(_hsic_unbiased(x, x) * _hsic_unbiased(y, y)))


def count_increases(scores_by_size: list[float]) -> tuple[int, int]:
    """(increases, comparisons) between adjacent sizes, smallest first."""
    diffs = np.diff(np.asarray(scores_by_size, float))
    return int((diffs > 0).sum()), int(len(diffs))


def trend_test(increases: int, comparisons: int) -> float:
    """One-sided binomial p-value of at least this many increases if up and down were equally likely.

    One-sided ('greater') is what reproduces the Platonic Universe: 14 of 18 -> 1.54e-2, 28 of 33 -> 3.31e-5,
    6 of 11 -> 0.5.
    """
    if comparisons == 0:
        return float("nan")
    return float(binomtest(increases, comparisons, 0.5, alternative="greater").pvalue)
