"""What the paper preset costs at the paper's N, before anything is downloaded: samesky.cost's estimate
(the one `snakemake preflight` prints from the rows the Hub reports) with N per pair from the Platonic
Universe (JWST-HSC 1.67k after the blank rule, Legacy-HSC 102k, DESI-HSC 18.6k, SDSS-HSC 2.32k).
AstroCLIP's evaluation pair is left out: its size is read from the file at preflight time.

    python benchmarks/run_cost.py [--zoo]     # --zoo: config/paper_zoo.yaml's 95 model sizes as well
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PAPER_N = {"jwst_hsc": 1670, "legacysurvey_hsc": 102_000, "desi_hsc": 18_600, "sdss_hsc": 2320, "astroclip_desi": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", action="store_true", help="merge config/paper_zoo.yaml too")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import validated
    from snakemake.utils import update_config

    from samesky.cost import cost_gflops_note, cpu_gflops, estimate, read_throughputs

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for overlay in ["config/paper.yaml"] + (["config/paper_zoo.yaml"] if args.zoo else []):
        update_config(config, yaml.safe_load((REPO / overlay).read_text()))
    config = validated(config)
    rows, totals = estimate(config, PAPER_N, read_throughputs(REPO / "benchmarks/measured/embed_throughput_h200.txt"),
                            cpu_gflops())
    print(f"{'rule':24s} {'jobs':>5s} {'GPU-h':>8s} {'CPU-h':>8s} {'GPU GB':>7s}  basis")
    for r in rows:
        print(f"{r['rule']:24s} {r['jobs']:5d} {r['GPU-hours']:8.2f} {r['CPU-hours']:8.2f} {r['GPU memory (GB)']:7.1f}  {r['basis']}")
    print(f"total: {totals['GPU-hours']:.1f} GPU-hours, {totals['CPU-hours']:.1f} CPU-hours; largest embedding job "
          f"{totals['largest GPU memory (GB)']:.0f} GB of GPU memory")
    print(cost_gflops_note())


if __name__ == "__main__":
    main()
