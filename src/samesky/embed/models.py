"""Build, save, fetch and load the study's models; one forward-and-pool function per family.

Every embedding job loads its model from a local folder ``results/models/<family>/<size>/``:
- the embedded default writes a small randomly initialised instance there (``write_mini_model``);
- the paper preset downloads the released weights there at a pinned revision (``download_model``).
So both presets run the same loading code (``load_model``): ``from_pretrained`` for the transformers
families, AstroPT's checkpoint format for AstroPT, AstroCLIP's checkpoint formats for Specformer and for
AstroCLIP's own encoders (aligned image and spectrum, and AstroDINO).
A ``samesky_model.json`` in each folder says what it holds.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path
from ..registry import ModelSpec
from .astroclip import (IMAGE_BANDS, RELEASED_ARCH, AstroCLIPEncoder, astroclip_image_inputs, load_astroclip,
                        released_layout)
from .specformer import RELEASED_HPARAMS, Specformer, load_specformer_checkpoint, pretrain

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
MANIFEST = "samesky_model.json"


class ModelLoadError(RuntimeError):
    """A model folder or Hub id cannot be loaded (missing, offline, wrong format)."""


def _hf_classes(family: str):
    import transformers as tf

    return {
        "vit": (tf.ViTConfig, tf.ViTModel),
        "dinov2": (tf.Dinov2WithRegistersConfig, tf.Dinov2WithRegistersModel),
        "convnextv2": (tf.ConvNextV2Config, tf.ConvNextV2Model),
        "ijepa": (tf.IJepaConfig, tf.IJepaModel),
    }[family]


def _mini_processor(spec: ModelSpec):
    """The processor each family's released checkpoint uses, at the mini input size."""
    import transformers as tf

    size = spec.mini["image_size"]
    if spec.family == "vit":  # the in21k ViTs normalise to [-1, 1]
        return tf.ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    if spec.family == "ijepa":
        return tf.ViTImageProcessor(size={"height": size, "width": size}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    if spec.family == "dinov2":  # resize the short side to 256/224 of the crop, then centre-crop
        return tf.BitImageProcessor(size={"shortest_edge": round(size * 256 / 224)}, crop_size={"height": size, "width": size},
                                    do_center_crop=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    if spec.family == "convnextv2":
        return tf.ConvNextImageProcessor(size={"shortest_edge": size}, crop_pct=224 / 256,
                                         image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    raise ValueError(spec.family)


def _seed_for(spec: ModelSpec, seed: int) -> int:
    return (seed * 1_000_003 + sum(map(ord, spec.name))) % (2**31)


def write_mini_model(spec: ModelSpec, out_dir: str | os.PathLike, seed: int, pretraining: dict | None = None,
                     spectra: np.ndarray | None = None, spectra_source: dict | None = None) -> dict:
    """Save a small, randomly initialised instance of ``spec``'s architecture to ``out_dir``.

    A Specformer given ``pretraining`` settings (config ``mini_specformer_pretraining``) and ``spectra``
    (flux on the DESI grid, one row per spectrum) is pre-trained on them before it is saved; the manifest
    then says ``mini-pretrained`` and records the settings, the spectra's source and the loss curve.
    """
    if (pretraining is not None) != (spectra is not None):
        raise ValueError("pre-training needs both its settings and its spectra")
    if pretraining is not None and spec.family != "specformer":
        raise ValueError(f"only the mini Specformer is pre-trained, not {spec.name}")
    torch.manual_seed(_seed_for(spec, seed))
    pretrained = None
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        if spec.family in ("vit", "dinov2", "convnextv2", "ijepa"):
            config_cls, model_cls = _hf_classes(spec.family)
            cfg = dict(spec.mini)
            if spec.family == "convnextv2":
                cfg["num_stages"] = len(cfg["hidden_sizes"])
            model = model_cls(config_cls(**cfg))
            model.save_pretrained(tmp)
            _mini_processor(spec).save_pretrained(tmp)
            weights = "config.json"
        elif spec.family == "astropt":
            weights = _write_mini_astropt(spec, tmp)
        elif spec.family in ASTROCLIP_FAMILIES:
            weights = _write_mini_astroclip(spec, tmp)
        elif spec.family == "specformer":
            model = Specformer(**{**RELEASED_HPARAMS, **spec.mini})
            if pretraining is not None:
                pretrained = _pretrain_mini_specformer(model, spectra, pretraining, seed, spectra_source)
            torch.save({"hyper_parameters": model.hparams, "state_dict": model.state_dict()}, tmp / "specformer.ckpt")
            weights = "specformer.ckpt"
        else:
            raise ValueError(f"unknown family {spec.family}")
        manifest = {"family": spec.family, "size": spec.size, "weights": "mini-pretrained" if pretrained else "mini-random",
                    "seed": seed, "entry": weights, "hub_id": None, "revision": None, "spec": asdict(spec)}
        if pretrained:
            manifest["pretraining"] = pretrained
        if spec.family in ASTROCLIP_FAMILIES:
            manifest["arch"] = _mini_astroclip_arch(spec)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _pretrain_mini_specformer(model: Specformer, spectra: np.ndarray, settings: dict, seed: int,
                              source: dict | None) -> dict:
    flux = torch.as_tensor(np.asarray(spectra, dtype=np.float32))
    if flux.ndim != 2 or len(flux) < settings["batch_size"]:
        raise ValueError(f"pre-training needs at least batch_size = {settings['batch_size']} spectra; got "
                         f"{tuple(flux.shape)} from {source}")
    log.info("pre-training the mini Specformer on %d spectra for %d steps", len(flux), settings["steps"])
    losses = pretrain(model, flux, settings["steps"], settings["batch_size"], settings["learning_rate"],
                      settings["mask_chunks"], settings["mask_width"], seed=seed, log=log)
    window = max(1, min(50, len(losses) // 4))
    return {"objective": "masked reconstruction (AstroCLIP Specformer)", "settings": dict(settings),
            "n_spectra": len(flux), "source": source,
            "loss_first": float(np.mean(losses[:window])), "loss_last": float(np.mean(losses[-window:])),
            "loss_every_10_steps": [round(x, 5) for x in losses[::10]]}


ASTROCLIP_FAMILIES = ("astroclip", "astrodino")


def astroclip_kind(spec_or_family, size: str | None = None) -> str:
    family, size = (spec_or_family.family, spec_or_family.size) if size is None else (spec_or_family, size)
    return "astrodino" if family == "astrodino" else size  # astroclip-image / astroclip-spectrum


def _mini_astroclip_arch(spec: ModelSpec) -> dict:
    return {"image": dict(spec.mini["image"]), "spectrum": {**RELEASED_HPARAMS, **spec.mini["spectrum"]},
            "head": dict(spec.mini["head"])}


def _write_mini_astroclip(spec: ModelSpec, folder: Path) -> str:
    """A random mini AstroCLIP checkpoint in the released layout (image and spectrum encoders, heads and
    backbones under ``image_encoder.`` / ``spectrum_encoder.``), so it loads through ``load_astroclip``."""
    arch = _mini_astroclip_arch(spec)
    state = {}
    for kind in ("image", "spectrum"):
        state |= released_layout(AstroCLIPEncoder(kind, arch).state_dict(), kind)
    torch.save({"state_dict": state, "hyper_parameters": {"temperature": 15.5, "logit_scale": 15.5}},
               folder / "astroclip.ckpt")
    return "astroclip.ckpt"


def _write_mini_astropt(spec: ModelSpec, folder: Path) -> str:
    from astropt.model import GPT, GPTConfig, ModalityConfig, ModalityRegistry

    patch = spec.mini["patch_size"]
    registry = ModalityRegistry([ModalityConfig(name="images", input_size=patch * patch * 3, pos_input_size=1,
                                                patch_size=patch, embed_pos=True)])
    args = dict(n_layer=spec.mini["n_layer"], n_head=spec.mini["n_head"], n_embd=spec.mini["n_embd"],
                block_size=1024, n_chan=3, dropout=0.0, bias=False, attn_type="causal")
    model = GPT(GPTConfig(**args, modalities=list(registry.modalities.values())), registry, master_process=False)
    torch.save({"model_args": args, "modality_registry": registry, "model": model.state_dict()}, folder / "ckpt.pt")
    return "ckpt.pt"


def download_model(spec: ModelSpec, out_dir: str | os.PathLike, revision: str | None = None) -> dict:
    """Fetch the released weights of ``spec`` at ``revision`` into ``out_dir`` (Hugging Face Hub)."""
    from huggingface_hub import HfApi, snapshot_download

    revision = revision or spec.revision
    try:
        resolved = HfApi().model_info(spec.hub_id, revision=revision).sha
    except Exception as exc:
        raise ModelLoadError(f"cannot reach model '{spec.hub_id}' at revision '{revision}': {exc}") from exc
    patterns = None
    if spec.family == "astropt":
        patterns = [f"{spec.subfolder}/*"]
        entry = f"{spec.subfolder}/ckpt.pt"
    elif spec.family == "specformer":
        entry = "specformer.ckpt"
    elif spec.family in ASTROCLIP_FAMILIES:
        patterns = ["astroclip.ckpt"]  # the released checkpoint; it holds all three encoders
        entry = "astroclip.ckpt"
    else:
        patterns = ["*.json", "*.safetensors", "*.txt"]
        entry = "config.json"
    with atomic_path(out_dir, is_dir=True) as tmp:
        snapshot_download(spec.hub_id, revision=resolved, local_dir=tmp, allow_patterns=patterns)
        manifest = {"family": spec.family, "size": spec.size, "weights": "hub", "entry": entry,
                    "hub_id": spec.hub_id, "revision": revision, "revision_resolved": resolved, "spec": asdict(spec)}
        (Path(tmp) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def read_manifest(model_dir: str | os.PathLike) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.exists():
        raise ModelLoadError(f"{model_dir} holds no model ({MANIFEST} missing); run the rule that makes it")
    return json.loads(path.read_text())


class LoadedModel:
    """A model in eval mode, its input preparation, and its pooling, behind one ``embed`` call."""

    def __init__(self, family: str, model, processor=None, patch_size: int | None = None,
                 specformer_pooling: str = "exclude_stats", crop: int | None = None):
        self.family, self.model, self.processor, self.patch_size = family, model.eval(), processor, patch_size
        self.specformer_pooling = specformer_pooling
        self.crop = crop

    @property
    def flux_bands(self) -> tuple[str, ...] | None:
        """The bands a model takes as calibrated flux (AstroCLIP's image encoders), or None: 8-bit RGB."""
        return IMAGE_BANDS if self.family in ASTROCLIP_FAMILIES and self.model.kind != "spectrum" else None

    def prepare_flux(self, flux: np.ndarray) -> dict:
        """(B, 3, H, W) flux in ``flux_bands`` order -> model inputs (CPU tensors)."""
        return {"pixel_values": astroclip_image_inputs(flux, self.crop)}

    def to(self, device):
        self.model.to(device)
        return self

    def prepare_images(self, rgb: np.ndarray) -> dict:
        """(B, H, W, 3) uint8 -> model inputs (CPU tensors)."""
        if self.family == "astropt":
            return _astropt_inputs(rgb, self.patch_size)
        return {"pixel_values": self.processor(images=list(rgb), return_tensors="pt")["pixel_values"]}

    def embed(self, inputs: dict) -> torch.Tensor:
        """Pooled embeddings (B, D) from prepared inputs already on the model's device."""
        f = self.family
        if f == "astropt":
            return self.model.generate_embeddings(inputs)["images"]
        if f in ASTROCLIP_FAMILIES:
            return self.model(inputs["flux"] if self.model.kind == "spectrum" else inputs["pixel_values"])
        if f == "specformer":
            tokens = self.model(inputs["flux"])
            return tokens[:, 1:].mean(1) if self.specformer_pooling == "exclude_stats" else tokens.mean(1)
        hidden = self.model(pixel_values=inputs["pixel_values"]).last_hidden_state
        if f == "vit":
            return hidden[:, 1:].mean(1)
        if f == "dinov2":
            return hidden[:, 0]
        if f == "convnextv2":
            return hidden.mean(dim=(2, 3))
        if f == "ijepa":
            return hidden.mean(1)
        raise ValueError(f)


def _astropt_inputs(rgb: np.ndarray, patch: int) -> dict:
    """AstroPT's image tokens: 16x16 (here ``patch``) patches, each standardised, in spiral order."""
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0)  # (B, H, W, C)
    b, h, w, c = x.shape
    if h % patch or w % patch or h != w:
        raise ValueError(f"AstroPT needs square images divisible by its patch size {patch}, got {h}x{w}")
    n = h // patch
    tokens = x.reshape(b, n, patch, n, patch, c).permute(0, 1, 3, 2, 4, 5).reshape(b, n * n, patch * patch * c)
    std, mean = torch.std_mean(tokens, dim=2, keepdim=True)
    tokens = (tokens - mean) / (std + 1e-8)
    order = torch.from_numpy(spiral_order(n))
    return {"images": tokens[:, order], "images_positions": torch.arange(n * n).expand(b, n * n).contiguous()}


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


def load_model(model_dir: str | os.PathLike, specformer_pooling: str = "exclude_stats") -> LoadedModel:
    """Load what ``write_mini_model`` or ``download_model`` put in ``model_dir``."""
    manifest = read_manifest(model_dir)
    family, entry = manifest["family"], Path(model_dir) / manifest["entry"]
    try:
        if family in ("vit", "dinov2", "convnextv2", "ijepa"):
            from transformers import AutoImageProcessor, AutoModel

            model = AutoModel.from_pretrained(model_dir)
            processor = AutoImageProcessor.from_pretrained(model_dir)
            return LoadedModel(family, model, processor)
        if family == "astropt":
            model = _load_astropt(entry)
            patch = model.modality_registry.get_config("images").patch_size
            return LoadedModel(family, model, patch_size=patch)
        if family == "specformer":
            return LoadedModel(family, load_specformer_checkpoint(entry), specformer_pooling=specformer_pooling)
        if family in ASTROCLIP_FAMILIES:
            arch = manifest.get("arch") or RELEASED_ARCH
            model = load_astroclip(entry, astroclip_kind(family, manifest["size"]), arch)
            return LoadedModel(family, model, crop=arch["image"]["image_size"],
                               specformer_pooling="none: the cross-attention head reads every token")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"could not load {family} from {model_dir}: {exc}") from exc
    raise ModelLoadError(f"{model_dir}: unknown family '{family}' in {MANIFEST}")


def _load_astropt(checkpoint: Path):
    from astropt.model import GPT, GPTConfig

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    registry = ckpt["modality_registry"]
    model = GPT(GPTConfig(**ckpt["model_args"]), registry, master_process=False)
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}  # torch.compile's prefix
    model.load_state_dict(state, strict=True)
    return model
