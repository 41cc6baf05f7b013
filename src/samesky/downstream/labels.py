"""Morphology classes from Galaxy Zoo DECaLS vote fractions (GZD-5, Walmsley et al. 2022).

GZD-5's volunteer catalogue (zenodo record 4573248, ``gz_decals_volunteers_5.csv``; AstroCLIP's
``morphology_utils/cross_match.py`` downloads it and matches it to Legacy Survey images by position) has
one row per galaxy with ``iauname``, ``ra``, ``dec`` and, per question and answer, ``<question>_<answer>_fraction``:
the share of the volunteers who answered that question and chose that answer (NaN where nobody was asked).
The mini universe writes its catalogue with the same columns.

The classes follow Galaxy10 DECaLS / GalaxyMNIST (seed 003) and are read off the decision tree in this
order (thresholds on fractions, ``MIN_FRACTION``):

1. artifact (``smooth-or-featured_artifact``) >= 0.5: no class (dropped, counted);
2. merger + major disturbance (``merging``) >= 0.5: ``merger``, a rare class;
3. smooth >= featured: ``smooth_cigar`` if cigar-shaped > round (``how-rounded``), else ``smooth_round``;
4. featured: ``edge_on_disk`` if edge-on yes >= 0.5; else, with spiral arms yes >= 0.5, ``barred_spiral`` if
   strong + weak bar > no bar, else ``unbarred_spiral``; a face-on featured galaxy without arms has no class.

The soft label of each class is the product of the fractions along its branch (the vote-fraction
probability of reaching that leaf), the way Galaxy Zoo's hierarchical fractions are usually combined.

GZD-5 also has ``<question>_<answer>_debiased`` fractions (corrected for the redshift-dependent loss of
visible features) and ``<question>_total-votes``. ``downstream.morphology.votes`` picks ``fraction`` or
``debiased`` and a cut on ``smooth-or-featured_total-votes``; the paper preset takes AstroCLIP's choices
(the debiased fractions, at least 3 votes on the first question).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ("smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral", "barred_spiral", "merger")
MIN_FRACTION = 0.5

# question -> its answers, as GZD-5 names them (column = f"{question}_{answer}_fraction")
QUESTIONS = {
    "smooth-or-featured": ("smooth", "featured-or-disk", "artifact"),
    "disk-edge-on": ("yes", "no"),
    "has-spiral-arms": ("yes", "no"),
    "bar": ("strong", "weak", "no"),
    "how-rounded": ("round", "in-between", "cigar-shaped"),
    "merging": ("none", "minor-disturbance", "major-disturbance", "merger"),
}
FRACTION_COLUMNS = tuple(f"{q}_{a}_fraction" for q, answers in QUESTIONS.items() for a in answers)
TOTAL_VOTES = "smooth-or-featured_total-votes"  # volunteers who answered the first question


def vote_columns(kind: str = "fraction") -> tuple[str, ...]:
    """The columns the classes are read from: ``_fraction`` or GZD-5's ``_debiased`` fractions."""
    return tuple(f"{q}_{a}_{kind}" for q, answers in QUESTIONS.items() for a in answers)


class LabelError(ValueError):
    """A morphology catalogue lacks the columns the classes are read from."""


def fraction(cat: pd.DataFrame, question: str, answer: str, kind: str = "fraction") -> np.ndarray:
    """One answer's vote fraction (``kind``: fraction or debiased), NaN read as 0 (nobody was asked, so
    nobody chose it)."""
    return np.nan_to_num(pd.to_numeric(cat[f"{question}_{answer}_{kind}"], errors="coerce").to_numpy(float))


def check_columns(cat: pd.DataFrame, name: str, kind: str = "fraction", min_total_votes: int = 0) -> None:
    needed = ("ra", "dec", *vote_columns(kind), *((TOTAL_VOTES,) if min_total_votes else ()))
    missing = [c for c in needed if c not in cat.columns]
    if missing:
        raise LabelError(f"{name}: missing column(s) {missing} (Galaxy Zoo DECaLS GZD-5 names); has "
                         f"{sorted(cat.columns)[:25]}")


def enough_votes(cat: pd.DataFrame, min_total_votes: int) -> np.ndarray:
    """Rows with at least ``min_total_votes`` answers to the first question (AstroCLIP keeps >= 3)."""
    if not min_total_votes:
        return np.ones(len(cat), bool)
    return pd.to_numeric(cat[TOTAL_VOTES], errors="coerce").fillna(0).to_numpy(float) >= min_total_votes


def soft_labels(cat: pd.DataFrame, kind: str = "fraction") -> pd.DataFrame:
    """Per class, the vote-fraction probability of its leaf (rows as ``cat``); the columns need not sum to 1
    (artifacts, featured galaxies without arms and the in-between answer take the rest)."""
    f = {(q, a): fraction(cat, q, a, kind) for q, answers in QUESTIONS.items() for a in answers}
    merger = f["merging", "merger"] + f["merging", "major-disturbance"]
    calm = 1 - np.clip(merger, 0, 1)
    smooth, featured = f["smooth-or-featured", "smooth"], f["smooth-or-featured", "featured-or-disk"]
    face_on = featured * f["disk-edge-on", "no"] * f["has-spiral-arms", "yes"]
    barred = f["bar", "strong"] + f["bar", "weak"]
    return pd.DataFrame({
        "smooth_round": calm * smooth * f["how-rounded", "round"],
        "smooth_cigar": calm * smooth * f["how-rounded", "cigar-shaped"],
        "edge_on_disk": calm * featured * f["disk-edge-on", "yes"],
        "unbarred_spiral": calm * face_on * f["bar", "no"],
        "barred_spiral": calm * face_on * barred,
        "merger": np.clip(merger, 0, 1),
    }, index=cat.index)


def morphology_classes(cat: pd.DataFrame, name: str = "catalogue", kind: str = "fraction") -> np.ndarray:
    """The class of each row by the decision tree above, '' where it has none."""
    check_columns(cat, name, kind)
    f = {(q, a): fraction(cat, q, a, kind) for q, answers in QUESTIONS.items() for a in answers}
    smooth = f["smooth-or-featured", "smooth"] >= f["smooth-or-featured", "featured-or-disk"]
    cigar = f["how-rounded", "cigar-shaped"] > f["how-rounded", "round"]
    spiral = f["has-spiral-arms", "yes"] >= MIN_FRACTION
    barred = f["bar", "strong"] + f["bar", "weak"] > f["bar", "no"]
    featured_class = np.where(f["disk-edge-on", "yes"] >= MIN_FRACTION, "edge_on_disk",
                              np.where(spiral, np.where(barred, "barred_spiral", "unbarred_spiral"), ""))
    label = np.where(smooth, np.where(cigar, "smooth_cigar", "smooth_round"), featured_class)
    label = np.where(f["merging", "merger"] + f["merging", "major-disturbance"] >= MIN_FRACTION, "merger", label)
    return np.where(f["smooth-or-featured", "artifact"] >= MIN_FRACTION, "", label).astype(object)
