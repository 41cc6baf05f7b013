"""Check a crossmatch against the mini universe's truth: which galaxies both surveys really saw."""

from __future__ import annotations

import pandas as pd


def truth_recovery(truth: pd.DataFrame, pairs: pd.DataFrame, ref_survey: str, other_survey: str) -> dict:
    """Completeness and purity of matched pairs against the true (reference id, other id) pairs."""
    ref_ids = truth[f"{ref_survey}_object_id"].astype(str)
    oth_ids = truth[f"{other_survey}_object_id"].astype(str)
    both = (ref_ids != "") & (oth_ids != "")
    true_pairs = set(zip(ref_ids[both], oth_ids[both]))
    found = set(zip(pairs[f"{ref_survey}_object_id"].astype(str), pairs[f"{other_survey}_object_id"].astype(str)))
    recovered = len(true_pairs & found)
    return {
        "true_pairs": len(true_pairs),
        "matched": len(found),
        "recovered": recovered,
        "false_matches": len(found) - recovered,
        "completeness": recovered / len(true_pairs) if true_pairs else float("nan"),
        "purity": recovered / len(found) if found else float("nan"),
        "max_separation_arcsec": float(pairs["separation_arcsec"].max()) if len(pairs) else float("nan"),
    }
