"""What a run will cost, before it is submitted: GPU-hours, CPU-hours and the largest GPU memory a job needs.

``snakemake preflight`` adds this estimate to its report. It rests on
- N per pair: the rows each dataset holds at its revision, as the Hub (or the local folder) reports them:
  the row counts in the Parquet files' footers (one range request per shard), the size of an HDF5 file
  by URL divided by one object's bytes in AstroCLIP's layout. An upper bound: the pair audit and the
  blank rule drop some rows;
- the embedding throughputs measured on an H200 (``benchmarks/measured/embed_throughput_h200.txt``, bf16,
  images per second); a model not measured there runs at the median measured fraction of the card's
  measured matrix rate, from its forward pass's FLOP (``ModelSpec.gflops_per_object``);
- for the alignment rules, the exact neighbour searches they run (one 2 N^2 d FLOP matrix product a
  search, d = 1024, the paper's common width): each file once in search_neighbours, which the other rules
  read, plus the conditional analyses' and size curves' own (transformed spaces, bins, subsets), at this
  machine's measured float32 matrix rate per core times the search's efficiency against it (78%,
  benchmarks/mknn_scaling.py): core-hours; on a GPU (alignment.search.gpu) at an assumed rate. The other rules (downloads,
  crossmatch, probes, tables) are I/O or small fits, minutes each at the paper's N: not estimated.
These are estimates for requesting resources, not measurements of the run.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from pathlib import Path

import numpy as np

from .config import embedding_jobs, pair_datasets
from .registry import specs_of

log = logging.getLogger(__name__)

WIDTH = 1024  # embedding width assumed for the searches (ViT-L, DINOv2-L; the giants' 1536 costs 1.5x)
SEARCH_EFFICIENCY = 0.78  # our exact search against the matrix-multiply bound (benchmarks/mknn_scaling.py)
JOB_OVERHEAD_H = 0.05  # an embedding job's start, model download from the cache and load, in hours
ASTROCLIP_ROW_BYTES = 152 * 152 * 3 * 4 + 7781 * 4 + 16  # one object of AstroCLIP's HDF5: image, spectrum, z, id
LAYERS_ASSUMED = 24  # blocks a side in the layer grids (ViT-L, DINOv2-L)
GPU_SEARCH_TFLOPS = 30.0  # the GPU search's rate, assumed (half an H200's 67 TFLOP/s FP32): no GPU measured it


def read_throughputs(path: str | Path) -> tuple[dict[str, float], float, float]:
    """({model: images/s in bf16}, the card's measured TFLOP/s, the median bf16 fraction of the bound) from
    benchmarks/measured/embed_throughput_h200.txt."""
    text = Path(path).read_text()
    peak = float(re.search(r"at ([\d.]+) TFLOP/s", text).group(1))
    rates, fractions = {}, []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 7 and re.fullmatch(r"[\d.]+", parts[3]) and re.fullmatch(r"[\d.]+", parts[6]):
            rates[parts[0]] = float(parts[3])
            fractions.append(float(parts[6]))
    return rates, peak, statistics.median(fractions)


def cost_gflops_note() -> str:
    return ("CPU-hours are core-hours at this machine's per-core matrix rate (measured); a cluster node's cores "
            "differ. GPU-hours are for an H200; scale by the card's bf16 rate.")


def cpu_gflops(seconds: float = 0.5) -> float:
    """This machine's float32 matrix-multiply rate per core (GFLOP/s): numpy's BLAS on all its threads,
    divided by their number, so that hours at this rate are core-hours."""
    from threadpoolctl import threadpool_info

    threads = max([p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"] or [1])
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ a
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start) / 1e9 / threads


def dataset_rows(entry: dict) -> tuple[int | None, str]:
    """(rows, how they were counted) of one configured dataset at its revision; (None, why) if unknown."""
    from .hub import is_local
    from .preflight import head_size, is_remote

    source = entry["source"]
    if source == "mini":
        return None, "made here"
    if entry["format"] == "astroclip_h5":
        if not is_remote(source):
            from .astroclip_data import n_objects

            return n_objects(source), "HDF5 groups"
        size = head_size(source, 20)
        return (size // ASTROCLIP_ROW_BYTES, "file size / one object's bytes") if size > 0 else (None, "size not given")
    if entry["format"] == "mmu_hdf5":
        from .mmu_data import n_rows

        return n_rows(source, entry["config_name"]), "HDF5 object_id lengths"
    import pyarrow.parquet as pq

    if is_local(source):
        files = sorted(Path(source).rglob("*.parquet"))
        opener = open
    else:
        from huggingface_hub import HfFileSystem

        fs = HfFileSystem()
        files = sorted(fs.glob(f"datasets/{source}@{entry['revision']}/**/*.parquet"))
        opener = fs.open
    split = [f for f in files if Path(str(f)).name.startswith(f"{entry['split']}-")] or files
    if not split:
        return None, "no Parquet files"
    rows = 0
    for path in split:
        with opener(path, "rb") as fh:
            rows += pq.ParquetFile(fh).metadata.num_rows
    return rows, f"Parquet footers ({len(split)} file(s))"


def pair_sizes(config: dict, rows: dict[str, int | None]) -> dict[str, int | None]:
    """N per pair: its paired set's rows, or the smaller parent's (a crossmatch keeps at most that many)."""
    out = {}
    for p in config["pairs"]:
        counts = [rows.get(d) for d in pair_datasets(p)]
        out[p["name"]] = None if any(c is None for c in counts) else min(counts)
    return out


def _search_hours(n: int, gflops: float, searches: float = 1.0) -> float:
    return searches * 2.0 * n * n * WIDTH / (gflops * 1e9 * SEARCH_EFFICIENCY) / 3600


def conditional_searches(config: dict, pair: str, jobs) -> float:
    """The conditional analyses' own searches of one pair, in full-N searches: for each compared model
    (the largest of each family, or all) both sides within each bin of each covariate (b bins of N/b rows
    cost 1/b of a search) and, where redshift or brightness is there, after regressing them out. A
    spectroscopic pair's one spectrum side is searched once for all image models (kept in the job)."""
    cond = config["alignment"]["conditional"]
    z = cond["redshift"]
    only = z["only_pairs"] if "only_pairs" in z else None
    has_z = z["source"] != "none" and (not only or pair in only)
    per_side = (1.0 if has_z or cond["brightness"] else 0.0) + (1 / cond["n_bins"] if has_z else 0)
    per_side += (1 / cond["n_bins"] if cond["brightness"] else 0) + (1 / 3 if cond["environment"] else 0)
    per_side += 1 / cond["sky_regions"] if cond["sky_regions"] else 0
    return per_side * compared_sides(pair, jobs, cond["models"])


def compared_sides(pair: str, jobs, models: str) -> int:
    """The embeddings a rule over the crossmodal comparisons of ``models`` (largest of each family, or all)
    searches: both sides of each, a spectroscopic pair's one spectrum side once."""
    from .surveys import modality_of

    sides = [(s, m) for p, s, m in jobs if p == pair]
    image_models = [m for s, m in sides if modality_of(s) == "image" and s == "hsc"] or [m for _, m in sides]
    compared = len({m.rsplit("-", 1)[0] for m in image_models}) if models == "largest" else len(image_models)
    return compared + 1 if any(modality_of(s) == "spectrum" for s, _ in sides) else 2 * compared


def estimate(config: dict, n_of: dict[str, int | None], throughputs: tuple, gflops: float) -> tuple[list[dict], dict]:
    """Rows (rule, jobs, GPU-hours, CPU-hours, largest GPU memory, basis) and the totals."""
    rates, peak_tflops, fraction = throughputs
    specs = specs_of(config)
    jobs = embedding_jobs(config, specs=specs)
    batch = config["embedding"]["batch_size"]
    rows = []
    embed_h, memory, measured = 0.0, 0, 0
    for model in dict.fromkeys(m for _, _, m in jobs):
        spec = specs[model]
        n_objects = sum(n_of[p] or 0 for p, _, m in jobs if m == model)
        rate = rates.get(spec.control_of or spec.name)  # a random control runs at its learned model's rate
        measured += rate is not None
        rate = rate or peak_tflops * 1e12 * fraction / (spec.gflops_per_object() * 1e9)
        embed_h += JOB_OVERHEAD_H + n_objects / rate / 3600
        memory = max(memory, spec.gpu_mem_mb(batch))
    n_models = len(set(m for _, _, m in jobs))
    rows.append({"rule": "embed", "jobs": n_models, "GPU-hours": embed_h, "CPU-hours": 0.0,
                 "GPU memory (GB)": memory / 1000,
                 "basis": f"{measured} of {n_models} models at their measured H200 bf16 rate, the rest at "
                          f"{fraction:.0%} of {peak_tflops:.0f} TFLOP/s; {JOB_OVERHEAD_H * 60:.0f} min a job to start"})
    aligned = [p["name"] for p in config["pairs"] if p["align"] and n_of.get(p["name"])]
    opts = config["alignment"]
    gpu = opts["search"]["gpu"]
    per_rule = {"search_neighbours": 0.0, "align_pair": 0.0, "metric_suite": 0.0, "conditional_alignment": 0.0,
                "size_curves": 0.0}
    layers = 0.0
    for pair in aligned:
        n, files = n_of[pair], sum(1 for p, _, _ in jobs if p == pair)
        # each file searched once (search_neighbours); align_pair and metric_suite read the lists
        per_rule["search_neighbours"] += _search_hours(n, gflops, files)
        per_rule["conditional_alignment"] += _search_hours(n, gflops, conditional_searches(config, pair, jobs))
        # the metric suite's size curves: nested subsets (1/3 of a search a seed), the full sample read
        curves = len(opts["metrics"]["size_curve_seeds"]) * compared_sides(pair, jobs, opts["metrics"]["size_curve_models"])
        per_rule["metric_suite"] += _search_hours(n, gflops, curves / 3)
        # nested subsets from 128 rows up, each a quarter of the next's cost (1/4 + 1/16 + ... = 1/3 of a
        # search); the full sample is read from the lists
        per_rule["size_curves"] += _search_hours(n, gflops, len(opts["size_curves"]["seeds"]) * files / 3)
        if opts["layers"] != "final":
            layers += _search_hours(n, gflops, LAYERS_ASSUMED * files)
    basis = (f"exact searches, 2 N^2 d FLOP each (d = {WIDTH}), at {gflops:.0f} GFLOP/s a core (measured here) x "
             f"{SEARCH_EFFICIENCY:.0%}")
    for rule, hours in per_rule.items():
        on_gpu = gpu and rule == "search_neighbours"
        gpu_h = hours * gflops * SEARCH_EFFICIENCY / (GPU_SEARCH_TFLOPS * 1e3) if on_gpu else 0.0
        rows.append({"rule": rule, "jobs": len(aligned), "GPU-hours": gpu_h, "CPU-hours": 0.0 if on_gpu else hours,
                     "GPU memory (GB)": 0.0,
                     "basis": (f"the same searches at {GPU_SEARCH_TFLOPS:.0f} TFLOP/s (assumed: half an H200's "
                               "FP32 peak, not yet measured)") if on_gpu else
                              ("reads search_neighbours' lists: no search of its own" if rule == "align_pair"
                               else basis)})
    if opts["layers"] != "final":
        rows.append({"rule": "layer_grids", "jobs": len(aligned), "GPU-hours": 0.0, "CPU-hours": layers,
                     "GPU memory (GB)": 0.0, "basis": f"{LAYERS_ASSUMED} blocks a side; " + basis})
    totals = {"GPU-hours": sum(r["GPU-hours"] for r in rows), "CPU-hours": sum(r["CPU-hours"] for r in rows),
              "largest GPU memory (GB)": memory / 1000}
    return rows, totals


def cost_section(config: dict, counts: dict[str, int | None], throughputs_path: str | Path) -> tuple[list[str], list[dict], dict]:
    """The preflight's estimate from the rows each dataset holds (``counts``, preflight.check_sizes):
    (notes, the per-rule rows, the totals)."""
    notes = []
    n_of = pair_sizes(config, counts)
    unknown = [p for p, n in n_of.items() if n is None]
    if unknown:
        notes.append(f"cost: N unknown for pair(s) {unknown}: left out of the estimate")
    rows, totals = estimate(config, n_of, read_throughputs(throughputs_path), cpu_gflops())
    return notes, rows, totals
