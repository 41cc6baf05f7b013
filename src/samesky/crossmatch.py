"""Positional crossmatch of two catalogues: one-to-one nearest pairs within a radius.

astropy finds every candidate pair within the radius on the sphere (no HEALPix cells, so nothing is lost
on cell borders, at RA = 0/360 or at the poles). astropy has no one-to-one assignment, so we add the
small greedy step ourselves: candidates are taken in order of increasing separation, and a pair is kept
only if neither object is already used. Each object thus gets its nearest still-free counterpart, and a
pair that is the mutual nearest neighbour is always kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


class CrossmatchError(ValueError):
    """A catalogue cannot be matched as given (bad coordinates, duplicate ids, nothing matched)."""


@dataclass(frozen=True)
class MatchResult:
    left_index: np.ndarray  # row in the left catalogue of each pair
    right_index: np.ndarray  # row in the right catalogue of each pair
    separation_arcsec: np.ndarray
    n_left: int
    n_right: int
    n_left_ambiguous: int  # left objects with more than one right candidate within the radius
    n_right_ambiguous: int
    n_left_lost: int  # left objects with a candidate that went to a closer pair (one-to-one)

    @property
    def n_matched(self) -> int:
        return len(self.left_index)

    def summary(self) -> dict:
        return {
            "n_left": self.n_left,
            "n_right": self.n_right,
            "matched": self.n_matched,
            "unmatched_left": self.n_left - self.n_matched,
            "unmatched_right": self.n_right - self.n_matched,
            "ambiguous_left": self.n_left_ambiguous,
            "ambiguous_right": self.n_right_ambiguous,
            "lost_to_one_to_one": self.n_left_lost,
            "max_separation_arcsec": float(self.separation_arcsec.max()) if self.n_matched else float("nan"),
            "median_separation_arcsec": float(np.median(self.separation_arcsec)) if self.n_matched else float("nan"),
        }


def check_coordinates(ra, dec, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ra, dec as float arrays, or raise naming the catalogue, the field and the first bad row."""
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    if ra.shape != dec.shape or ra.ndim != 1:
        raise CrossmatchError(f"{name}: 'ra' and 'dec' must be 1-D and of equal length, got {ra.shape} and {dec.shape}")
    for field, values in (("ra", ra), ("dec", dec)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise CrossmatchError(
                f"{name}: field '{field}' has {int(bad.sum())} non-finite values (first at row {int(np.argmax(bad))})"
            )
    outside = np.abs(dec) > 90
    if outside.any():
        row = int(np.argmax(outside))
        raise CrossmatchError(f"{name}: field 'dec' outside [-90, 90] deg at row {row} (value {dec[row]})")
    return np.mod(ra, 360.0), dec


def check_unique_ids(ids, name: str) -> None:
    values, counts = np.unique(np.asarray(ids).astype(str), return_counts=True)
    dup = values[counts > 1]
    if len(dup):
        raise CrossmatchError(
            f"{name}: field 'object_id' has {len(dup)} duplicated values, e.g. {[str(v) for v in dup[:5]]}; "
            "pairs are joined by object id, so ids must be unique"
        )


def match_one_to_one(ra1, dec1, ra2, dec2, radius_arcsec: float, names=("left", "right")) -> MatchResult:
    """One-to-one nearest pairs between two catalogues within ``radius_arcsec`` (inclusive)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    if not radius_arcsec > 0:
        raise CrossmatchError(f"crossmatch radius must be > 0 arcsec, got {radius_arcsec}")
    ra1, dec1 = check_coordinates(ra1, dec1, names[0])
    ra2, dec2 = check_coordinates(ra2, dec2, names[1])
    n1, n2 = len(ra1), len(ra2)
    if n1 == 0 or n2 == 0:
        return _empty(n1, n2)
    c1 = SkyCoord(ra1 * u.deg, dec1 * u.deg)
    c2 = SkyCoord(ra2 * u.deg, dec2 * u.deg)
    # search a little wider, then cut on the exact great-circle separation: the tree search works on
    # chord lengths and must not decide the edge case.
    i1, i2, sep, _ = search_around_sky(c1, c2, (radius_arcsec * 1.001) * u.arcsec)
    sep = c1[i1].separation(c2[i2]).to_value(u.arcsec) if len(i1) else np.zeros(0)
    keep = sep <= radius_arcsec
    i1, i2, sep = i1[keep], i2[keep], sep[keep]

    n_cand1 = np.bincount(i1, minlength=n1)
    n_cand2 = np.bincount(i2, minlength=n2)
    order = np.lexsort((i2, i1, sep))  # by separation; ties broken by row numbers, so reruns agree
    used1 = np.zeros(n1, dtype=bool)
    used2 = np.zeros(n2, dtype=bool)
    chosen = []
    for k in order:
        a, b = i1[k], i2[k]
        if not used1[a] and not used2[b]:
            used1[a] = used2[b] = True
            chosen.append(k)
    chosen = np.asarray(chosen, dtype=int)
    chosen = chosen[np.argsort(i1[chosen], kind="stable")] if len(chosen) else chosen
    lost = int(((n_cand1 > 0) & ~used1).sum())
    return MatchResult(
        left_index=i1[chosen].astype(np.int64),
        right_index=i2[chosen].astype(np.int64),
        separation_arcsec=sep[chosen],
        n_left=n1,
        n_right=n2,
        n_left_ambiguous=int((n_cand1 > 1).sum()),
        n_right_ambiguous=int((n_cand2 > 1).sum()),
        n_left_lost=lost,
    )


def _empty(n1: int, n2: int) -> MatchResult:
    z = np.zeros(0, dtype=np.int64)
    return MatchResult(z, z, np.zeros(0), n1, n2, 0, 0, 0)


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation of row-paired positions (used to audit pre-crossmatched sets)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c1 = SkyCoord(np.asarray(ra1, float) * u.deg, np.asarray(dec1, float) * u.deg)
    c2 = SkyCoord(np.asarray(ra2, float) * u.deg, np.asarray(dec2, float) * u.deg)
    return c1.separation(c2).to_value(u.arcsec)


def nearest_separation_arcsec(ra1, dec1, ra2, dec2) -> float:
    """Smallest separation between any object of one catalogue and the other (for error messages)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if len(ra1) == 0 or len(ra2) == 0:
        return float("nan")
    c1 = SkyCoord(np.asarray(ra1, float) * u.deg, np.asarray(dec1, float) * u.deg)
    c2 = SkyCoord(np.asarray(ra2, float) * u.deg, np.asarray(dec2, float) * u.deg)
    _, sep, _ = c1.match_to_catalog_sky(c2)
    return float(sep.to_value(u.arcsec).min())
