"""Shared fixtures: the repository root, the configs, and one small mini universe per test session."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def copy_repo(dest: Path) -> Path:
    """A copy of the repository without its environment, results, inputs or git, for a test to run the
    workflow in (and leave the developer's results/ alone)."""
    import shutil

    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".venv", "results", "resources", ".snakemake", ".git",
                                                              "*.egg-info"))
    return dest


def validated(config: dict) -> dict:
    """``config`` checked against the schema, with its defaults filled in, as the workflow sees it."""
    from snakemake.utils import validate

    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


@pytest.fixture()
def default_config() -> dict:
    with open(REPO / "config.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture()
def paper_config(default_config) -> dict:
    """config/paper.yaml merged over config.yaml, as `--configfile config/paper.yaml` does."""
    from snakemake.utils import update_config

    with open(REPO / "config" / "paper.yaml") as fh:
        paper = yaml.safe_load(fh)
    merged = copy.deepcopy(default_config)
    update_config(merged, paper)
    return merged


@pytest.fixture(scope="session")
def mini(tmp_path_factory):
    """A 400-galaxy mini universe built with the default survey settings (built once, its surveys rendered
    side by side)."""
    from samesky.mini_universe import build_mini_universe

    with open(REPO / "config.yaml") as fh:
        cfg = validated(yaml.safe_load(fh))["mini_universe"]
    cfg["n_galaxies"] = 400
    root = tmp_path_factory.mktemp("mini")
    truth = build_mini_universe(cfg, 7, root / "hub", root / "truth.parquet", workers=2)
    return {"root": root, "hub": root / "hub", "truth": truth, "cfg": cfg}
