"""The download path: `datasets.load_dataset` on a local folder in the Hub layout, saved and reloaded."""

import json

import numpy as np
import pytest

from samesky.hub import download_dataset
from samesky.io import load_dataset_dir


def test_a_hub_layout_folder_downloads_through_load_dataset(mini, tmp_path):
    out = tmp_path / "data" / "hsc"
    record = download_dataset(str(mini["hub"] / "hsc"), out, revision=None, cache_dir=tmp_path)
    ds = load_dataset_dir(out)
    assert record["local"] and record["revision_resolved"].startswith("sha256:")
    assert record["n_rows"] == len(ds) > 0
    assert np.asarray(ds.with_format("numpy")[0]["image"]["flux"]).shape == (5, 48, 48)
    json.dumps(record)  # the record is what the provenance file holds
    assert not list(tmp_path.glob("hf-cache-*")), "the temporary datasets cache is removed"
    # the same content gives the same recorded revision
    again = download_dataset(str(mini["hub"] / "hsc"), tmp_path / "again", cache_dir=tmp_path)
    assert again["revision_resolved"] == record["revision_resolved"]


def test_a_hub_source_without_a_revision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs a pinned 'revision'"):
        download_dataset("Smith42/jwst_hsc_crossmatched", tmp_path / "x", revision=None)


def test_a_missing_or_truncated_saved_dataset_is_named(tmp_path, mini):
    with pytest.raises(FileNotFoundError, match="is not a saved dataset"):
        load_dataset_dir(tmp_path / "nothing")
    out = tmp_path / "d"
    download_dataset(str(mini["hub"] / "sdss"), out)
    arrow = sorted(out.glob("*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[:1000])
    with pytest.raises(OSError, match=f"could not read the dataset at {out}"):
        load_dataset_dir(out)
