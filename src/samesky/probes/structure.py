"""Embedding structure (AstroCLIP benchmark §4.3 and §4.7): K-means inertia and k = 3 clusters, AMI against property
bins, HDBSCAN cluster counts, UMAP projections, residual outliers, and the MDL histogram bin count."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler


# The AstroCLIP benchmark's choices (§4.3): k = 3 K-means clusters, compared with low/medium/high bins of
# each property; HDBSCAN with min_samples = 5.
N_CLUSTERS, N_PROPERTY_BINS, HDBSCAN_MIN_SAMPLES = 3, 3, 5


def structure_of(name: str, x: np.ndarray, props: pd.DataFrame, seed: int) -> dict:
    """Every structure table of one embedding (rows: objects of ``props``, in order), each tagged with
    ``embedding`` = ``name``: K-means inertia against k, the k = 3 clusters' frequencies and mean
    properties, AMI with the property bins, HDBSCAN cluster counts; and the 2-D UMAP projection."""
    inertia = kmeans_inertia(x, seed=seed).assign(embedding=name)
    labels = kmeans_labels(x, N_CLUSTERS, seed)
    means = props.groupby(labels).mean()
    means.insert(0, "frequency", pd.Series(labels).value_counts(normalize=True).sort_index().to_numpy())
    counts = hdbscan_counts(x, min_samples=HDBSCAN_MIN_SAMPLES)
    return {
        "inertia": inertia,
        "clusters": means.rename_axis("cluster").reset_index().assign(embedding=name),
        "ami": {"embedding": name, **ami_with_bins(labels, props, N_PROPERTY_BINS)},
        "hdbscan": pd.DataFrame({"embedding": name, "label": counts.index, "count": counts.to_numpy(),
                                 "fraction": counts.to_numpy() / len(x)}),
        "umap": umap_2d(x, seed=seed),
    }


def quantile_bins(values, n_bins: int) -> np.ndarray:
    """Equal-population bins 0..n_bins-1 (3 bins: low, medium, high; 2: low, high)."""
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def kmeans_inertia(x: np.ndarray, ks=range(1, 16), seed: int = 0) -> pd.DataFrame:
    from sklearn.cluster import KMeans

    z = StandardScaler().fit_transform(x)
    return pd.DataFrame({"k": list(ks), "inertia": [KMeans(k, n_init=10, random_state=seed).fit(z).inertia_ for k in ks]})


def kmeans_labels(x: np.ndarray, k: int = 3, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=10, random_state=seed).fit_predict(StandardScaler().fit_transform(x))


def ami_with_bins(labels: np.ndarray, properties: pd.DataFrame, n_bins: int = 3) -> dict:
    """AMI between cluster labels and each property's low/medium/high bins (AstroCLIP benchmark Tables 8 and 10)."""
    from sklearn.metrics import adjusted_mutual_info_score

    return {c: adjusted_mutual_info_score(quantile_bins(properties[c].to_numpy(), n_bins), labels) for c in properties}


def hdbscan_counts(x: np.ndarray, min_samples: int = 5) -> pd.Series:
    """Objects per HDBSCAN cluster (Euclidean, on standardised embeddings); label -1 is noise."""
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(min_samples=min_samples, metric="euclidean").fit_predict(StandardScaler().fit_transform(x))
    return pd.Series(labels).value_counts().sort_index()


def umap_2d(x: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    umap = _umap_cached()
    n_neighbors = min(n_neighbors, len(x) - 1)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, n_jobs=1)
    return reducer.fit_transform(StandardScaler().fit_transform(x))


@functools.cache
def _umap_cached():
    """umap, with numba's on-disk cache turned on for its compiled functions. umap does not cache them, so
    every process compiled them again on its first projection: about 12 s of a 14 s structure job on the
    mini universe (issue 28). Cached, a later process loads the same machine code in a fraction of a second
    (numba's cache sits beside umap's sources, or in the user's cache folder where those are read-only; it
    is keyed on the sources and the CPU, so an upgrade or another machine compiles afresh)."""
    import umap
    import umap.distances
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.utils, umap.layouts, umap.spectral, umap.distances):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher) and function.py_func.__module__ == module.__name__:
                try:
                    function.enable_caching()
                except RuntimeError:  # no folder numba may write to: compile in memory, as before
                    return umap
    return umap


def outlier_mask(residuals: np.ndarray) -> np.ndarray:
    """Residuals above Q3 + 1.5 IQR of their own column (the box-plot rule), per column."""
    q1, q3 = np.percentile(residuals, [25, 75], axis=0)
    return residuals > q3 + 1.5 * (q3 - q1)


def outlier_recurrence(abs_residuals: pd.DataFrame) -> pd.Series:
    """How many objects are outliers in exactly 1, 2, ..., all of the properties (AstroCLIP benchmark Table 18).

    Every count from 1 to the number of properties is listed, zeros included: a small test split can
    have no outlier at all, and that is a result to report, not an empty table."""
    counts = outlier_mask(abs_residuals.to_numpy()).sum(axis=1)
    n_properties = abs_residuals.shape[1]
    tally = pd.Series(counts[counts > 0]).value_counts()
    return tally.reindex(range(1, n_properties + 1), fill_value=0).astype(int)


def mdl_bin_count(data, k_min: int = 1, k_max: int = 50) -> int:
    """Histogram bin count by minimum description length (AstroCLIP benchmark, Algorithm 1).

    MDL(k) = L_data + L_model with L_model = (k - 1)/2 log N and L_data the code length of the data
    under the k-bin histogram density, -sum_i c_i log(p_i / w), p_i = max(c_i / N, 1e-12), w the bin
    width. Algorithm 1 as printed has -sum c_i log p_i without the width; that term alone grows with k
    for any data (finer bins never lower the entropy of the bin counts), so the minimum would always be
    k_min. The width term makes it the code length of a density, as MDL for histograms requires.
    """
    data = np.asarray(data, float)
    data = data[np.isfinite(data)]
    n = len(data)
    if n < 2 or data.min() == data.max():
        return k_min
    span = data.max() - data.min()
    best_k, best = k_min, np.inf
    for k in range(k_min, k_max + 1):
        counts, _ = np.histogram(data, bins=k)
        p = np.maximum(counts / n, 1e-12)
        mdl = -(counts * np.log(p / (span / k))).sum() + 0.5 * (k - 1) * np.log(n)
        if mdl < best:
            best_k, best = k, mdl
    return best_k
