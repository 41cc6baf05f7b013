"""Models through the real loading path: saved locally, loaded with from_pretrained / checkpoint readers."""

import json

import numpy as np
import pytest
import torch

from samesky.embed.families import spiral_order
from samesky.embed.models import ModelLoadError, load_model, read_manifest, write_mini_model
from samesky.registry import REGISTRY, get_spec

FAMILY_SIZES = sorted(REGISTRY)


@pytest.fixture(scope="module")
def rgb_batch():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("family, size", FAMILY_SIZES)
def test_every_family_and_size_saves_loads_and_embeds(family, size, tmp_path, rgb_batch):
    spec = get_spec(family, size)
    write_mini_model(spec, tmp_path / "m", seed=1)
    manifest = read_manifest(tmp_path / "m")
    assert manifest["family"] == family and manifest["weights"] == "mini-random"
    model = load_model(tmp_path / "m")
    with torch.inference_mode():
        if spec.modality == "image":
            # AstroCLIP's image encoders take g, r, z flux; the others 8-bit RGB
            batch = rgb_batch.transpose(0, 3, 1, 2) / 2550.0 if model.flux_bands else rgb_batch
            prepare = model.prepare_flux if model.flux_bands else model.prepare_images
            emb = model.embed(prepare(batch))
            one_by_one = torch.cat([model.embed(prepare(batch[i:i + 1])) for i in range(5)])
        else:
            flux = torch.randn(5, 7781) + 3
            emb = model.embed({"flux": flux})
            one_by_one = torch.cat([model.embed({"flux": flux[i:i + 1]}) for i in range(5)])
    assert emb.shape[0] == 5 and emb.ndim == 2 and torch.isfinite(emb).all()
    # an object's embedding does not depend on the batch it was computed in
    assert torch.allclose(emb, one_by_one, atol=1e-5, rtol=0)
    # distinct inputs give distinct embeddings (the pooling does not collapse them)
    assert torch.cdist(emb, emb).fill_diagonal_(1).min() > 0


def test_mini_models_are_deterministic_by_seed(tmp_path):
    spec = get_spec("dinov2", "small")
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_mini_model(spec, tmp_path / name, seed=seed)
    weights = {n: load_model(tmp_path / n).model.state_dict() for n in "abc"}
    key = "embeddings.cls_token"
    assert torch.equal(weights["a"][key], weights["b"][key])
    assert not torch.equal(weights["a"][key], weights["c"][key])


def test_from_pretrained_path_uses_the_saved_config_and_processor(tmp_path):
    spec = get_spec("vit", "large")
    write_mini_model(spec, tmp_path / "vit", seed=0)
    config = json.loads((tmp_path / "vit" / "config.json").read_text())
    assert config["model_type"] == "vit" and config["hidden_size"] == spec.mini["hidden_size"]
    model = load_model(tmp_path / "vit")
    assert type(model.model).__name__ == "ViTModel"
    pixels = model.prepare_images(np.zeros((1, 30, 30, 3), np.uint8))["pixel_values"]
    assert pixels.shape == (1, 3, 64, 64)  # the saved processor resizes to the model's input
    assert torch.allclose(pixels, torch.full_like(pixels, -1.0))  # in21k ViTs normalise to [-1, 1]


def test_missing_or_unknown_models_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="holds no model"):
        load_model(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "samesky_model.json").write_text(json.dumps({"family": "vit", "entry": "config.json"}))
    with pytest.raises(ModelLoadError, match="could not load vit from"):
        load_model(bad)


def test_astropt_spiral_starts_at_the_centre_and_covers_every_patch():
    order = spiral_order(5)
    assert sorted(order) == list(range(25))
    assert order[0] == 12  # the centre patch of a 5x5 grid comes first
    assert order[-1] == 0  # the walk ends at the top-left corner, where AstroPT's spiral starts
    assert list(spiral_order(2)) == [2, 3, 1, 0]
