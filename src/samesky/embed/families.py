"""One class per model family: how its weights are made (mini) or found (Hub), loaded, fed and pooled.

Every family answers the same questions, so the rest of the package never branches on a family name:

- ``write_mini(spec, folder)``: a small, randomly initialised instance of the architecture, saved in the
  released format (the embedded default);
- ``hub_files(spec)``: which files of the Hub repository to download, and the one to load;
- ``from_folder(folder, manifest)``: the loaded model, in eval mode;
- ``prepare_images(rgb)`` / ``prepare_flux(flux)``: a batch turned into model inputs (CPU tensors);
- ``embed(inputs)``: the pooled embedding, (batch, dim).

The pooling is what the Platonic Universe code did (UniverseTBD/platonic-universe, dd67bf6), checked
against each model's outputs in transformers (see ``samesky.registry`` for the list).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..registry import ModelSpec
from .astroclip import (IMAGE_BANDS, RELEASED_ARCH, AstroCLIPEncoder, astroclip_image_inputs, load_astroclip,
                        released_layout)
from .specformer import RELEASED_HPARAMS, Specformer, load_specformer_checkpoint
from .transforms import ProcessorTransform

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class LoadedModel:
    """A model in eval mode, its input preparation and its pooling, behind one ``embed`` call.

    Subclasses are the families. ``flux_bands`` is None for models that take 8-bit RGB (the study's
    dataset-wide percentile scaling), or the bands a model takes as calibrated flux and scales itself.
    """

    family: ClassVar[str]
    flux_bands: tuple[str, ...] | None = None

    def __init__(self, model):
        self.model = model.eval()

    def to(self, device):
        self.model.to(device)
        return self

    def with_pooling(self, specformer_pooling: str) -> LoadedModel:
        """This model with a pair's own Specformer pooling (the two papers pool differently); families
        without the choice return themselves."""
        return self

    def prepare_images(self, rgb) -> dict:
        """(B, H, W, 3) uint8 RGB (a tensor on the model's device, or an array) -> model inputs, on that
        device: the model's own resize and normalisation, on the whole batch."""
        raise TypeError(f"{self.family} does not take RGB images")

    def prepare_flux(self, flux: np.ndarray) -> dict:
        """(B, bands, H, W) flux in ``flux_bands`` order -> model inputs (CPU tensors)."""
        raise TypeError(f"{self.family} does not take image flux")

    def embed(self, inputs: dict) -> torch.Tensor:
        """Pooled embeddings (B, D) from prepared inputs already on the model's device."""
        raise NotImplementedError

    # Layerwise (alignment.layers): every block or stage, pooled as the family pools its embedding. The
    # layer at ``reference_layer`` is ``embed``'s output itself, so the final-layer scores are one cell of
    # the layer grids. Families without it (AstroCLIP's heads) give their one embedding as one layer.
    def layer_names(self) -> list[str]:
        return ["final"]

    @property
    def reference_layer(self) -> int:
        return len(self.layer_names()) - 1

    def embed_layers(self, inputs: dict) -> list[torch.Tensor]:
        """One pooled (B, D_l) tensor per layer of ``layer_names``."""
        return [self.embed(inputs)]

    # How the family's weights are made, found and loaded
    @classmethod
    def write_mini(cls, spec: ModelSpec, folder: Path) -> str:
        """Save a random mini instance into ``folder``; return the file the loader starts from."""
        raise NotImplementedError

    @classmethod
    def mini_manifest(cls, spec: ModelSpec) -> dict:
        """What a mini instance's manifest must add for the loader (e.g. its architecture)."""
        return {}

    @classmethod
    def hub_files(cls, spec: ModelSpec) -> tuple[list[str] | None, str]:
        """(download patterns, None = every file; the file the loader starts from)."""
        raise NotImplementedError

    @classmethod
    def from_folder(cls, folder: Path, manifest: dict, specformer_pooling: str = "exclude_stats") -> LoadedModel:
        raise NotImplementedError


class TransformersImageModel(LoadedModel):
    """A transformers vision backbone: saved with ``save_pretrained``, loaded with ``AutoModel`` and the
    processor of its released checkpoint; ``pool`` reduces ``last_hidden_state``."""

    classes: ClassVar[tuple[str, str]]  # (config class, model class) in transformers

    def __init__(self, model, processor=None):
        super().__init__(model)
        self.processor = processor  # the released checkpoint's; its steps run in torch (ProcessorTransform)
        self.transform = ProcessorTransform(processor) if processor is not None else None

    @staticmethod
    def pool(hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def mini_processor(cls, size: int):
        """The processor of the family's released checkpoint, at the mini input size."""
        raise NotImplementedError

    @classmethod
    def mini_config(cls, spec: ModelSpec) -> dict:
        return dict(spec.mini)

    def prepare_images(self, rgb) -> dict:
        return {"pixel_values": self.transform(torch.as_tensor(rgb))}

    def embed(self, inputs: dict) -> torch.Tensor:
        return self.pool(self.model(pixel_values=inputs["pixel_values"]).last_hidden_state)

    def layer_names(self) -> list[str]:
        """Each transformer block ('block_01', ...) or ConvNeXt stage, the last as 'final': the output after
        the model's final norm, where it has one (ViT, DINOv2, I-JEPA), as ``embed`` reads it."""
        config = self.model.config
        n = len(config.depths) if hasattr(config, "depths") else config.num_hidden_layers
        kind = "stage" if hasattr(config, "depths") else "block"
        return [f"{kind}_{i:02d}" for i in range(1, n)] + ["final"]

    def embed_layers(self, inputs: dict) -> list[torch.Tensor]:
        out = self.model(pixel_values=inputs["pixel_values"], output_hidden_states=True)
        # hidden_states: the input embedding, then each block's (stage's) output
        return [self.pool(h) for h in out.hidden_states[1:-1]] + [self.pool(out.last_hidden_state)]

    @classmethod
    def write_mini(cls, spec, folder):
        import transformers

        config_cls, model_cls = (getattr(transformers, name) for name in cls.classes)
        model_cls(config_cls(**cls.mini_config(spec))).save_pretrained(folder)
        cls.mini_processor(spec.mini["image_size"]).save_pretrained(folder)
        return "config.json"

    @classmethod
    def hub_files(cls, spec):
        return ["*.json", "*.safetensors", "*.txt"], "config.json"

    @classmethod
    def from_folder(cls, folder, manifest, specformer_pooling="exclude_stats"):
        from transformers import AutoImageProcessor, AutoModel

        return cls(AutoModel.from_pretrained(folder), AutoImageProcessor.from_pretrained(folder))


class ViT(TransformersImageModel):
    """ViT (in21k): mean over patch tokens, CLS excluded; inputs normalised to [-1, 1]."""

    family = "vit"
    classes = ("ViTConfig", "ViTModel")

    @staticmethod
    def pool(hidden):
        return hidden[:, 1:].mean(1)

    @classmethod
    def mini_processor(cls, size):
        from transformers import ViTImageProcessor

        return ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


class IJEPA(TransformersImageModel):
    """I-JEPA: mean over all tokens (it has no CLS token)."""

    family = "ijepa"
    classes = ("IJepaConfig", "IJepaModel")

    @staticmethod
    def pool(hidden):
        return hidden.mean(1)

    @classmethod
    def mini_processor(cls, size):
        from transformers import ViTImageProcessor

        return ViTImageProcessor(size={"height": size, "width": size}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


class DINOv2(TransformersImageModel):
    """DINOv2 with registers: the CLS token; the short side resized to 256/224 of the crop, then centre-cropped."""

    family = "dinov2"
    classes = ("Dinov2WithRegistersConfig", "Dinov2WithRegistersModel")

    @staticmethod
    def pool(hidden):
        return hidden[:, 0]

    @classmethod
    def mini_processor(cls, size):
        from transformers import BitImageProcessor

        return BitImageProcessor(size={"shortest_edge": round(size * 256 / 224)},
                                 crop_size={"height": size, "width": size}, do_center_crop=True,
                                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


class ConvNeXtV2(TransformersImageModel):
    """ConvNeXtV2: spatial mean of ``last_hidden_state`` (not ``pooler_output``, which is layer-normed)."""

    family = "convnextv2"
    classes = ("ConvNextV2Config", "ConvNextV2Model")

    @staticmethod
    def pool(hidden):
        return hidden.mean(dim=(2, 3))

    @classmethod
    def mini_config(cls, spec):
        return {**spec.mini, "num_stages": len(spec.mini["hidden_sizes"])}

    @classmethod
    def mini_processor(cls, size):
        from transformers import ConvNextImageProcessor

        return ConvNextImageProcessor(size={"shortest_edge": size}, crop_pct=224 / 256,
                                      image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


class AstroPT(LoadedModel):
    """AstroPT v2: patches standardised one by one, fed in a spiral from the centre; the embedding is
    ``generate_embeddings``: the mean over tokens of the middle block's output."""

    family = "astropt"

    def __init__(self, model):
        super().__init__(model)
        self.patch_size = model.modality_registry.get_config("images").patch_size
        # config embedding.astropt_input: the Platonic Universe code feeds AstroPT (C, W, H), the transpose
        # of the (C, H, W) AstroPT's own data loader makes (platonic-universe src/pu/preprocess.py,
        # PreprocessAstropt: ``flux_to_pil(...).swapaxes(0, 2)`` of an (H, W, C) image)
        self.transposed = False

    def layer_names(self):
        return [f"block_{i:02d}" for i in range(1, len(self.model.transformer.h) + 1)]

    @property
    def reference_layer(self):
        return len(self.model.transformer.h) // 2  # generate_embeddings reads the middle block

    def embed_layers(self, inputs):
        """Every block's output, token mean (``generate_embeddings``'s pooling), read by forward hooks."""
        outputs = []
        hooks = [block.register_forward_hook(lambda module, args, out: outputs.append(out.mean(1)))
                 for block in self.model.transformer.h]
        try:
            self.model.generate_embeddings(inputs)
        finally:
            for hook in hooks:
                hook.remove()
        return outputs

    def prepare_images(self, rgb):
        rgb = torch.as_tensor(rgb)
        if self.transposed:
            rgb = rgb.transpose(1, 2)  # (B, H, W, C) -> (B, W, H, C), patched as (C, W, H)
        return astropt_inputs(rgb, self.patch_size)

    def embed(self, inputs):
        return self.model.generate_embeddings(inputs)["images"]

    @classmethod
    def write_mini(cls, spec, folder):
        from astropt.model import GPT, GPTConfig, ModalityConfig, ModalityRegistry

        patch = spec.mini["patch_size"]
        registry = ModalityRegistry([ModalityConfig(name="images", input_size=patch * patch * 3, pos_input_size=1,
                                                    patch_size=patch, embed_pos=True)])
        args = dict(n_layer=spec.mini["n_layer"], n_head=spec.mini["n_head"], n_embd=spec.mini["n_embd"],
                    block_size=1024, n_chan=3, dropout=0.0, bias=False, attn_type="causal")
        model = GPT(GPTConfig(**args, modalities=list(registry.modalities.values())), registry, master_process=False)
        torch.save({"model_args": args, "modality_registry": registry, "model": model.state_dict()}, folder / "ckpt.pt")
        return "ckpt.pt"

    @classmethod
    def hub_files(cls, spec):
        return [f"{spec.subfolder}/*"], f"{spec.subfolder}/ckpt.pt"  # one repository holds every size

    @classmethod
    def from_folder(cls, folder, manifest, specformer_pooling="exclude_stats"):
        from astropt.model import GPT, GPTConfig

        ckpt = torch.load(Path(folder) / manifest["entry"], map_location="cpu", weights_only=False)
        model = GPT(GPTConfig(**ckpt["model_args"]), ckpt["modality_registry"], master_process=False)
        state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}  # torch.compile's prefix
        model.load_state_dict(state, strict=True)
        return cls(model)


def astropt_inputs(rgb: torch.Tensor, patch: int) -> dict:
    """AstroPT's image tokens from (B, H, W, 3) uint8: 16x16 (here ``patch``) patches, each standardised,
    in spiral order, on the device the images are on."""
    x = rgb.to(torch.float32) / 255.0  # (B, H, W, C)
    b, h, w, c = x.shape
    if h % patch or w % patch or h != w:
        raise ValueError(f"AstroPT needs square images divisible by its patch size {patch}, got {h}x{w}")
    n = h // patch
    tokens = x.reshape(b, n, patch, n, patch, c).permute(0, 1, 3, 2, 4, 5).reshape(b, n * n, patch * patch * c)
    std, mean = torch.std_mean(tokens, dim=2, keepdim=True)
    tokens = (tokens - mean) / (std + 1e-8)
    order = torch.from_numpy(spiral_order(n)).to(x.device)
    positions = torch.arange(n * n, device=x.device).expand(b, n * n).contiguous()
    return {"images": tokens[:, order], "images_positions": positions}


def spiral_order(n: int) -> np.ndarray:
    """Raster indices of an n x n patch grid in AstroPT's order: a spiral from the centre outwards.

    AstroPT walks the grid clockwise from the top-left corner inwards and then feeds the patches in the
    reverse of that walk, so the sequence starts at the galaxy's centre.
    """
    grid = np.arange(n * n).reshape(n, n)
    walk = []
    while grid.size:
        walk.extend(grid[0])  # top row, left to right
        grid = np.rot90(grid[1:])  # turn the rest so its right column becomes the top row
    return np.asarray(walk[::-1], dtype=np.int64)


class SpecformerModel(LoadedModel):
    """AstroCLIP's Specformer: the mean over the final layer-normed tokens, the statistics token excluded
    (``exclude_stats``, the Platonic Universe code) or included (``all_tokens``, AstroCLIP's probe code)."""

    family = "specformer"

    def __init__(self, model, specformer_pooling: str = "exclude_stats"):
        super().__init__(model)
        self.specformer_pooling = specformer_pooling

    def embed(self, inputs):
        return self._pool(self.model(inputs["flux"]))

    def _pool(self, tokens):
        return tokens[:, 1:].mean(1) if self.specformer_pooling == "exclude_stats" else tokens.mean(1)

    def layer_names(self):
        return [f"block_{i:02d}" for i in range(1, len(self.model.blocks))] + ["final"]

    def embed_layers(self, inputs):
        return [self._pool(t) for t in self.model.encode_layers(self.model.tokenize(inputs["flux"]))]

    def with_pooling(self, specformer_pooling):
        return SpecformerModel(self.model, specformer_pooling)

    @classmethod
    def write_mini(cls, spec, folder):
        model = Specformer(**{**RELEASED_HPARAMS, **spec.mini})
        save_specformer(model, folder / "specformer.ckpt")
        return "specformer.ckpt"

    @classmethod
    def hub_files(cls, spec):
        return None, "specformer.ckpt"

    @classmethod
    def from_folder(cls, folder, manifest, specformer_pooling="exclude_stats"):
        return cls(load_specformer_checkpoint(Path(folder) / manifest["entry"]), specformer_pooling)


def save_specformer(model: Specformer, path: Path) -> None:
    """A Specformer in AstroCLIP's checkpoint layout (``hyper_parameters`` + ``state_dict``)."""
    torch.save({"hyper_parameters": model.hparams, "state_dict": model.state_dict()}, path)


class AstroCLIPModel(LoadedModel):
    """AstroCLIP's aligned encoders (size ``image`` or ``spectrum``): a cross-attention head over the
    backbone's tokens; all three encoders come from the one released checkpoint (embed/astroclip.py).
    The image encoders take Legacy Survey g, r, z flux and make their own RGB."""

    family = "astroclip"
    specformer_pooling = "none: the cross-attention head reads every token"

    def __init__(self, model, crop: int):
        super().__init__(model)
        self.crop = crop
        self.flux_bands = IMAGE_BANDS if model.kind != "spectrum" else None

    @staticmethod
    def kind(size: str) -> str:
        return size  # astroclip-image, astroclip-spectrum

    def prepare_flux(self, flux):
        return {"pixel_values": astroclip_image_inputs(flux, self.crop)}

    def embed(self, inputs):
        return self.model(inputs["flux"] if self.model.kind == "spectrum" else inputs["pixel_values"])

    @classmethod
    def arch(cls, spec: ModelSpec) -> dict:
        return {"image": dict(spec.mini["image"]), "spectrum": {**RELEASED_HPARAMS, **spec.mini["spectrum"]},
                "head": dict(spec.mini["head"])}

    @classmethod
    def mini_manifest(cls, spec):
        return {"arch": cls.arch(spec)}

    @classmethod
    def write_mini(cls, spec, folder):
        """A random mini AstroCLIP checkpoint in the released layout (image and spectrum encoders, heads and
        backbones under ``image_encoder.`` / ``spectrum_encoder.``), so it loads through ``load_astroclip``."""
        arch = cls.arch(spec)
        state = {}
        for kind in ("image", "spectrum"):
            state |= released_layout(AstroCLIPEncoder(kind, arch).state_dict(), kind)
        torch.save({"state_dict": state, "hyper_parameters": {"temperature": 15.5, "logit_scale": 15.5}},
                   folder / "astroclip.ckpt")
        return "astroclip.ckpt"

    @classmethod
    def hub_files(cls, spec):
        return ["astroclip.ckpt"], "astroclip.ckpt"  # the released checkpoint; it holds all three encoders

    @classmethod
    def from_folder(cls, folder, manifest, specformer_pooling="exclude_stats"):
        arch = manifest.get("arch") or RELEASED_ARCH  # a mini checkpoint records its own architecture
        model = load_astroclip(Path(folder) / manifest["entry"], cls.kind(manifest["size"]), arch)
        return cls(model, crop=arch["image"]["image_size"])


class AstroDINOModel(AstroCLIPModel):
    """AstroDINO, AstroCLIP's unaligned image backbone: DINOv2's normed class token."""

    family = "astrodino"

    @staticmethod
    def kind(size: str) -> str:
        return "astrodino"


FAMILIES: dict[str, type[LoadedModel]] = {
    cls.family: cls
    for cls in (ViT, IJEPA, DINOv2, ConvNeXtV2, AstroPT, SpecformerModel, AstroCLIPModel, AstroDINOModel)
}


def family_of(name: str) -> type[LoadedModel]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family '{name}'; known: {sorted(FAMILIES)}") from None
