"""One adapter for every Hugging Face vision model: loaded with ``AutoModel``, fed by its own processor,
pooled by name. A family of the zoo (or of a config) needs no code of its own, only its Hub ids, its pooling
and, for the embedded default, a mini configuration (docs/models.md).

The poolings, each defined once (``POOLINGS``):

- ``cls``: the first token of ``last_hidden_state`` (DINOv2, DINOv3, MSN);
- ``patch_mean``: the mean over patch tokens, the CLS and register tokens excluded (ViT, ViT-MAE); the
  tokens before the patches are counted from the input size and the patch size, so registers are found;
- ``token_mean``: the mean over all tokens (I-JEPA, V-JEPA 2: neither has a CLS token);
- ``spatial_mean``: the mean of a (B, C, H, W) feature map over H and W (ConvNeXtV2, ResNet);
- ``image_features``: a dual encoder's image embedding, ``get_image_features`` (CLIP: the projected CLS;
  SigLIP: its attention-pooling head);
- ``masked_mean``: a vision-language model's last hidden state (after the final norm) averaged over the
  tokens its attention mask keeps: image tokens, BOS and the prompt (PaliGemma 2, LLaVA).

Layers (``alignment.layers: all``) come from ``output_hidden_states``: each block's (stage's) output
pooled the same way, the last the embedding itself. A dual encoder's earlier layers are the vision tower's
blocks, pooled by ``token_mean``; a vision-language model's are its language model's layers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

from .families import LoadedModel, is_control, random_weights
from .transforms import ProcessorTransform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pooling:
    label: str  # what it is, in the embeddings' records and summary
    reads: str  # "hidden" (a token sequence or feature map), "image_features" or "language"
    pool: Callable  # (hidden, context) -> (B, D)


def _patch_mean(hidden, ctx):
    return hidden[:, ctx.n_prefix:].mean(1)


def _masked_mean(hidden, ctx):
    mask = ctx.attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


POOLINGS = {
    "cls": Pooling("CLS token", "hidden", lambda h, ctx: h[:, 0]),
    "patch_mean": Pooling("patch-token mean (CLS excluded)", "hidden", _patch_mean),
    "token_mean": Pooling("token mean", "hidden", lambda h, ctx: h.mean(1)),
    "spatial_mean": Pooling("spatial mean", "hidden", lambda h, ctx: h.mean(dim=(2, 3))),
    "image_features": Pooling("image embedding of a dual encoder (get_image_features)", "image_features", None),
    "masked_mean": Pooling("attention-masked mean of the last hidden state", "language", _masked_mean),
}
VLM_PROCESSORS = ("PaliGemmaProcessor", "LlavaProcessor", "LlavaOnevisionProcessor")


def quiet_transformers():
    """transformers' load reports list every unused weight (a ViT-MAE checkpoint's decoder): keep them out
    of the job logs; real errors still raise."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


# Processors -------------------------------------------------------------------------------------------

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
NEEDED = ("size", "resample", "do_resize", "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std")


def processor_settings(folder: Path):
    """The image (or video) processor of a saved model as ``ProcessorTransform`` reads it: the class where
    transformers can build it here, else its settings read from the saved JSON. Some processors exist only
    with torchvision (DINOv3's, V-JEPA 2's video processor), which the CPU lock cannot install; their steps
    are the same resize, crop, rescale and normalise, read from the file (every step named there)."""
    from transformers import AutoImageProcessor

    path = next((Path(folder) / f for f in PROCESSOR_FILES if (Path(folder) / f).exists()), None)
    if path is None:
        raise FileNotFoundError(f"{folder}: no {' or '.join(PROCESSOR_FILES)} (the model's processor)")
    if path.name == "preprocessor_config.json":
        try:
            return AutoImageProcessor.from_pretrained(folder)
        except ImportError as exc:  # the class needs torchvision
            log.info("%s: %s; its settings are read from %s", folder, str(exc).splitlines()[0], path.name)
    settings = json.loads(path.read_text())
    kind = settings.get("image_processor_type") or settings.get("video_processor_type") or "processor"
    missing = [k for k in NEEDED if k not in settings]
    if missing:
        raise ValueError(f"{path}: {kind} without {missing}; install torchvision so transformers builds it")
    crop = settings.get("crop_size")
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    return SimpleNamespace(**{**settings, "crop_size": crop, "do_center_crop": settings.get("do_center_crop", False),
                              "processor_kind": kind})


def vlm_processor(folder: Path):
    """A vision-language model's processor (tokenizer and image processor). LLaVA-OneVision's processor
    class insists on its video processor, which needs torchvision: without it, the same class is built
    from the image processor and tokenizer alone (images never touch the video path)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(folder)
    except (ImportError, AttributeError, ValueError, OSError) as exc:  # no torchvision, so no video processor
        settings = json.loads((Path(folder) / "processor_config.json").read_text())
        cls = _image_only(settings.get("processor_class", ""))
        if cls is None:
            raise
        from transformers import AutoImageProcessor, AutoTokenizer

        log.info("%s: %s; building %s from its image processor and tokenizer", folder, type(exc).__name__, cls.__name__)
        kwargs = {k: v for k, v in settings.items() if k not in ("processor_class", "image_processor", "video_processor")}
        return cls(image_processor=AutoImageProcessor.from_pretrained(folder),
                   tokenizer=AutoTokenizer.from_pretrained(folder), **kwargs)


def _image_only(processor_class: str):
    import transformers

    base = getattr(transformers, processor_class, None) if processor_class in VLM_PROCESSORS else None
    if base is None:
        return None
    return type(f"{processor_class}ImagesOnly", (base,), {"get_attributes": classmethod(
        lambda cls: ["image_processor", "tokenizer"])})


# The adapter -------------------------------------------------------------------------------------------


class HFVisionModel(LoadedModel):
    """Any transformers vision model: ``AutoModel.from_pretrained``, its processor's steps on the batch
    (``ProcessorTransform``, bit for bit the PIL processor's), or a vision-language model's whole processor
    with the family's prompt; pooled by ``spec.pooling``."""

    family = "hf"

    def __init__(self, model, spec, processor):
        super().__init__(model)
        if spec.pooling not in POOLINGS:
            raise ValueError(f"{spec.name}: unknown pooling '{spec.pooling}'; known: {sorted(POOLINGS)}")
        self.spec = spec
        self.pooling = POOLINGS[spec.pooling]
        self.is_vlm = self.pooling.reads == "language"
        self.processor = processor
        # (None: inputs come prepared, as in the GPU benchmark)
        self.transform = ProcessorTransform(processor) if processor is not None and not self.is_vlm else None
        config = model.config
        if getattr(config, "mask_ratio", 0) != 0:  # ViT-MAE: masks patches at random unless told not to
            raise ValueError(f"{spec.name}: config.mask_ratio = {config.mask_ratio}: the model would embed a random "
                             "subset of patches; set config_overrides: {mask_ratio: 0.0}")
        self.patch_size = getattr(getattr(config, "vision_config", config), "patch_size", None)
        self.forward_options = {}  # extra forward arguments (interpolate_pos_encoding at another input size)
        if spec.pooling == "patch_mean" and not self.patch_size:
            raise ValueError(f"{spec.name}: pooling 'patch_mean' needs a model with patches (config.patch_size)")

    @property
    def pooling_label(self) -> str:
        registers = getattr(self.model.config, "num_register_tokens", 0) or 0
        if self.spec.pooling == "patch_mean" and registers:
            return f"patch-token mean (CLS and {registers} register tokens excluded)"
        return self.pooling.label

    # inputs
    def prepare_images(self, rgb) -> dict:
        if self.is_vlm:
            from PIL import Image

            images = [Image.fromarray(a) for a in torch.as_tensor(rgb).cpu().numpy()]
            inputs = self.processor(text=[self.spec.prompt] * len(images), images=images, return_tensors="pt",
                                    padding=True)
            device = self.device
            return {k: (v.to(device, self.dtype) if torch.is_floating_point(v) else v.to(device))
                    for k, v in inputs.items() if k != "labels"}
        pixels = self.transform(torch.as_tensor(rgb))
        if self.spec.frames:  # a video model: the still image as every frame, (B, T, C, H, W)
            return {"pixel_values_videos": pixels.unsqueeze(1).expand(-1, self.spec.frames, -1, -1, -1)}
        return {"pixel_values": pixels}

    def set_input_size(self, size):
        """Resize every image to ``size`` x ``size`` (the processor's resample, no crop) and let a
        transformer interpolate its position embeddings to the new grid, where its forward takes
        ``interpolate_pos_encoding`` (ViT, I-JEPA, ViT-MAE; DINOv2 always interpolates; convolutional
        models take any size)."""
        import inspect

        if self.transform is None:
            raise TypeError(f"{self.spec.name}: a vision-language model's processor sets its own input size")
        t = self.transform
        t.do_resize, t.short_edge, t.convnext_pct, t.size, t.crop = True, None, None, (size, size), None
        if "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters:
            self.forward_options = {"interpolate_pos_encoding": True}

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def _forward(self, inputs: dict, layers: bool):
        kwargs = dict(inputs, output_hidden_states=layers or self.is_vlm, **self.forward_options)
        if self.is_vlm:
            kwargs["use_cache"] = False  # no generation: a 28B model's key-value cache would be GBs for nothing
        if "pixel_values" in inputs and hasattr(self.model.config, "mask_ratio"):
            n = self._n_patches(inputs["pixel_values"])  # every patch, in order: noise sorted is the identity
            kwargs["noise"] = torch.arange(n, device=inputs["pixel_values"].device).expand(len(inputs["pixel_values"]), n)
        if self.pooling.reads == "image_features":
            return self.model.get_image_features(**kwargs)
        if self.spec.frames:
            kwargs["skip_predictor"] = True
        return self.model(**kwargs)

    def _n_patches(self, pixels: torch.Tensor) -> int:
        h, w = pixels.shape[-2:]
        p = self.patch_size if isinstance(self.patch_size, int) else self.patch_size[0]
        return (h // p) * (w // p)

    def _context(self, inputs: dict, hidden: torch.Tensor):
        ctx = SimpleNamespace(attention_mask=inputs.get("attention_mask"))
        if self.spec.pooling == "patch_mean":
            ctx.n_prefix = hidden.shape[1] - self._n_patches(inputs["pixel_values"])
        return ctx

    def _final(self, out, inputs):
        if self.pooling.reads == "image_features":
            return out.pooler_output if hasattr(out, "pooler_output") else out
        if self.is_vlm:
            hidden = out.hidden_states[-1]
        else:
            hidden = out.last_hidden_state
        return self.pooling.pool(hidden, self._context(inputs, hidden))

    def embed(self, inputs: dict) -> torch.Tensor:
        return self._final(self._forward(inputs, layers=False), inputs)

    def layer_names(self) -> list[str]:
        """Each block (stage) 'block_01', ..., the last as 'final': the output after the model's final norm,
        where it has one, as ``embed`` reads it."""
        config = self.model.config
        if self.is_vlm:
            config = config.text_config
        elif self.pooling.reads == "image_features":
            config = config.vision_config
        n = len(config.depths) if hasattr(config, "depths") else config.num_hidden_layers
        kind = "stage" if hasattr(config, "depths") else "block"
        return [f"{kind}_{i:02d}" for i in range(1, n)] + ["final"]

    def embed_layers(self, inputs: dict) -> list[torch.Tensor]:
        out = self._forward(inputs, layers=True)
        states = out.hidden_states  # the input embedding, then each block's output
        if len(states) - 1 != len(self.layer_names()):
            raise ValueError(f"{self.spec.name}: {len(states) - 1} hidden states for {len(self.layer_names())} layers")
        middle = states[1:-1]
        if self.pooling.reads == "image_features":
            pooled = [POOLINGS["token_mean"].pool(h, None) for h in middle]
        else:
            pooled = [self.pooling.pool(h, self._context(inputs, h)) for h in middle]
        return pooled + [self._final(out, inputs)]

    # weights
    @classmethod
    def from_folder(cls, folder, manifest, spec, device=None, specformer_pooling="exclude_stats"):
        from transformers import AutoConfig, AutoModel

        quiet_transformers()
        remote = {"trust_remote_code": True} if spec.trust_remote_code else {}
        dtype = getattr(torch, spec.dtype) if device is not None and torch.device(device).type == "cuda" else torch.float32
        if is_control(manifest):  # the architecture alone, seeded: no weights read
            config = AutoConfig.from_pretrained(folder, **remote, **spec.config_overrides)
            with random_weights(manifest):
                model = AutoModel.from_config(config, **remote)
            model = model.to(dtype)
        else:  # loaded in host memory in its GPU dtype (a 28B model in bf16: 56 GB; rule embed asks for it)
            model = AutoModel.from_pretrained(folder, dtype=dtype, **remote, **spec.config_overrides)
        pooling = POOLINGS.get(spec.pooling)
        processor = vlm_processor(folder) if pooling and pooling.reads == "language" else processor_settings(folder)
        return cls(model, spec, processor)

    @classmethod
    def hub_files(cls, spec):
        # python files only where the config allows the repository's code to run
        patterns = ["*.json", "*.safetensors", "*.txt", "*.model"] + (["*.py"] if spec.trust_remote_code else [])
        return patterns, "config.json"

    @classmethod
    def write_mini(cls, spec, folder):
        """The mini model class with the spec's mini config (random weights), and its processor: built with
        its transformers class and saved, or written as the JSON file transformers reads (``json: true``, for
        processors that exist only with torchvision); a vision-language model's processor gets a small
        word-level tokenizer of its special tokens and prompt, whose size and image token go into the config."""
        import transformers

        quiet_transformers()
        mini = spec.mini
        config = dict(mini["config"])
        processor = dict(mini["processor"])
        if processor.get("tokenizer"):
            proc = _mini_vlm_processor(processor)
            proc.save_pretrained(folder)
            _set_processor_class(folder, processor["class"])
            tokenizer = proc.tokenizer
            config["text_config"] = {**config["text_config"], "vocab_size": len(tokenizer)}
            for key, token in (("image_token_id", "<image>"), ("video_token_id", "<video>")):
                if token in tokenizer.get_vocab():
                    config[key] = tokenizer.convert_tokens_to_ids(token)
        else:
            _write_processor(processor, folder)
        model_cls = getattr(transformers, mini["model_class"])
        model_cls(model_cls.config_class(**config)).save_pretrained(folder)
        return "config.json"


def _write_processor(processor: dict, folder: Path) -> None:
    import transformers

    kwargs = {k: v for k, v in processor.items() if k not in ("class", "json", "file")}
    if processor.get("json"):
        kind = "video_processor_type" if "Video" in processor["class"] else "image_processor_type"
        name = processor.get("file", PROCESSOR_FILES[1] if "Video" in processor["class"] else PROCESSOR_FILES[0])
        (Path(folder) / name).write_text(json.dumps({kind: processor["class"], **kwargs}, indent=2, sort_keys=True))
        return
    getattr(transformers, processor["class"])(**kwargs).save_pretrained(folder)


def _mini_vlm_processor(processor: dict):
    """A VLM processor for a mini model: its image processor, and a word-level tokenizer that knows the
    special tokens and the words of the prompt (anything else is <unk>)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    spec = processor["tokenizer"]
    words = list(dict.fromkeys(spec["special"] + spec.get("words", [])))
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(spec["special"])  # found inside words too: the processor writes <image><image>...
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **spec["roles"])
    image = dict(processor["image_processor"])
    image_processor = getattr(transformers, image.pop("class"))(**{k: v for k, v in image.items() if k != "extra"})
    for key, value in image.get("extra", {}).items():  # attributes the processor reads (PaliGemma's image_seq_length)
        setattr(image_processor, key, value)
    kwargs = {k: v for k, v in processor.items() if k not in ("class", "tokenizer", "image_processor")}
    cls = _image_only(processor["class"])
    return cls(image_processor=image_processor, tokenizer=tokenizer, **kwargs)


def _set_processor_class(folder: Path, name: str) -> None:
    """Saved as the class the Hub's repositories name, not the images-only stand-in."""
    path = Path(folder) / "processor_config.json"
    settings = json.loads(path.read_text())
    settings["processor_class"] = name
    path.write_text(json.dumps(settings, indent=2, sort_keys=True))

