"""MKNN at scale: our exact faiss k-NN against the dense N x N similarity reference (platonic-rep's way).

For each N (default 5k, 20k, 102k) at d = 1024, k = 10, each method runs in its own process so its peak
memory (max RSS) is its own; the dense reference is capped at 20 GiB of address space so that at 102k
(an N x N float32 matrix is 42 GB) it fails cleanly instead of taking the machine down, and the failure
is recorded. Then the time of 1000 permutation nulls relative to one MKNN.

    python benchmarks/mknn_scaling.py [--sizes 5000 20000 102000] [--dim 1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

CAP_BYTES = 20 * 1024**3


def _data(n, d, seed):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 32)).astype(np.float32)
    a = latent @ rng.normal(size=(32, d)).astype(np.float32) + rng.normal(size=(n, d)).astype(np.float32)
    b = latent @ rng.normal(size=(32, d)).astype(np.float32) + rng.normal(size=(n, d)).astype(np.float32)
    return a, b


def _dense_knn(x, k):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T  # N x N: the memory that does not scale
    np.fill_diagonal(sims, -np.inf)
    return np.argpartition(-sims, k, axis=1)[:, :k]


def _worker(method, n, d, k):
    from samesky.align.knn import knn, overlap_counts

    if method == "dense":
        resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))
    a, b = _data(n, d, 0)
    start = time.perf_counter()
    try:
        if method == "dense":
            nn_a, nn_b = _dense_knn(a, k), _dense_knn(b, k)
        else:
            nn_a, nn_b = knn(a, k), knn(b, k)
        score = float(overlap_counts(nn_a, nn_b).mean() / k)
        status = "ok"
    except MemoryError:
        score, status = float("nan"), "MemoryError (N x N matrix over the 20 GiB cap)"
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "n": n, "seconds": seconds, "peak_mb": peak_mb, "mknn": score, "status": status}))


def _nulls(n, d, k, n_perm):
    from samesky.align.knn import knn, mknn, permutation_null

    a, b = _data(n, d, 1)
    start = time.perf_counter()
    nn_a, nn_b = knn(a, k), knn(b, k)
    mknn(nn_a, nn_b, k)
    one = time.perf_counter() - start
    start = time.perf_counter()
    permutation_null(nn_a, nn_b, k, n_perm, seed=0)
    return one, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 102000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]), args.dim, args.k)
        return
    print(f"d = {args.dim}, k = {args.k}")
    print(f"{'N':>8s} {'method':>6s} {'seconds':>9s} {'peak MB':>9s} {'MKNN':>7s}  status")
    for n in args.sizes:
        for method in ("faiss", "dense"):
            proc = subprocess.run([sys.executable, __file__, "--dim", str(args.dim), "--k", str(args.k),
                                   "--worker", method, str(n)], capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if not lines:
                print(f"{n:8d} {method:>6s} {'-':>9s} {'-':>9s} {'-':>7s}  failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(lines[-1])
            print(f"{n:8d} {method:>6s} {r['seconds']:9.1f} {r['peak_mb']:9.0f} {r['mknn']:7.4f}  {r['status']}")
    n = args.sizes[0]
    one, nulls = _nulls(n, args.dim, args.k, args.permutations)
    print(f"\nN = {n}: one MKNN (two k-NN searches) {one:.2f} s; {args.permutations} permutation nulls from its "
          f"neighbour sets {nulls:.2f} s ({nulls / one:.2f}x one MKNN)")


if __name__ == "__main__":
    main()
