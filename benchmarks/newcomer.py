"""A newcomer's minutes on this machine, in reference units, beside their budget (issue 28).

Times the embedded default from scratch (`snakemake --cores 2`, and `--cores all` as `make run` runs it, in
copies of the repository without results or inputs) and the test suite (`make test`, with its environment
already made), and divides each by the reference workload: the project's fixed single-threaded mix of numpy,
pure Python and a small torch transformer (the same workload as the team's `machine_speed.py`), timed
before and after, so that figures from machines of different speed compare. The budgets:

    snakemake --cores 2, embedded default   <= 150 x reference
    make test's pytest                      <= 180 x reference
    make run (--cores all)                  no slower than --cores 2

    .venv/bin/python benchmarks/newcomer.py            # all three (about 20 minutes on 2 cores)
    .venv/bin/python benchmarks/newcomer.py --skip-tests --skip-make-run
    .venv/bin/python benchmarks/newcomer.py --skip-tests --cores 8     # make run's command with --cores 8

Run it on an otherwise idle machine: anything else running counts against the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET = {"run": 150, "test": 180}


def reference_workload() -> float:
    """Seconds for the fixed workload (best of three of each part), in a subprocess pinned to one thread."""
    code = r"""
import os
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
import time
import numpy as np
import torch

def numpy_part():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(768, 768)).astype(np.float32)
    for _ in range(60):
        a = np.tanh(a @ a.T / 768.0)
    x = rng.normal(size=200_000)
    return float(np.sort(x)[::1000].sum() + a.sum())

def python_part():
    total = 0
    for i in range(7_500_000):
        total += (i * 7) % 13
    return total

def torch_part():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=256, batch_first=True)
    x = torch.randn(16, 128, 128)
    with torch.no_grad():
        for _ in range(30):
            y = layer(x)
    return float(y.sum())

def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

print(best_of(numpy_part) + best_of(python_part) + best_of(torch_part))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def timed(command: list[str], cwd: Path, log: Path) -> float:
    """Wall seconds of ``command`` in ``cwd`` (its output to ``log``); a failure stops the benchmark."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(command, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd} (exit {proc.returncode}); see {log}")
    return seconds


def fresh_copy(dest: Path) -> Path:
    """The repository as a fresh clone has it: no results, inputs or Snakemake records."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import copy_repo

    return copy_repo(dest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-run", action="store_true", help="do not time the embedded default")
    parser.add_argument("--skip-make-run", action="store_true", help="do not time make run's command")
    parser.add_argument("--cores", default="all", help="make run's --cores (its default: all)")
    parser.add_argument("--skip-tests", action="store_true", help="do not time the test suite")
    parser.add_argument("--keep", action="store_true", help="keep the copies the runs were made in")
    args = parser.parse_args()

    before = reference_workload()
    print(f"reference workload: {before:.2f} s", flush=True)
    times: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="newcomer-"))
    snakemake = [sys.executable, "-m", "snakemake"]
    # make run's command is timed beside --cores 2 unless it is that same command (--cores 2)
    runs = [] if args.skip_run else ["2"] + ([] if args.skip_make_run or args.cores == "2" else [args.cores])
    for cores in runs:
        copy = fresh_copy(work / f"cores{cores}")
        times[f"snakemake --cores {cores}"] = timed(snakemake + ["--cores", cores], copy, work / f"cores{cores}.log")
        print(f"snakemake --cores {cores}: {times[f'snakemake --cores {cores}']:.0f} s", flush=True)
    if not args.skip_tests:
        times["make test"] = timed(["make", "test"], REPO, work / "pytest.log")  # exactly what CI runs
        print(f"make test: {times['make test']:.0f} s", flush=True)
    after = reference_workload()
    reference = (before + after) / 2
    print(f"reference workload: {after:.2f} s after; {reference:.2f} s used\n")

    print(f"{'what':26s} {'seconds':>8s} {'x reference':>12s} {'budget':>8s}  verdict")
    for what, seconds in times.items():
        units = seconds / reference
        budget = BUDGET["test"] if what == "make test" else BUDGET["run"] if what.endswith(" 2") else None
        verdict = "" if budget is None else ("within" if units <= budget else "OVER")
        print(f"{what:26s} {seconds:8.0f} {units:12.0f} {budget or '':>8}  {verdict}")
    if len(runs) == 2:
        other, two = times[f"snakemake --cores {args.cores}"], times["snakemake --cores 2"]
        print(f"--cores {args.cores} {'slower' if other > two else 'no slower'} than --cores 2 ({other / two:.2f} x)")
    if args.keep:
        print(f"the runs and their logs are kept in {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
