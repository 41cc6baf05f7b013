"""Dataset-size curves and the class / same-object decomposition."""

import numpy as np
import pytest

from samesky.align.curves import class_bins, size_curve, subset_sizes


def test_subset_sizes_double_from_128_and_end_at_n():
    assert subset_sizes(1000) == [128, 256, 512, 1000]
    assert subset_sizes(100) == [100]
    assert subset_sizes(256) == [128, 256]


def test_class_bins_are_quantiles_and_nan_is_no_class():
    labels = class_bins(np.r_[np.arange(100.0), np.nan], 4)
    assert labels[-1] == -1
    assert np.bincount(labels[:-1]).tolist() == [25, 25, 25, 25]


def test_shared_classes_but_unrelated_detail_give_class_agreement_without_object_agreement():
    rng = np.random.default_rng(0)
    n = 1200
    cls = rng.integers(0, 4, n)
    centres = rng.normal(0, 6, (4, 8))
    a = centres[cls] + rng.normal(size=(n, 8))  # both spaces know the class ...
    b = centres[cls] @ rng.normal(size=(8, 8)) + rng.normal(size=(n, 8)) * 4  # ... but not the same details
    curve = size_curve(a, b, ks=[1, 10], seeds=[0, 1], labels=cls)
    full = curve[(curve["n"] == n) & (curve["k"] == 10)]
    assert (full["class_a"] > 0.9).all() and (full["class_b"] > 0.9).all()
    assert (full["class_both"] > 0.8).all()
    assert (full["mknn"] < 0.05).all()
    # MKNN falls as the pool grows; every seed and size is there
    by_n = curve[curve["k"] == 10].groupby("n")["mknn"].mean()
    assert by_n.iloc[0] > by_n.iloc[-1]
    assert set(curve["seed"]) == {0, 1} and sorted(set(curve["n"])) == subset_sizes(n)


def test_identical_spaces_agree_on_everything():
    x = np.random.default_rng(1).normal(size=(300, 5))
    curve = size_curve(x, x, ks=[1], seeds=[0], labels=None)
    assert (curve["mknn"] == 1.0).all()
    with pytest.raises(KeyError):
        curve["class_a"]


def test_the_class_column_is_the_pairs_own_and_a_missing_one_is_an_error():
    from datasets import Dataset

    from samesky.align.curves import class_labels, class_source

    ds = Dataset.from_dict({"object_id": ["1", "2", "3", "4"], "desi_Z": [0.1, 0.2, 0.3, 0.4]})
    classes = {"source": "pair", "column": "{other}_Z", "n_bins": 2, "only_pairs": ["desi_hsc", "sdss_hsc"]}
    labels = class_labels(classes, "hsc", dataset=ds, other="desi", pair="desi_hsc")
    assert labels == {"1": 0, "2": 0, "3": 1, "4": 1} and class_source(classes, "desi") == "pair:desi_Z"
    with pytest.raises(KeyError, match=r"sdss.dataset: no column 'sdss_Z' for alignment.size_curves.classes "
                                       r"\(pair sdss_hsc\); has \['object_id', 'desi_Z'\]"):
        class_labels(classes, "hsc", dataset=ds, other="sdss", pair="sdss_hsc", dataset_name="sdss.dataset")
    assert class_labels(classes, "hsc", dataset=ds, other="jwst", pair="jwst_hsc") is None  # not decomposed
