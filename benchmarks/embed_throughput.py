"""Embedding throughput: images (or spectra) per second for every model of the registry.

CPU: the embedded default's mini models, batched (batch 64) against the reference of one object at a
time, through the workflow's own loading and inference code. GPU (only where CUDA is present): the
paper sizes' architectures, randomly initialised at their published dimensions (throughput does not
depend on the weights), bf16 autocast against fp32 and against the rate the model's FLOPs allow at the
GPU's measured bf16 matrix rate; then the GPU's idle fraction in an embedding job's pipeline.

    python benchmarks/embed_throughput.py [--n 256] [--gpu-n 1024] [--workers 4] [--skip-cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from samesky.embed.families import FAMILIES, LoadedModel
from samesky.embed.models import load_model, write_mini_model
from samesky.embed.run import _autocast
from samesky.embed.specformer import RELEASED_HPARAMS, Specformer
from samesky.registry import REGISTRY

# Published dimensions of the paper sizes (model cards / configs): hidden, layers, heads, patch.
PAPER_VIT_LIKE = {
    ("vit", "base"): (768, 12, 12, 16), ("vit", "large"): (1024, 24, 16, 16), ("vit", "huge"): (1280, 32, 16, 14),
    ("dinov2", "small"): (384, 12, 6, 14), ("dinov2", "base"): (768, 12, 12, 14),
    ("dinov2", "large"): (1024, 24, 16, 14), ("dinov2", "giant"): (1536, 40, 24, 14),
    ("ijepa", "huge"): (1280, 32, 16, 14), ("ijepa", "giant"): (1408, 40, 16, 16),
}
PAPER_CONVNEXT = {"nano": ([80, 160, 320, 640], [2, 2, 8, 2]), "tiny": ([96, 192, 384, 768], [3, 3, 9, 3]),
                  "base": ([128, 256, 512, 1024], [3, 3, 27, 3]), "large": ([192, 384, 768, 1536], [3, 3, 27, 3])}


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


def _run(model: LoadedModel, data, batch, device, bf16=False):
    def go():
        with torch.inference_mode(), _autocast(device, bf16):
            for i in range(0, len(data), batch):
                chunk = data[i:i + batch]
                if model.family == "specformer":  # spectra go in as flux
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
        for (family, size), spec in sorted(REGISTRY.items()):
            if family in ("astroclip", "astrodino"):
                continue  # the paper preset's AstroCLIP encoders read flux through their own path (not timed)
            write_mini_model(spec, Path(tmp) / spec.name, seed=0)
            model = load_model(Path(tmp) / spec.name)
            data = _inputs(spec, n, rng)
            batched = n / _time(_run(model, data, 64, device))
            single = min(n, 64) / _time(_run(model, data[:64], 1, device))
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
    return None


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
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.embed({k: v[:1] for k, v in inputs.items()})
    return counter.get_total_flops()


def gpu_benchmark(n: int, batch: int = 256, device=None, families=None) -> None:
    """Paper-size architectures on the GPU: images/s of the model alone (224 px inputs already on the
    device) in bf16 and fp32, against the rate its FLOPs allow at the measured bf16 matrix rate."""
    device = device or torch.device("cuda")
    peak = _peak_bf16_tflops(device, 8192 if device.type == "cuda" else 256)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"\n{name}: bf16 matrix products at {peak:.1f} TFLOP/s (measured); "
          f"paper-size architectures, random weights, {n} images of 224 px, batch {batch}")
    print(f"{'model':18s} {'params M':>8s} {'GFLOP/img':>9s} {'bf16 /s':>8s} {'fp32 /s':>8s} {'bound /s':>9s} "
          f"{'bf16/bound':>10s}")
    for (family, size), spec in sorted(REGISTRY.items()):
        if spec.takes != "rgb" or family == "astropt" or (families and family not in families):
            continue  # AstroPT's dimensions come from its checkpoint (package not needed here)
        with torch.device(device):
            net = _paper_model(family, size)
        model = FAMILIES[family](net.eval())
        x = {"pixel_values": torch.randn(batch, 3, 224, 224, device=device)}
        flops = _flops_per_image(model, x)

        def go(bf16, model=model, x=x):  # bound now: the loop rebinds both
            with torch.inference_mode(), _autocast(device, bf16):
                for _ in range(0, n, batch):
                    model.embed(x)
            _sync(device)

        bf16 = n / _time(lambda: go(True))
        fp32 = n / _time(lambda: go(False))
        bound = peak * 1e12 / flops
        params = sum(p.numel() for p in net.parameters()) / 1e6
        print(f"{spec.name:18s} {params:8.0f} {flops / 1e9:9.1f} {bf16:8.0f} {fp32:8.0f} {bound:9.0f} {bf16 / bound:10.2f}")
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
    model = FAMILIES["vit"](net.eval(), processor)
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
    args = parser.parse_args()
    if not args.skip_cpu:
        cpu_benchmark(args.n)
    if torch.cuda.is_available():
        gpu_benchmark(args.gpu_n)
        gpu_feed_benchmark(8 * args.gpu_n, args.workers)
    else:
        print("\nGPU: no CUDA device here; the paper-size bf16 figures need one (run this script on a GPU node).")


if __name__ == "__main__":
    main()
