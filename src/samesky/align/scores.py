"""Alignment scores of one pair: crossmodal (other survey vs HSC) and intramodal (adjacent sizes).

Rows of two embedding files are paired by object id, never by position. Each score comes with its
permutation null (computed from the neighbour sets already found), the analytic chance level k/(N-1),
the empirical p-value, and linear and debiased CKA on the same rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..io import read_embeddings
from ..surveys import modality_of
from .knn import chance_level, knn, mknn, overlap_counts, permutation_null
from .stats import debiased_cka, linear_cka

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingFile:
    survey: str
    family: str
    size: str
    params_m: float
    path: str

    @property
    def model(self) -> str:
        return f"{self.family}-{self.size}"


def paired(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]):
    """The rows of two (ids, embeddings) sets that share an object id, in one order (sorted ids)."""
    ids_a, x_a = a
    ids_b, x_b = b
    common, ia, ib = np.intersect1d(ids_a.astype(str), ids_b.astype(str), assume_unique=True, return_indices=True)
    return common, x_a[ia], x_b[ib]


def score(x_a: np.ndarray, x_b: np.ndarray, ks, n_permutations: int, seed: int, cka: bool = True,
          neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """MKNN at each k with its null, plus CKA, for two row-paired embedding arrays (``neighbours``: their
    ``knn`` arrays at max(ks) or deeper, where the caller has them)."""
    n = len(x_a)
    k_max = max(ks)
    nn_a, nn_b = neighbours if neighbours is not None else (knn(x_a, k_max), knn(x_b, k_max))
    cka_values = {"cka_linear": linear_cka(x_a, x_b), "cka_debiased": debiased_cka(x_a, x_b)} if cka else {}
    rows = []
    for k in sorted(ks):
        observed = mknn(nn_a, nn_b, k)
        null = permutation_null(nn_a, nn_b, k, n_permutations, seed) if n_permutations else np.zeros(0)
        rows.append({
            "k": k, "n": n, "mknn": observed,
            "null_mean": float(null.mean()) if len(null) else float("nan"),
            "null_std": float(null.std(ddof=1)) if len(null) > 1 else float("nan"),
            "null_q975": float(np.quantile(null, 0.975)) if len(null) else float("nan"),
            "p_value": float((1 + (null >= observed).sum()) / (1 + len(null))) if len(null) else float("nan"),
            "n_permutations": n_permutations, "chance": chance_level(n, k), **cka_values,
        })
    return rows


def crossmodal_comparisons(reference: str, other: str, files: list[EmbeddingFile]):
    """(other-side file, HSC-side file) pairs: the same model on both images; for spectra, the one
    Specformer embedding against every image model's HSC embedding."""
    ref_files = [f for f in files if f.survey == reference]
    by_model = {f.model: f for f in ref_files}
    spectra = modality_of(other) == "spectrum"
    return [(fo, fr) for fo in files if fo.survey == other
            for fr in (ref_files if spectra else [by_model[fo.model]])]


def intramodal_comparisons(reference: str, other: str, files: list[EmbeddingFile]):
    """(side, smaller file, larger file): adjacent sizes of one family on the same images, per side (the
    reference side first), each family's sizes in order of parameters."""
    out = []
    for side in (reference, other):
        families: dict[str, list[EmbeddingFile]] = {}
        for f in files:
            if f.survey == side:
                families.setdefault(f.family, []).append(f)
        for family_files in families.values():
            family_files.sort(key=lambda f: f.params_m)
            out += [(side, small, large) for small, large in zip(family_files, family_files[1:])]
    return out


def comparisons(reference: str, other: str, files: list[EmbeddingFile]):
    """Every comparison of one pair, as (kind, side, file a, file b), in the order of scores.csv: the
    crossmodal ones (side: the other survey), then the intramodal ones (adjacent sizes, per side)."""
    return ([("crossmodal", other, fo, fr) for fo, fr in crossmodal_comparisons(reference, other, files)]
            + [("intramodal", side, small, large) for side, small, large in intramodal_comparisons(reference, other, files)])


def adjacent_sizes(pairs):
    """Adjacent sizes of each family among crossmodal comparisons ``[(file a, file b), ...]``: a list of
    ((a, b) smaller, (a, b) larger), grouped by the family of b (the reference side's model, as Table 2 is)
    and ordered by b's parameters."""
    families: dict[str, list] = {}
    for fa, fb in pairs:
        families.setdefault(fb.family, []).append((fa, fb))
    out = []
    for members in families.values():
        members.sort(key=lambda p: p[1].params_m)
        out += list(zip(members, members[1:]))
    return out


def load_cached(f: EmbeddingFile, cache: dict):
    if f.path not in cache:
        ids, emb, _ = read_embeddings(f.path)
        cache[f.path] = (ids, emb)
    return cache[f.path]


def align_pair(pair: str, reference: str, other: str, files: list[EmbeddingFile], ks, n_permutations: int,
               seed: int, overlap_k: int | None = None):
    """Every crossmodal and intramodal score of one pair, one row per (comparison, k). With ``overlap_k``, also
    each object's overlap |N_a(i) ∩ N_b(i)| at that k in every comparison (one row per comparison and object:
    what the size steps' paired bootstrap resamples, ``trends.trend_steps``): returns (scores, overlaps)."""
    cache: dict[str, tuple] = {}
    rows, overlaps = [], []
    depth = max(max(ks), overlap_k or 0)

    def add(kind, side, fa: EmbeddingFile, fb: EmbeddingFile):
        ids, xa, xb = paired(load_cached(fa, cache), load_cached(fb, cache))
        if len(ids) <= max(ks):
            raise ValueError(f"{pair}: only {len(ids)} objects shared by {fa.path} and {fb.path}")
        log.info("%s %s %s: %s vs %s on %d objects", pair, kind, side, fa.model, fb.model, len(ids))
        nn = knn(xa, depth), knn(xb, depth)
        for r in score(xa, xb, ks, n_permutations, seed, neighbours=nn):
            rows.append({"pair": pair, "kind": kind, "side": side, "model_a": fa.model, "model_b": fb.model,
                         "family": fb.family, "size": fb.size, "params_m": fb.params_m,
                         "size_a": fa.size, "params_a_m": fa.params_m, **r})
        if overlap_k:
            overlaps.append(pd.DataFrame({"kind": kind, "side": side, "model_a": fa.model, "model_b": fb.model,
                                          "object_id": ids.astype(str), "k": overlap_k,
                                          "overlap": overlap_counts(nn[0][:, :overlap_k], nn[1][:, :overlap_k])
                                          .astype(np.int16)}))

    for kind, side, fa, fb in comparisons(reference, other, files):
        add(kind, side, fa, fb)
    scores = pd.DataFrame(rows)
    if not overlap_k:
        return scores
    return scores, pd.concat(overlaps, ignore_index=True)
