"""Per-object groupings of the AstroCLIP benchmark's robustness analyses: the angular environment proxy (§4.5) and the
sky partitions (§4.4), and R^2 within each group."""

from __future__ import annotations

import numpy as np
import pandas as pd

ENV_BINS = ("few", "moderate", "many")  # <= 3, 4-7, > 7 companions


def environment(ra, dec) -> tuple[pd.DataFrame, float]:
    """AstroCLIP benchmark §4.5: each object's nearest-neighbour separation (self excluded), a threshold of Q3 + 1.5 IQR
    of those separations, the number of companions within it, and the bin few/moderate/many.

    Returns (frame with nn_sep_arcsec, companions, env_bin; threshold in arcsec).
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord, match_coordinates_sky, search_around_sky

    coords = SkyCoord(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg)
    if len(coords) < 2:
        raise ValueError(f"the environment proxy needs at least 2 objects, got {len(coords)}")
    _, sep, _ = match_coordinates_sky(coords, coords, nthneighbor=2)  # the 1st neighbour is the object itself
    nn = sep.to_value(u.arcsec)
    q1, q3 = np.percentile(nn, [25, 75])
    threshold = float(q3 + 1.5 * (q3 - q1))
    left, right, _, _ = search_around_sky(coords, coords, threshold * u.arcsec)
    companions = np.bincount(left[left != right], minlength=len(coords))
    env_bin = np.where(companions <= 3, "few", np.where(companions <= 7, "moderate", "many"))
    return pd.DataFrame({"nn_sep_arcsec": nn, "companions": companions, "env_bin": env_bin}), threshold


def sky_partitions(ra, dec, n_groups: int = 10, seed: int = 0) -> np.ndarray:
    """AstroCLIP benchmark §4.4: K-means on (RA, Dec). RA is first unwrapped around the sample's circular mean, so a
    field that straddles RA = 0/360 is not cut in two by the wrap."""
    from sklearn.cluster import KMeans

    ra = np.asarray(ra, float)
    centre = np.degrees(np.arctan2(np.sin(np.radians(ra)).mean(), np.cos(np.radians(ra)).mean()))
    ra_unwrapped = (ra - centre + 180.0) % 360.0 - 180.0
    xy = np.column_stack([ra_unwrapped, np.asarray(dec, float)])
    return KMeans(n_clusters=n_groups, n_init=10, random_state=seed).fit_predict(xy)


def r2_by_group(frame: pd.DataFrame, group: str, targets, min_objects: int = 5) -> pd.DataFrame:
    """R^2 of each method's held-out predictions within each value of ``group``.

    ``frame`` holds, per object, the group column, the true targets and ``pred_<method>_<target>``.
    Groups with fewer than ``min_objects`` objects get NaN (R^2 of a handful of points means nothing).
    """
    from sklearn.metrics import r2_score

    methods = sorted({c.split("_", 2)[1] for c in frame.columns if c.startswith("pred_")})
    rows = []
    for value, sub in frame.groupby(group, sort=True):
        for method in methods:
            row = {group: value, "method": method, "n": len(sub)}
            for t in targets:
                row[t] = r2_score(sub[t], sub[f"pred_{method}_{t}"]) if len(sub) >= min_objects else np.nan
            rows.append(row)
    return pd.DataFrame(rows)
