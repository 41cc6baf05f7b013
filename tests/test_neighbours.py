"""Each embedding searched once (rule search_neighbours): the stored lists equal ``knn``'s, every rule that
needs full-N neighbours reads them, and the torch search (the GPU path, run here on the CPU) finds the
same neighbours as faiss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samesky.align import neighbours as store
from samesky.align.knn import brute_force_knn, knn
from samesky.align.scores import EmbeddingFile, align_pair, comparisons, load_cached, paired


def _with_ties(n=240, d=12, seed=0):
    """Rows with exact duplicates and near-ties, where the tie rule and the float64 re-rank decide."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[n // 2:n // 2 + 20] = x[:20]  # duplicates
    x[n // 2 + 20:n // 2 + 40] = x[20:40] * (1 + 1e-7)  # near-ties
    return x


@pytest.mark.parametrize("k_small, k_large", [(1, 10), (10, 20), (5, 7)])
def test_the_first_k_columns_at_a_larger_k_are_knn_at_k(k_small, k_large):
    """What makes one search at the largest k serve every rule: the ordering is total (float64 similarity,
    then index), so a longer list only extends a shorter one."""
    x = _with_ties()
    assert np.array_equal(knn(x, k_large)[:, :k_small], knn(x, k_small))


def test_the_torch_search_finds_the_same_neighbours_as_faiss():
    """The GPU path's candidates (chunked matrix products and topk), run on the CPU here: the float64
    re-rank gives exactly the neighbours faiss's candidates give, and the dense reference's."""
    x = _with_ties(n=300)
    found = knn(x, 10, device="cpu", block=64)
    assert np.array_equal(found, knn(x, 10))
    assert np.array_equal(found, brute_force_knn(x, 10))


def _pair_files(tmp_path, n=150, drop=()):
    """Two models on two sides of one pair, as embeddings files (one side missing a few objects)."""
    from samesky.io import write_embeddings

    rng = np.random.default_rng(4)
    signal = rng.normal(size=(n, 6))
    files = []
    for survey in ("hsc", "jwst"):
        for size, width, params in (("small", 8, 10.0), ("base", 16, 50.0)):
            ids = np.array([f"g{i:04d}" for i in range(n)])
            x = (signal @ rng.normal(size=(6, width)) + 0.5 * rng.normal(size=(n, width))).astype(np.float32)
            keep = np.array([i not in drop for i in range(n)]) if survey == "jwst" else np.ones(n, bool)
            order = rng.permutation(int(keep.sum()))  # files need not be sorted by id
            path = tmp_path / f"{survey}_{size}.parquet"
            write_embeddings(path, ids[keep][order], x[keep][order], metadata={"model": f"vit-{size}"})
            files.append(EmbeddingFile(survey, "vit", size, params, str(path)))
    return files


def test_stored_lists_are_read_by_the_scores_and_give_the_same_table(tmp_path):
    """The lists the search rule writes equal knn's on each compared row set; align_pair with them loaded
    reads every full-N list (no search of its own) and writes the same scores as without."""
    files = _pair_files(tmp_path, drop=(3, 77))
    keys, lists, records = store.search_pair("hsc", "jwst", files, k=10)
    cache: dict = {}
    expected = {}
    for _, _, fa, fb in comparisons("hsc", "jwst", files):
        _, xa, xb = paired(load_cached(fa, cache), load_cached(fb, cache))
        for x in (xa, xb):
            expected[store.fingerprint(x, "cosine")] = knn(x, 10)
    # HSC files on all 150 rows (intramodal) and on the 148 they share with JWST (crossmodal): both searched
    assert sorted(r["rows"] for r in records) == [148, 148, 148, 148, 150, 150]
    for (metric, shape, digest), nn in zip(keys, lists):
        assert np.array_equal(nn, expected[(metric, tuple(map(int, shape.split("x"))), digest)])
    path = tmp_path / "neighbours.npz"
    store.write_lists(path, keys, lists)

    before = align_pair("p", "hsc", "jwst", files, ks=[1, 10], n_permutations=20, seed=0)
    with store.use_stored(path):
        after = align_pair("p", "hsc", "jwst", files, ks=[1, 10], n_permutations=20, seed=0)
        used = dict(store._USE)
        subset = knn(load_cached(files[0], {})[1][:60], 5)  # not a stored row set: searched, then kept
        again = knn(load_cached(files[0], {})[1][:60], 5)
        assert store._USE["searched"] == used["searched"] + 1 and store._USE["reused"] == 1
        assert np.array_equal(subset, again)
        assert np.array_equal(subset, brute_force_knn(load_cached(files[0], {})[1][:60], 5))
    pd.testing.assert_frame_equal(before, after)
    assert used == {"read": 2 * len(comparisons("hsc", "jwst", files)), "searched": 0, "reused": 0}
    assert subset.shape == (60, 5) and not store._STORE  # the block leaves no lists behind


def test_the_workflow_searches_once_per_pair_and_every_full_n_rule_reads_the_lists():
    """The dry run's DAG (every job, whatever is built already): one search_neighbours job per aligned pair,
    whose lists align_pair, metric_suite, conditional_alignment and size_curves take as their ``neighbours``
    input (the step runner loads them)."""
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1", "--quiet", "rules"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) == 2
                  and line.split()[1].isdigit())
    assert counts["search_neighbours"] == counts["align_pair"] == "4"
    graph = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph"], cwd=REPO, capture_output=True,
                           text=True, timeout=300).stdout
    import re

    ids = {label: node for node, label in re.findall(r'(\d+)\[label = "([^"]+)"', graph)}
    edges = set(re.findall(r"(\d+) -> (\d+)", graph))
    for rule in ("align_pair", "metric_suite", "conditional_alignment", "size_curves"):
        assert (ids["search_neighbours"], ids[rule]) in edges, rule


def test_a_size_curves_full_sample_in_another_order_is_read_from_the_lists_exactly(tmp_path):
    """The size curve's last point holds every row in a seeded order: its neighbours come from the stored
    lists, renamed and re-ranked (ties by the new index, as knn breaks them), equal to a search of the
    reordered rows, duplicates included; lists too shallow to settle it fall back to a search."""
    x = _with_ties(n=200)
    order = np.random.default_rng(9).permutation(len(x))
    path = tmp_path / "lists.npz"
    key = store.fingerprint(x, "cosine")
    store.write_lists(path, [(key[0], "x".join(map(str, key[1])), key[2])], [knn(x, 20).astype(np.int32)])
    with store.use_stored(path):
        derived = store.permuted_knn(x, order, 10)
        assert store._USE == {"read": 1, "searched": 0, "reused": 0}
        shallow = store.permuted_knn(x, order, 20)  # k = the lists' depth: nothing to settle ties with
        assert store._USE["searched"] == 1
    assert np.array_equal(derived, knn(x[order], 10)) and np.array_equal(shallow, knn(x[order], 20))
