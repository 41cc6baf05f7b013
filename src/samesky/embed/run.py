"""Embed one column of one paired dataset with one model: batched inference, rows kept by object id."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .families import LoadedModel
from .images import DatasetImages, PreparedImages, is_blank, prepare_rgb, select_bands
from .spectra import usable_fluxes

log = logging.getLogger(__name__)


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _autocast(device: torch.device, bf16: bool):
    # bf16 autocast only on a GPU; on the CPU we stay in fp32 so results are exact and reproducible
    return torch.autocast("cuda", dtype=torch.bfloat16) if (bf16 and device.type == "cuda") else nullcontext()


def _rows(ds, column: str, batch_size: int):
    sub = ds.select_columns(["object_id", column]).with_format("numpy")
    for start in range(0, len(sub), batch_size):
        batch = sub[start:start + batch_size]
        yield [str(i) for i in batch["object_id"]], batch[column]


def _records(values):
    """A numpy-formatted struct column comes back as a list of dicts or a dict of lists: give dicts."""
    if isinstance(values, dict):
        keys = list(values)
        return [dict(zip(keys, vals)) for vals in zip(*(values[k] for k in keys))]
    return list(values)


def ordered_prefetch(load, items, workers: int = 2, depth: int | None = None):
    """``load(item)`` of each item, yielded in the items' order, computed ahead by ``workers`` background
    threads (at most ``depth`` results waiting): reading the next batch overlaps the model's work on this
    one. The order is the items' own whatever order the workers finish in; the Platonic Universe code's
    DataLoader with ``num_workers > 0`` scrambled its rows, so this is tested."""
    if workers < 1:
        yield from map(load, items)
        return
    depth = depth or 2 * workers
    with ThreadPoolExecutor(workers, thread_name_prefix="prefetch") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(load, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _stack(chunks: list[list[np.ndarray]], layers: bool):
    """Batches of model outputs (one array per output) -> one float32 array per output; the embedding
    alone, or every layer's (``layers``)."""
    if not chunks:
        return [] if layers else np.zeros((0, 0), np.float32)
    stacked = [np.concatenate(outputs).astype(np.float32) for outputs in zip(*chunks)]
    return stacked if layers else stacked[0]


def _outputs(model: LoadedModel, inputs: dict, layers: bool) -> list[np.ndarray]:
    return [o.float().cpu().numpy() for o in (model.embed_layers(inputs) if layers else [model.embed(inputs)])]


def embed_rgb(rgb: np.ndarray, rows: np.ndarray, model: LoadedModel, batch_size: int = 64, device="auto",
              bf16: bool = True, workers: int = 2, progress: bool = True, layers: bool = False):
    """Embeddings of the given rows of an (N, H, W, 3) uint8 RGB array or memory map, in that order (with
    ``layers``, a list: one array per layer of ``model.layer_names()``).

    Background threads read and batch the rows (pinned for a fast copy to a GPU); the model's own
    resize and normalisation then run on the batch on the device (``prepare_images``)."""
    device = pick_device(device) if isinstance(device, str) else device
    model.to(device)
    pin = device.type == "cuda"

    def load(start):
        batch = torch.from_numpy(np.ascontiguousarray(rgb[rows[start:start + batch_size]]))
        return batch.pin_memory() if pin else batch

    chunks = []
    bar = tqdm(total=len(rows), desc="embed", disable=not progress, mininterval=5)
    with torch.inference_mode(), _autocast(device, bf16):
        for batch in ordered_prefetch(load, range(0, len(rows), batch_size), workers):
            inputs = model.prepare_images(batch.to(device, non_blocking=True))
            chunks.append(_outputs(model, inputs, layers))
            bar.update(len(batch))
    bar.close()
    return _stack(chunks, layers)


def embed_prepared(prepared: PreparedImages, model: LoadedModel, batch_size: int = 64, device="auto",
                   bf16: bool = True, workers: int = 2, progress: bool = True, layers: bool = False):
    """Embeddings of every non-blank image of ``prepared``: (ids, float32 array, per-object frame, meta),
    and with ``layers`` every layer's array as a fifth item (the embedding is the reference layer's)."""
    rows = np.flatnonzero(~prepared.blank)
    out = embed_rgb(prepared.rgb, rows, model, batch_size, device, bf16, workers, progress, layers)
    ids = [prepared.ids[i] for i in rows]
    frame = pd.DataFrame({"object_id": ids, "n_bad_pixels": prepared.n_bad_pixels[rows]})
    meta = {"preprocessing": prepared.metadata()}
    if layers:
        return ids, _reference(out, model), frame, meta, out
    return ids, out, frame, meta


def _reference(layer_arrays: list[np.ndarray], model: LoadedModel) -> np.ndarray:
    return layer_arrays[model.reference_layer] if layer_arrays else np.zeros((0, 0), np.float32)


def embed_images(ds, column: str, survey: str, model: LoadedModel, batch_size: int = 64, device="auto",
                 bf16: bool = True, scaling_images: int = 10_000, progress: bool = True, workers: int = 2,
                 layers: bool = False):
    """Embeddings of the images in ``ds[column]``; returns (ids, float32 array, per-object frame, meta), and
    with ``layers`` every layer's array as a fifth item. The workflow prepares the RGB once per (pair, side)
    instead (``prepare_rgb``, then ``embed_prepared``); flux models (AstroCLIP, AION) come here."""
    device = pick_device(device) if isinstance(device, str) else device
    if model.flux_bands is not None:
        return _embed_flux_images(ds, column, survey, model, batch_size, device, bf16, progress, layers)
    prepared = prepare_rgb(ds, column, survey, scaling_images, progress=progress)
    return embed_prepared(prepared, model, batch_size, device, bf16, workers, progress, layers)


def _embed_flux_images(ds, column: str, survey: str, model: LoadedModel, batch_size: int, device, bf16: bool,
                       progress: bool, layers: bool = False):
    """Images for a model that takes calibrated flux and does its own scaling (AstroCLIP's encoders, AION):
    no dataset-wide percentiles; bad pixels (mask, NaN, inf) are set to zero flux and counted."""
    bands = model.flux_bands_for(survey)
    model.to(device)
    ids, chunks, bad_counts, blank = [], [], [], []
    bar = tqdm(total=len(ds), desc=f"embed {column}", disable=not progress, mininterval=5)
    with torch.inference_mode(), _autocast(device, bf16):
        for batch_ids, images in DatasetImages(ds, column, batch_size).batches():
            fluxes = []
            for oid, img in zip(batch_ids, images):
                flux, bad = select_bands(img, bands, oid)
                if is_blank(flux, bad):
                    blank.append(oid)
                    continue
                fluxes.append(np.where(bad, 0.0, flux).astype(np.float32))
                bad_counts.append(int(bad.sum()))
                ids.append(oid)
            bar.update(len(batch_ids))
            if fluxes:
                inputs = {k: v.to(device) for k, v in model.prepare_flux(np.stack(fluxes), survey).items()}
                chunks.append(_outputs(model, inputs, layers))
    bar.close()
    out = _stack(chunks, layers)
    emb = _reference(out, model) if layers else out
    meta = {"preprocessing": {"flux": {"bands": list(bands), **model.flux_preprocessing},
                              "bad_pixels": "set to zero flux",
                              "images_with_bad_pixels": int(np.count_nonzero(bad_counts)),
                              "blank_images": "no data in the bands (all bad or all zero): not embedded",
                              "skipped_objects": blank}}
    if blank:
        log.warning("%s: %d blank images (no data in %s) not embedded: %s", column, len(blank), bands, blank[:20])
    frame = pd.DataFrame({"object_id": ids, "n_bad_pixels": bad_counts})
    if layers:
        return ids, emb.astype(np.float32), frame, meta, out
    return ids, emb.astype(np.float32), frame, meta


def embed_spectra(ds, column: str, model: LoadedModel, batch_size: int = 32, device="auto", bf16: bool = True,
                  progress: bool = True, layers: bool = False):
    """Specformer embeddings of ``ds[column]`` (DESI-grid flux); unusable spectra are skipped and logged.
    With ``layers``, every layer's array as a fifth item, as ``embed_prepared``."""
    device = pick_device(device) if isinstance(device, str) else device
    model.to(device)
    ids, chunks, skipped, n_fixed = [], [], [], 0
    bar = tqdm(total=len(ds), desc=f"embed {column}", disable=not progress, mininterval=5)
    with torch.inference_mode(), _autocast(device, bf16):
        for batch_ids, spectra in _rows(ds, column, batch_size):
            fluxes, keep = [], []
            for oid, flux, n in usable_fluxes(zip(batch_ids, _records(spectra)), skipped):
                fluxes.append(flux)
                keep.append(oid)
                n_fixed += n
            if fluxes:
                x = torch.from_numpy(np.stack(fluxes)).to(device)
                chunks.append(_outputs(model, {"flux": x}, layers))
                ids += keep
            bar.update(len(batch_ids))
    bar.close()
    out = _stack(chunks, layers)
    emb = _reference(out, model) if layers else out
    meta = {"preprocessing": {"spectrum": "flux as given; non-finite values set to the spectrum's finite mean; "
                                          "spectra with ivar == 0 everywhere are not embedded",
                              "non_finite_values_replaced": n_fixed, "skipped_objects": skipped,
                              "specformer_pooling": model.specformer_pooling}}
    if layers:
        return ids, emb.astype(np.float32), pd.DataFrame({"object_id": ids}), meta, out
    return ids, emb.astype(np.float32), pd.DataFrame({"object_id": ids}), meta
