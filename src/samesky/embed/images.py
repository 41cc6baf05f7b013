"""Survey-aware image preprocessing: band choice, dataset-wide percentile scaling, bad pixels.

The Platonic Universe: three bands as RGB (z, r, g for HSC and Legacy; F444W, F277W, F090W for JWST), each channel
scaled so that its 5th and 99th percentiles, computed over up to 10,000 images of the dataset, map to
the minimum and maximum; then each model's own preprocessing. Bad pixels (mask True, NaN, inf) are set
to the channel's low percentile (black) and counted per image, so they never look like sources.
An image with no data in the RGB bands (every pixel bad or exactly zero, as off-footprint cutouts are)
is blank: it is left out of the scaling sample and not embedded (logged, listed in the metadata).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..surveys import band_letter

log = logging.getLogger(__name__)

RGB_BANDS = {
    "hsc": ("z", "r", "g"),
    "legacysurvey": ("z", "r", "g"),
    "jwst": ("f444w", "f277w", "f090w"),
}


class ImageError(ValueError):
    """An image cannot be preprocessed as asked (a band is missing, shapes disagree)."""


@dataclass(frozen=True)
class Scaling:
    bands: tuple[str, ...]  # the RGB bands, in channel order
    low: tuple[float, ...]
    high: tuple[float, ...]
    low_percentile: float
    high_percentile: float
    n_images: int  # how many images the percentiles were computed over

    def as_dict(self) -> dict:
        return {"bands": list(self.bands), "low": list(self.low), "high": list(self.high),
                "percentiles": [self.low_percentile, self.high_percentile], "n_images": self.n_images}


def rgb_bands(survey: str) -> tuple[str, ...]:
    try:
        return RGB_BANDS[survey]
    except KeyError:
        raise ImageError(f"no RGB band choice for survey '{survey}'; known: {sorted(RGB_BANDS)}") from None


def select_bands(image: dict, wanted: tuple[str, ...], object_id: str = "?") -> tuple[np.ndarray, np.ndarray]:
    """(3, H, W) flux and bad-pixel mask of the wanted bands from one MMU-style ``image`` record."""
    letters = [band_letter(str(b)) for b in image["band"]]
    flux = np.asarray(image["flux"], dtype=np.float32)
    mask = np.asarray(image["mask"], dtype=bool) if image.get("mask") is not None else np.zeros(flux.shape, bool)
    idx = []
    for band in wanted:
        if band not in letters:
            raise ImageError(f"object {object_id}: band '{band}' missing from the image (has {letters})")
        idx.append(letters.index(band))
    sel_flux, sel_mask = flux[idx], mask[idx]
    return sel_flux, sel_mask | ~np.isfinite(sel_flux)


def is_blank(flux: np.ndarray, bad: np.ndarray) -> bool:
    """No data in the selected bands: every pixel is bad or exactly zero."""
    return bool(np.all(bad | (flux == 0)))


def compute_scaling(images, wanted, low_pct=5.0, high_pct=99.0, max_images=10_000) -> Scaling:
    """Per-channel percentiles over the good pixels of up to ``max_images`` non-blank images (in dataset order)."""
    per_channel = [[] for _ in wanted]
    n = 0
    for object_id, image in images:
        if n >= max_images:
            break
        flux, bad = select_bands(image, wanted, object_id)
        if is_blank(flux, bad):
            continue
        for c in range(len(wanted)):
            per_channel[c].append(flux[c][~bad[c]])
        n += 1
    low, high = [], []
    for c, band in enumerate(wanted):
        values = np.concatenate(per_channel[c]) if per_channel[c] else np.zeros(0)
        if values.size == 0:
            raise ImageError(f"band '{band}': no good pixel in the {n} images used for scaling")
        lo, hi = np.percentile(values, [low_pct, high_pct])
        if not hi > lo:
            hi = lo + 1e-6  # a constant band: avoid dividing by zero, the channel scales to 0
            log.warning("band '%s' is constant over the scaling sample", band)
        low.append(float(lo))
        high.append(float(hi))
    return Scaling(tuple(wanted), tuple(low), tuple(high), low_pct, high_pct, n)


def to_rgb(image: dict, scaling: Scaling, object_id: str = "?") -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 RGB and the count of bad pixels replaced, for one image."""
    return scaled_rgb(*select_bands(image, scaling.bands, object_id), scaling)


def scaled_rgb(flux: np.ndarray, bad: np.ndarray, scaling: Scaling) -> tuple[np.ndarray, int]:
    """:func:`to_rgb` on bands already selected with :func:`select_bands`."""
    low = np.asarray(scaling.low, np.float32)[:, None, None]
    high = np.asarray(scaling.high, np.float32)[:, None, None]
    flux = np.where(bad, low, flux)
    scaled = np.clip((flux - low) / (high - low), 0.0, 1.0)
    rgb = np.round(scaled * 255).astype(np.uint8).transpose(1, 2, 0)
    return rgb, int(bad.sum())


def image_records(table, column: str) -> list[dict]:
    """Image records ({band, flux, mask}) of one Arrow table slice, read straight from Arrow buffers.

    ``datasets``' numpy formatter converts a list of Array2D cell by cell (~40 ms an image); this reads the
    flat buffers and reshapes them, ~100x faster, respecting slice offsets.
    """
    import pyarrow as pa

    col = table.column(column).combine_chunks()
    fields = dict(zip([f.name for f in col.type], col.flatten()))
    bands = fields["band"].to_pylist()
    out = [{"band": b} for b in bands]
    for name in ("flux", "mask"):
        if name not in fields:
            continue
        lists = fields[name]
        lengths = lists.value_lengths().to_numpy(zero_copy_only=False)
        inner = lists.flatten()
        if isinstance(inner, pa.ExtensionArray):
            inner = inner.storage
        rows = inner.flatten()  # one entry per image row
        height = int(inner.value_lengths()[0].as_py()) if len(inner) else 0
        width = int(rows.value_lengths()[0].as_py()) if len(rows) else 0
        values = rows.flatten().to_numpy(zero_copy_only=False)
        arrays = values.reshape(-1, height, width) if len(values) else np.zeros((0, height, width))
        for record, chunk in zip(out, np.split(arrays, np.cumsum(lengths)[:-1])):
            record[name] = chunk
    return out
