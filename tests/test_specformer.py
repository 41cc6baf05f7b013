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
    assert 42e6 < n_params < 44e6, n_params  # "Specformer Base 43M" (seed 000, Table 3)
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
