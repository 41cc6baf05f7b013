"""The CPU side of image embedding: the per-image path each embedding job used to run, against preparing the
images once per (pair, side) and feeding the model from a memory map with a background reader.

Prints, in one run, on 160-pixel cutouts with 5 bands stored (HSC-like):

1. reference, the old path, per image: band selection, percentile scaling to 8-bit RGB, and the
   transformers processor (PIL resize to 224, normalise); images/s on one core;
2. ``prepare_rgb``'s work, once per (pair, side): band selection and scaling, vectorised per batch;
3. what an embedding job's CPU does now: read batches of the prepared uint8 memory map with the ordered
   background reader (``ordered_prefetch``) into tensors; the resize and normalisation then run on the
   job's device (4. times them on this CPU, for reference; on a GPU they cost next to nothing);
5. the peak memory of the percentile scaling over 10,000 such images: all good pixels concatenated
   (the previous method, np.percentile) against counting sort keys in two passes (``compute_scaling``),
   and whether the two give the same percentiles.

    python benchmarks/image_pipeline.py [--n 2048] [--scaling-n 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from samesky.embed.images import compute_scaling, rgb_bands, scale_batch, select_bands, to_rgb
from samesky.embed.run import ordered_prefetch
from samesky.embed.transforms import ProcessorTransform

BANDS = ["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"]


class SyntheticImages:
    """HSC-like 5-band cutouts, made on demand from a seed per image (never all held in memory)."""

    def __init__(self, n: int, npix: int = 160):
        self.n, self.npix = n, npix
        yy, xx = np.mgrid[:npix, :npix] - npix / 2
        self.profile = np.exp(-0.5 * (xx**2 + yy**2) / 12.0**2).astype(np.float32)

    def image(self, i: int) -> dict:
        rng = np.random.default_rng(i)
        flux = rng.normal(0, 0.02, (5, self.npix, self.npix)).astype(np.float32)
        flux += rng.uniform(0.05, 2.0, (5, 1, 1)).astype(np.float32) * self.profile
        return {"band": BANDS, "flux": flux, "mask": rng.random((5, self.npix, self.npix)) < 0.001}

    def __iter__(self):
        for i in range(self.n):
            yield str(i), self.image(i)

    def __len__(self):
        return self.n


def concatenated_percentiles(images, wanted, max_images):
    """The previous scaling: every good pixel of every image kept, then np.percentile per channel."""
    per_channel = [[] for _ in wanted]
    n = 0
    for oid, image in images:
        if n >= max_images:
            break
        flux, bad = select_bands(image, wanted, oid)
        for c in range(len(wanted)):
            per_channel[c].append(flux[c][~bad[c]])
        n += 1
    return [tuple(float(v) for v in np.percentile(np.concatenate(values), [5.0, 99.0])) for values in per_channel]


def peak_mb(fn):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, peak, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2048, help="images for the throughput figures")
    parser.add_argument("--scaling-n", type=int, default=10_000, help="images for the scaling memory figure")
    parser.add_argument("--workers", type=int, default=2, help="background reader threads")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    bands = rgb_bands("hsc")
    images = SyntheticImages(args.n)
    scaling = compute_scaling(SyntheticImages(256), bands)
    records = [images.image(i) for i in range(256)]  # made before timing: the dataset read is not timed

    start = time.perf_counter()
    for i in range(0, len(records), 64):
        rgb = np.stack([to_rgb(r, scaling)[0] for r in records[i:i + 64]])
        processor(images=list(rgb), return_tensors="pt")
    old = len(records) / (time.perf_counter() - start)
    print(f"1. per image, as before (select + scale + processor at 224 px, 1 core): {old:8.0f} images/s")

    start = time.perf_counter()
    for i in range(0, len(records), 64):
        selected = [select_bands(r, bands) for r in records[i:i + 64]]
        scale_batch(np.stack([s[0] for s in selected]), np.stack([s[1] for s in selected]), scaling)
    prep = len(records) / (time.perf_counter() - start)
    print(f"2. prepare once per (pair, side) (select + scale, batched, 1 core):    {prep:8.0f} images/s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rgb.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(args.n, 160, 160, 3))
        for i in range(0, args.n, 256):
            selected = [select_bands(records[j % len(records)], bands) for j in range(i, min(args.n, i + 256))]
            out[i:i + len(selected)] = scale_batch(np.stack([s[0] for s in selected]),
                                                np.stack([s[1] for s in selected]), scaling)[0]
        out.flush()
        del out
        rgb = np.load(path, mmap_mode="r")
        rows = np.arange(args.n)

        def load(s):
            return torch.from_numpy(np.ascontiguousarray(rgb[rows[s:s + 128]]))

        start = time.perf_counter()
        n = sum(len(batch) for batch in ordered_prefetch(load, range(0, args.n, 128), workers=args.workers))
        feed = n / (time.perf_counter() - start)
        print(f"3. an embedding job's CPU side now (memory map -> tensors, {args.workers} reader threads, file in the"
              f" page cache): {feed:8.0f} images/s ({feed / old:.0f}x the old per-image path; target 3000)")
        transform = ProcessorTransform(processor)
        batch = load(0)[:64]
        start = time.perf_counter()
        transform(batch)
        print(f"4. resize + normalise in torch on this CPU (1 thread; on a GPU it runs there):"
              f" {len(batch) / (time.perf_counter() - start):8.0f} images/s")

    sample = SyntheticImages(args.scaling_n)
    ours, ours_mb, ours_s = peak_mb(lambda: compute_scaling(sample, bands, max_images=args.scaling_n))
    ref, ref_mb, ref_s = peak_mb(lambda: concatenated_percentiles(sample, bands, args.scaling_n))
    same = [(lo, hi) for lo, hi in zip(ours.low, ours.high)] == ref
    print(f"5. scaling over {args.scaling_n} images of 160 px: counting {ours_mb:7.0f} MiB peak ({ours_s:.0f} s); "
          f"concatenating {ref_mb:7.0f} MiB ({ref_s:.0f} s); same percentiles: {same}")


if __name__ == "__main__":
    main()
