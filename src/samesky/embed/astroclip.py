"""AstroCLIP (Parker et al. 2024): its aligned image and spectrum encoders and its unaligned image
encoder AstroDINO, all read from the released Lightning checkpoint ``polymathic-ai/astroclip``
(``astroclip.ckpt``).

Facts from PolymathicAI/AstroCLIP (astroclip/models/astroclip.py, astroclip/modules.py,
configs/astroclip.yaml, astroclip/astrodino/config.yaml, astroclip/data/datamodule.py):

- The image backbone is a DINOv2 ViT-L: width 1024, 24 blocks, 16 heads, 12-pixel patches, 144-pixel
  crops, LayerScale, an MLP feed-forward, biases on q/k/v. It was pre-trained as AstroDINO and stayed
  frozen during the alignment (``ImageHead(freeze_backbone=True)``; the config leaves it on). So the
  checkpoint's ``image_encoder.backbone`` is AstroDINO, and the unaligned image embedding is DINOv2's
  eval output: the class token after the final norm.
- The aligned image encoder runs patch embedding, the blocks and the final norm, with no class token and
  no position embedding. The aligned spectrum encoder runs Specformer over all its tokens.
- Each aligned encoder then has a cross-attention head. One learned query of width 1024 attends over the
  backbone's tokens (``nn.MultiheadAttention``, 4 heads, key and value width = the backbone's). Then come a
  LayerNorm and an MLP (1024 -> 4096 -> 1024, GELU): ``x + MLP(x)`` for spectra, but ``MLP(x)`` with no
  residual for images (``ImageHead.forward`` since May 2024; the released checkpoint goes with that
  code). The embedding is 1024 wide.
- Images are Legacy Survey g, r, z cut-outs in nanomaggies. They become the Legacy Survey viewer's RGB
  (``legacy_viewer_rgb``), are centre-cropped to 144 pixels and are fed channels first with height and
  width swapped (AstroCLIP's collator permutes (B, H, W, C) to (B, C, W, H)).

The backbone is transformers' ``Dinov2Model``; ``dinov2_to_hf`` renames the original DINOv2 weights
(``blocks.N.attn.qkv`` ...) to it. The heads are written here because no library has them.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import torch
from torch import nn

from .specformer import RELEASED_HPARAMS as SPECFORMER_HPARAMS
from .specformer import Specformer

# The released architecture; a mini checkpoint's manifest may give its own (``arch``).
RELEASED_ARCH = {
    "image": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 12,
              "image_size": 144, "layerscale_value": 1e-5, "mlp_ratio": 4},
    "spectrum": dict(SPECFORMER_HPARAMS),
    "head": {"embed_dim": 1024, "n_head": 4},
}
CROP = 144
# Legacy Survey viewer RGB: band -> (RGB plane, scale); asinh softening Q and offset m (AstroCLIP's ToRGB)
VIEWER_SCALES = {"g": (2, 6.0), "r": (1, 3.4), "z": (0, 2.2)}
VIEWER_Q, VIEWER_M = 20.0, 0.03
IMAGE_BANDS = ("g", "r", "z")


def legacy_viewer_rgb(flux: np.ndarray, bands=IMAGE_BANDS) -> np.ndarray:
    """(bands, H, W) nanomaggies -> (H, W, 3) float RGB in [0, 1], as the Legacy Survey viewer draws it:
    every band scaled, their mean intensity I put through asinh(Q I) / sqrt(Q), each plane scaled by that
    over I, then clipped."""
    flux = np.asarray(flux, dtype=np.float64)
    scaled = [flux[i] * VIEWER_SCALES[b][1] + VIEWER_M for i, b in enumerate(bands)]
    intensity = sum(np.maximum(0.0, s) for s in scaled) / len(bands)
    stretch = np.arcsinh(VIEWER_Q * intensity) / np.sqrt(VIEWER_Q)
    intensity = np.where(intensity == 0.0, 1e-6, intensity)
    rgb = np.zeros(flux.shape[1:] + (3,), np.float64)
    for s, b in zip(scaled, bands):
        rgb[..., VIEWER_SCALES[b][0]] = s * stretch / intensity
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def astroclip_image_inputs(flux: np.ndarray, crop: int = CROP) -> torch.Tensor:
    """(B, 3, H, W) g, r, z nanomaggies -> (B, 3, crop, crop) model input, as AstroCLIP's collator makes it."""
    rgb = np.stack([legacy_viewer_rgb(f) for f in flux])  # (B, H, W, 3)
    x = torch.from_numpy(rgb).permute(0, 3, 2, 1)  # AstroCLIP's permute: channels first, H and W swapped
    h, w = x.shape[-2:]
    if h < crop or w < crop:
        raise ValueError(f"AstroCLIP takes cut-outs of at least {crop} pixels; got {h}x{w}")
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))  # torchvision CenterCrop's offsets
    return x[..., top:top + crop, left:left + crop].contiguous()


class CrossAttentionHead(nn.Module):
    """One learned query attends over a backbone's tokens; LayerNorm; then x + MLP(x), or MLP(x) where
    ``residual`` is off (AstroCLIP's image head)."""

    def __init__(self, embed_dim: int, n_head: int, backbone_dim: int, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.query = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.multihead_attn = nn.MultiheadAttention(embed_dim, n_head, batch_first=True,
                                                    kdim=backbone_dim, vdim=backbone_dim)
        self.layernorm = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential()  # names below match the checkpoint: mlp.encoder, mlp.decoder
        self.mlp.encoder = nn.Linear(embed_dim, 4 * embed_dim)
        self.mlp.gelu = nn.GELU()
        self.mlp.decoder = nn.Linear(4 * embed_dim, embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(tokens.shape[0], -1, -1)
        x = self.layernorm(self.multihead_attn(query, tokens, tokens, need_weights=False)[0])
        return ((x + self.mlp(x)) if self.residual else self.mlp(x))[:, 0]


def dinov2_to_hf(state: dict) -> dict:
    """Original DINOv2 weight names (chunked ``blocks.C.N.`` or plain ``blocks.N.``) -> ``Dinov2Model``'s."""
    out = {}
    for key, value in state.items():
        m = re.match(r"blocks\.(?:\d+\.)?(\d+)\.(.+)", key)
        if m is None:
            renamed = {"cls_token": "embeddings.cls_token", "mask_token": "embeddings.mask_token",
                       "pos_embed": "embeddings.position_embeddings",
                       "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
                       "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
                       "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
            if key not in renamed:
                raise KeyError(f"unexpected DINOv2 weight '{key}'")
            out[renamed[key]] = value
            continue
        layer, rest = f"encoder.layer.{m.group(1)}", m.group(2)
        if rest.startswith("attn.qkv."):
            kind = rest.rsplit(".", 1)[1]  # weight | bias
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{layer}.attention.{name}.{kind}"] = part
            continue
        rest = (rest.replace("attn.proj.", "attention.o_proj.").replace("ls1.gamma", "layer_scale1.lambda1")
                .replace("ls2.gamma", "layer_scale2.lambda1"))
        out[f"{layer}.{rest}"] = value
    return out


def build_backbone(arch: dict):
    from transformers import Dinov2Config, Dinov2Model

    return Dinov2Model(Dinov2Config(**arch))


class AstroCLIPEncoder(nn.Module):
    """One of AstroCLIP's three encoders: ``image`` (aligned), ``spectrum`` (aligned) or ``astrodino``
    (the unaligned image backbone)."""

    def __init__(self, kind: str, arch: dict):
        super().__init__()
        if kind not in ("image", "spectrum", "astrodino"):
            raise ValueError(f"unknown AstroCLIP encoder '{kind}'")
        self.kind = kind
        if kind == "spectrum":
            self.backbone = Specformer(**arch["spectrum"])
            width = arch["spectrum"]["embed_dim"]
        else:
            self.backbone = build_backbone(arch["image"])
            width = arch["image"]["hidden_size"]
        if kind != "astrodino":
            self.head = CrossAttentionHead(arch["head"]["embed_dim"], arch["head"]["n_head"], width,
                                           residual=kind == "spectrum")

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's tokens the aligned head attends over."""
        if self.kind == "spectrum":
            return self.backbone(x)
        b = self.backbone
        return b.layernorm(b.encoder(b.embeddings.patch_embeddings(x)).last_hidden_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "astrodino":
            return self.backbone(pixel_values=x).last_hidden_state[:, 0]
        return self.head(self.tokens(x))


class _Placeholder(dict):
    """Stands in for a class the checkpoint pickled that is not installed here (Lightning keeps the
    encoders' constructor arguments, AstroCLIP's own classes among them, in ``hyper_parameters``). A dict,
    so that pickled dict subclasses (Lightning's AttributeDict) fill it too."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        self.__dict__["state"] = state


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Placeholder,), {"__module__": module})


class _LenientPickle:
    Unpickler = _LenientUnpickler
    load = staticmethod(lambda f, **kw: _LenientUnpickler(f, **kw).load())


def read_lightning_state(path) -> dict:
    """The ``state_dict`` of a Lightning checkpoint, whatever else it pickled."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_LenientPickle)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise KeyError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    return ckpt["state_dict"]


PREFIX = {"image": "image_encoder.", "astrodino": "image_encoder.", "spectrum": "spectrum_encoder."}


def load_astroclip(path, kind: str, arch: dict | None = None) -> AstroCLIPEncoder:
    """One encoder (``image``, ``spectrum`` or ``astrodino``) from AstroCLIP's checkpoint, loaded strictly."""
    arch = arch or RELEASED_ARCH
    state = read_lightning_state(path)
    prefix = PREFIX[kind]
    mine = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not mine:
        raise KeyError(f"{path}: no weights under '{prefix}'; has prefixes {sorted({k.split('.')[0] for k in state})}")
    backbone = {k[len("backbone."):]: v for k, v in mine.items() if k.startswith("backbone.")}
    head = {k[len("cross_attention."):]: v for k, v in mine.items() if k.startswith("cross_attention.")}
    head |= {k: v for k, v in mine.items() if k.startswith("mlp.")}
    model = AstroCLIPEncoder(kind, arch)
    if kind != "spectrum":
        backbone = dinov2_to_hf(backbone)
    model.backbone.load_state_dict(backbone, strict=True)
    if kind != "astrodino":
        model.head.load_state_dict(head, strict=True)
    return model.eval()


def released_layout(model_state: dict, kind: str) -> dict:
    """The inverse of the loading renames, for one encoder: what its part of astroclip.ckpt holds. Used to
    write mini checkpoints in the released layout (tests, and the offline check of the loading path)."""
    prefix = PREFIX[kind]
    out = {}
    for key, value in model_state.items():
        if key.startswith("head."):
            rest = key[len("head."):]
            out[prefix + (rest if rest.startswith("mlp.") else "cross_attention." + rest)] = value
        elif kind == "spectrum":
            out[prefix + key] = value
    if kind == "spectrum":
        return out
    layers: dict = {}
    for key, value in model_state.items():
        if not key.startswith("backbone."):
            continue
        key = key[len("backbone."):]
        m = re.match(r"encoder\.layer\.(\d+)\.(.+)", key)
        if m is None:
            original = {"embeddings.cls_token": "cls_token", "embeddings.mask_token": "mask_token",
                        "embeddings.position_embeddings": "pos_embed",
                        "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
                        "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
                        "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}[key]
            out[prefix + "backbone." + original] = value
            continue
        i, rest = m.group(1), m.group(2)
        q = re.match(r"attention\.([qkv])_proj\.(weight|bias)", rest)
        if q:
            layers.setdefault((i, q.group(2)), {})[q.group(1)] = value
            continue
        rest = (rest.replace("attention.o_proj.", "attn.proj.").replace("layer_scale1.lambda1", "ls1.gamma")
                .replace("layer_scale2.lambda1", "ls2.gamma"))
        out[f"{prefix}backbone.blocks.{i}.{rest}"] = value
    for (i, kind_), parts in layers.items():
        out[f"{prefix}backbone.blocks.{i}.attn.qkv.{kind_}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out
