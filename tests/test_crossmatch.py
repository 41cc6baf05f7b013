"""The one-to-one positional crossmatch: radius edge, sky edges, one-to-one, bad input."""

import numpy as np
import pytest

from samesky.crossmatch import CrossmatchError, match_one_to_one

ARCSEC = 1 / 3600


@pytest.mark.parametrize("offset, expected", [(0.99, 1), (1.01, 0)])
def test_a_pair_just_inside_the_radius_matches_and_just_outside_does_not(offset, expected):
    for ra0, dec0 in [(150.0, 2.0), (10.0, -45.0)]:
        # offset along dec, and along ra (scaled so the on-sky offset is the same)
        m = match_one_to_one([ra0], [dec0], [ra0], [dec0 + offset * ARCSEC], 1.0)
        assert m.n_matched == expected
        m = match_one_to_one([ra0], [dec0], [ra0 + offset * ARCSEC / np.cos(np.radians(dec0))], [dec0], 1.0)
        assert m.n_matched == expected
        if expected:
            assert m.separation_arcsec[0] == pytest.approx(offset, abs=1e-6)


def test_pairs_across_ra_zero_are_found():
    ra1 = np.array([359.99995, 0.00001, 180.0])
    dec1 = np.array([0.0, 10.0, 0.0])
    ra2 = np.array([0.00010, 359.99990, 180.0 + 2 * ARCSEC])
    dec2 = np.array([0.0, 10.0, 0.0])
    m = match_one_to_one(ra1, dec1, ra2, dec2, 1.0)
    assert list(zip(m.left_index, m.right_index)) == [(0, 0), (1, 1)]
    assert m.separation_arcsec[0] == pytest.approx(0.54, abs=1e-3)


@pytest.mark.parametrize("pole", [90.0, -90.0])
def test_pairs_near_the_poles_are_found_even_with_large_ra_differences(pole):
    sign = np.sign(pole)
    # 0.3 arcsec from the pole on opposite meridians: 0.6 arcsec apart although ra differs by 180 deg
    ra1, dec1 = [0.0, 45.0], [sign * (90 - 0.3 * ARCSEC), sign * (90 - 20 * ARCSEC)]
    ra2, dec2 = [180.0, 46.0], [sign * (90 - 0.3 * ARCSEC), sign * (90 - 20 * ARCSEC)]
    m = match_one_to_one(ra1, dec1, ra2, dec2, 1.0)
    assert list(m.left_index) == [0, 1]
    assert m.separation_arcsec[0] == pytest.approx(0.6, abs=1e-3)
    # 20 arcsec from the pole, 1 deg of ra apart is 0.35 arcsec on the sky
    assert m.separation_arcsec[1] == pytest.approx(20 * np.radians(1.0), abs=1e-3)


def test_matching_is_one_to_one_and_the_closer_pair_wins():
    # two left objects within the radius of one right object: only the closer keeps it
    m = match_one_to_one([10.0, 10.0], [0.0, 0.6 * ARCSEC], [10.0], [0.5 * ARCSEC], 1.0)
    assert m.n_matched == 1
    assert (m.left_index[0], m.right_index[0]) == (1, 0)
    assert m.n_left_lost == 1
    assert m.n_right_ambiguous == 1
    # and symmetric: no right object is used twice
    rng = np.random.default_rng(0)
    ra = rng.uniform(0, 0.01, 300)
    dec = rng.uniform(0, 0.01, 300)
    m = match_one_to_one(ra, dec, ra + rng.normal(0, 0.5 * ARCSEC, 300), dec, 3.0)
    assert len(set(m.left_index)) == len(set(m.right_index)) == m.n_matched
    assert m.separation_arcsec.max() <= 3.0


def test_the_match_is_independent_of_row_order():
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 0.02, 200)
    dec = rng.uniform(0, 0.02, 200)
    ra2 = ra + rng.normal(0, 0.3 * ARCSEC, 200)
    perm = rng.permutation(200)
    a = match_one_to_one(ra, dec, ra2, dec, 1.0)
    b = match_one_to_one(ra, dec, ra2[perm], dec[perm], 1.0)
    assert sorted(zip(a.left_index, a.right_index)) == sorted(zip(b.left_index, perm[b.right_index]))


def test_bad_coordinates_are_named():
    with pytest.raises(CrossmatchError, match=r"hsc: field 'dec' has 1 non-finite"):
        match_one_to_one([1.0, 2.0], [0.0, np.nan], [1.0], [0.0], 1.0, names=("hsc", "desi"))
    with pytest.raises(CrossmatchError, match=r"desi: field 'dec' outside \[-90, 90\]"):
        match_one_to_one([1.0], [0.0], [1.0], [91.0], 1.0, names=("hsc", "desi"))
    with pytest.raises(CrossmatchError, match="radius must be > 0"):
        match_one_to_one([1.0], [0.0], [1.0], [0.0], 0.0)


def test_empty_catalogues_give_an_empty_match():
    m = match_one_to_one([], [], [1.0], [1.0], 1.0)
    assert m.n_matched == 0 and m.n_left == 0 and m.n_right == 1
