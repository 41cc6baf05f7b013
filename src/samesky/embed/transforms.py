"""A transformers image processor's steps, run in torch on a batch, on the job's device, with the same result.

transformers' PIL image processors (ViT, BiT/DINOv2, ConvNeXt) prepare one image at a time on the CPU:
resize with Pillow, centre-crop, rescale by 1/255, normalise. For a 160-pixel cutout resized to 224 that
is about 3.5 ms of one core, so a GPU embedding job spends most of its time waiting for it. This module
runs the same steps on a whole batch in torch, on the GPU where there is one, and gives the processor's
output bit for bit (tests/test_transforms.py checks each family's processor):

- Pillow resamples 8-bit images in fixed point (libImaging/Resample.c): per output pixel, filter weights
  over the input pixels it covers (support widened by the scale when shrinking), normalised, turned into
  integers with 22 fractional bits; one pass, rounded and clipped to 8 bits, then the other. We compute
  the same integer weights and apply them in the same 32-bit integer arithmetic, in Pillow's order.
- crop offsets, the rescale (x * factor in float64, then float32) and the normalisation ((x - mean) / std
  in float32) are transformers' own (image_transforms.center_crop, rescale, normalize).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point fraction for 8-bit images
BILINEAR, BICUBIC = 2, 3  # PIL.Image.Resampling values, as the processors store them


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


FILTERS = {BILINEAR: (_bilinear, 1.0), BICUBIC: (_bicubic, 2.0)}  # filter, support


def resample_weights(in_size: int, out_size: int, resample: int) -> np.ndarray:
    """(out_size, in_size) integer weights (as float64) of Pillow's resampling along one axis, scaled by
    2^PRECISION_BITS (Resample.c: precompute_coeffs, normalize_coeffs_8bpc)."""
    if resample not in FILTERS:
        raise ValueError(f"resample {resample}: only bilinear ({BILINEAR}) and bicubic ({BICUBIC}) are implemented")
    kernel, support = FILTERS[resample]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    ss = 1.0 / filterscale
    weights = np.zeros((out_size, in_size))
    for xx in range(out_size):  # Pillow's loop, operation for operation, so the doubles are the same
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        w = [kernel((x - center + 0.5) * ss) for x in range(xmin, xmax)]
        total = 0.0
        for value in w:
            total += value
        for x, value in zip(range(xmin, xmax), w):
            value = value / total if total != 0.0 else value
            weights[xx, x] = math.trunc((-0.5 if value < 0 else 0.5) + value * (1 << PRECISION_BITS))
    return weights


@functools.lru_cache(maxsize=64)
def _taps(in_size: int, out_size: int, resample: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The weights of ``resample_weights`` as (out_size, taps) input indices and int32 weights: each
    output pixel reads only the few input pixels its filter covers. Cached: every batch of a job reuses them."""
    weights = resample_weights(in_size, out_size, resample)
    if (255 * np.abs(weights).sum(1) + (1 << PRECISION_BITS)).max() >= 2**31:
        raise ValueError(f"resampling {in_size} -> {out_size} px would overflow 32-bit sums")
    nonzero = weights != 0
    first = np.where(nonzero.any(1), nonzero.argmax(1), 0)
    taps = max(1, int((in_size - nonzero[:, ::-1].argmax(1) - first).max()))
    index = np.clip(first[:, None] + np.arange(taps), 0, in_size - 1)
    tap_weights = np.take_along_axis(weights, index, axis=1) * (first[:, None] + np.arange(taps) < in_size)
    return torch.from_numpy(index).to(device), torch.from_numpy(tap_weights.astype(np.int32)).to(device)


def _resample_last(x: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One pass along the last axis, in Pillow's integer arithmetic: the sum of 8-bit values times the
    fixed-point weights, plus half a unit, shifted down, clipped to 0..255 (clip8).

    The sums are one matrix product in float64, which holds them exactly (every product and partial sum
    is an integer below 2**31, checked in ``_taps``), so the result is Pillow's to the bit; as a product it
    takes a fraction of the time of one gather per filter tap (issue 28's profile of the embedding jobs)."""
    dense = torch.zeros(index.shape[0], x.shape[-1], dtype=torch.float64, device=x.device)
    dense.scatter_add_(1, index.long(), weights.to(torch.float64))  # clipped edge taps carry weight 0
    out = torch.matmul(x.to(torch.float64), dense.T).to(torch.int64)
    return torch.clamp((out + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS, 0, 255).to(torch.int32)


def _vertical_first(in_h: int, in_w: int, height: int, width: int) -> bool:
    """Pillow's order of the two passes. Before Pillow 13 always horizontal, then vertical; since Pillow 13
    (python-pillow/Pillow#9549) vertical first where the height shrinks by more than twice as many pixels
    as the width (the rule as Pillow 13.0 behaves, checked pixel for pixel in tests/test_transforms.py)."""
    import PIL

    if int(PIL.__version__.split(".")[0]) < 13:
        return False
    return height < in_h and in_h - height > 2 * (in_w - width)


def pil_resize(images: torch.Tensor, height: int, width: int, resample: int) -> torch.Tensor:
    """(B, C, H, W) images of 8-bit values resized as ``PIL.Image.resize`` does; returns int32 8-bit values."""
    x = images.to(torch.int32)
    in_h, in_w = x.shape[-2:]

    def horizontal(x):
        return _resample_last(x, *_taps(in_w, width, resample, x.device)) if width != in_w else x

    def vertical(x):
        if height == in_h:
            return x
        return _resample_last(x.transpose(-1, -2), *_taps(in_h, height, resample, x.device)).transpose(-1, -2)

    return horizontal(vertical(x)) if _vertical_first(in_h, in_w, height, width) else vertical(horizontal(x))


def _short_edge_size(height: int, width: int, short: int) -> tuple[int, int]:
    """transformers' get_resize_output_image_size with default_to_square=False."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - height) // 2, (w - width) // 2
    if top < 0 or left < 0:
        raise ValueError(f"centre crop of {height}x{width} from a {h}x{w} image: padding is not implemented")
    return x[..., top:top + height, left:left + width]


def _field(size, key: str):
    """A processor's size entry: a SizeDict attribute (transformers 5) or a dict key (transformers 4)."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


class ProcessorTransform:
    """The steps of one transformers PIL image processor (ViT, BiT, ConvNeXt), on batches in torch.

    Call it with (B, H, W, 3) uint8 RGB on any device; it returns the processor's ``pixel_values``,
    (B, 3, h, w) float32, on that device."""

    def __init__(self, processor):
        # the class, or where settings stand in for one (read from its file), the kind they name
        self.name = getattr(processor, "processor_kind", None) or type(processor).__name__
        size, crop = processor.size, getattr(processor, "crop_size", None)
        self.resample = processor.resample if processor.resample is not None else BILINEAR
        self.do_resize, self.do_center_crop = bool(processor.do_resize), bool(getattr(processor, "do_center_crop", False))
        self.convnext_pct = getattr(processor, "crop_pct", None) if self.name.startswith("ConvNext") else None
        self.short_edge = _field(size, "shortest_edge")
        self.size = (_field(size, "height"), _field(size, "width"))
        if self.do_resize and not self.short_edge and not all(self.size):
            raise ValueError(f"{self.name}: size {size} is not supported (shortest_edge, or height and width)")
        if self.do_resize and self.short_edge and _field(size, "longest_edge"):
            raise ValueError(f"{self.name}: a size with both shortest_edge and longest_edge is not supported")
        self.crop = (_field(crop, "height"), _field(crop, "width")) if self.do_center_crop else None
        self.rescale = processor.rescale_factor if processor.do_rescale else None
        self.mean = processor.image_mean if processor.do_normalize else None
        self.std = processor.image_std if processor.do_normalize else None

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2)  # channels first, as the processor works
        if self.do_resize:
            h, w = x.shape[-2:]
            if self.convnext_pct is not None:  # ConvNextImageProcessor.resize: crop_pct below 384 px
                if self.short_edge < 384:
                    x = pil_resize(x, *_short_edge_size(h, w, int(self.short_edge / self.convnext_pct)), self.resample)
                    x = _center_crop(x, self.short_edge, self.short_edge)
                else:
                    x = pil_resize(x, self.short_edge, self.short_edge, self.resample)
            elif self.short_edge:
                x = pil_resize(x, *_short_edge_size(h, w, self.short_edge), self.resample)
            else:
                x = pil_resize(x, *self.size, self.resample)
        if self.crop is not None:
            x = _center_crop(x, *self.crop)
        if self.rescale is not None:
            x = (x.to(torch.float64) * self.rescale).to(torch.float32)
        else:
            x = x.to(torch.float32)
        if self.mean is not None:
            mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device)[:, None, None]
            std = torch.tensor(self.std, dtype=torch.float32, device=x.device)[:, None, None]
            x = (x - mean) / std
        return x.contiguous()


def output_size(transform: ProcessorTransform, height: int, width: int) -> tuple[int, int]:
    """The (height, width) a transform makes of an input of this size (for memory and FLOP estimates)."""
    probe = transform(torch.zeros((1, height, width, 3), dtype=torch.uint8))
    return tuple(probe.shape[-2:])

