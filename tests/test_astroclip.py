"""AstroCLIP's encoders through the real loading path: a mini checkpoint in the released layout (DINOv2
weight names, ``image_encoder.`` / ``spectrum_encoder.`` prefixes, Lightning's wrapping) is loaded back
and checked against a forward pass written here from the raw weights alone."""

import math
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samesky.embed.astroclip import (AstroCLIPEncoder, astroclip_image_inputs, legacy_viewer_rgb, load_astroclip,
                                     read_lightning_state, released_layout)
from samesky.embed.models import load_model, read_manifest, write_mini_model
from samesky.registry import get_spec

ARCH = {"image": {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 4,
                  "image_size": 12, "layerscale_value": 0.5, "mlp_ratio": 4},
        "spectrum": {"input_dim": 22, "embed_dim": 16, "num_layers": 1, "num_heads": 2, "max_len": 800,
                     "slice_section_length": 20, "slice_overlap": 10},
        "head": {"embed_dim": 8, "n_head": 2}}


def _released_checkpoint(path, chunked=False, seed=0):
    """Random encoders saved as astroclip.ckpt holds them; returns the flat released state."""
    torch.manual_seed(seed)
    state = {}
    for kind in ("image", "spectrum"):
        model = AstroCLIPEncoder(kind, ARCH)
        for p in model.parameters():  # LayerScale and LayerNorm start at constants: make every weight matter
            p.data.add_(0.1 * torch.randn_like(p))
        state |= released_layout(model.state_dict(), kind)
    if chunked:  # DINOv2 with block_chunks: blocks.<chunk>.<block>.
        state = {k.replace("backbone.blocks.", "backbone.blocks.0."): v for k, v in state.items()}
    torch.save({"state_dict": state, "hyper_parameters": {"logit_scale": 15.5}}, path)
    return state


def _vit_tokens(w, x, with_cls):
    """A DINOv2 ViT from its original weight names: patches, (class token + positions), blocks, norm."""
    d, heads = ARCH["image"]["hidden_size"], ARCH["image"]["num_attention_heads"]
    t = F.conv2d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=4).flatten(2).transpose(1, 2)
    if with_cls:
        t = torch.cat([w["cls_token"].expand(len(x), -1, -1), t], 1) + w["pos_embed"]
    for i in range(ARCH["image"]["num_hidden_layers"]):
        b = {k[len(f"blocks.{i}."):]: v for k, v in w.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(t, (d,), b["norm1.weight"], b["norm1.bias"], eps=1e-6)
        q, k, v = F.linear(h, b["attn.qkv.weight"], b["attn.qkv.bias"]).chunk(3, -1)
        split = lambda z: z.view(z.shape[0], z.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads), -1) @ split(v)
        att = F.linear(att.transpose(1, 2).reshape(h.shape), b["attn.proj.weight"], b["attn.proj.bias"])
        t = t + b["ls1.gamma"] * att
        h = F.layer_norm(t, (d,), b["norm2.weight"], b["norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, b["mlp.fc1.weight"], b["mlp.fc1.bias"])), b["mlp.fc2.weight"], b["mlp.fc2.bias"])
        t = t + b["ls2.gamma"] * h
    return F.layer_norm(t, (d,), w["norm.weight"], w["norm.bias"], eps=1e-6)


def _head(w, tokens, residual):
    """AstroCLIP's cross-attention head from its raw weights: one query, multi-head attention, LayerNorm,
    MLP (with a residual for spectra only)."""
    e, heads = ARCH["head"]["embed_dim"], ARCH["head"]["n_head"]
    a = {k[len("cross_attention."):]: v for k, v in w.items() if k.startswith("cross_attention.")}
    mha = {k[len("multihead_attn."):]: v for k, v in a.items() if k.startswith("multihead_attn.")}
    if "in_proj_weight" in mha:
        wq, wk, wv = mha["in_proj_weight"].chunk(3)
    else:
        wq, wk, wv = mha["q_proj_weight"], mha["k_proj_weight"], mha["v_proj_weight"]
    bq, bk, bv = mha["in_proj_bias"].chunk(3)
    q = F.linear(a["query"].expand(len(tokens), -1, -1), wq, bq)
    k, v = F.linear(tokens, wk, bk), F.linear(tokens, wv, bv)
    split = lambda z: z.view(z.shape[0], z.shape[1], heads, e // heads).transpose(1, 2)  # noqa: E731
    att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(e // heads), -1) @ split(v)
    x = F.linear(att.transpose(1, 2).reshape(len(tokens), 1, e), mha["out_proj.weight"], mha["out_proj.bias"])
    x = F.layer_norm(x, (e,), a["layernorm.weight"], a["layernorm.bias"])
    mlp = F.linear(F.gelu(F.linear(x, w["mlp.encoder.weight"], w["mlp.encoder.bias"])),
                   w["mlp.decoder.weight"], w["mlp.decoder.bias"])
    return (x + mlp if residual else mlp)[:, 0]


def _part(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("chunked", [False, True])
def test_image_encoders_match_a_forward_pass_from_the_raw_weights(tmp_path, chunked):
    state = _released_checkpoint(tmp_path / "astroclip.ckpt", chunked=chunked)
    raw = {k.replace("blocks.0.", "blocks.", 1) if chunked else k: v
           for k, v in _part(state, "image_encoder.backbone.").items()}
    x = torch.rand(3, 3, 12, 12)
    with torch.inference_mode():
        aligned = load_astroclip(tmp_path / "astroclip.ckpt", "image", ARCH)(x)
        unaligned = load_astroclip(tmp_path / "astroclip.ckpt", "astrodino", ARCH)(x)
        expect_aligned = _head(_part(state, "image_encoder."), _vit_tokens(raw, x, with_cls=False), residual=False)
        expect_unaligned = _vit_tokens(raw, x, with_cls=True)[:, 0]
    assert aligned.shape == (3, ARCH["head"]["embed_dim"]) and unaligned.shape == (3, ARCH["image"]["hidden_size"])
    torch.testing.assert_close(aligned, expect_aligned, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(unaligned, expect_unaligned, atol=1e-5, rtol=1e-4)


def test_spectrum_encoder_is_specformer_tokens_through_the_head(tmp_path):
    state = _released_checkpoint(tmp_path / "astroclip.ckpt")
    model = load_astroclip(tmp_path / "astroclip.ckpt", "spectrum", ARCH)
    flux = torch.randn(2, 7781) + 3
    with torch.inference_mode():
        tokens = model.backbone(flux)
        expect = _head(_part(state, "spectrum_encoder."), tokens, residual=True)
        got = model(flux)
    assert tokens.shape[1] == 778  # Specformer's 777 windows and its statistics token, all attended over
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-4)
    # the backbone is the checkpoint's spectrum_encoder.backbone, loaded strictly
    torch.testing.assert_close(model.backbone.data_embed.weight, state["spectrum_encoder.backbone.data_embed.weight"])


def test_a_checkpoint_pickling_classes_not_installed_here_still_loads(tmp_path):
    mod = types.ModuleType("astroclip_stand_in")

    class ImageHead:  # what Lightning keeps in hyper_parameters: AstroCLIP's own encoder objects
        def __init__(self):
            self.weights = torch.ones(2)

    ImageHead.__module__, ImageHead.__qualname__ = mod.__name__, "ImageHead"
    mod.ImageHead = ImageHead
    sys.modules[mod.__name__] = mod
    try:
        state = {"image_encoder.x": torch.zeros(1)}
        torch.save({"state_dict": state, "hyper_parameters": {"image_encoder": ImageHead()}}, tmp_path / "c.ckpt")
    finally:
        del sys.modules[mod.__name__]
    assert list(read_lightning_state(tmp_path / "c.ckpt")) == ["image_encoder.x"]
    torch.save({"weights": state}, tmp_path / "not_lightning.ckpt")
    with pytest.raises(KeyError, match="not a Lightning checkpoint"):
        read_lightning_state(tmp_path / "not_lightning.ckpt")
    with pytest.raises(KeyError, match="no weights under 'spectrum_encoder.'"):
        load_astroclip(tmp_path / "c.ckpt", "spectrum", ARCH)


def test_legacy_viewer_rgb_on_hand_computed_pixels():
    flux = np.zeros((3, 1, 2))  # g, r, z; pixel 0 empty sky, pixel 1 bright in z only
    flux[2, 0, 1] = 1.0
    rgb = legacy_viewer_rgb(flux)
    sky = np.arcsinh(20 * 0.03) / np.sqrt(20)  # every band at the offset m = 0.03: I = m, each plane = stretch
    np.testing.assert_allclose(rgb[0, 0], [sky] * 3, rtol=1e-6)
    intensity = (2.2 + 0.03 + 0.03 + 0.03) / 3
    stretch = np.arcsinh(20 * intensity) / np.sqrt(20)
    expect = np.clip(np.array([2.23, 0.03, 0.03]) * stretch / intensity, 0, 1)  # z -> red plane
    np.testing.assert_allclose(rgb[0, 1], expect, rtol=1e-6)
    assert rgb[0, 1, 0] > rgb[0, 1, 2]


def test_image_inputs_are_cropped_to_the_centre_with_height_and_width_swapped():
    flux = np.zeros((1, 3, 30, 40))
    flux[0, 2, 2, 30] = 5.0  # one bright z pixel at row 2, column 30
    x = astroclip_image_inputs(flux, crop=24)
    assert x.shape == (1, 3, 24, 24)
    full = astroclip_image_inputs(flux, crop=30)  # rows become columns: (W = 40, H = 30), cropped to 30 x 30
    assert full[0, 0].argmax().item() == np.ravel_multi_index((30 - 5, 2), (30, 30))
    with pytest.raises(ValueError, match="at least 48 pixels"):
        astroclip_image_inputs(flux, crop=48)


def test_mini_astroclip_models_save_in_the_released_layout_and_load_through_load_model(tmp_path):
    for family, size in (("astroclip", "image"), ("astroclip", "spectrum"), ("astrodino", "large")):
        spec = get_spec(family, size)
        write_mini_model(spec, tmp_path / spec.name, seed=3)
        manifest = read_manifest(tmp_path / spec.name)
        assert manifest["entry"] == "astroclip.ckpt" and manifest["arch"]["image"]["image_size"] == 24
        prefixes = {k.split(".")[0] for k in read_lightning_state(tmp_path / spec.name / "astroclip.ckpt")}
        assert prefixes == {"image_encoder", "spectrum_encoder"}
        model = load_model(tmp_path / spec.name)
        assert (model.flux_bands is None) == (size == "spectrum")
    assert spec.reads_survey("legacysurvey") and not spec.reads_survey("hsc")
