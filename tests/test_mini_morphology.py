"""The mini universe's morphology: true classes, how images render them, and the Galaxy Zoo-like votes."""

import re

import numpy as np
import pandas as pd
import pytest

from samesky.downstream.labels import CLASSES, FRACTION_COLUMNS, QUESTIONS, morphology_classes
from samesky.mini_universe.build import iau_names
from samesky.mini_universe.observe import render_image
from samesky.mini_universe.population import MORPHOLOGY_COLUMNS, draw_morphology, draw_properties

PIXEL, NPIX = 0.2, 64  # a 12.8 arcsec cutout
FLUX = 100.0


def _galaxy(**kw):
    g = {"r_eff_arcsec": 1.5, "axis_ratio": 1.0, "position_angle_deg": 0.0, "bulge_fraction": 0.1,
         **{c: 0.0 for c in MORPHOLOGY_COLUMNS}}
    g.update(kw)
    return g


def _render(galaxy):
    """The noise-free, unmasked, PSF-convolved image of one band (rows = y, columns = x)."""
    with np.errstate(divide="ignore"):  # noise 0 gives an infinite ivar, which is not looked at
        flux, _, _ = render_image(galaxy, ["DES-R"], [FLUX], PIXEL, NPIX, [0.4], [0.0], (0.0, 0.0),
                                  np.random.default_rng(0), 0.0, False, 0.0)
    return flux[0].astype(float)


def _moments(img, radius_arcsec=None):
    """Second-moment ellipticity (1 - b/a form: (a^2 - b^2) / (a^2 + b^2)) and major-axis angle (deg,
    from +x towards +y, as the position angle), optionally within a central radius."""
    yy, xx = (np.mgrid[:NPIX, :NPIX] - NPIX / 2 + 0.5) * PIXEL
    w = img.copy()
    if radius_arcsec is not None:
        w[np.hypot(xx, yy) > radius_arcsec] = 0
    s = w.sum()
    cx, cy = (w * xx).sum() / s, (w * yy).sum() / s
    ixx, iyy = (w * (xx - cx) ** 2).sum() / s, (w * (yy - cy) ** 2).sum() / s
    ixy = (w * (xx - cx) * (yy - cy)).sum() / s
    e = np.hypot(ixx - iyy, 2 * ixy) / (ixx + iyy)
    return e, np.degrees(0.5 * np.arctan2(2 * ixy, ixx - iyy)) % 180


def _pixel(x_arcsec, y_arcsec):
    return int(y_arcsec / PIXEL + NPIX / 2), int(x_arcsec / PIXEL + NPIX / 2)


# --- the population ------------------------------------------------------------------------------


def test_morphology_keeps_every_other_property():
    """Its own stream and only axis_ratio overwritten: spectra and the PROVABGS-like catalogue unchanged."""
    props = draw_properties(500, np.random.default_rng(3), np.random.default_rng(4).random(500))
    out = draw_morphology(props, np.random.default_rng(5))
    kept = [c for c in props.columns if c != "axis_ratio"]
    pd.testing.assert_frame_equal(out[kept], props[kept])
    assert set(out["morphology"]) == set(CLASSES)
    assert set(out["shape_class"]) == set(CLASSES) - {"merger"}
    smooth = out["shape_class"].str.startswith("smooth").to_numpy()
    assert np.all(out.loc[smooth, ["spiral_strength", "bar_strength"]].to_numpy() == 0), "smooth: no disk features"
    edge = (out["shape_class"] == "edge_on_disk").to_numpy()
    assert np.all(out.loc[edge, "axis_ratio"] < 0.3) and np.all(out.loc[edge, "spiral_strength"] == 0)
    barred = (out["shape_class"] == "barred_spiral").to_numpy()
    assert np.all(out.loc[barred, "bar_strength"] > 0) and np.all(out.loc[~barred, "bar_strength"] == 0)
    merger = (out["morphology"] == "merger").to_numpy()
    assert np.all(out.loc[merger, "merger_flux_ratio"] > 0) and np.all(out.loc[~merger, "merger_flux_ratio"] == 0)
    # spectra see quiescence, so they can partly tell smooth from disk
    q = props["quiescent"].to_numpy(bool)
    assert smooth[q].mean() > 0.7 and smooth[~q].mean() < 0.25


def test_iau_names():
    ra = np.array([12.345 / 3600 * 15, 359.999])
    dec = np.array([1 + 30 / 60 + 12.35 / 3600, -(2 + 5 / 60 + 7.25 / 3600)])
    assert list(iau_names(ra, dec)) == ["J000012.34+013012.3", "J235959.76-020507.2"]


# --- rendering -----------------------------------------------------------------------------------


def test_an_edge_on_disk_is_far_more_elongated_than_a_smooth_round_galaxy():
    e_edge, angle = _moments(_render(_galaxy(axis_ratio=0.15, position_angle_deg=30.0)))
    e_round, _ = _moments(_render(_galaxy(axis_ratio=1.0, bulge_fraction=0.7)))
    assert e_round < 0.02 and e_edge > 0.6
    assert abs(angle - 30.0) < 3


def test_spiral_arms_move_light_but_keep_the_flux():
    plain = _render(_galaxy(r_eff_arcsec=2.0, axis_ratio=0.8, position_angle_deg=20.0))
    spiral = _render(_galaxy(r_eff_arcsec=2.0, axis_ratio=0.8, position_angle_deg=20.0, spiral_strength=0.6,
                             arm_pitch_deg=20.0, arm_phase_deg=40.0))
    # the arms redistribute > 15% of the light (sum of |difference| over the flux)
    assert np.abs(spiral - plain).sum() / plain.sum() > 0.15
    assert spiral.sum() == pytest.approx(plain.sum(), rel=0.01)
    # two-armed: the image is nearly symmetric under a 180-degree turn but not under a 90-degree one
    resid = spiral - plain
    assert np.abs(resid - np.rot90(resid, 2)).sum() < 0.2 * np.abs(resid).sum()
    assert np.abs(resid - np.rot90(resid, 1)).sum() > np.abs(resid).sum()


@pytest.mark.parametrize("bar_angle", [60.0, 150.0])
def test_a_bar_elongates_the_centre_along_its_angle(bar_angle):
    """Face-on (axis ratio 1, position angle 0), so the bar's angle in the disk plane is its angle on the sky."""
    e_plain, _ = _moments(_render(_galaxy(r_eff_arcsec=2.0)), radius_arcsec=1.5)
    barred = _render(_galaxy(r_eff_arcsec=2.0, bar_strength=0.3, bar_angle_deg=bar_angle))
    e_bar, angle = _moments(barred, radius_arcsec=1.5)
    assert e_plain < 0.02 and e_bar > 0.15
    assert abs((angle - bar_angle + 90) % 180 - 90) < 5
    assert barred.sum() == pytest.approx(_render(_galaxy(r_eff_arcsec=2.0)).sum(), rel=0.01)


def test_a_merger_adds_a_companion_and_its_light():
    kw = dict(r_eff_arcsec=1.2, axis_ratio=0.7, position_angle_deg=10.0)
    alone = _render(_galaxy(**kw))
    merger = _render(_galaxy(**kw, merger_flux_ratio=0.5, merger_sep_reff=1.6, merger_angle_deg=45.0))
    sep = 1.6 * 1.2
    at = _pixel(sep * np.cos(np.radians(45)), sep * np.sin(np.radians(45)))
    assert merger[at] > 3 * alone[at], "light at the companion's position"
    assert merger.sum() == pytest.approx(1.5 * alone.sum(), rel=0.03)
    # opposite the companion, the image is the lone galaxy's
    opp = _pixel(-sep * np.cos(np.radians(45)), -sep * np.sin(np.radians(45)))
    assert merger[opp] == pytest.approx(alone[opp], rel=0.05)


# --- the built universe --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo(mini):
    return pd.read_parquet(mini["hub"] / "galaxy_zoo" / "data" / "train-00000-of-00001.parquet")


def test_the_vote_catalogue_has_the_gzd5_columns(mini, zoo):
    assert {"iauname", "ra", "dec", "smooth-or-featured_total-votes", *FRACTION_COLUMNS} <= set(zoo.columns)
    truth = mini["truth"]
    assert len(zoo) == (truth["legacysurvey_object_id"] != "").sum(), "one row per Legacy-like object"
    assert zoo["iauname"].map(lambda s: bool(re.fullmatch(r"J\d{6}\.\d{2}[+-]\d{6}\.\d", s))).all()
    votes = zoo["smooth-or-featured_total-votes"]
    assert pd.api.types.is_integer_dtype(votes) and votes.between(35, 45).all()
    for question, answers in QUESTIONS.items():
        f = zoo[[f"{question}_{a}_fraction" for a in answers]].to_numpy(float)
        asked = ~np.isnan(f).any(axis=1)
        assert np.isnan(f[~asked]).all(), f"{question}: all answers NaN or none"
        assert ((f[asked] >= 0) & (f[asked] <= 1)).all()
        assert np.allclose(f[asked].sum(axis=1), 1), question
        assert np.array_equal(asked, zoo[f"{question}_total-votes"].to_numpy() > 0)
    assert not zoo["smooth-or-featured_smooth_fraction"].isna().any()
    assert not zoo["merging_none_fraction"].isna().any(), "asked of everyone"
    assert zoo["smooth-or-featured_artifact_fraction"].mean() < 0.08, "artifact votes are noise only"


def test_truth_classes_and_the_votes_agree_for_resolved_galaxies(mini, zoo):
    truth = mini["truth"]
    assert set(truth["morphology"]) == set(CLASSES)
    galaxies = truth[truth["kind"] == "galaxy"]
    assert 0.02 < (galaxies["morphology"] == "merger").mean() < 0.12
    # the catalogue is matched by position, as GZD-5 is to Legacy Survey images
    seen = truth[truth["legacysurvey_object_id"] != ""].drop(columns=["ra", "dec"])
    joined = zoo.merge(seen, left_on=["ra", "dec"], right_on=["legacysurvey_ra", "legacysurvey_dec"])
    assert len(joined) == len(zoo)
    joined = joined[joined["kind"] == "galaxy"]
    agree = morphology_classes(joined) == joined["morphology"].to_numpy(str)
    resolved = joined["r_eff_arcsec"].to_numpy() > 1
    assert resolved.sum() > 30
    assert agree[resolved].mean() >= 0.75
    # small galaxies drift towards smooth_round, as real volunteers call unresolved galaxies smooth
    small = joined["r_eff_arcsec"].to_numpy() < 0.5
    assert (morphology_classes(joined)[small] == "smooth_round").mean() > 0.7
