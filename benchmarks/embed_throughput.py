"""Embedding throughput: images (or spectra) per second for every model of the registry.

CPU: the embedded default's mini models, batched (batch 64) against the reference of one object at a
time, through the workflow's own loading and inference code. GPU (only where CUDA is present): the
paper sizes' architectures, randomly initialised at their published dimensions (throughput does not
depend on the weights), bf16 autocast against fp32 as the reference.

    python benchmarks/embed_throughput.py [--n 256] [--gpu-n 512]
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


def gpu_benchmark(n: int) -> None:
    device = torch.device("cuda")
    print(f"\nGPU {torch.cuda.get_device_name()}, paper-size architectures (random weights), {n} objects, batch 64")
    print(f"{'model':22s} {'params (M)':>10s} {'bf16/s':>9s} {'fp32/s':>9s} {'speed-up':>9s}")
    rng = np.random.default_rng(0)
    for (family, size), spec in sorted(REGISTRY.items()):
        net = _paper_model(family, size)
        if net is None:
            print(f"{spec.name:22s} skipped: AstroPT's dimensions come from its checkpoint")
            continue
        model = FAMILIES[family](net.to(device))
        if family == "specformer":
            data = _inputs(spec, n, rng)
        else:  # the processors resize to 224 on the CPU; time the network on 224 px input
            model.prepare_images = lambda chunk: {"pixel_values": torch.randn(len(chunk), 3, 224, 224)}
            data = np.zeros((n, 1, 1, 3), np.uint8)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        bf16 = n / _time(_run(model, data, 64, device, bf16=True))
        fp32 = n / _time(_run(model, data, 64, device, bf16=False))
        print(f"{spec.name:22s} {params:10.0f} {bf16:9.1f} {fp32:9.1f} {bf16 / fp32:8.1f}x")
        del model, net
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="objects per CPU measurement")
    parser.add_argument("--gpu-n", type=int, default=512, help="objects per GPU measurement")
    args = parser.parse_args()
    cpu_benchmark(args.n)
    if torch.cuda.is_available():
        gpu_benchmark(args.gpu_n)
    else:
        print("\nGPU: no CUDA device here; the paper-size bf16 figures need one (run this script on a GPU node).")


if __name__ == "__main__":
    main()
