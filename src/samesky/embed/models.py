"""Make, fetch, pre-train and load the study's models, one folder per model.

Every embedding job loads its model from a local folder:
- the embedded default writes a small randomly initialised instance there (``write_mini_model``);
- the paper preset downloads the released weights there at a pinned revision (``download_model``);
- the embedded default's mini Specformer is then pre-trained into a folder of its own
  (``pretrain_mini_specformer``).
So both presets run the same loading code (``load_model``). A ``samesky_model.json`` in each folder (the
manifest) says what it holds; what differs between families lives in ``embed/families.py``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path
from ..registry import ModelSpec
from .families import FAMILIES, LoadedModel, SpecformerModel, family_of, save_specformer
from .specformer import load_specformer_checkpoint, pretrain

log = logging.getLogger(__name__)

MANIFEST = "samesky_model.json"


class ModelLoadError(RuntimeError):
    """A model folder or Hub id cannot be loaded (missing, offline, wrong format)."""


def _seed_for(spec: ModelSpec, seed: int) -> int:
    return (seed * 1_000_003 + sum(map(ord, spec.name))) % (2**31)


def _write_manifest(folder: Path, manifest: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def write_mini_model(spec: ModelSpec, out_dir: str | os.PathLike, seed: int) -> dict:
    """Save a small, randomly initialised instance of ``spec``'s architecture to ``out_dir``."""
    family = family_of(spec.family)
    torch.manual_seed(_seed_for(spec, seed))
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        entry = family.write_mini(spec, tmp)
        manifest = {"family": spec.family, "size": spec.size, "weights": "mini-random", "seed": seed, "entry": entry,
                    "hub_id": None, "revision": None, "spec": asdict(spec), **family.mini_manifest(spec)}
        _write_manifest(tmp, manifest)
    return manifest


def pretrain_mini_specformer(model_dir: str | os.PathLike, out_dir: str | os.PathLike, spectra: np.ndarray,
                             settings: dict, seed: int, source: dict | None = None) -> dict:
    """Pre-train the random mini Specformer of ``model_dir`` on ``spectra`` (flux on the DESI grid, one row
    per spectrum) with AstroCLIP's masked-reconstruction objective, and save it to ``out_dir``.

    The manifest then says ``mini-pretrained`` and records the settings (config
    ``mini_specformer_pretraining``), the spectra's source and the loss curve.
    """
    manifest = read_manifest(model_dir)
    if manifest["family"] != SpecformerModel.family or manifest["weights"] != "mini-random":
        raise ValueError(f"{model_dir}: only a random mini Specformer is pre-trained here, not "
                         f"{manifest['family']}-{manifest['size']} ({manifest['weights']})")
    flux = torch.as_tensor(np.asarray(spectra, dtype=np.float32))
    if flux.ndim != 2 or len(flux) < settings["batch_size"]:
        raise ValueError(f"pre-training needs at least batch_size = {settings['batch_size']} spectra; got "
                         f"{tuple(flux.shape)} from {source}")
    model = load_specformer_checkpoint(Path(model_dir) / manifest["entry"])
    log.info("pre-training the mini Specformer on %d spectra for %d steps", len(flux), settings["steps"])
    losses = pretrain(model, flux, settings["steps"], settings["batch_size"], settings["learning_rate"],
                      settings["mask_chunks"], settings["mask_width"], seed=seed, log=log,
                      crop_tokens=settings["crop_tokens"])
    window = max(1, min(50, len(losses) // 4))
    manifest |= {"weights": "mini-pretrained", "pretraining": {
        "objective": "masked reconstruction (AstroCLIP Specformer)", "settings": dict(settings),
        "n_spectra": len(flux), "source": source,
        "loss_first": float(np.mean(losses[:window])), "loss_last": float(np.mean(losses[-window:])),
        "loss_every_10_steps": [round(x, 5) for x in losses[::10]]}}
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        save_specformer(model, tmp / manifest["entry"])
        _write_manifest(tmp, manifest)
    return manifest


def hub_download_plan(spec: ModelSpec, files: list[str]) -> tuple[list[str] | None, str, str]:
    """(download patterns, entry file, weights format) for ``spec`` given the repository's files at the
    revision, or a ModelLoadError naming what is missing.

    transformers repositories hold ``*.safetensors`` or, some ConvNeXtV2 ones on their default branch, only
    ``pytorch_model.bin``: the safetensors are taken where present, else the ``*.bin`` (recorded)."""
    patterns, entry = family_of(spec.family).hub_files(spec)
    fmt = "as released"
    if patterns and "*.safetensors" in patterns:
        if any(f.endswith(".safetensors") for f in files):
            fmt = "safetensors"
        elif any(f.endswith(".bin") for f in files):
            patterns, fmt = [p if p != "*.safetensors" else "*.bin" for p in patterns], "pytorch .bin"
        else:
            raise ModelLoadError(f"model '{spec.hub_id}': no weights file (*.safetensors or *.bin) at this revision; "
                                 f"has {sorted(files)}")
    if entry not in files:
        raise ModelLoadError(f"model '{spec.hub_id}': no '{entry}' at this revision (the file {spec.name} loads); "
                             f"has {sorted(files)[:20]}")
    return patterns, entry, fmt


def repository_files(hub_id: str, revision: str) -> tuple[str, list[str]]:
    """(resolved commit, file names) of a model repository at a revision: what the download and the
    preflight decide from."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(hub_id, revision=revision)
    return info.sha, [f.rfilename for f in info.siblings or []]


def download_model(spec: ModelSpec, out_dir: str | os.PathLike, revision: str | None = None,
                   shared: str | os.PathLike | None = None) -> dict:
    """Fetch the released weights of ``spec`` at ``revision`` into ``out_dir`` (Hugging Face Hub); with
    ``shared`` (a folder that ``download_model`` of another model with the same download filled), write only
    the manifest, whose entry points into that folder."""
    if shared is not None:
        source = read_manifest(shared)
        with atomic_path(out_dir, is_dir=True) as tmp:
            tmp.mkdir(parents=True, exist_ok=True)
            entry = os.path.relpath(Path(shared) / source["entry"], Path(out_dir))
            manifest = {**{k: source[k] for k in ("hub_id", "revision", "revision_resolved", "weights_format")},
                        "family": spec.family, "size": spec.size, "weights": "hub", "entry": entry, "seed": None,
                        "shared_download": str(shared), "spec": asdict(spec)}
            _write_manifest(tmp, manifest)
        log.info("%s: the weights of %s downloaded once in %s", spec.name, spec.hub_id, shared)
        return manifest
    from huggingface_hub import snapshot_download

    revision = revision or spec.revision
    try:
        resolved, files = repository_files(spec.hub_id, revision)
    except Exception as exc:
        raise ModelLoadError(f"cannot reach model '{spec.hub_id}' at revision '{revision}': {exc}") from exc
    patterns, entry, fmt = hub_download_plan(spec, files)
    log.info("%s: %s at %s (%s), files %s", spec.name, spec.hub_id, resolved, fmt, patterns or "all")
    with atomic_path(out_dir, is_dir=True) as tmp:
        snapshot_download(spec.hub_id, revision=resolved, local_dir=tmp, allow_patterns=patterns)
        manifest = {"family": spec.family, "size": spec.size, "weights": "hub", "entry": entry,
                    "hub_id": spec.hub_id, "revision": revision, "revision_resolved": resolved, "seed": None,
                    "weights_format": fmt, "spec": asdict(spec)}
        _write_manifest(tmp, manifest)
    return manifest


def read_manifest(model_dir: str | os.PathLike) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.exists():
        raise ModelLoadError(f"{model_dir} holds no model ({MANIFEST} missing); run the rule that makes it")
    return json.loads(path.read_text())


def load_model(model_dir: str | os.PathLike, specformer_pooling: str = "exclude_stats") -> LoadedModel:
    """Load what ``write_mini_model``, ``pretrain_mini_specformer`` or ``download_model`` put in ``model_dir``."""
    manifest = read_manifest(model_dir)
    family = manifest.get("family")
    if family not in FAMILIES:
        raise ModelLoadError(f"{model_dir}: unknown family '{family}' in {MANIFEST}")
    try:
        return FAMILIES[family].from_folder(Path(model_dir), manifest, specformer_pooling=specformer_pooling)
    except Exception as exc:
        raise ModelLoadError(f"could not load {family} from {model_dir}: {exc}") from exc


def model_record(manifest: dict, spec: ModelSpec) -> dict:
    """What a result needs to know about the model behind it (the provenance ``models`` entry)."""
    record = {"family": spec.family, "size": spec.size, "hub_id": manifest["hub_id"],
              "revision": manifest.get("revision_resolved") or manifest["revision"], "weights": manifest["weights"],
              "seed": manifest["seed"], "pooling": spec.pooling, "params_m": spec.params_m,
              **({"weights_format": manifest["weights_format"]} if "weights_format" in manifest else {})}
    if "pretraining" in manifest:
        record["pretraining"] = {k: v for k, v in manifest["pretraining"].items() if k != "loss_every_10_steps"}
    return record
