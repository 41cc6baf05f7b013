"""The repositories of the paper preset, small, in their real layouts, for the dress rehearsal over HTTP.

``build_hub(root)`` writes what ``tests/hub_server.LocalHub`` serves:
- ``datasets/Smith42/<pair>_crossmatched``: the four paired sets as the Multimodal Universe's cross-match
  leaves them (both surveys' examples merged, one ``object_id``, ``ra``/``dec`` and the spectroscopic
  survey's scalars unprefixed; HSC's ``image`` and the ``spectrum`` of the spectroscopic pairs), in two
  Parquet shards each. Their objects come from the mini universe's parent sets, crossmatched at 1 arcsec;
- ``datasets/MultimodalUniverse/desi_provabgs``: PROVABGS (TARGETID in ``object_id``);
- ``files/~flanusse/astroclip_desi.1.1.5.h5`` and ``files/gz_decals_volunteers_5.csv``: by URL;
- ``models/<hub id>``: each model of the rehearsal as its repository holds it (transformers folders with
  ``config.json``, ``preprocessor_config.json`` and safetensors, one ConvNeXtV2 with ``pytorch_model.bin``
  only; AstroPT's ``astropt/<size>/ckpt.pt``; Specformer's and AstroCLIP's Lightning checkpoints), holding
  small configurations of the real architectures;
- ``datasets/UniverseTBD/pu-embeddings``: released embeddings under the peer's naming variants;
- ``mmu/<survey>``: the same parents as full local copies in MMU's HDF5 layout (tests/mmu_layout.py), for the
  parents preset (config/parents.yaml), which reads them from disk.
The Smith42 sets' image masks are in MMU's polarity (True = clean), as config/paper.yaml reads them
(``image_mask: clean``); the crossmatch inverts them back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SPECTROSCOPIC = {"desi", "sdss"}
PAIRS = {"jwst_hsc_crossmatched": "jwst", "legacysurvey_hsc_crossmatched": "legacysurvey",
         "desi_hsc_crossmatched": "desi", "sdss_hsc_crossmatched": "sdss"}


MMU_CONFIGS = {"hsc": "pdr3_dud_22.5", "legacysurvey": "dr10_south_21", "jwst": "ceers", "desi": "dr1_main",
               "sdss": "boss"}


def _shards(frame_or_ds, folder: Path, n_shards: int = 2) -> None:
    """``data/train-0000k-of-0000n.parquet``, as the Hub's parquet datasets are sharded."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    n = len(frame_or_ds)
    bounds = np.linspace(0, n, n_shards + 1).astype(int)
    for k in range(n_shards):
        part = frame_or_ds.select(range(bounds[k], bounds[k + 1]))
        part.to_parquet(folder / "data" / f"train-{k:05d}-of-{n_shards:05d}.parquet")


def smith42_layout(paired, other: str):
    """Our pair layout (survey-prefixed columns) -> the layout the Smith42 sets are read in
    (config/paper.yaml's ``rename``), as MMU's ``cross_match_datasets`` returns it: the examples merged, the
    right side's ``object_id`` kept, and no position (MMU's builders emit none); a spectroscopic pair has
    HSC's ``image``, the ``spectrum`` and the spectroscopic survey's scalars unprefixed, its object_id the
    spectroscopic survey's (DESI's TARGETID)."""
    keep = {"object_id": "object_id", "hsc_image": "hsc_image", f"{other}_image": f"{other}_image"}
    if other in SPECTROSCOPIC:
        keep = {f"{other}_object_id": "object_id", "hsc_image": "image", f"{other}_spectrum": "spectrum"}
        keep |= {c: c[len(other) + 1:] for c in paired.column_names if c.startswith(f"{other}_")
                 and c not in (f"{other}_spectrum", f"{other}_object_id", f"{other}_ra", f"{other}_dec")}
    from samesky.pairs import image_mask_columns, invert_masks

    ds = paired.select_columns([c for c in keep if c in paired.column_names])
    ds = invert_masks(ds, image_mask_columns(ds), other)  # MMU's builders: True = clean
    return ds.rename_columns({c: keep[c] for c in ds.column_names if keep[c] != c})


def provabgs_of_desi(hub: Path) -> pd.DataFrame:
    """PROVABGS rows (TARGETID in object_id, ra, dec, the properties, MAG_R) of the mini DESI objects."""
    cat = pd.read_parquet(next((hub / "provabgs" / "data").glob("*.parquet")))
    desi = pd.read_parquet(next((hub / "desi" / "data").glob("*.parquet")), columns=["object_id", "ra", "dec", "FLUX_R"])
    desi = desi.set_index(desi["object_id"].astype(np.int64))
    out = cat.rename(columns={"TARGETID": "object_id"}).assign(
        ra=desi["ra"].reindex(cat["TARGETID"]).to_numpy(), dec=desi["dec"].reindex(cat["TARGETID"]).to_numpy(),
        MAG_R=22.5 - 2.5 * np.log10(desi["FLUX_R"].reindex(cat["TARGETID"]).to_numpy()))
    out["object_id"] = out["object_id"].astype(str)
    return out[["object_id", "ra", "dec", "LOG_MSTAR", "Z_MW", "TAGE_MW", "AVG_SFR", "MAG_R"]]


def write_models(root: Path, specs, seed: int = 0) -> None:
    """Each spec's repository at ``root/models/<hub id>``, in the layout the download reads."""
    from samesky.embed.models import MANIFEST, write_mini_model

    for spec in specs:
        tmp = root / "_mini" / spec.name
        manifest = write_mini_model(spec, tmp, seed)
        repo = root / "models" / spec.hub_id
        if spec.family == "astropt":
            target = repo / spec.subfolder / "ckpt.pt"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp / manifest["entry"], target)
        elif spec.adapter == "hf":
            repo.mkdir(parents=True, exist_ok=True)
            for f in tmp.iterdir():
                if f.name != MANIFEST:
                    shutil.copyfile(f, repo / f.name)
            if spec.family == "convnextv2":  # as some ConvNeXtV2 repositories hold it: pytorch_model.bin only
                import torch
                from safetensors.torch import load_file

                torch.save(load_file(repo / "model.safetensors"), repo / "pytorch_model.bin")
                (repo / "model.safetensors").unlink()
        else:  # Specformer's and AstroCLIP's Lightning checkpoints (AstroCLIP's three encoders in one file)
            repo.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp / manifest["entry"], repo / manifest["entry"])
    shutil.rmtree(root / "_mini", ignore_errors=True)


def build_hub(root: Path, specs, universe: dict, n_galaxies: int = 500, seed: int = 3) -> dict:
    """Write every repository and file (the objects: the mini universe ``universe``, a validated config's
    ``mini_universe``, with ``n_galaxies``); returns {dataset name: rows} of the paired sets."""
    from datasets import load_dataset

    from samesky.mini_universe.build import build_mini_universe
    from samesky.pairs import crossmatch_datasets

    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from test_released import PREFIXED, write_released
    from test_workflow import _write_astroclip_files

    cfg = {**universe, "n_galaxies": n_galaxies}
    mini = root / "_universe"
    build_mini_universe(cfg, seed, mini / "hub", mini / "truth.parquet", workers=2)
    parents = {s: load_dataset(str(mini / "hub" / s), split="train") for s in ("hsc", *PAIRS.values())}
    from mmu_layout import write_mmu_parent

    for survey, config_name in MMU_CONFIGS.items():  # the parents preset's full local copies, in MMU's layout
        write_mmu_parent(parents[survey], root / "mmu" / survey, survey, config_name)
    rows = {}
    for name, other in PAIRS.items():
        paired, _, _ = crossmatch_datasets(parents["hsc"], parents[other], "hsc", other, 1.0, "hsc", other)
        _shards(smith42_layout(paired, other), root / "datasets" / "Smith42" / name)
        rows[name] = len(paired)
    # GZD-5's volunteer votes (CSV by URL) for the Legacy-like objects: the morphology matches desi_hsc to them
    votes = pd.read_parquet(next((mini / "hub" / "galaxy_zoo" / "data").glob("*.parquet")))
    from samesky.downstream.labels import FRACTION_COLUMNS

    for column in FRACTION_COLUMNS:  # GZD-5 has both; the mini universe's votes need no redshift correction
        votes[column.replace("_fraction", "_debiased")] = votes[column]
    (root / "files").mkdir(parents=True, exist_ok=True)
    votes.to_csv(root / "files" / "gz_decals_volunteers_5.csv", index=False)
    # AstroCLIP's evaluation file (by URL) and PROVABGS (a Hub dataset) for the probes
    _write_astroclip_files(mini)
    h5 = root / "files" / "~flanusse" / "astroclip_desi.1.1.5.h5"
    h5.parent.mkdir(parents=True)
    shutil.copyfile(mini / "resources" / "test_astroclip" / "astroclip_desi.h5", h5)
    # PROVABGS: AstroCLIP's objects and the DESI-HSC set's (the paper preset takes that set's positions
    # from it by TARGETID)
    provabgs = root / "datasets" / "MultimodalUniverse" / "desi_provabgs" / "data"
    provabgs.mkdir(parents=True)
    astroclip = pd.read_parquet(mini / "resources" / "test_astroclip" / "provabgs" / "train-00000-of-00001.parquet")
    pd.concat([astroclip, provabgs_of_desi(mini / "hub")], ignore_index=True).to_parquet(
        provabgs / "train-00000-of-00001.parquet", index=False)
    write_models(root, specs)
    # released embeddings, one under another of the peer's names
    write_released(root / "datasets" / "UniverseTBD" / "pu-embeddings", n=120,
                   names={("desi", "dinov2", "small"): PREFIXED})
    shutil.rmtree(mini)
    return rows
