"""The cost estimate: throughputs as measured, rows as the files hold them, hours from N as stated."""

from __future__ import annotations

import copy

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from samesky.cost import (JOB_OVERHEAD_H, SEARCH_EFFICIENCY, WIDTH, dataset_rows, estimate, pair_sizes,
                          read_throughputs)
from samesky.registry import get_spec

from conftest import REPO, validated

MEASURED = REPO / "benchmarks" / "measured" / "embed_throughput_h200.txt"


def test_the_measured_throughputs_are_read_as_the_benchmark_printed_them():
    rates, peak, fraction = read_throughputs(MEASURED)
    assert rates["vit-base"] == 8469 and rates["dinov2-giant"] == 672 and len(rates) == 13
    assert peak == 806.4 and 0.04 <= fraction <= 0.51


def test_rows_are_counted_from_the_parquet_footers_of_the_split(tmp_path):
    (tmp_path / "data").mkdir()
    for k, n in enumerate((7, 5)):
        pq.write_table(pa.table({"x": list(range(n))}), tmp_path / "data" / f"train-{k:05d}-of-00002.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "data" / "test-00000-of-00001.parquet")
    entry = {"source": str(tmp_path), "format": "hf", "split": "train", "revision": "main"}
    assert dataset_rows(entry) == (12, "Parquet footers (2 file(s))")
    assert dataset_rows({**entry, "source": "mini"}) == (None, "made here")


def test_hours_follow_from_n_the_rates_and_the_searches(paper_config):
    config = copy.deepcopy(paper_config)
    config["models"] = [{"family": "vit", "sizes": ["base"]}, {"family": "astropt", "sizes": ["small"]}]
    config["pairs"] = [p for p in config["pairs"] if p["name"] == "jwst_hsc"]
    config["probes"] = config["downstream"] = None
    config["alignment"]["hsc_pair"] = "jwst_hsc"
    config["alignment"]["size_curves"]["decomposition_model"] = "vit-base"
    config["alignment"]["size_curves"]["classes"] = {"source": "none", "column": "", "n_bins": 2}
    config["alignment"]["conditional"]["redshift"] = {"source": "none", "column": ""}
    config["alignment"]["search"]["gpu"] = False
    config = validated({k: v for k, v in config.items() if v is not None})
    n = 10_000
    rates = ({"vit-base": 5000.0}, 800.0, 0.5)
    rows, totals = estimate(config, {"jwst_hsc": n}, rates, gflops=100.0)
    by_rule = {r["rule"]: r for r in rows}
    astropt = get_spec("astropt", "small")
    expected_gpu = (2 * JOB_OVERHEAD_H + 2 * n / 5000 / 3600
                    + 2 * n / (800e12 * 0.5 / (astropt.gflops_per_object() * 1e9)) / 3600)
    assert by_rule["embed"]["GPU-hours"] == pytest.approx(expected_gpu)
    assert "1 of 2 models at their measured H200 bf16 rate" in by_rule["embed"]["basis"]
    one_search = 2 * n * n * WIDTH / (100e9 * SEARCH_EFFICIENCY) / 3600
    # two models, two sides each: four files, each searched once; align_pair reads their lists
    assert by_rule["search_neighbours"]["CPU-hours"] == pytest.approx(4 * one_search)
    assert by_rule["align_pair"]["CPU-hours"] == 0
    # the suite's size curves: nested subsets of the largest model of each family (vit and astropt here),
    # both sides, a third of a search a seed each; the full sample is read from the lists
    seeds = len(config["alignment"]["metrics"]["size_curve_seeds"])
    assert by_rule["metric_suite"]["CPU-hours"] == pytest.approx(seeds * 2 * 2 / 3 * one_search)
    config["alignment"]["search"]["gpu"] = True  # the paper preset's: the searches move to the GPU
    on_gpu = {r["rule"]: r for r in estimate(config, {"jwst_hsc": n}, rates, gflops=100.0)[0]}["search_neighbours"]
    assert on_gpu["CPU-hours"] == 0 and on_gpu["GPU-hours"] == pytest.approx(4 * 2 * n * n * WIDTH / 30e12 / 3600)
    assert totals["largest GPU memory (GB)"] == max(get_spec("vit", "base").gpu_mem_mb(128),
                                                   astropt.gpu_mem_mb(128)) / 1000
    assert pair_sizes(config, {"jwst_hsc_crossmatched": 1670}) == {"jwst_hsc": 1670}
