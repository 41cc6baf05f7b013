"""The geometric preprocessing variants of seed 003 (its §3.2): a larger input size and a close crop around
the galaxy, applied to prepared 8-bit RGB cutouts (after the stretch), so every model reads the same pixels.

- ``resize``: Pillow's bicubic resampling of each cutout to ``size`` x ``size`` (seed 003 resizes its
  cutouts to 320, 480 or 512 px the same way before the models' own processors).
- ``close_crop``: the galaxy's extent measured on the image with photutils' segmentation (the mean of the
  three channels; background and noise from sigma-clipped statistics; the segment under the cutout's
  centre), a square of side ``extent`` x its semi-major sigma on each side of the centre, at least
  ``min_size`` px, then resized back to the cutout's size. Where no segment covers the centre, the cutout
  is kept whole, counted and logged (``CropResult.uncropped``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8, Pillow bicubic, image by image."""
    from PIL import Image

    out = np.empty((len(rgb), size, size, 3), np.uint8)
    for i, image in enumerate(rgb):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BICUBIC))
    return out


def galaxy_extent(image: np.ndarray, nsigma: float = 3.0, npixels: int = 5) -> float | None:
    """The semi-major sigma (px) of the segment under the centre of one (H, W, 3) uint8 cutout; None where
    the centre lies in no segment (a blank or very faint cutout)."""
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import SourceCatalog, detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    data = image.astype(np.float64).mean(axis=2)
    _, median, std = sigma_clipped_stats(data, sigma=3.0)
    if not std > 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # a blank cutout: counted by close_crop, not warned per image
        segments = detect_sources(data - median, nsigma * std, n_pixels=npixels)
    if segments is None:
        return None
    h, w = data.shape
    label = int(segments.data[h // 2, w // 2])
    if label == 0:
        return None
    catalogue = SourceCatalog(data - median, segments)
    source = catalogue.select_label(label)
    return float(source.semimajor_axis.value)  # the 1-sigma semi-major axis (photutils 3 name)


@dataclass
class CropResult:
    rgb: np.ndarray  # (N, H, W, 3) uint8, each the crop resized back to the cutout's size
    half_size: np.ndarray  # (N,) the crop's half side in the cutout's pixels (H / 2 where uncropped)
    uncropped: np.ndarray  # (N,) bool: no segment under the centre, the cutout kept whole


def close_crop(rgb: np.ndarray, extent: float = 3.0, min_size: int = 16, nsigma: float = 3.0,
               npixels: int = 5, skip: np.ndarray | None = None) -> CropResult:
    """Each (H, W, 3) cutout cropped to a square around its centre of half side ``extent`` x the galaxy's
    semi-major sigma (at least ``min_size`` / 2, at most the cutout), resized back to H x W (Pillow
    bicubic). Rows where ``skip`` is True (blank images) are left as they are."""
    from PIL import Image

    n, h, w, _ = rgb.shape
    out = np.array(rgb, copy=True)
    half = np.full(n, h / 2.0)
    uncropped = np.zeros(n, bool)
    for i in range(n):
        if skip is not None and skip[i]:
            continue
        sigma = galaxy_extent(rgb[i], nsigma, npixels)
        if sigma is None:
            uncropped[i] = True
            continue
        half[i] = float(np.clip(extent * sigma, min_size / 2.0, min(h, w) / 2.0))
        cy, cx = h / 2.0, w / 2.0
        box = (cx - half[i], cy - half[i], cx + half[i], cy + half[i])  # PIL: (left, upper, right, lower)
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[i])).resize((w, h), Image.BICUBIC, box=box))
    return CropResult(out, half, uncropped)
