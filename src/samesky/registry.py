"""The model families and sizes of the study (seed 000, Table 3; STUDY.md section 2).

Hub ids are the paper code's. Revisions, parameter counts and pooling are filled in by the embedding
stage; this table is what config validation checks model names against.
"""

from __future__ import annotations

from .errors import ConfigError

MODELS: dict[str, dict[str, str]] = {
    "astropt": {"small": "Smith42/astroPT_v2.0", "base": "Smith42/astroPT_v2.0", "large": "Smith42/astroPT_v2.0"},
    "convnextv2": {size: f"facebook/convnextv2-{size}-22k-224" for size in ("nano", "tiny", "base", "large")},
    "dinov2": {size: f"facebook/dinov2-with-registers-{size}" for size in ("small", "base", "large", "giant")},
    "ijepa": {"huge": "facebook/ijepa_vith14_22k", "giant": "facebook/ijepa_vitg16_22k"},
    "vit": {"base": "google/vit-base-patch16-224-in21k", "large": "google/vit-large-patch16-224-in21k",
            "huge": "google/vit-huge-patch14-224-in21k"},
    "specformer": {"base": "polymathic-ai/specformer"},
}


def check_models(models: list[dict]) -> None:
    """Raise naming the config key of the first unknown family or size."""
    for i, entry in enumerate(models):
        family = entry["family"]
        if family not in MODELS:
            raise ConfigError(f"config key models[{i}].family: unknown model family '{family}'; known: {sorted(MODELS)}")
        for j, size in enumerate(entry["sizes"]):
            if size not in MODELS[family]:
                raise ConfigError(
                    f"config key models[{i}].sizes[{j}]: unknown size '{size}' of {family}; known: {list(MODELS[family])}"
                )
