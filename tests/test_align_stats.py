"""CKA against dense Gram-matrix references; the trend test against the paper's own counts."""

import numpy as np
import pytest

from samesky.align.stats import count_increases, debiased_cka, linear_cka, trend_test


def _dense_hsic_unbiased(k, l):
    n = len(k)
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def test_cka_matches_dense_gram_references():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = x @ rng.normal(size=(5, 7)) + 0.5 * rng.normal(size=(60, 7))
    h = np.eye(60) - 1 / 60
    kx, ky = h @ x @ x.T @ h, h @ y @ y.T @ h
    dense_linear = np.sum(kx * ky) / (np.linalg.norm(kx) * np.linalg.norm(ky))
    assert linear_cka(x, y) == pytest.approx(dense_linear, rel=1e-10)
    k, l = x @ x.T, y @ y.T
    dense_debiased = _dense_hsic_unbiased(k, l) / np.sqrt(_dense_hsic_unbiased(k, k) * _dense_hsic_unbiased(l, l))
    assert debiased_cka(x, y) == pytest.approx(dense_debiased, rel=1e-10)


def test_cka_is_one_for_equivalent_spaces_and_near_zero_for_independent_ones():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 10))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0)
    assert debiased_cka(x, 3 * x @ q) == pytest.approx(1.0)
    noise = rng.normal(size=(500, 10))
    assert abs(debiased_cka(x, noise)) < 0.02
    assert linear_cka(x, noise) > debiased_cka(x, noise)  # the biased form is inflated at finite N


@pytest.mark.parametrize("increases, total, expected", [(14, 18, 1.54e-2), (28, 33, 3.31e-5), (6, 11, 0.5)])
def test_trend_test_reproduces_the_papers_p_values(increases, total, expected):
    assert trend_test(increases, total) == pytest.approx(expected, rel=5e-3)


def test_increases_are_counted_between_adjacent_sizes():
    assert count_increases([0.1, 0.2, 0.15, 0.3]) == (2, 3)
    assert count_increases([0.5]) == (0, 0)


def test_latex_tables_escape_what_latex_would_misread():
    """A caption's '%' would start a LaTeX comment and '_' a subscript: both arrive escaped."""
    import pandas as pd

    from samesky.align.tables import to_latex

    tex = to_latex(pd.DataFrame({"family": ["π (null)"], "size": [""], "jwst": [1.5]}),
                   "MKNN (%, k = 10) of hsc_pair", "tab:x")
    assert r"\caption{MKNN (\%, k = 10) of hsc\_pair}" in tex and r"$\pi$ (null) &  & 1.50 \\" in tex
