"""Where a result came from: config hash, seed, package versions, dataset and model records."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("samesky", "numpy", "scipy", "pandas", "pyarrow", "astropy", "datasets", "huggingface-hub",
            "snakemake", "torch", "transformers", "specutils", "faiss-cpu", "scikit-learn", "matplotlib")


def config_hash(config: dict) -> str:
    """SHA-256 of the config as canonical JSON: equal configs, equal hashes."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def package_versions(names=PACKAGES) -> dict:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def read_records(paths) -> list[dict]:
    records = []
    for path in paths:
        try:
            records.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable provenance record ({exc})") from exc
    return records


def lineage(records) -> dict:
    """The datasets and models behind a result, merged from its inputs' provenance records."""
    datasets, models = {}, {}
    for rec in records:
        datasets.update(rec.get("datasets") or {})
        models.update(rec.get("models") or {})
    return {"datasets": dict(sorted(datasets.items())), "models": dict(sorted(models.items()))}


def record(config: dict, step: str, upstream=(), datasets: dict | None = None, models: dict | None = None,
           **extra) -> dict:
    """A provenance record for one output of one workflow step.

    ``upstream`` are the provenance files of the step's inputs: their datasets and models are carried
    forward, so a table names every dataset revision and model revision it rests on.
    """
    behind = lineage(read_records(upstream))
    behind["datasets"].update(datasets or {})
    behind["models"].update(models or {})
    return {
        "step": step,
        "preset": config.get("preset"),
        "seed": config.get("seed"),
        "config_sha256": config_hash(config),
        "versions": dict(package_versions()),
        "machine": machine(),
        **behind,
        **extra,
    }


def machine() -> dict:
    """What a result's last bits depend on beyond the versions (docs/results.md, "On another computer"): the
    CPU, torch's kernel set where the job loaded torch (``ATEN_CPU_CAPABILITY`` overrides it), the threads."""
    import os
    import sys

    torch = sys.modules.get("torch")
    return {"platform": platform.platform(), "cpu": _cpu_model(), "cores": os.cpu_count(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability() if torch else None,
            **{name: os.environ.get(name) for name in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")}}


@functools.lru_cache(maxsize=None)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def dataset_entry(info: dict) -> dict:
    """What a result needs to know about one downloaded dataset."""
    keys = ("source", "config_name", "split", "revision_requested", "revision_resolved", "n_rows")
    return {k: info.get(k) for k in keys}
