"""Issue 26's preprocessing axis: the geometric variants, another input size, and the conclusions table."""

import numpy as np
import pandas as pd
import pytest

from samesky.align import preprocessing
from samesky.embed.geometry import close_crop, galaxy_extent, resize


def _galaxy(sigma, n=48, noise=3.0, seed=0, centre=None):
    y, x = np.mgrid[:n, :n]
    cy, cx = centre or (n / 2, n / 2)
    image = 200 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
    image += np.random.default_rng(seed).normal(20, noise, (n, n))
    return np.repeat(np.clip(image, 0, 255)[..., None], 3, axis=2).astype(np.uint8)


def test_the_galaxy_extent_grows_with_its_size_and_a_blank_cutout_has_none():
    sizes = [galaxy_extent(_galaxy(s)) for s in (2, 4, 8)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[1] == pytest.approx(4 * 0.9, rel=0.25)  # segmentation cuts the wings: a little under sigma
    assert galaxy_extent(_galaxy(3, centre=(8, 8))) is None  # nothing under the centre
    assert galaxy_extent(np.full((48, 48, 3), 20, np.uint8)) is None


def test_a_close_crop_magnifies_a_small_galaxy_and_keeps_blank_and_uncropped_images_whole():
    small, big = _galaxy(2), _galaxy(7)
    blank = np.full((48, 48, 3), 20, np.uint8)
    out = close_crop(np.stack([small, big, blank, small]), extent=3.0, min_size=16,
                     skip=np.array([False, False, False, True]))
    assert out.rgb.shape == (4, 48, 48, 3)
    assert out.half_size[0] == 8.0  # 3 sigma < min_size / 2: the smallest crop
    assert 12 < out.half_size[1] <= 24.0  # 3 x its semi-major sigma, within the cutout
    assert list(out.uncropped) == [False, False, True, False]
    assert np.array_equal(out.rgb[2], blank) and np.array_equal(out.rgb[3], small)  # kept as they were
    bright = (out.rgb[0, ..., 0] > 100).sum()
    assert bright > 2.5 * (small[..., 0] > 100).sum()  # the galaxy fills more of the frame (48 / 16 = 3x wider)


def test_resize_is_pillows_bicubic():
    from PIL import Image

    rgb = np.stack([_galaxy(4), _galaxy(6, seed=1)])
    out = resize(rgb, 96)
    assert out.shape == (2, 96, 96, 3)
    expected = np.asarray(Image.fromarray(rgb[1]).resize((96, 96), Image.BICUBIC))
    assert np.array_equal(out[1], expected)


def test_a_transformer_takes_another_input_size_with_interpolated_position_embeddings(tmp_path):
    transformers = pytest.importorskip("transformers")
    from samesky.embed.hf import HFVisionModel
    from samesky.registry import get_spec

    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32)
    model = transformers.ViTModel(config, add_pooling_layer=False)
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    loaded = HFVisionModel(model, get_spec("vit", "base"), processor)
    rgb = np.stack([_galaxy(4), _galaxy(6)])
    native = loaded.prepare_images(rgb)["pixel_values"]
    assert tuple(native.shape[-2:]) == (32, 32)
    import torch

    with pytest.raises(ValueError, match="doesn't match"):  # without interpolation a ViT refuses another size
        model(pixel_values=torch.zeros(1, 3, 64, 64))
    loaded.set_input_size(64)
    inputs = loaded.prepare_images(resize(rgb, 64))
    assert tuple(inputs["pixel_values"].shape[-2:]) == (64, 64)
    emb = loaded.embed(inputs)
    assert emb.shape == (2, 16) and np.isfinite(emb.detach().numpy()).all()


def _scores(variant_shift=0.0, null_p=0.001):
    """Synthetic scores of one pair: two families of three sizes, crossmodal and intramodal, at k = 10."""
    rows = []
    for family in ("vit", "dinov2"):
        for i, (size, params) in enumerate((("s", 10), ("m", 100), ("l", 1000))):
            model = f"{family}-{size}"
            rows.append({"pair": "desi_hsc", "kind": "crossmodal", "side": "desi", "model_a": "specformer-base",
                         "model_b": model, "family": family, "size": size, "params_m": params, "size_a": "base",
                         "k": 10, "n": 50, "mknn": 0.1 + 0.02 * i + variant_shift, "null_mean": 0.08, "p_value": null_p})
    return pd.DataFrame(rows)


def _overlaps(scores, gain):
    rows = []
    for _, r in scores.iterrows():
        base = {"s": 1, "m": 2, "l": 3}[r["size"]]
        for obj in range(50):
            rows.append({"pair": r["pair"], "kind": r["kind"], "side": r["side"], "model_a": r["model_a"],
                         "model_b": r["model_b"], "k": 10, "object_id": str(obj),
                         "overlap": base * gain + (obj % 3)})
    return pd.DataFrame(rows)


def test_the_conclusions_table_says_which_variant_changes_which_verdict():
    default, same, weaker = _scores(), _scores(0.01), _scores(-0.05, null_p=0.2)
    scores = {"default": default, "brighter": same, "flat": weaker}
    overlaps = {"default": _overlaps(default, 1), "brighter": _overlaps(same, 1), "flat": _overlaps(weaker, 0)}
    out = preprocessing.conclusions(scores, overlaps, 10, "desi_hsc", n_bootstrap=200, seed=0)
    out = out.set_index(["variant", "conclusion"])
    assert out.loc[("default", "crossmodal above null"), "holds"]
    assert out.loc[("brighter", "crossmodal above null"), "same_as_default"]
    assert not out.loc[("flat", "crossmodal above null"), "holds"]
    assert not out.loc[("flat", "crossmodal above null"), "same_as_default"]
    grows = out.loc[("default", "crossmodal grows with size")]
    assert grows["value"].startswith("4 up, 0 down") and grows["p_value"] == pytest.approx(0.0625)
    flat = out.loc[("flat", "crossmodal grows with size")]  # every overlap equal across sizes: nothing decided
    assert flat["value"].startswith("0 up, 0 down, 4 undecided")
    table = preprocessing.scores_table(scores, 10)
    assert (table.loc[table["variant"] == "brighter", "delta_mknn"].round(9) == 0.01).all()
    assert (table.loc[table["variant"] == "default", "delta_mknn"] == 0).all()
