"""Where a result came from: config hash, seed, package versions, dataset and model records."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata

PACKAGES = ("samesky", "numpy", "scipy", "pandas", "pyarrow", "astropy", "datasets", "huggingface-hub",
            "snakemake", "torch", "transformers", "specutils", "faiss-cpu", "scikit-learn", "matplotlib")


def config_hash(config: dict) -> str:
    """SHA-256 of the config as canonical JSON: equal configs, equal hashes."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions(names=PACKAGES) -> dict:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def record(config: dict, step: str, **extra) -> dict:
    """A provenance record for one output of one workflow step."""
    return {
        "step": step,
        "preset": config.get("preset"),
        "seed": config.get("seed"),
        "config_sha256": config_hash(config),
        "versions": package_versions(),
        **extra,
    }
