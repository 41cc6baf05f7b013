"""Seed 003's adaptation of a vision foundation model to the morphology task (its section 3.2): a linear
head on the backbone's pooled output, trained with the backbone fine-tuned whole (the head alone first,
then everything unfrozen) or through LoRA adapters (peft: low-rank updates on chosen modules, the rest
frozen). The frozen heads of ``classify`` are the third way, on embeddings already written.

Rule ``fine_tune`` (samesky.steps.adaptation) runs them on the morphology task at every label fraction and
seed; tested on a small transformers ViT.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)


class Classifier(torch.nn.Module):
    """``backbone`` (a transformers vision model) -> pooled features -> standardised -> a linear head over
    ``n_classes``.
    ``pooling``: "cls" (the first token of last_hidden_state), "mean" (the mean token), or "pooler" (the
    model's pooler_output, flattened: ResNet's global average pool)."""

    def __init__(self, backbone, n_features: int, n_classes: int, pooling="cls"):
        super().__init__()
        if not callable(pooling) and pooling not in ("cls", "mean", "pooler"):
            raise ValueError(f"pooling {pooling!r}: one of cls, mean, pooler, or a function (output, pixels) -> (B, D)")
        self.backbone, self.pooling = backbone, pooling
        # the pooled features standardised by their batch statistics (running ones in eval), as the frozen
        # heads standardise theirs: a backbone whose features vary little between images (a random one)
        # still trains, and the scale stays right while the backbone moves; no parameters of its own
        self.norm = torch.nn.BatchNorm1d(n_features, affine=False)
        self.head = torch.nn.Linear(n_features, n_classes)

    def features(self, pixel_values):
        out = self.backbone(pixel_values=pixel_values)
        if callable(self.pooling):  # the embedding's own pooling (samesky.embed.hf), so frozen = embedded
            return self.pooling(out, pixel_values)
        if self.pooling == "pooler":
            return out.pooler_output.flatten(1)
        hidden = out.last_hidden_state
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)

    def forward(self, pixel_values):
        return self.head(self.norm(self.features(pixel_values)))


def with_lora(classifier: Classifier, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
              target_modules=("q_proj", "v_proj")) -> Classifier:
    """The classifier with its backbone wrapped in LoRA adapters (peft) on ``target_modules`` (names of
    Linear or Conv2d modules; transformers 5 names the attention projections q_proj, k_proj, v_proj; seed
    003's "LoRA" row), the backbone's own weights frozen and the head trainable. Before the first step it
    computes exactly what the unwrapped classifier did (peft starts every B matrix at zero)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        bias="none")
    classifier.backbone = get_peft_model(classifier.backbone, config)
    for p in classifier.head.parameters():
        p.requires_grad_(True)
    return classifier


def parameter_counts(model) -> dict:
    """Trainable and total parameters, and the trainable fraction (seed 003 reports LoRA's as under 5%)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": int(trainable), "total": int(total), "fraction": trainable / total if total else 0.0}


def set_backbone_trainable(classifier: Classifier, trainable: bool) -> None:
    """Freeze or unfreeze the backbone's own weights (full fine-tuning's two phases)."""
    for p in classifier.backbone.parameters():
        p.requires_grad_(trainable)


def train(model, images: np.ndarray, labels: np.ndarray, epochs: int, learning_rate: float, batch_size: int = 32,
          weight_decay: float = 0.01, seed: int = 0, class_weights: np.ndarray | None = None) -> list[float]:
    """AdamW on the trainable parameters, cross-entropy (optionally class-weighted), shuffled mini-batches
    from ``seed``; ``images`` (N, C, H, W) float32 as the model takes them. Returns the mean training loss
    of each epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout (LoRA's) draws from the global generator
    optimiser = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    weight = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    x = torch.as_tensor(images, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    losses = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        losses.append(total / seen)
        log.info("epoch %d: training loss %.4f", epoch + 1, losses[-1])
    model.eval()
    return losses


def fine_tune(classifier: Classifier, images, labels, head_epochs: int, full_epochs: int, head_learning_rate: float,
              full_learning_rate: float, **kwargs) -> dict:
    """Seed 003's full fine-tuning: the head alone on the frozen backbone, then the whole network at a
    smaller rate. Returns each phase's epoch losses."""
    set_backbone_trainable(classifier, False)
    head = train(classifier, images, labels, head_epochs, head_learning_rate, **kwargs) if head_epochs else []
    set_backbone_trainable(classifier, True)
    full = train(classifier, images, labels, full_epochs, full_learning_rate, **kwargs) if full_epochs else []
    return {"head": head, "full": full}


def predict(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class predictions, in eval mode, without gradients."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out.append(model(torch.as_tensor(images[start:start + batch_size], dtype=torch.float32)).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, int)
