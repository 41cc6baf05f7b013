"""Joining two surveys' rows into one paired dataset, and auditing pre-crossmatched sets."""

import numpy as np
import pytest
from datasets import Dataset

from samesky.crossmatch import CrossmatchError
from samesky.pairs import audit_crossmatched, crossmatch_datasets

ARCSEC = 1 / 3600


def _parent(ids, ra, dec, payload):
    return Dataset.from_dict({"object_id": ids, "ra": ra, "dec": dec, "payload": payload})


def test_rows_are_joined_by_position_whatever_their_order():
    rng = np.random.default_rng(3)
    n = 50
    ra, dec = rng.uniform(0, 0.05, n), rng.uniform(0, 0.05, n)
    ref = _parent([f"h{i}" for i in range(n)], ra, dec, [f"hsc-of-{i}" for i in range(n)])
    perm = rng.permutation(n)[:40]  # the other survey sees 40 of them, in another order
    other = _parent([f"d{i}" for i in perm], ra[perm] + 0.2 * ARCSEC, dec[perm], [f"desi-of-{i}" for i in perm])
    paired, pairs, summary = crossmatch_datasets(ref, other, "hsc", "desi", 1.0)
    assert summary["matched"] == 40 and summary["unmatched_left"] == 10
    assert paired.column_names[:4] == ["object_id", "ra", "dec", "separation_arcsec"]
    for row in paired:
        i = row["object_id"][1:]
        assert row["hsc_object_id"] == f"h{i}"
        assert row["desi_object_id"] == f"d{i}"
        assert row["hsc_payload"] == f"hsc-of-{i}" and row["desi_payload"] == f"desi-of-{i}"
    assert list(pairs.columns) == ["object_id", "hsc_object_id", "desi_object_id", "hsc_ra", "hsc_dec",
                                   "desi_ra", "desi_dec", "separation_arcsec"]
    assert np.allclose(pairs["separation_arcsec"], 0.2, atol=0.01)


def test_rows_with_nan_coordinates_are_dropped_and_counted():
    ref = _parent(["a", "b"], [1.0, np.nan], [0.0, 0.0], ["x", "y"])
    other = _parent(["c"], [1.0], [0.0], ["z"])
    _, _, summary = crossmatch_datasets(ref, other, "hsc", "desi", 1.0)
    assert summary["dropped_bad_coordinates_left"] == 1 and summary["matched"] == 1


def test_duplicate_ids_missing_columns_and_empty_matches_are_errors():
    ref = _parent(["a", "a"], [1.0, 2.0], [0.0, 0.0], ["x", "y"])
    other = _parent(["c"], [1.0], [0.0], ["z"])
    with pytest.raises(CrossmatchError, match=r"hsc_parent: field 'object_id' has 1 duplicated values, e.g. \['a'\]"):
        crossmatch_datasets(ref, other, "hsc", "desi", 1.0, ref_name="hsc_parent")
    with pytest.raises(CrossmatchError, match=r"desi_parent: missing column\(s\) \['dec'\]"):
        crossmatch_datasets(other, other.remove_columns("dec"), "hsc", "desi", 1.0, other_name="desi_parent")
    far = _parent(["f"], [50.0], [0.0], ["w"])
    with pytest.raises(CrossmatchError, match=r"found no pair within 1.0 arcsec \(closest separation: 1.76e\+05 arcsec"):
        crossmatch_datasets(other, far, "hsc", "desi", 1.0)


def _precrossmatched(sep_arcsec, ids=None):
    """A set in the layout of Smith42/desi_hsc_crossmatched: MMU's cross-match keeps each parent's own column
    names (the HSC cutout `image`, DESI's `spectrum` and `Z`, `ZWARN`)."""
    n = len(sep_arcsec)
    return Dataset.from_dict({
        "object_id": ids or [str(i) for i in range(n)],
        "hsc_ra": [10.0] * n, "hsc_dec": [0.0] * n,
        "desi_ra": [10.0] * n, "desi_dec": list(np.asarray(sep_arcsec) * ARCSEC),
        "image": [{"band": ["HSC-G"], "flux": [[[1.0]]]}] * n,
        "spectrum": [{"flux": [2.0], "ivar": [1.0], "lambda": [4000.0]}] * n,
        "Z": [0.1 * i for i in range(n)], "ZWARN": [False] * n,
    })


RENAME = {"image": "hsc_image", "spectrum": "desi_spectrum"}


def test_audit_drops_pairs_beyond_the_radius_and_renames_columns():
    ds = _precrossmatched([0.1, 0.5, 1.5])
    paired, pairs, summary = audit_crossmatched(ds, "hsc", "desi", 1.0, rename=RENAME)
    assert summary["matched"] == 2 and summary["beyond_radius"] == 1 and summary["audit_status"] == "checked"
    assert "hsc_image" in paired.column_names and "desi_spectrum" in paired.column_names
    assert paired["object_id"] == ["0", "1"]
    assert np.allclose(paired["separation_arcsec"], [0.1, 0.5], atol=1e-6)


def test_audit_without_positions_is_an_error_or_recorded_as_unverifiable():
    ds = _precrossmatched([0.1, 0.2]).remove_columns(["desi_ra", "desi_dec"])
    with pytest.raises(CrossmatchError, match=r"position column\(s\) \['desi_ra', 'desi_dec'\] absent"):
        audit_crossmatched(ds, "hsc", "desi", 1.0, rename=RENAME)
    paired, _, summary = audit_crossmatched(ds, "hsc", "desi", 1.0, rename=RENAME, require_positions=False)
    assert summary["audit_status"] == "unverifiable" and summary["matched"] == 2
    assert np.isnan(paired["separation_arcsec"]).all()
    with pytest.raises(CrossmatchError, match=r"columns \['img'\] named in the config's 'rename' are absent"):
        audit_crossmatched(ds, "hsc", "desi", 1.0, rename={"img": "hsc_image"}, require_positions=False)


def test_the_audit_names_the_spectroscopic_columns_as_a_pair_crossmatched_here_does():
    paired, _, _ = audit_crossmatched(_precrossmatched([0.1, 0.2]), "hsc", "desi", 1.0, rename=RENAME)
    assert {"desi_Z", "desi_ZWARN"} <= set(paired.column_names) and "Z" not in paired.column_names
    assert paired["desi_Z"] == pytest.approx([0.0, 0.1])
    clash = _precrossmatched([0.1]).add_column("desi_Z", [9.0])
    with pytest.raises(CrossmatchError, match=r"cannot prefix desi's columns, \['desi_Z'\] exist already"):
        audit_crossmatched(clash, "hsc", "desi", 1.0, rename=RENAME)


def test_a_missing_side_column_or_field_is_named_with_what_the_set_has():
    ds = _precrossmatched([0.1, 0.2])
    with pytest.raises(CrossmatchError, match=r"desi_hsc: no column 'desi_spectrum' \(the desi side's spectrum\); "
                                              r"has \[.*'spectrum'.*\]\. Name it with the pair's 'rename'"):
        audit_crossmatched(ds, "hsc", "desi", 1.0, rename={"image": "hsc_image"}, name="desi_hsc")
    no_ivar = ds.remove_columns("spectrum").add_column("spectrum", [{"flux": [2.0]}] * 2)
    with pytest.raises(CrossmatchError, match=r"column 'desi_spectrum' has no field\(s\) \['ivar'\]; has \['flux'\]"):
        audit_crossmatched(no_ivar, "hsc", "desi", 1.0, rename=RENAME)


def test_images_without_a_band_field_are_read_in_the_surveys_documented_order(caplog):
    ds = _precrossmatched([0.1]).remove_columns("image").add_column("image", [{"flux": [[[1.0]]]}])
    with caplog.at_level("WARNING"):
        paired, _, _ = audit_crossmatched(ds, "hsc", "desi", 1.0, rename=RENAME)
    assert "has no 'band' field; its bands are read in hsc's documented order ('HSC-G'" in caplog.text
    jwst = Dataset.from_dict({"object_id": ["1"], "hsc_image": [{"flux": [[[1.0]]]}],
                              "unknown_image": [{"flux": [[[1.0]]]}]})
    with pytest.raises(CrossmatchError, match=r"survey 'unknown' has no documented band order"):
        audit_crossmatched(jwst, "hsc", "unknown", 1.0, require_positions=False)


def test_a_repeated_reference_id_keeps_its_closest_pair_unless_strict(caplog):
    # MMU's cross-match is many-to-one: HSC object 7 was paired with two DESI spectra
    ds = _precrossmatched([0.6, 0.2, 0.3, 0.9, 0.1], ids=["7", "5", "7", "7", "6"])
    with caplog.at_level("WARNING"):
        paired, pairs, summary = audit_crossmatched(ds, "hsc", "desi", 1.0, rename=RENAME)
    assert paired["object_id"] == ["5", "7", "6"]  # dataset order kept; 7's closest row is the third (0.3")
    assert paired["desi_Z"] == pytest.approx([0.1, 0.2, 0.4])
    assert summary["repeated_ids_dropped"] == 2 and summary["matched"] == 3 and summary["beyond_radius"] == 0
    assert "2 rows repeat an object id already paired (1 ids, e.g. ['7'])" in caplog.text
    with pytest.raises(CrossmatchError, match=r"field 'object_id' has 1 duplicated values, e.g. \['7'\]"):
        audit_crossmatched(ds, "hsc", "desi", 1.0, rename=RENAME, repeated_ids="error")
    # without positions, the first row of each id stays
    unknown = ds.remove_columns(["desi_ra", "desi_dec"])
    paired, _, summary = audit_crossmatched(unknown, "hsc", "desi", 1.0, rename=RENAME, require_positions=False)
    assert paired["object_id"] == ["7", "5", "6"] and summary["repeated_ids_dropped"] == 2


def test_the_redshift_quality_cut_keeps_the_configured_good_value_and_names_a_wrong_polarity():
    """MMU's DESI ZWARN is True for no warning (samesky.surveys.GOOD_REDSHIFT): the cut keeps what the config
    calls good, counts the rest, and a cut that keeps nothing says to check the polarity."""
    import pandas as pd
    from datasets import Dataset

    from samesky.crossmatch import CrossmatchError
    from samesky.steps.matching import good_redshifts
    from samesky.surveys import GOOD_REDSHIFT

    assert GOOD_REDSHIFT == {"desi": ("ZWARN", True), "sdss": ("ZWARNING", False)}
    paired = Dataset.from_dict({"object_id": ["a", "b", "c"], "desi_ZWARN": [True, False, True]})
    pairs = pd.DataFrame({"object_id": ["a", "b", "c"]})
    pair = {"name": "desi_hsc", "good_redshift": {"column": "desi_ZWARN", "good": True}}
    kept, kept_pairs, summary = good_redshifts(paired, pairs, {"matched": 3}, pair)
    assert kept["object_id"] == ["a", "c"] and list(kept_pairs["object_id"]) == ["a", "c"]
    assert summary == {"matched": 2, "dropped_redshift_warning": 1}
    with pytest.raises(CrossmatchError, match="desi_ZWARN is boolean, good_redshift.good is 0; give true or false"):
        good_redshifts(paired, pairs, {}, {**pair, "good_redshift": {"column": "desi_ZWARN", "good": 0}})
    warned = Dataset.from_dict({"object_id": ["a"], "desi_ZWARN": [False]})
    with pytest.raises(CrossmatchError, match="no row has desi_ZWARN == True; check the flag's polarity"):
        good_redshifts(warned, pairs.iloc[:1], {}, pair)
    with pytest.raises(CrossmatchError, match="good_redshift.column 'ZWARN' is not a column of the pair"):
        good_redshifts(paired, pairs, {}, {**pair, "good_redshift": {"column": "ZWARN", "good": True}})


def test_positions_missing_from_a_set_are_joined_by_id_from_a_catalogue(tmp_path):
    """MMU's merged rows carry no positions: pairs[].positions_from fills ra/dec by id from a catalogue
    (the paper preset's DESI-HSC set from PROVABGS by TARGETID), counting what it could not fill."""
    import numpy as np
    import pandas as pd
    from datasets import Dataset

    from samesky.io import save_dataset
    from samesky.steps.matching import positions_from_catalogue

    save_dataset(Dataset.from_dict({"object_id": ["39627", "39628", "x"], "ra": [150.0, 151.0, 0.5],
                                    "dec": [2.0, 2.5, 0.1]}), tmp_path / "provabgs")
    paired = Dataset.from_dict({"object_id": ["39628", "39627", "39999"], "ra": [np.nan, 10.0, np.nan],
                                "dec": [np.nan, 1.0, np.nan], "separation_arcsec": [np.nan] * 3})
    pairs = pd.DataFrame({"object_id": paired["object_id"], "ra": paired["ra"], "dec": paired["dec"]})
    pair = {"name": "desi_hsc", "positions_from": {"dataset": "provabgs", "pair_id": "object_id", "catalogue_id": "object_id"}}
    out, out_pairs, summary = positions_from_catalogue(paired, pairs, {}, pair, tmp_path / "provabgs")
    assert out["ra"][:2] == [151.0, 10.0] and np.isnan(out["ra"][2]) and out["dec"][0] == 2.5
    assert summary == {"positions_from_catalogue": 1, "without_position": 1}
    assert list(out_pairs["ra"][:2]) == [151.0, 10.0] and out.column_names[:3] == ["object_id", "ra", "dec"]


def _images(n, rng, layout):
    """Image columns in the two layouts ``datasets`` stores: Sequence of a struct (a struct of lists) and a
    list of structs; masks True for clean pixels, as the Multimodal Universe's builders write them."""
    from datasets import Array2D, Features, Sequence, Value

    fields = {"band": Value("string"), "flux": Array2D((4, 4), "float32"), "mask": Array2D((4, 4), "bool")}
    feature = Sequence(fields) if layout == "sequence" else [fields]
    rows = []
    for i in range(n):
        flux, mask = rng.normal(size=(2, 4, 4)).astype("float32"), rng.random((2, 4, 4)) < 0.8
        image = ({"band": ["g", "r"], "flux": list(flux), "mask": list(mask)} if layout == "sequence" else
                 [{"band": b, "flux": flux[k], "mask": mask[k]} for k, b in enumerate("gr")])
        spectrum = {"flux": [1.0, 2.0], "mask": [True, False]}
        rows.append({"object_id": str(i), "hsc_image": image, "desi_spectrum": spectrum})
    features = Features({"object_id": Value("string"), "hsc_image": feature,
                         "desi_spectrum": Sequence({"flux": Value("float32"), "mask": Value("bool")})})
    return Dataset.from_list(rows, features=features)


@pytest.mark.parametrize("layout", ["sequence", "list"])
def test_clean_image_masks_are_inverted_once_and_nothing_else_changes(layout):
    """A dataset configured ``image_mask: clean``: its pair's image masks read True = bad afterwards, in a
    selection of rows too (the crossmatch's order); fluxes, bands, features and the spectrum's mask unchanged."""
    from samesky.pairs import image_mask_columns, invert_masks
    from samesky.steps.matching import clean_masks_to_bad

    ds = _images(6, np.random.default_rng(0), layout).select([4, 0, 5, 2])
    assert image_mask_columns(ds) == ["hsc_image"]
    out = clean_masks_to_bad(ds, "desi_hsc", ("hsc", "desi"), {"paired": "clean"})
    assert out.features == ds.features and out["object_id"] == ["4", "0", "5", "2"]
    def planes(image, field):
        return np.stack(image[field]) if layout == "sequence" else np.stack([plane[field] for plane in image])

    for a, b in zip(ds.with_format("numpy"), out.with_format("numpy")):
        assert planes(a["hsc_image"], "mask").shape == (2, 4, 4)
        assert np.array_equal(planes(b["hsc_image"], "mask"), ~planes(a["hsc_image"], "mask"))
        assert np.array_equal(planes(b["hsc_image"], "flux"), planes(a["hsc_image"], "flux"))
        assert list(planes(b["hsc_image"], "band")) == list(planes(a["hsc_image"], "band"))
        assert np.array_equal(b["desi_spectrum"]["mask"], a["desi_spectrum"]["mask"])
    # a dataset in the run's own polarity, and the reference side of two parents, are left as they are
    assert clean_masks_to_bad(ds, "p", ("hsc", "desi"), {"paired": "bad"}) is ds
    assert clean_masks_to_bad(ds, "p", ("hsc", "desi"), {"reference": "bad", "other": "clean"}) is ds
