"""Models through the real loading path: saved locally, loaded with from_pretrained / checkpoint readers."""

import json

import numpy as np
import pytest
import torch

from samesky.embed.families import spiral_order
from samesky.embed.models import ModelLoadError, load_model, read_manifest, write_mini_model
from samesky.registry import get_spec, zoo_specs

ZOO = zoo_specs()
FAMILY_SIZES = sorted((s.family, s.size) for s in ZOO.values() if s.mini)


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
            # flux models (AstroCLIP's image encoders: Legacy g, r, z; AION: each survey's bands) take
            # calibrated flux of one survey; the others 8-bit RGB
            survey = (spec.reads or ("legacysurvey",))[0]
            if model.flux_bands:
                n_bands = len(model.flux_bands_for(survey))
                batch = np.random.default_rng(1).normal(0, 0.1, (5, n_bands, 48, 48)).astype(np.float32)
            else:
                batch = rgb_batch

            def prepare(b):
                return model.prepare_flux(b, survey) if model.flux_bands else model.prepare_images(b)
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
    assert config["model_type"] == "vit" and config["hidden_size"] == spec.mini["config"]["hidden_size"]
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
    with pytest.raises(ModelLoadError, match="records no spec"):
        load_model(bad)
    with pytest.raises(ModelLoadError, match=r"could not load vit-base \(hf\) from"):
        load_model(bad, get_spec("vit", "base"))


def test_astropt_spiral_starts_at_the_centre_and_covers_every_patch():
    order = spiral_order(5)
    assert sorted(order) == list(range(25))
    assert order[0] == 12  # the centre patch of a 5x5 grid comes first
    assert order[-1] == 0  # the walk ends at the top-left corner, where AstroPT's spiral starts
    assert list(spiral_order(2)) == [2, 3, 1, 0]


@pytest.mark.parametrize("transposed", [False, True])
def test_astropt_tokens_follow_astropts_loader_in_either_orientation(tmp_path, transposed):
    """AstroPT's loader (GalaxyImageDataset.process_galaxy: ``c (h p1) (w p2) -> (h w) (p1 p2 c)``, each patch
    standardised, spiral order) on a (C, H, W) image, or on the (C, W, H) transpose the Platonic Universe code
    feeds it (``swapaxes(0, 2)`` of (H, W, C)), gives our tokens for that orientation. (astropt's module
    imports torchvision, so its rearrangement is written out here.)"""
    write_mini_model(get_spec("astropt", "small"), tmp_path / "astropt", seed=0)
    model = load_model(tmp_path / "astropt")
    model.transposed = transposed
    p = model.patch_size
    rgb = np.random.default_rng(1).integers(0, 256, (2, 4 * p, 4 * p, 3), dtype=np.uint8)  # not symmetric
    ours = model.prepare_images(rgb)["images"]
    for b in range(2):
        image = torch.from_numpy(rgb[b].astype(np.float32) / 255.0)  # (H, W, C)
        chw = image.swapaxes(0, 2) if transposed else image.permute(2, 0, 1)
        c, h, w = chw.shape
        patches = chw.reshape(c, h // p, p, w // p, p).permute(1, 3, 2, 4, 0).reshape(-1, p * p * c)
        std, mean = torch.std_mean(patches, dim=1, keepdim=True)
        reference = ((patches - mean) / (std + 1e-8))[torch.from_numpy(spiral_order(h // p))]
        assert torch.allclose(ours[b], reference, atol=1e-5)
    model.transposed = not transposed
    assert not torch.allclose(model.prepare_images(rgb)["images"], ours, atol=1e-3)


class _FakeHub:
    """The two huggingface_hub calls ``download_model`` makes, served from local folders (repo id -> folder),
    so the real download path runs offline."""

    def __init__(self, repos):
        self.repos = repos

    def HfApi(self):  # noqa: N802 (stands in for the class)
        hub = self

        class Api:
            def model_info(self, repo_id, revision=None):
                from types import SimpleNamespace

                files = [str(p.relative_to(hub.repos[repo_id])) for p in hub.repos[repo_id].rglob("*") if p.is_file()]
                return SimpleNamespace(sha="c0ffee" * 6 + "abcd", siblings=[SimpleNamespace(rfilename=f) for f in files])

        return Api()

    def snapshot_download(self, repo_id, revision, local_dir, allow_patterns=None):
        import fnmatch
        import shutil

        for path in self.repos[repo_id].rglob("*"):
            rel = str(path.relative_to(self.repos[repo_id]))
            if path.is_file() and (allow_patterns is None or any(fnmatch.fnmatch(rel, p) for p in allow_patterns)):
                (local_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, local_dir / rel)


def test_weights_are_safetensors_where_released_else_pytorch_bin():
    from samesky.embed.models import hub_download_plan

    spec = get_spec("convnextv2", "nano")
    assert hub_download_plan(spec, ["config.json", "model.safetensors", "pytorch_model.bin"])[2] == "safetensors"
    patterns, entry, fmt = hub_download_plan(spec, ["config.json", "pytorch_model.bin"])
    assert "*.bin" in patterns and "*.safetensors" not in patterns and fmt == "pytorch .bin"
    with pytest.raises(ModelLoadError, match=r"facebook/convnextv2-nano-22k-224': no weights file"):
        hub_download_plan(spec, ["config.json", "README.md"])
    with pytest.raises(ModelLoadError, match=r"Smith42/astroPT_v2.0': no 'astropt/015M/ckpt.pt' at this revision"):
        hub_download_plan(get_spec("astropt", "small"), ["astropt/095M/ckpt.pt"])


def test_a_convnextv2_repository_with_only_pytorch_model_bin_downloads_and_loads(tmp_path, monkeypatch):
    import huggingface_hub
    from transformers import AutoModel

    from samesky.embed.models import download_model

    spec = get_spec("convnextv2", "nano")
    write_mini_model(spec, tmp_path / "mini", seed=0)
    repo = tmp_path / "repo"  # the repository's layout on its default branch: config, processor, a .bin
    repo.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (repo / name).write_text((tmp_path / "mini" / name).read_text())
    torch.save(AutoModel.from_pretrained(tmp_path / "mini").state_dict(), repo / "pytorch_model.bin")
    assert not list(repo.glob("*.safetensors")) and (repo / "pytorch_model.bin").exists()
    hub = _FakeHub({spec.hub_id: repo})
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.HfApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    manifest = download_model(spec, tmp_path / "model")
    assert manifest["weights_format"] == "pytorch .bin" and (tmp_path / "model" / "pytorch_model.bin").exists()
    rgb = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        a = load_model(tmp_path / "model").embed(load_model(tmp_path / "model").prepare_images(rgb))
        b = load_model(tmp_path / "mini").embed(load_model(tmp_path / "mini").prepare_images(rgb))
    assert torch.allclose(a, b)


def test_astroclips_encoders_share_one_downloaded_checkpoint(tmp_path, monkeypatch):
    import huggingface_hub

    from samesky.embed.families import adapter_of
    from samesky.embed.models import download_model

    image, spectrum, dino = get_spec("astroclip", "image"), get_spec("astroclip", "spectrum"), get_spec("astrodino", "large")
    assert image.download == spectrum.download == dino.download
    by_download = {}
    for spec in ZOO.values():  # one download, one set of files: what sharing relies on
        if spec.weights == "hub":
            by_download.setdefault(spec.download, set()).add(repr(adapter_of(spec.adapter).hub_files(spec)))
    assert all(len(files) == 1 for files in by_download.values())
    assert len([d for d in by_download if d[0] == "polymathic-ai/astroclip"]) == 1
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "astroclip.ckpt").write_bytes(b"checkpoint")
    hub = _FakeHub({image.hub_id: repo})
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.HfApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    shared = tmp_path / "models" / "shared" / "polymathic-ai--astroclip"
    download_model(image, shared)
    for spec in (image, spectrum, dino):
        folder = tmp_path / "models" / spec.name
        manifest = download_model(spec, folder, shared=shared)
        assert (folder / manifest["entry"]).resolve() == (shared / "astroclip.ckpt").resolve()
        assert manifest["revision_resolved"] == read_manifest(shared)["revision_resolved"]
        assert manifest["family"] == spec.family and manifest["size"] == spec.size
        assert not list(folder.glob("*.ckpt"))  # no second copy


LAYERED = [("vit", "base"), ("dinov2", "small"), ("ijepa", "huge"), ("convnextv2", "nano"), ("astropt", "base"),
           ("specformer", "base")]


def _mini_inputs(model, spec):
    rng = np.random.default_rng(0)
    if spec.family == "specformer":
        return {"flux": torch.from_numpy(rng.normal(1, 0.2, (3, 7781)).astype(np.float32))}
    side = 4 * spec.mini["patch_size"] if spec.family == "astropt" else spec.mini["config"]["image_size"]
    return model.prepare_images(rng.integers(0, 256, (3, side, side, 3), dtype=np.uint8))


@pytest.mark.parametrize("family, size", LAYERED)
def test_layerwise_embeddings_have_one_layer_per_block_and_the_reference_layer_is_the_embedding(tmp_path, family,
                                                                                                size):
    spec = get_spec(family, size)
    write_mini_model(spec, tmp_path / "m", seed=0)
    model = load_model(tmp_path / "m")
    inputs = _mini_inputs(model, spec)
    with torch.no_grad():
        layers, final = model.embed_layers(inputs), model.embed(inputs)
    config = spec.mini.get("config", {})
    expected = {"vit": config.get("num_hidden_layers"), "dinov2": config.get("num_hidden_layers"),
                "ijepa": config.get("num_hidden_layers"), "convnextv2": len(config.get("depths", [])),
                "astropt": spec.mini.get("n_layer"), "specformer": spec.mini.get("num_layers")}[family]
    assert len(layers) == len(model.layer_names()) == expected
    assert torch.equal(layers[model.reference_layer], final)  # bit for bit: the final-layer tables are one cell
    if family in ("vit", "dinov2", "ijepa", "convnextv2"):  # against transformers' own output_hidden_states
        with torch.no_grad():
            hidden = model.model(pixel_values=inputs["pixel_values"], output_hidden_states=True).hidden_states
        assert len(hidden) == expected + 1  # the input embedding, then one per block or stage
        for layer, h in zip(layers[:-1], hidden[1:-1]):
            assert torch.allclose(layer, model.pooling.pool(h, model._context(inputs, h)))
    if family == "astropt":  # against a forward pass written out block by block
        gpt = model.model
        with torch.no_grad():
            x = gpt.transformer.drop(gpt.transformer.wte["images"](inputs["images"])
                                     + gpt.transformer.wpe["images"](inputs["images_positions"]))
            for layer, block in zip(layers, gpt.transformer.h):
                x = block(x)
                assert torch.allclose(layer, x.mean(1))
        assert model.reference_layer == expected // 2
