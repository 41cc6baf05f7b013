"""Similarity search on frozen embeddings (AstroCLIP's downstream retrieval), by cosine similarity.

Two questions:

- **Same object** (recall@k): row i of the query set and row i of the gallery are two views of one object
  (another survey's image, another spectrograph, or the other modality). recall@k is the share of queries
  whose own object ranks among the gallery's k most similar rows; chance is k / N. Ties with the true
  object count against it. Views in different spaces (an image model and a spectrum model) first need a
  common space: AstroCLIP's aligned encoders are one already (``direct``); otherwise a CCA is fitted on
  the pair's training objects and recall is measured on the held-out ones (``cca``).
- **Neighbour agreement**: within one embedding, how alike a query and its k nearest other objects are:
  the share with the query's morphology class (chance: the sum of squared class shares) and the median
  |dz| / (1 + z) (chance: the same over random pairs).
"""

from __future__ import annotations

import numpy as np

from ..align.knn import knn, normalise


def true_match_ranks(query: np.ndarray, gallery: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each query row i, how many gallery rows are at least as similar as gallery row i (itself
    excluded): 0 means the own object comes first. Exact (float64), in chunks of queries, never N x N."""
    if query.shape != gallery.shape:
        raise ValueError(f"query {query.shape} and gallery {gallery.shape}: same objects, same space expected")
    q, g = normalise(query).astype(np.float64), normalise(gallery).astype(np.float64)
    ranks = np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), chunk):
        rows = np.arange(start, min(len(q), start + chunk))
        sims = q[rows] @ g.T
        own = sims[np.arange(len(rows)), rows]
        ranks[rows] = (sims >= own[:, None]).sum(1) - 1
    return ranks


def recall_at(ranks: np.ndarray, ks) -> dict[int, float]:
    return {int(k): float(np.mean(ranks < k)) for k in ks}


def cca_common_space(query_train, gallery_train, query_test, gallery_test, n_components: int):
    """Both test sets in the space of a CCA fitted on the training objects (standardised on them)."""
    from sklearn.cross_decomposition import CCA
    from sklearn.preprocessing import StandardScaler

    n_components = int(min(n_components, query_train.shape[1], gallery_train.shape[1], len(query_train) - 1))
    sq, sg = StandardScaler().fit(query_train), StandardScaler().fit(gallery_train)
    cca = CCA(n_components=n_components, max_iter=1000).fit(sq.transform(query_train), sg.transform(gallery_train))
    q, g = cca.transform(sq.transform(query_test), sg.transform(gallery_test))
    return q, g


def neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """(N, k) each row's k most similar other rows (cosine), nearest first."""
    return knn(x, k)


def neighbour_agreement(nn: np.ndarray, labels=None, z=None) -> dict:
    """Share of each query's neighbours (rows of ``nn``) with its class, and their median |dz| / (1 + z),
    each beside its chance value."""
    out = {}
    if labels is not None:
        labels = np.asarray(labels, dtype=object)
        out["same_class"] = float(np.mean(labels[nn] == labels[:, None]))
        shares = np.unique(labels, return_counts=True)[1] / len(labels)
        out["same_class_chance"] = float((shares**2).sum())
    if z is not None:
        z = np.asarray(z, float)
        out["median_dz"] = float(np.median(np.abs(z[nn] - z[:, None]) / (1 + z[:, None])))
        rng = np.random.default_rng(0)
        other = rng.integers(0, len(z), nn.shape)
        out["median_dz_chance"] = float(np.median(np.abs(z[other] - z[:, None]) / (1 + z[:, None])))
    return out
