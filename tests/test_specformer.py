"""Specformer: the released checkpoint's layout, strict state_dict round trip, AstroCLIP tokenisation."""

import torch

from samesky.embed.specformer import RELEASED_HPARAMS, SPECFORMER_KEYS, Specformer, load_specformer_checkpoint

# The released polymathic-ai/specformer state_dict, as AstroCLIP's SpecFormer module names it:
# embeddings, 6 blocks of (layernorm1, fused attention, projection, layernorm2, mlp encoder/decoder),
# the final LayerNorm and the reconstruction head. Written out in full so a renamed module fails here.
BLOCK_PARTS = ["layernorm1.weight", "layernorm1.bias", "attention.attention.weight", "attention.attention.bias",
               "attention.projection.weight", "attention.projection.bias", "layernorm2.weight", "layernorm2.bias",
               "mlp.encoder.weight", "mlp.encoder.bias", "mlp.decoder.weight", "mlp.decoder.bias"]
DOCUMENTED_KEYS = (["data_embed.weight", "data_embed.bias", "position_embed.weight"]
                   + [f"blocks.{i}.{part}" for i in range(6) for part in BLOCK_PARTS]
                   + ["final_layernorm.weight", "final_layernorm.bias", "head.weight", "head.bias"])


def test_the_released_architecture_has_the_documented_keys_shapes_and_size(tmp_path):
    model = Specformer(**RELEASED_HPARAMS)
    state = model.state_dict()
    assert list(state) == DOCUMENTED_KEYS == SPECFORMER_KEYS
    assert state["data_embed.weight"].shape == (768, 22)
    assert state["position_embed.weight"].shape == (800, 768)
    assert state["blocks.0.attention.attention.weight"].shape == (3 * 768, 768)
    assert state["blocks.5.mlp.encoder.weight"].shape == (4 * 768, 768)
    assert state["head.weight"].shape == (22, 768)
    n_params = sum(p.numel() for p in model.parameters())
    assert 42e6 < n_params < 44e6, n_params  # "Specformer Base 43M" (Platonic Universe, Table 3)
    # an AstroCLIP-style checkpoint file loads back strictly, giving the same outputs
    torch.save({"hyper_parameters": RELEASED_HPARAMS, "state_dict": state}, tmp_path / "specformer.ckpt")
    again = load_specformer_checkpoint(tmp_path / "specformer.ckpt")
    flux = torch.randn(2, 7781) * 3 + 10
    with torch.inference_mode():
        assert torch.allclose(model.eval()(flux), again(flux))


def test_a_desi_spectrum_becomes_778_tokens_with_its_statistics_first():
    model = Specformer(embed_dim=16, num_layers=1, num_heads=2)
    flux = torch.randn(3, 7781) * 2 + 5
    tokens = model.tokenize(flux)
    assert tokens.shape == (3, 778, 22)
    mean, std = flux.mean(1), flux.std(1)
    assert torch.allclose(tokens[:, 0, 0], (mean - 2) / 2)
    assert torch.allclose(tokens[:, 0, 1], (std - 2) / 8)
    standard = (flux - mean[:, None]) / std[:, None]
    # token k holds pixels 10(k-1) .. 10(k-1)+19, left-padded with two zeros
    assert torch.allclose(tokens[:, 1, 2:], standard[:, 0:20], atol=1e-6)
    assert torch.allclose(tokens[:, 5, 2:], standard[:, 40:60], atol=1e-6)
    assert torch.all(tokens[:, 1:, :2] == 0)
    # std is clipped below at 0.2, so a flat spectrum does not blow up
    flat = model.tokenize(torch.full((1, 7781), 4.0))
    assert torch.isfinite(flat).all() and flat[0, 0, 1] == (0.2 - 2) / 8


def test_pretraining_masks_runs_as_astroclip_and_lowers_the_masked_loss():
    from samesky.embed.specformer import mask_token_runs, pretrain

    tokens = torch.randn(3, 778, 22) + 5  # no token is zero before masking
    masked = mask_token_runs(tokens, 6, 50, torch.Generator().manual_seed(0))
    zero = (masked == 0).all(-1)
    assert (zero.sum(1) == 6 * 50).all()  # six runs of fifty tokens per spectrum, never overlapping
    for row in zero:  # one run in each sixth of the sequence
        starts = [i for i in range(778) if row[i] and (i == 0 or not row[i - 1])]
        assert len(starts) == 6 and all(k * 778 // 6 <= s < (k + 1) * 778 // 6 for k, s in enumerate(starts))
    assert torch.equal(masked[~zero], tokens[~zero])

    # spectra that are smooth functions of two latent numbers: the masked runs are predictable
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(64, 1, generator=g), torch.rand(64, 1, generator=g)
    x = torch.linspace(0, 1, 1000)
    flux = 2 + a * torch.sin(8 * x + 3 * b) + b * x
    def run():
        torch.manual_seed(0)
        model = Specformer(**{**RELEASED_HPARAMS, "embed_dim": 16, "num_layers": 1, "num_heads": 2})
        return model, pretrain(model, flux, steps=60, batch_size=16, learning_rate=3e-3, mask_chunks=6, mask_width=10, seed=3)
    model, losses = run()
    assert sum(losses[-10:]) / 10 < 0.65 * sum(losses[:10]) / 10  # from ~1.05 to ~0.53 here
    assert not model.training
    assert run()[1] == losses  # same seed, same steps, same losses


def test_cropped_pretraining_sees_every_position_and_learns():
    """Cropped steps: the statistics token plus one random run of consecutive tokens, positions kept, so
    the position embeddings of the whole spectrum get trained; the masked runs stay predictable."""
    from samesky.embed.specformer import RELEASED_HPARAMS, Specformer, crop_positions, pretrain

    g = torch.Generator().manual_seed(0)
    seen = torch.zeros(778)
    for _ in range(4000):
        pos = crop_positions(778, 195, g, min_tokens=42)
        assert pos[0] == 0 and 42 <= len(pos) - 1 <= 195 and torch.equal(pos[1:], torch.arange(pos[1], pos[-1] + 1))
        seen[pos] += 1
    assert seen[0] == 4000
    middle = 4000 * 195 / (778 - 2 + 195 - 2 * 42 + 1)  # runs cut at the ends: the rate away from the ends
    assert (seen[195:583] - middle).abs().max() < 0.15 * middle
    assert seen[1:].min() > 0.85 * middle * (195 - 42) / 195, seen[[1, 2, 776, 777]]  # the ends nearly as often
    assert torch.equal(crop_positions(778, None, g), torch.arange(778))
    assert torch.equal(crop_positions(778, 777, g), torch.arange(778))  # a crop as long as the spectrum

    # cropping changes what a step sees, nothing else: the full-length encoding of a model equals the
    # encoding with explicit positions 0..n-1, and a crop's states differ from the same tokens in place
    torch.manual_seed(0)
    model = Specformer(**{**RELEASED_HPARAMS, "embed_dim": 16, "num_layers": 1, "num_heads": 2}).eval()
    tokens = model.tokenize(2 + torch.randn(3, 1000))
    assert torch.equal(model.encode(tokens), model.encode(tokens, torch.arange(tokens.shape[1])))

    g1 = torch.Generator().manual_seed(1)
    a, b = torch.rand(64, 1, generator=g1), torch.rand(64, 1, generator=g1)
    x = torch.linspace(0, 1, 1000)
    flux = 2 + a * torch.sin(8 * x + 3 * b) + b * x
    torch.manual_seed(0)
    model = Specformer(**{**RELEASED_HPARAMS, "embed_dim": 16, "num_layers": 1, "num_heads": 2})
    before = model.position_embed.weight.detach().clone()
    losses = pretrain(model, flux, steps=60, batch_size=16, learning_rate=3e-3, mask_chunks=2, mask_width=10,
                      seed=3, crop_tokens=40)
    assert sum(losses[-10:]) / 10 < 0.65 * sum(losses[:10]) / 10
    moved = (model.position_embed.weight != before).any(1)
    assert moved[:99].all()  # the 99 tokens of a 1000-pixel spectrum all trained, by crops of 40


def test_mini_specformer_records_its_pretraining(tmp_path):
    import json

    import numpy as np
    import pytest

    from samesky.embed.models import MANIFEST, load_model, pretrain_mini_specformer, write_mini_model
    from samesky.registry import get_spec

    spec = get_spec("specformer", "base")
    flux = 2 + np.random.default_rng(0).normal(size=(40, 7781)).astype(np.float32)
    settings = {"dataset": "desi", "steps": 3, "batch_size": 8, "learning_rate": 1e-3, "mask_chunks": 6, "mask_width": 20,
                "crop_tokens": 200}
    write_mini_model(spec, tmp_path / "random", seed=1)
    pretrain_mini_specformer(tmp_path / "random", tmp_path / "pre", flux, settings, seed=1, source={"path": "x"})
    manifest = json.loads((tmp_path / "pre" / MANIFEST).read_text())
    assert manifest["weights"] == "mini-pretrained" and manifest["pretraining"]["n_spectra"] == 40
    assert manifest["pretraining"]["settings"] == settings and manifest["pretraining"]["source"] == {"path": "x"}
    assert json.loads((tmp_path / "random" / MANIFEST).read_text())["weights"] == "mini-random"
    pre, rand = (load_model(tmp_path / d).model.state_dict() for d in ("pre", "random"))
    assert not torch.equal(pre["data_embed.weight"], rand["data_embed.weight"])  # training moved the weights
    write_mini_model(get_spec("vit", "base"), tmp_path / "vit", seed=1)
    with pytest.raises(ValueError, match="only a random mini Specformer is pre-trained here, not vit-base"):
        pretrain_mini_specformer(tmp_path / "vit", tmp_path / "vit-pre", flux, settings, seed=1)
    with pytest.raises(ValueError, match="only a random mini Specformer is pre-trained here"):  # not twice
        pretrain_mini_specformer(tmp_path / "pre", tmp_path / "twice", flux, settings, seed=1)
    with pytest.raises(ValueError, match="at least batch_size = 8 spectra"):
        pretrain_mini_specformer(tmp_path / "random", tmp_path / "few", flux[:4], settings, seed=1)
    assert not (tmp_path / "few").exists()  # nothing written on a refusal
