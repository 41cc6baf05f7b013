"""Warm starts for local jobs: a job skips the start-up that most of the embedded default's jobs spend.

Each job is a new Python process, and on the embedded default most of a job's time went to importing
torch, transformers, scikit-learn, astropy, datasets and matplotlib (about 1 to 3 s a job, over ~100
jobs; issue 28's profile). On a local run, the Snakefile's ``onstart`` starts a server for each thread
count in ``THREAD_COUNTS`` (``start``); each has imported those libraries once and forks a copy of itself
for every job that asks (``run``). The copy runs the job's step exactly as the job would (same step, files,
settings, working folder, environment and output streams) and reports its exit status to the job, which
exits with it.

What stays as it was: Snakemake's DAG, jobs, logs and outputs; a job that finds no server (a cluster
job, another operating system, ``SAMESKY_WARM=0``, a server still starting or gone) runs as before. What
changes: a job's benchmark file measures the job's own process, so under a warm start its ``s`` (wall
time) is right but ``cpu_time`` and ``max_rss`` count only the small process that waits; each job's log
ends with the CPU time and peak memory of the copy that did the work. Set ``SAMESKY_WARM=0`` for benchmark
files that count everything.

Servers live in Snakemake's process group, so stopping Snakemake stops them (Ctrl-C, or a kill of the
group), and each also leaves when Snakemake is gone; a job's copy ends when its job does. A server serves
only processes of its own user (the socket's peer credentials): a job's payload is a pickle.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import uuid
from pathlib import Path

ENV = "SAMESKY_WARM"  # the servers' address (set by ``start``); "0" turns warm starts off
# a server for each: nearly every job of the embedded default asks for one thread (a multi-threaded job is
# long enough that its start-up does not matter, and a server's imports cost a few CPU seconds a run)
THREAD_COUNTS = (1,)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")  # what Snakemake sets for each job
# imported once by each server: what the steps import (a module that fails to import is left to the job)
PRELOAD = ("numpy", "pandas", "pyarrow.parquet", "scipy.stats", "scipy.ndimage", "scipy.optimize", "sklearn.base",
           "sklearn.neural_network", "sklearn.linear_model", "sklearn.model_selection", "sklearn.neighbors",
           "sklearn.cluster", "sklearn.metrics", "sklearn.preprocessing", "sklearn.decomposition", "matplotlib",
           "matplotlib.pyplot", "matplotlib.backends.backend_pdf", "astropy.units", "astropy.coordinates",
           "astropy.table", "datasets", "torch", "transformers", "faiss", "specutils", "PIL.Image",
           # what torch and transformers import on first use, not on import: a model's first build or load
           # (transformers.modeling_utils) and an optimiser's first step (torch._dynamo, sympy), ~1.7 s a job
           "torch._dynamo", "transformers.modeling_utils", "tokenizers", "scipy.io", "scipy.signal",
           "samesky.embed.hf",
           "snakemake.script", "samesky.io", "samesky.provenance", "samesky.embed.models", "samesky.embed.run",
           "samesky.embed.images", "samesky.embed.spectra", "samesky.probes.analyses", "samesky.probes.figures",
           "samesky.probes.robustness", "samesky.probes.targets", "samesky.align.scores", "samesky.align.knn",
           "samesky.align.tables", "samesky.align.curves", "samesky.align.suite", "samesky.align.conditional",
           "samesky.crossmatch", "samesky.downstream.classify", "samesky.report")

log = logging.getLogger(__name__)


def available() -> bool:
    """Warm starts are possible here: Linux (fork and abstract sockets), not inside a cluster job."""
    return sys.platform.startswith("linux") and "SLURM_JOB_ID" not in os.environ and os.environ.get(ENV) != "0"


def _address(name: str, threads: int) -> str:
    return f"\0samesky-warm-{name}-{threads}"  # Linux's abstract namespace: no file, gone with the server


# The Snakemake side --------------------------------------------------------------------------------------


def start(log_file: str | Path) -> list[subprocess.Popen]:
    """Start the servers (one per thread count) in the background and tell the jobs where they are (the
    environment jobs inherit). Called by the Snakefile's ``onstart`` on local runs."""
    if not available():
        return []
    name = uuid.uuid4().hex[:12]
    os.environ[ENV] = name
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    servers = []
    with open(log_file, "w") as out:
        for threads in THREAD_COUNTS:
            env = {**os.environ, **{var: str(threads) for var in THREAD_VARIABLES}}
            servers.append(subprocess.Popen([sys.executable, "-m", "samesky.steps.warm", name, str(threads)],
                                            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out))
    return servers


def stop(servers: list[subprocess.Popen]) -> None:
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def ready(threads: int = 1) -> bool:
    """Whether this run's server for ``threads`` answers (it imports for a few seconds after ``start``)."""
    if not available() or not os.environ.get(ENV):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(_address(os.environ[ENV], threads))
        except OSError:
            return False
    return True


# The job side --------------------------------------------------------------------------------------------


def run(smk) -> int | None:
    """Run the job ``smk`` (Snakemake's object) in a warm copy; its exit status, or None where no server
    answers (the job then runs as usual)."""
    if not available() or not os.environ.get(ENV):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(_address(os.environ[ENV], smk.threads))
    except OSError:  # no server for this thread count, or not ready yet
        conn.close()
        return None
    try:
        payload = pickle.dumps({"smk": smk, "env": dict(os.environ), "cwd": os.getcwd()})
        socket.send_fds(conn, [struct.pack("!Q", len(payload))], [0, 1, 2])  # the job's own streams
        conn.sendall(payload)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):  # nothing ran yet: run it as usual
        conn.close()
        return None
    status = conn.recv(1)
    if not status:
        print(f"samesky.steps.warm: the warm copy running rule {smk.rule} ended without a status (killed?)",
              file=sys.stderr)
        return 1
    return status[0]


# The server ----------------------------------------------------------------------------------------------


def serve(name: str, threads: int) -> None:
    import gc
    import importlib
    import signal

    from . import STAGES

    for module in (*PRELOAD, *(f"{__package__}.{stage}" for stage in STAGES)):  # the steps themselves too
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001  (the job imports it itself, and fails there if it must)
            print(f"warm server ({threads} threads): {module} not preloaded: {exc}", file=sys.stderr)
    import weakref

    import matplotlib

    from .. import provenance

    matplotlib.use("Agg")
    # read once here and cached for every copy: the package versions (each package's metadata) and the CPU's
    # name (/proc/cpuinfo), which every job's provenance record holds
    provenance.package_versions()
    provenance.machine()
    for obj in gc.get_objects():  # the server's own finalizers (torch's 176 operator libraries) are not a
        if isinstance(obj, weakref.finalize):  # job's: run at each copy's exit they took ~35 ms a job, for
            obj.atexit = False  # state that its os._exit drops anyway
    gc.collect()
    gc.freeze()  # the preloaded objects stay shared with every copy (no copy-on-write from the collector)
    parent = os.getppid()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(_address(name, threads))
    server.listen(64)
    server.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # copies are reaped by the kernel
    print(f"warm server ({threads} threads) ready, pid {os.getpid()}", file=sys.stderr, flush=True)
    while os.getppid() == parent:  # Snakemake is still there
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():  # an abstract socket has no file permissions: only our own user's jobs
            conn.close()
            continue
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _job(conn)  # never returns
        conn.close()


def _receive(conn, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("the job went away while sending")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _job(conn) -> None:
    """In the forked copy: become the job (its streams, folder and environment), run its step, report."""
    import resource
    import tempfile
    import threading
    import traceback

    status, job, preloaded = 1, {}, len(sys.modules)
    try:
        header, fds, _, _ = socket.recv_fds(conn, 8, 3)
        job = pickle.loads(_receive(conn, struct.unpack("!Q", header)[0]))
        for fd, target in zip(fds, (0, 1, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        tempfile.tempdir = None  # the job's TMPDIR
        threading.Thread(target=_end_with_the_job, args=(conn,), daemon=True).start()
        from .runner import run_in_process

        preloaded = len(sys.modules)
        run_in_process(job["smk"])
        status = 0
    except BaseException:  # noqa: BLE001  (as a job's own process would: the traceback, then exit 1)
        traceback.print_exc()
    finally:
        import atexit

        try:
            atexit._run_exitfuncs()  # as the job's own process would at its end
        except BaseException:  # noqa: BLE001
            pass
        usage = resource.getrusage(resource.RUSAGE_SELF)
        logs = job["smk"].log if job else []
        if logs:  # what the benchmark file cannot see
            with open(logs[0], "a") as fh:
                fh.write(f"samesky.steps.warm: this job ran in a warm copy: {usage.ru_utime + usage.ru_stime:.1f} s "
                         f"of CPU, peak memory {usage.ru_maxrss / 1024:.0f} MB, {len(sys.modules) - preloaded} "
                         f"modules imported beyond the server's (PRELOAD)\n")
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            conn.sendall(bytes([status]))
        finally:
            os._exit(status)


def _end_with_the_job(conn) -> None:
    """The job's process waits on the connection: if it is gone (cancelled, killed), so is this copy."""
    import signal

    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
