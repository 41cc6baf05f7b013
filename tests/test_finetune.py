"""Seed 003's adaptation pieces (issue 26): LoRA through peft and full fine-tuning, on a small ViT."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from samesky.downstream.finetune import (Classifier, fine_tune, parameter_counts, predict, train,  # noqa: E402
                                         with_lora)

HIDDEN, LAYERS, SIZE = 32, 2, 16


def _classifier(n_classes=3, seed=0):
    torch.manual_seed(seed)
    config = transformers.ViTConfig(image_size=SIZE, patch_size=4, num_channels=3, hidden_size=HIDDEN,
                                    num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=64)
    return Classifier(transformers.ViTModel(config, add_pooling_layer=False), HIDDEN, n_classes)


def _images(n=48, seed=0):
    """A learnable toy problem: the class is which channel is bright."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(0, 0.3, (n, 3, SIZE, SIZE)).astype(np.float32)
    x[np.arange(n), labels] += 1.5
    return x, labels


def test_loras_trainable_parameters_are_its_adapters_and_the_head():
    model = with_lora(_classifier(), rank=4, alpha=8, target_modules=("q_proj", "v_proj"))
    counts = parameter_counts(model)
    # each adapted Linear(d, d) gains A (r x d) and B (d x r); two per layer; plus the head's weights and bias
    adapters = LAYERS * 2 * (4 * HIDDEN + HIDDEN * 4)
    assert counts["trainable"] == adapters + (HIDDEN * 3 + 3)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or n.startswith("head.") for n in names)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) == adapters
    assert counts["fraction"] == pytest.approx(counts["trainable"] / counts["total"]) and counts["fraction"] < 0.2


def test_a_lora_model_before_its_first_step_computes_what_the_frozen_model_did():
    x, _ = _images(8)
    plain = _classifier(seed=1).eval()
    with torch.no_grad():
        before = plain(torch.as_tensor(x)).numpy()
    adapted = with_lora(plain, rank=4).eval()
    with torch.no_grad():
        after = adapted(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(before, after)


def test_fine_tuning_and_lora_lower_the_training_loss_on_a_learnable_problem():
    x, y = _images()
    full = _classifier(seed=2)
    frozen_backbone = [p.detach().clone() for p in full.backbone.parameters()]
    losses = fine_tune(full, x, y, head_epochs=2, full_epochs=4, head_learning_rate=1e-2, full_learning_rate=1e-3,
                       batch_size=16, seed=0)
    assert len(losses["head"]) == 2 and len(losses["full"]) == 4
    assert losses["full"][-1] < losses["head"][0]
    assert any(not torch.equal(a, b) for a, b in zip(frozen_backbone, full.backbone.parameters()))  # it moved
    assert (predict(full, x) == y).mean() > 0.6
    lora = with_lora(_classifier(seed=2), rank=4)
    base = {n: p.detach().clone() for n, p in lora.named_parameters() if "lora_" not in n and not n.startswith("head")}
    curve = train(lora, x, y, epochs=6, learning_rate=1e-2, batch_size=16, seed=0)
    assert curve[-1] < curve[0]
    assert all(torch.equal(base[n], p) for n, p in lora.named_parameters() if n in base)  # the backbone stayed frozen


def test_training_nothing_is_refused():
    model = _classifier()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter is frozen"):
        train(model, *_images(4), epochs=1, learning_rate=1e-3)


def test_attention_maps_are_the_cls_tokens_attention_to_the_patches_in_every_block(tmp_path):
    from samesky.downstream.attention import attention_figure, attention_maps, top_region, upsample

    backbone = _classifier().backbone.eval()
    x, labels = _images(3)
    maps = attention_maps(backbone, x, (SIZE // 4, SIZE // 4))
    assert maps.shape == (3, LAYERS, 4, 4) and (maps >= 0).all()
    out = backbone(pixel_values=torch.as_tensor(x), output_attentions=True)  # the eager weights, by hand
    by_hand = out.attentions[1][:, :, 0, 1:].mean(dim=1).reshape(3, 4, 4).detach().numpy()
    np.testing.assert_allclose(maps[:, 1], by_hand, rtol=1e-6)
    assert (maps.sum(axis=(2, 3)) < 1).all()  # the rest of its attention is on itself
    field = upsample(maps[0, 0], (SIZE, SIZE))
    assert field.shape == (SIZE, SIZE) and field[0, 0] == maps[0, 0, 0, 0] and field[-1, -1] == maps[0, 0, -1, -1]
    assert 0.05 < top_region(field).mean() <= 0.3  # about a tenth of the pixels, in whole patches
    rgb = (np.clip(x.transpose(0, 2, 3, 1), 0, 1) * 255).astype(np.uint8)
    attention_figure(rgb, maps, [f"class {c}" for c in labels], tmp_path / "attention.pdf")
    assert (tmp_path / "attention.pdf").stat().st_size > 1000
