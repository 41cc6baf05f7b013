"""Embedding throughput: images (or spectra) per second for every model of the zoo.

CPU: the embedded default's mini models, batched (batch 64) against the reference of one object at a
time, through the workflow's own loading and inference code. GPU (only where CUDA is present): the
paper sizes' architectures, randomly initialised at their published dimensions (throughput does not
depend on the weights), bf16 autocast against fp32 and against the rate the model's FLOPs allow at the
GPU's measured bf16 matrix rate, and each one's peak GPU memory against the memory the embed rule
requests (ModelSpec.gpu_mem_mb); then the GPU's idle fraction in an embedding job's pipeline.

    python benchmarks/embed_throughput.py [--n 256] [--gpu-n 1024] [--workers 4] [--skip-cpu] [--families a,b]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from samesky.embed.families import LoadedModel
from samesky.embed.hf import HFVisionModel
from samesky.embed.models import load_model, write_mini_model
from samesky.embed.run import _autocast
from samesky.embed.specformer import RELEASED_HPARAMS, Specformer
from samesky.registry import get_spec, zoo_specs

# Published dimensions of the paper sizes (model cards / configs): hidden, layers, heads, patch.
PAPER_VIT_LIKE = {
    ("vit", "base"): (768, 12, 12, 16), ("vit", "large"): (1024, 24, 16, 16), ("vit", "huge"): (1280, 32, 16, 14),
    ("dinov2", "small"): (384, 12, 6, 14), ("dinov2", "base"): (768, 12, 12, 14),
    ("dinov2", "large"): (1024, 24, 16, 14), ("dinov2", "giant"): (1536, 40, 24, 14),
    ("ijepa", "huge"): (1280, 32, 16, 14), ("ijepa", "giant"): (1408, 40, 16, 16),
}
PAPER_CONVNEXT = {"nano": ([80, 160, 320, 640], [2, 2, 8, 2]), "tiny": ([96, 192, 384, 768], [3, 3, 9, 3]),
                  "base": ([128, 256, 512, 1024], [3, 3, 27, 3]), "large": ([192, 384, 768, 1536], [3, 3, 27, 3])}
# The zoo's newer families at their published dimensions (config.json of each repository, as the model cards
# and transformers' conversion scripts give them): (config class, model class, config keys, input pixels)
_TEXT = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 128,
         "vocab_size": 1000, "max_position_embeddings": 64}  # a dual encoder's text tower never runs here


def _vit(hidden, layers, heads, patch, image, mlp=4.0):
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads, "patch_size": patch,
            "image_size": image, "intermediate_size": int(mlp * hidden)}


PAPER_ZOO = {
    "clip-base": ("CLIPModel", {"vision_config": _vit(768, 12, 12, 16, 224), "text_config": _TEXT,
                                "projection_dim": 512}, 224),
    "clip-large": ("CLIPModel", {"vision_config": _vit(1024, 24, 16, 14, 224), "text_config": _TEXT,
                                 "projection_dim": 768}, 224),
    "dinov3-base": ("DINOv3ViTModel", {**_vit(768, 12, 12, 16, 224), "num_register_tokens": 4}, 224),
    "dinov3-large": ("DINOv3ViTModel", {**_vit(1024, 24, 16, 16, 224), "num_register_tokens": 4}, 224),
    "dinov3-hugeplus": ("DINOv3ViTModel", {**_vit(1280, 32, 20, 16, 224, mlp=5.0), "num_register_tokens": 4,
                                           "use_gated_mlp": True}, 224),
    "vitmae-huge": ("ViTMAEModel", {**_vit(1280, 32, 16, 14, 224), "mask_ratio": 0.0}, 224),
    "vjepa2-large": ("VJEPA2Model", {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                                     "crop_size": 256, "patch_size": 16, "tubelet_size": 2, "frames_per_clip": 64}, 256),
    "vjepa2-giant": ("VJEPA2Model", {"hidden_size": 1408, "num_hidden_layers": 40, "num_attention_heads": 22,
                                     "mlp_ratio": 48 / 11, "crop_size": 256, "patch_size": 16, "tubelet_size": 2,
                                     "frames_per_clip": 64}, 256),
    "siglip-so400m": ("SiglipModel", {"vision_config": {**_vit(1152, 27, 16, 14, 384), "intermediate_size": 4304},
                                      "text_config": _TEXT}, 384),
    "msn-large": ("ViTMSNModel", _vit(1024, 24, 16, 16, 224), 224),
    "resnet-50": ("ResNetModel", {}, 224),  # transformers' ResNetConfig defaults are ResNet-50's
    "paligemma2-3b": ("PaliGemmaModel", {
        "vision_config": {"model_type": "siglip_vision_model", **_vit(1152, 27, 16, 14, 224), "intermediate_size": 4304},
        "text_config": {"model_type": "gemma2", "hidden_size": 2304, "num_hidden_layers": 26, "intermediate_size": 9216,
                        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 257216},
        "projection_dim": 2304, "image_token_id": 257152}, 224),
    "llava-7b": ("LlavaModel", {
        "vision_config": {"model_type": "clip_vision_model", **_vit(1024, 24, 16, 14, 336)},
        "text_config": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 11008,
                        "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064},
        "image_token_id": 32000, "vision_feature_layer": -2, "vision_feature_select_strategy": "default"}, 336),
}


def _time(fn, repeats=1) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _inputs(spec, n, rng):
    if spec.modality == "image":
        return rng.integers(0, 256, (n, 48, 48, 3), dtype=np.uint8)
    return (rng.normal(0, 1, (n, 7781)) + 5).astype(np.float32)


def _run(model: LoadedModel, data, batch, device, bf16=False, survey=None):
    def go():
        with torch.inference_mode(), _autocast(device, bf16):
            for i in range(0, len(data), batch):
                chunk = data[i:i + batch]
                if model.flux_bands is not None:  # AION: image flux of one survey
                    inputs = {k: v.to(device) for k, v in model.prepare_flux(chunk, survey).items()}
                elif model.family == "specformer":  # spectra go in as flux
                    inputs = {"flux": torch.from_numpy(chunk).to(device)}
                else:
                    inputs = {k: v.to(device) for k, v in model.prepare_images(chunk).items()}
                model.embed(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return go


def cpu_benchmark(n: int) -> None:
    rng = np.random.default_rng(0)
    device = torch.device("cpu")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"CPU, mini models, {n} objects, {torch.get_num_threads()} threads")
    print(f"{'model':22s} {'batched/s':>10s} {'one-by-one/s':>13s} {'speed-up':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in sorted(zoo_specs().items()):
            if spec.adapter in ("astroclip", "astrodino") or not spec.mini:
                continue  # AstroCLIP's encoders read flux through their own path; EfficientNet has no mini
            write_mini_model(spec, Path(tmp) / spec.name, seed=0)
            model = load_model(Path(tmp) / spec.name, spec)
            data = _inputs(spec, n, rng)
            if spec.takes == "flux":  # AION: HSC flux, five bands
                data = rng.normal(0, 0.1, (n, 5, 48, 48)).astype(np.float32)
            batched = n / _time(_run(model, data, 64, device, survey="hsc"))
            single = min(n, 64) / _time(_run(model, data[:64], 1, device, survey="hsc"))
            print(f"{spec.name:22s} {batched:10.1f} {single:13.1f} {batched / single:8.1f}x")


def _paper_model(family, size):
    import transformers as tf

    if (family, size) in PAPER_VIT_LIKE:
        hidden, layers, heads, patch = PAPER_VIT_LIKE[(family, size)]
        kw = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * hidden,
                  patch_size=patch, image_size=224)
        if family == "vit":
            return tf.ViTModel(tf.ViTConfig(**kw), add_pooling_layer=False)
        if family == "dinov2":
            return tf.Dinov2WithRegistersModel(tf.Dinov2WithRegistersConfig(**kw, num_register_tokens=4))
        return tf.IJepaModel(tf.IJepaConfig(**kw))
    if family == "convnextv2":
        hidden_sizes, depths = PAPER_CONVNEXT[size]
        return tf.ConvNextV2Model(tf.ConvNextV2Config(hidden_sizes=hidden_sizes, depths=depths))
    if family == "specformer":
        return Specformer(**RELEASED_HPARAMS)
    if f"{family}-{size}" in PAPER_ZOO:
        cls_name, config, _ = PAPER_ZOO[f"{family}-{size}"]
        cls = getattr(tf, cls_name)
        model = cls(cls.config_class(**config))
        # a VLM runs in bf16 as the zoo says (dtype); everything else in fp32 under bf16 autocast
        return model.to(torch.bfloat16) if get_spec(family, size).dtype == "bfloat16" else model
    return None


def _input_pixels(family, size):
    return PAPER_ZOO[f"{family}-{size}"][2] if f"{family}-{size}" in PAPER_ZOO else 224


def _paper_inputs(spec, model, batch, device):
    """Model inputs of a batch at the architecture's input size, already on the device."""
    pixels = _input_pixels(spec.family, spec.size)
    x = torch.randn(batch, 3, pixels, pixels, device=device)
    if spec.frames:
        return {"pixel_values_videos": x.unsqueeze(1).expand(-1, spec.frames, -1, -1, -1)}
    if spec.pooling == "masked_mean":  # image tokens (one per patch; LLaVA drops the CLS) and a short prompt
        config = model.model.config
        patch = config.vision_config.patch_size
        n_image = (pixels // patch) ** 2
        ids = torch.full((batch, n_image + 8), 2, device=device)
        ids[:, :n_image] = config.image_token_id
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": x.to(torch.bfloat16)}
    return {"pixel_values": x}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_bf16_tflops(device, size: int = 8192) -> float:
    """Measured bf16 matrix-product rate (TFLOP/s), the ceiling a model's FLOPs are compared against."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    _sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    _sync(device)
    return 10 * 2 * size**3 / (time.perf_counter() - start) / 1e12


def _flops_per_image(model: LoadedModel, inputs: dict) -> float:
    """Counted by torch's FLOP counter; where it cannot count an operation (grouped-query attention), the
    rough 2 x parameters x tokens the run-time requests use (ModelSpec.gflops_per_object)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            model.embed({k: v[:1] for k, v in inputs.items()})
    except AssertionError:
        return model.spec.gflops_per_object() * 1e9
    return counter.get_total_flops()


def gpu_benchmark(n: int, batch: int = 256, device=None, families=None) -> None:
    """Paper-size architectures on the GPU: images/s of the model alone (inputs already on the device) in
    bf16 and fp32, against the rate its FLOPs allow at the measured bf16 matrix rate; peak memory against
    the embed rule's request. Vision-language models (bf16 weights) are timed in bf16 only, on 64 images."""
    device = device or torch.device("cuda")
    peak = _peak_bf16_tflops(device, 8192 if device.type == "cuda" else 256)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"\n{name}: bf16 matrix products at {peak:.1f} TFLOP/s (measured); "
          f"paper-size architectures, random weights, {n} images, batch {batch}")
    print(f"{'model':18s} {'px':>4s} {'params M':>8s} {'GFLOP/img':>9s} {'bf16 /s':>8s} {'fp32 /s':>8s} {'bound /s':>9s} "
          f"{'bf16/bound':>10s} {'peak GB':>8s} {'asked GB':>8s}")
    for model_name, spec in sorted(zoo_specs().items()):
        family, size = spec.family, spec.size
        if spec.takes != "rgb" or spec.adapter != "hf" or (families and family not in families):
            continue  # AstroPT's dimensions come from its checkpoint; EfficientNet-Lite is timed on the CPU
        with torch.device(device):
            net = _paper_model(family, size)
        if net is None:
            continue
        model = HFVisionModel(net.eval(), spec, processor=None)
        vlm = spec.pooling == "masked_mean"
        b, count = (8, 64) if vlm else (batch, n)
        x = _paper_inputs(spec, model, b, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        flops = _flops_per_image(model, x)

        def go(bf16, model=model, x=x, count=count, b=b):  # bound now: the loop rebinds them
            with torch.inference_mode(), _autocast(device, bf16):
                for _ in range(0, count, b):
                    model.embed(x)
            _sync(device)

        bf16 = count / _time(lambda: go(True))
        fp32 = float("nan") if vlm else count / _time(lambda: go(False))
        bound = peak * 1e12 / flops
        params = sum(p.numel() for p in net.parameters()) / 1e6
        peak_gb = torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else float("nan")
        print(f"{spec.name:18s} {_input_pixels(family, size):4d} {params:8.0f} {flops / 1e9:9.1f} {bf16:8.0f} "
              f"{fp32:8.0f} {bound:9.0f} {bf16 / bound:10.2f} {peak_gb:8.1f} {spec.gpu_mem_mb(b) / 1e3:8.1f}")
        del model, net, x
        if device.type == "cuda":
            torch.cuda.empty_cache()


def gpu_feed_benchmark(n: int, workers: int, batch: int = 256, device=None, size: str = "large") -> None:
    """How much of an embedding job the GPU spends waiting for the CPU: the job's pipeline (prepared uint8
    memory map -> background readers -> resize and normalise on the GPU -> ViT-L in bf16) against the same
    model and transform on batches already on the GPU; and the per-image CPU path it replaces."""
    from samesky.embed.images import scale_batch, select_bands, compute_scaling, rgb_bands
    from samesky.embed.run import embed_rgb

    try:
        from transformers import ViTImageProcessorPil as Processor
    except ImportError:
        from transformers import ViTImageProcessor as Processor
    device = device or torch.device("cuda")
    processor = Processor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    with torch.device(device):
        net = _paper_model("vit", size)
    model = HFVisionModel(net.eval(), get_spec("vit", size), processor)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rgb.npy"
        rgb = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 160, 160, 3))
        for i in range(0, n, 1024):
            rgb[i:i + 1024] = rng.integers(0, 256, (min(1024, n - i), 160, 160, 3), dtype=np.uint8)
        rgb.flush()
        rgb = np.load(path, mmap_mode="r")
        rows = np.arange(n)
        embed_rgb(rgb, rows[:batch], model, batch, device, True, workers, progress=False)  # warm-up
        _sync(device)
        start = time.perf_counter()
        embed_rgb(rgb, rows, model, batch, device, True, workers, progress=False)
        _sync(device)
        pipeline = time.perf_counter() - start
        resident = [torch.from_numpy(np.array(rgb[i:i + batch])).to(device) for i in range(0, n, batch)]
        _sync(device)
        start = time.perf_counter()
        with torch.inference_mode(), _autocast(device, True):
            for b in resident:
                model.embed(model.prepare_images(b)).float().cpu()
        _sync(device)
        compute = time.perf_counter() - start
        # the device transform against the processor itself (Pillow on the CPU), on the same images
        sample = np.ascontiguousarray(rgb[:64])
        expected = processor(images=list(sample), return_tensors="pt")["pixel_values"]
        got = model.prepare_images(torch.from_numpy(sample).to(device))["pixel_values"].cpu()
        max_diff = float((got - expected).abs().max())
    bands = rgb_bands("hsc")
    images = [{"band": ["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"],
               "flux": rng.normal(0, 1, (5, 160, 160)).astype(np.float32), "mask": None} for _ in range(64)]
    scaling = compute_scaling([(str(i), im) for i, im in enumerate(images)], bands)
    start = time.perf_counter()
    selected = [select_bands(im, bands) for im in images]
    rgb_old = scale_batch(np.stack([s[0] for s in selected]), np.stack([s[1] for s in selected]), scaling)[0]
    processor(images=list(rgb_old), return_tensors="pt")
    per_core = len(images) / (time.perf_counter() - start)
    print(f"\nViT-{size} embedding job on {n} 160-px images, bf16, batch {batch}, {workers} reader threads:")
    print(f"  pipeline {n / pipeline:7.0f} images/s; model + GPU transform alone {n / compute:7.0f} images/s; "
          f"GPU idle fraction {max(0.0, 1 - compute / pipeline):.2f}")
    print(f"  resize + normalise on {device.type} against {type(processor).__name__} (Pillow), 64 images: "
          f"max |difference| {max_diff:.3g} ({'bit for bit' if max_diff == 0 else 'NOT identical'})")
    print(f"  the old per-image CPU path: {per_core:.0f} images/s per core, so {n / compute / per_core:.0f} cores "
          f"to keep this GPU busy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="objects per CPU measurement")
    parser.add_argument("--gpu-n", type=int, default=1024, help="objects per GPU measurement")
    parser.add_argument("--workers", type=int, default=4, help="background image readers in the GPU feed test")
    parser.add_argument("--skip-cpu", action="store_true", help="GPU figures only")
    parser.add_argument("--families", default="", help="GPU: only these families (comma-separated)")
    parser.add_argument("--skip-feed", action="store_true", help="GPU: skip the embedding-job pipeline test")
    args = parser.parse_args()
    if not args.skip_cpu:
        cpu_benchmark(args.n)
    if torch.cuda.is_available():
        gpu_benchmark(args.gpu_n, families=[f for f in args.families.split(",") if f] or None)
        if not args.skip_feed:
            gpu_feed_benchmark(8 * args.gpu_n, args.workers)
    else:
        print("\nGPU: no CUDA device here; the paper-size bf16 figures need one (run this script on a GPU node).")


if __name__ == "__main__":
    main()
