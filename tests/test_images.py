"""Image preprocessing: band choice, dataset-wide percentile scaling, bad pixels, determinism."""

import numpy as np
import pytest
from datasets import load_dataset

from samesky.embed.images import ImageError, compute_scaling, image_records, select_bands, to_rgb


def _image(bands, h=8, seed=0):
    rng = np.random.default_rng(seed)
    flux = np.stack([np.full((h, h), float(i + 1)) + rng.normal(0, 0.01, (h, h)) for i in range(len(bands))])
    return {"band": bands, "flux": flux.astype(np.float32), "mask": np.zeros(flux.shape, bool)}


def test_bands_are_taken_as_rgb_in_the_papers_order():
    img = _image(["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"])
    flux, bad = select_bands(img, ("z", "r", "g"))
    assert np.allclose(flux.mean(axis=(1, 2)), [4, 2, 1], atol=0.01)  # z, r, g
    jwst = _image(["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F444W"])
    flux, _ = select_bands(jwst, ("f444w", "f277w", "f090w"))
    assert np.allclose(flux.mean(axis=(1, 2)), [7, 5, 1], atol=0.01)


def test_a_missing_band_is_an_error_naming_object_and_band():
    with pytest.raises(ImageError, match=r"object 42: band 'z' missing from the image \(has \['g', 'r'\]\)"):
        select_bands(_image(["DES-G", "DES-R"]), ("z", "r", "g"), object_id="42")


def test_percentile_scaling_maps_5th_and_99th_to_black_and_white():
    rng = np.random.default_rng(1)
    images = []
    for i in range(20):
        flux = rng.normal(0, 1, (3, 16, 16)).astype(np.float32)
        images.append((str(i), {"band": ["z", "r", "g"], "flux": flux, "mask": np.zeros(flux.shape, bool)}))
    scaling = compute_scaling(images, ("z", "r", "g"))
    pooled = np.stack([img["flux"] for _, img in images])
    for c in range(3):
        lo, hi = np.percentile(pooled[:, c], [5, 99])
        assert scaling.low[c] == pytest.approx(lo) and scaling.high[c] == pytest.approx(hi)
    rgb, nbad = to_rgb(images[0][1], scaling)
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3) and nbad == 0
    # only the first max_images images count
    few = compute_scaling(images, ("z", "r", "g"), max_images=2)
    assert few.n_images == 2 and few.low != scaling.low


def test_nan_inf_and_masked_pixels_become_black_and_are_counted():
    img = _image(["g", "r", "z"], h=4)
    img["flux"][0, 0, 0] = np.nan  # g
    img["flux"][2, 1, 1] = np.inf  # z
    img["mask"][1, 2, 2] = True  # r
    img["flux"][1, 2, 2] = 1e6  # a masked spike must not show
    scaling = compute_scaling([("a", img)], ("z", "r", "g"))
    rgb, nbad = to_rgb(img, scaling)
    assert nbad == 3
    assert rgb[0, 0, 2] == 0 and rgb[1, 1, 0] == 0 and rgb[2, 2, 1] == 0
    # an image with no good pixel at all is still defined (blank), never NaN
    blank = _image(["g", "r", "z"], h=4)
    blank["mask"][:] = True
    rgb, nbad = to_rgb(blank, scaling)
    assert nbad == 48 and (rgb == 0).all()
    with pytest.raises(ImageError, match="no good pixel"):
        compute_scaling([("b", blank)], ("z", "r", "g"))


def test_preprocessing_is_deterministic_and_arrow_reading_matches_datasets(mini):
    ds = load_dataset(str(mini["hub"] / "jwst"), split="train").select(range(12))
    table = ds.with_format("arrow")[3:10]
    fast = image_records(table, "image")
    for k, record in zip(range(3, 10), fast):
        slow = ds.with_format("numpy")[k]["image"]
        assert np.array_equal(record["flux"], slow["flux"], equal_nan=True)
        assert np.array_equal(record["mask"], slow["mask"])
    sample = [(str(i), r) for i, r in enumerate(fast)]
    a = compute_scaling(sample, ("f444w", "f277w", "f090w"))
    b = compute_scaling(sample, ("f444w", "f277w", "f090w"))
    assert a == b
    assert all(np.array_equal(to_rgb(r, a)[0], to_rgb(r, b)[0]) for r in fast)


def test_images_without_a_band_field_take_the_surveys_documented_band_order(caplog):
    from datasets import Dataset

    from samesky.embed.images import DatasetImages

    flux = np.stack([np.full((4, 4), float(i + 1), np.float32) for i in range(7)])
    ds = Dataset.from_dict({"object_id": ["a", "b"], "jwst_image": [{"flux": flux}, {"flux": flux * 2}]})
    with caplog.at_level("WARNING"):
        (oid, record), _ = list(DatasetImages(ds, "jwst_image"))
    assert "jwst_image: no 'band' field; bands taken in the survey's documented order ['F090W'" in caplog.text
    selected, _ = select_bands(record, ("f444w", "f277w", "f090w"), oid)
    assert selected.mean(axis=(1, 2)).tolist() == [7.0, 5.0, 1.0]  # MMU's JWST order: F090W ... F444W
    ds = Dataset.from_dict({"object_id": ["a"], "mystery_image": [{"flux": flux}]})
    with pytest.raises(ImageError, match=r"mystery_image: the images have no 'band' field and 7 bands"):
        list(DatasetImages(ds, "mystery_image"))


def test_the_paper_codes_blank_rule_drops_jwst_cutouts_whose_f200w_is_flat():
    from samesky.embed.images import BlankTest

    bands = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F444W"]
    edge = _image(bands)
    edge["flux"][3][:] = 0.0  # F200W empty (a mosaic edge), the RGB bands have data
    wanted = ("f444w", "f277w", "f090w")
    paper, ours = BlankTest("platonic_universe", "jwst"), BlankTest("no_data", "jwst")
    assert paper(edge, *select_bands(edge, wanted)) and not ours(edge, *select_bands(edge, wanted))
    empty = _image(bands)
    empty["flux"][[0, 4, 6]] = 0.0  # the RGB bands empty, F200W has data
    assert ours(empty, *select_bands(empty, wanted)) and not paper(empty, *select_bands(empty, wanted))
    nan = _image(bands)
    nan["flux"][3][:] = np.nan  # the paper's `v0 - v1 == 0` is False for NaN percentiles: kept, as there
    assert not paper(nan, *select_bands(nan, wanted))
    hsc = _image(["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"])
    hsc["flux"][:] = 0.0  # the paper's code filters no other survey
    assert not BlankTest("platonic_universe", "hsc")(hsc, *select_bands(hsc, ("z", "r", "g")))
    edge_sample = [("edge", edge)] + [(str(i), _image(bands, seed=i)) for i in range(3)]
    assert compute_scaling(edge_sample, wanted, blank=paper).n_images == 3
    assert compute_scaling(edge_sample, wanted, blank=ours).n_images == 4


@pytest.mark.parametrize("stretch, a, astropy_stretch", [
    ("percentile", None, "LinearStretch"), ("asinh", 0.1, "AsinhStretch"), ("asinh", 0.02, "AsinhStretch"),
    ("log", 1000.0, "LogStretch"), ("log", 50.0, "LogStretch")])
def test_each_stretch_equals_astropys_on_hand_made_arrays(stretch, a, astropy_stretch):
    """Issue 26: a dataset-wide interval then the stretch, as astropy.visualization composes them."""
    import dataclasses

    from astropy import visualization as vis

    from samesky.embed.images import Scaling, scale_batch, stretched

    flux = np.array([[[-1.0, 0.0, 0.5], [1.0, 2.0, 4.0], [8.0, 16.0, 100.0]]] * 3, np.float32)
    flux[1] *= 2  # a different range per channel
    flux[2] -= 0.5
    bad = np.zeros_like(flux, bool)
    bad[0, 2, 2] = True  # the 100 spike, masked: set to the low end, never white
    scaling = Scaling(("z", "r", "g"), (0.0, 0.0, -0.5), (10.0, 20.0, 9.5), 5.0, 99.0, 1, stretch, a)
    ours = stretched(flux[None], bad[None], scaling)[0]
    for c in range(3):
        made = getattr(vis, astropy_stretch)(*([a] if a else []))
        transform = made + vis.ManualInterval(scaling.low[c], scaling.high[c])
        expected = transform(np.where(bad[c], scaling.low[c], flux[c]).astype(np.float64), clip=True)
        np.testing.assert_allclose(ours[c], expected, rtol=1e-5, atol=1e-6)
    rgb, n_bad = scale_batch(flux[None], bad[None], scaling)
    assert n_bad[0] == 1 and rgb[0, 2, 2, 0] == 0 and rgb.dtype == np.uint8
    if stretch != "percentile":  # a stretch lifts the faint end: brighter mid-tones than linear
        linear = stretched(flux[None], bad[None], dataclasses.replace(scaling, stretch="percentile"))[0]
        assert (ours[:, 1, 1] > linear[:, 1, 1]).all()


def test_zscale_takes_each_images_own_interval_from_its_good_pixels():
    from astropy.visualization import ZScaleInterval

    from samesky.embed.images import Scaling, stretched

    rng = np.random.default_rng(3)
    flux = rng.normal(10, 1, (2, 3, 16, 16)).astype(np.float32)
    flux[1] *= 5  # a brighter image: its own interval, not the first's
    bad = np.zeros_like(flux, bool)
    bad[0, 0, :2, :2] = True
    flux[0, 0, :2, :2] = 1e6  # masked: neither in the interval nor shown
    scaling = Scaling(("z", "r", "g"), (0.0,) * 3, (100.0,) * 3, 5.0, 99.0, 2, "zscale")
    ours = stretched(flux, bad, scaling)
    for i in range(2):
        for c in range(3):
            vmin, vmax = ZScaleInterval().get_limits(flux[i, c][~bad[i, c]])
            good = ~bad[i, c]
            np.testing.assert_allclose(ours[i, c][good], np.clip((flux[i, c][good] - vmin) / (vmax - vmin), 0, 1),
                                       rtol=1e-5, atol=1e-6)
    assert (ours[0, 0][bad[0, 0]] == 0).all() and 0.3 < ours[1].mean() < 0.7


def test_prepare_rgb_records_the_stretch_with_astropys_default_and_refuses_an_unknown_one(mini):
    from samesky.embed.images import prepare_rgb

    ds = load_dataset(str(mini["hub"] / "jwst"), split="train").select(range(12))
    plain = prepare_rgb(ds, "image", "jwst", progress=False)
    asinh = prepare_rgb(ds, "image", "jwst", progress=False, stretch="asinh")
    assert (plain.scaling.stretch, plain.scaling.a) == ("percentile", None)
    assert (asinh.scaling.stretch, asinh.scaling.a) == ("asinh", 0.1)  # astropy's AsinhStretch default
    assert asinh.scaling.low == plain.scaling.low and asinh.rgb.mean() > plain.rgb.mean()  # the faint end lifted
    assert prepare_rgb(ds, "image", "jwst", progress=False, stretch="log", a=50.0).scaling.a == 50.0
    with pytest.raises(ImageError, match="image: unknown stretch 'sqrt'"):
        prepare_rgb(ds, "image", "jwst", progress=False, stretch="sqrt")
