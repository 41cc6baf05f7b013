"""The model families and sizes of the study (the Platonic Universe, Table 3; docs/study.md section 2).

Each entry holds the facts the embedding stage needs: the Hub id (and AstroPT's subfolder), the revision,
the parameter count, the input the model takes, and how the embedding is pooled from its output. The
pooling is the one the paper's code (UniverseTBD/platonic-universe, dd67bf6) used:

- ViT: mean over patch tokens of ``last_hidden_state``, CLS excluded;
- ConvNeXtV2: spatial mean of ``last_hidden_state`` (not ``pooler_output``, which is layer-normed);
- DINOv2 with registers: the CLS token of ``last_hidden_state``;
- I-JEPA: mean over all tokens of ``last_hidden_state`` (it has no CLS token);
- AstroPT: ``generate_embeddings``: mean over tokens of the middle block's output;
- Specformer: mean over tokens of the final layer-normed output, the statistics token excluded
  (platonic-universe; AstroCLIP's probe code includes it: ``specformer_pooling`` selects);
- AstroCLIP (the AstroCLIP benchmark): the aligned image and spectrum encoders' cross-attention head output, and the
  unaligned AstroDINO's normed class token, all from the one released checkpoint (embed/astroclip.py).
  They read only the data they were trained on (``reads``): Legacy Survey g, r, z images, DESI spectra.

``mini`` is the configuration of the embedded default's small, randomly initialised instance of the same
architecture (several sizes, so the size axis exists offline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError

# Revisions: no commit SHA could be looked up offline, so the Hub revisions are the default branch; the
# download resolves each to its commit and records it in the model's manifest
# (resources/models/<family>-<size>/samesky_model.json).
HUB_REVISION = "main"


@dataclass(frozen=True)
class ModelSpec:
    family: str
    size: str
    hub_id: str
    params_m: float  # parameters, millions (Platonic Universe, Table 3)
    modality: str  # image | spectrum
    pooling: str
    input_size: int  # pixels on a side for images (the processor resizes), or spectrum pixels
    mini: dict = field(default_factory=dict)
    subfolder: str | None = None  # AstroPT keeps each size in a folder of one repository
    revision: str = HUB_REVISION
    reads: tuple[str, ...] | None = None  # the only surveys whose data the model takes (None: any of its modality)
    # what it takes: "rgb", 8-bit images made by the study's scaling, shared by every such model of a
    # (pair, side); "flux", calibrated image flux it scales itself (AstroCLIP); or "spectrum"
    takes: str = "rgb"

    @property
    def name(self) -> str:
        return f"{self.family}-{self.size}"

    def reads_survey(self, survey: str) -> bool:
        return self.reads is None or survey in self.reads

    @property
    def download(self) -> tuple[str, str, str | None]:
        """What its released weights are fetched as (repository, revision, folder in it): models with the same
        load the same files (AstroCLIP's three encoders, one checkpoint), which the workflow fetches once."""
        return self.hub_id, self.revision, self.subfolder

    @property
    def download_folder(self) -> str:
        """The folder name of a shared download, 'owner--name'."""
        return self.hub_id.replace("/", "--") + (f"--{self.subfolder.replace('/', '-')}" if self.subfolder else "")

    def gpu_mem_mb(self) -> int:
        """Rough GPU memory a job needs: fp32 weights twice over plus activations."""
        return int(2000 + self.params_m * 4 * 2 * 1.0)


def _vit_like(hidden, layers, heads, patch=8, image=64):
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": 2 * hidden, "patch_size": patch, "image_size": image}


def _astroclip_mini():
    return {"image": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 4,
                      "image_size": 24, "layerscale_value": 1e-5, "mlp_ratio": 4},
            "spectrum": {"embed_dim": 32, "num_layers": 2, "num_heads": 2},
            "head": {"embed_dim": 32, "n_head": 2}}


_SPECS = [
    ModelSpec("astropt", "small", "Smith42/astroPT_v2.0", 15, "image", "middle-block token mean", 160,
              {"n_embd": 32, "n_layer": 2, "n_head": 2, "patch_size": 8}, subfolder="astropt/015M"),
    ModelSpec("astropt", "base", "Smith42/astroPT_v2.0", 95, "image", "middle-block token mean", 160,
              {"n_embd": 48, "n_layer": 4, "n_head": 3, "patch_size": 8}, subfolder="astropt/095M"),
    ModelSpec("astropt", "large", "Smith42/astroPT_v2.0", 850, "image", "middle-block token mean", 160,
              {"n_embd": 64, "n_layer": 6, "n_head": 4, "patch_size": 8}, subfolder="astropt/850M"),
    *[ModelSpec("convnextv2", size, f"facebook/convnextv2-{size}-22k-224", p, "image", "spatial mean", 224,
                {"hidden_sizes": h, "depths": d, "image_size": 64})
      for size, p, h, d in [("nano", 15, [8, 16, 32, 64], [1, 1, 2, 1]), ("tiny", 28, [12, 24, 48, 96], [1, 1, 3, 1]),
                            ("base", 89, [16, 32, 64, 128], [1, 1, 3, 1]), ("large", 198, [24, 48, 96, 192], [1, 1, 4, 1])]],
    *[ModelSpec("dinov2", size, f"facebook/dinov2-with-registers-{size}", p, "image", "CLS token", 224,
                {**_vit_like(h, l, nh), "num_register_tokens": 4})
      for size, p, h, l, nh in [("small", 22, 32, 2, 2), ("base", 86, 48, 3, 3), ("large", 304, 64, 4, 4),
                                ("giant", 1100, 80, 5, 5)]],
    ModelSpec("ijepa", "huge", "facebook/ijepa_vith14_22k", 630, "image", "token mean", 224, _vit_like(48, 3, 3)),
    ModelSpec("ijepa", "giant", "facebook/ijepa_vitg16_22k", 1000, "image", "token mean", 224, _vit_like(64, 4, 4)),
    *[ModelSpec("vit", size, f"google/vit-{size}-patch{patch}-224-in21k", p, "image", "patch-token mean (CLS excluded)",
                224, _vit_like(h, l, nh))
      for size, patch, p, h, l, nh in [("base", 16, 86, 32, 2, 2), ("large", 16, 304, 48, 3, 3), ("huge", 14, 632, 64, 4, 4)]],
    ModelSpec("specformer", "base", "polymathic-ai/specformer", 43, "spectrum",
              "final-LayerNorm token mean (statistics token excluded)", 7781,
              {"embed_dim": 32, "num_layers": 2, "num_heads": 2}, takes="spectrum"),
    # AstroCLIP: one checkpoint holds all three (the image backbone, frozen while aligning, is AstroDINO)
    ModelSpec("astroclip", "image", "polymathic-ai/astroclip", 315, "image", "cross-attention head (aligned)", 144,
              _astroclip_mini(), reads=("legacysurvey",), takes="flux"),
    ModelSpec("astroclip", "spectrum", "polymathic-ai/astroclip", 56, "spectrum", "cross-attention head (aligned)",
              7781, _astroclip_mini(), reads=("desi", "sdss"), takes="spectrum"),
    ModelSpec("astrodino", "large", "polymathic-ai/astroclip", 302, "image", "CLS token (AstroDINO, unaligned)", 144,
              _astroclip_mini(), reads=("legacysurvey",), takes="flux"),
]

REGISTRY: dict[tuple[str, str], ModelSpec] = {(s.family, s.size): s for s in _SPECS}
MODELS: dict[str, list[str]] = {}
for _s in _SPECS:
    MODELS.setdefault(_s.family, []).append(_s.size)


def get_spec(family: str, size: str) -> ModelSpec:
    try:
        return REGISTRY[(family, size)]
    except KeyError:
        raise ConfigError(f"unknown model {family}-{size}; known: {sorted(f'{f}-{s}' for f, s in REGISTRY)}") from None


def spec_by_name(name: str) -> ModelSpec:
    """The spec of a model size named '<family>-<size>' (``ModelSpec.name``), e.g. 'dinov2-giant'."""
    family, _, size = name.partition("-")
    return get_spec(family, size)


def check_models(models: list[dict]) -> None:
    """Raise naming the config key of the first unknown family or size."""
    for i, entry in enumerate(models):
        family = entry["family"]
        if family not in MODELS:
            raise ConfigError(f"config key models[{i}].family: unknown model family '{family}'; known: {sorted(MODELS)}")
        for j, size in enumerate(entry["sizes"]):
            if size not in MODELS[family]:
                raise ConfigError(
                    f"config key models[{i}].sizes[{j}]: unknown size '{size}' of {family}; known: {MODELS[family]}"
                )
