"""The machinery every step shares: named files, strict settings, the job's log, the provenance sidecar.

A step is a function ``f(inputs, outputs, settings) -> dict`` registered with ``@step(reads=...)``:

- ``inputs`` / ``outputs``: the rule's named paths (``Files``: ``inputs.dataset`` or ``inputs["dataset"]``);
- ``settings``: the config keys the step declares in ``reads`` (so a job reruns only when those change),
  plus the rule's other params; reading anything else is an error, never a silent fallback;
- it returns extra fields for its provenance record (``datasets``/``models`` entries join the lineage).
  A step that writes several records itself (one per file of a folder it writes) registers with
  ``@step(..., records=True)`` and takes a fourth argument: ``record(upstream, **extra)``.

The upstream records are the inputs named ``provenance`` and, for records inside another job's output
folder (which Snakemake does not take as inputs one by one), the paths in ``settings.upstream``.

``Step.run`` wraps the call once for every step: the job's log file receives the package's log records,
Python warnings, everything written to ``sys.stdout``/``sys.stderr`` (progress bars included) and, if
the step fails, its traceback; the records of the inputs named ``provenance`` are read and carried
forward; the ``provenance`` output, if the rule has one, is written atomically. A step runs the same
with or without Snakemake (``samesky.steps.run_rule`` is the Snakemake side).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..io import write_json
from ..provenance import record

log = logging.getLogger(__name__)

STEPS: dict[str, Step] = {}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Settings(dict):
    """A step's settings: a dict with no fallbacks. A missing key is an error naming the key path and what
    is there, and ``.get`` is refused, so a setting the rule did not give can never take a hidden default."""

    def __init__(self, data=(), path: str = "settings"):
        super().__init__()
        self.path = path
        for key, value in dict(data).items():
            self[key] = _strict(value, f"{path}.{key}")

    def __missing__(self, key):
        raise KeyError(f"{self.path} has no '{key}' (has {sorted(self)}): a step reads only the config keys it "
                       f"declares (@step(reads=...)) and its rule's params")

    def get(self, key, default=None):
        raise TypeError(f"{self.path}.get('{key}'): settings have no fallbacks; every key a step reads has its "
                        f"default in the config schema")

    def __reduce__(self):  # pickles as a Settings (with its path), not a bare dict
        return Settings, (dict(self), self.path)


def _strict(value, path: str):
    if isinstance(value, Mapping) and not isinstance(value, Settings):
        return Settings(value, path)
    if isinstance(value, list):
        return [_strict(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


class Files(Mapping):
    """The named paths of a step's inputs or outputs; a name holds one path or a list of paths."""

    def __init__(self, paths: Mapping, role: str = "files"):
        self._paths = dict(paths)
        self._role = role

    def __getitem__(self, name):
        try:
            return self._paths[name]
        except KeyError:
            raise KeyError(f"no {self._role} named '{name}' (has {sorted(self._paths)})") from None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __iter__(self):
        return iter(self._paths)

    def __len__(self):
        return len(self._paths)

    def all(self, name: str) -> list[str]:
        """The paths under ``name`` as a list (empty if the rule has none)."""
        value = self._paths.get(name, [])
        return [value] if isinstance(value, (str, Path)) else list(value)


@dataclass(frozen=True)
class Step:
    name: str
    func: Callable
    reads: tuple[str, ...]  # dotted config keys, e.g. "probes.n_folds" or a whole section "mini_universe"
    records: bool = False  # the step writes its own records (it is passed ``record``)
    critical_path: bool = False  # the run waits on it: it keeps its CPU priority when cores are oversubscribed

    def run(self, inputs: Mapping, outputs: Mapping, settings: Mapping, *, config: Mapping | None = None,
            log_file: str | Path | None = None) -> dict:
        """Run the step with its log captured and its provenance written; returns the provenance extras."""
        inputs, outputs = Files(inputs, "input"), Files(outputs, "output")
        settings = Settings(settings, self.name)
        upstream = inputs.all("provenance") + (list(settings["upstream"]) if "upstream" in settings else [])
        with job_log(log_file) as stream:
            try:
                recorder = (functools.partial(record, dict(config or {}), self.name),) if self.records else ()
                with _stored_neighbours(inputs):
                    extra = self.func(inputs, outputs, settings, *recorder) or {}
                if "provenance" in outputs:
                    write_json(outputs["provenance"], record(dict(config or {}), self.name, upstream, **(extra or {})))
            except BaseException as exc:
                logging.getLogger(f"samesky.steps.{self.name}").error("step %s failed: %s: %s", self.name,
                                                                       type(exc).__name__, exc)
                if stream is not None:  # the whole traceback, where a cluster user looks first
                    stream.write(traceback.format_exc())
                raise
        return extra

    def __call__(self, inputs, outputs, settings):
        """The bare step, for tests that want no logging or provenance."""
        recorder = (functools.partial(record, {}, self.name),) if self.records else ()
        inputs = Files(inputs, "input")
        with _stored_neighbours(inputs):
            return self.func(inputs, Files(outputs, "output"), Settings(settings, self.name), *recorder)


def _stored_neighbours(inputs: Files):
    """A rule with a ``neighbours`` input (rule search_neighbours' lists) has ``knn`` read them."""
    if "neighbours" not in inputs:
        return contextlib.nullcontext()
    from ..align.neighbours import use_stored

    return use_stored(inputs["neighbours"])


def step(*, reads: tuple[str, ...] | list[str] = (), name: str | None = None, records: bool = False,
         critical_path: bool = False):
    """Register a step function under its rule's name (the function's name unless ``name`` is given)."""

    def register(func: Callable) -> Step:
        s = Step(name or func.__name__, func, tuple(reads), records, critical_path)
        if s.name in STEPS:
            raise ValueError(f"step '{s.name}' is registered twice")
        STEPS[s.name] = s
        return s

    return register


class _Tee:
    """A text stream that writes to the original stream and to the log file."""

    def __init__(self, original, log_stream):
        self._original, self._log = original, log_stream

    def write(self, text):
        self._log.write(text)
        return self._original.write(text)

    def flush(self):
        self._log.flush()
        self._original.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding ... of the original
        return getattr(self._original, name)


@contextlib.contextmanager
def job_log(log_file: str | Path | None, level: int = logging.INFO):
    """Send log records, warnings and stdout/stderr to ``log_file`` (and on to the console) for the block.

    Yields the log file's stream (None without a log file)."""
    stream = None
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_file, "w", buffering=1)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.stdout, sys.stderr)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.__stderr__)]
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))
        sys.stdout, sys.stderr = _Tee(sys.stdout, stream), _Tee(sys.stderr, stream)
    formatter = logging.Formatter(LOG_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its "could not load AVX2" is no error
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each warning once per place, DeprecationWarnings included
            yield stream
    finally:
        logging.captureWarnings(False)
        root.handlers[:], root.level, sys.stdout, sys.stderr = saved[0], saved[1], saved[2], saved[3]
        if stream is not None:
            stream.close()


def run_in_process(smk) -> None:
    """Run the step of rule ``smk.rule`` here. The rule's params become the settings: ``params.config``
    holds the config keys the step declares, the other params (a wildcard's pair, the files of a pair) are
    merged beside them."""
    from . import import_stages

    registered = import_stages()

    if smk.rule not in registered:
        raise KeyError(f"rule '{smk.rule}' has no step in samesky.steps (known: {sorted(registered)})")
    params = dict(smk.params.items())
    settings = dict(params.pop("config", {}))
    clash = set(settings) & set(params)
    if clash:
        raise ValueError(f"rule {smk.rule}: params {sorted(clash)} clash with config sections of the same name")
    settings.update(params)
    settings["threads"] = smk.threads
    if not registered[smk.rule].critical_path:
        _yield_cpu()
    registered[smk.rule].run(dict(smk.input.items()), dict(smk.output.items()), settings, config=smk.config,
                             log_file=smk.log[0] if smk.log else None)


# `snakemake --cores 8` on a 2-core laptop runs 8 jobs at once; the kernel would share the cores among
# them evenly, and the job the whole run waits on (the mini Specformer's pre-training) would take 2-3
# times as long (measured: 203 s alone, 491 s among others). Every other job therefore runs in Linux's
# idle scheduling class (SCHED_IDLE: a core's spare time only; elsewhere the lowest nice): where cores
# are free this changes nothing; where they are not, the critical job goes first. (Measured on 2 cores,
# `--cores 8`: 649 s with nice 15, 598 s with SCHED_IDLE.) A cluster job has its own cores: it never yields.
BACKGROUND_NICE = 19


def _yield_cpu() -> None:
    if "SLURM_JOB_ID" in os.environ:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed: the lowest nice, else as we are
        try:
            os.nice(BACKGROUND_NICE)
        except OSError:
            pass


def end_job() -> None:
    """End a finished job's process at once. Every output is closed and in place, and the atexit handlers
    run; what is skipped is the interpreter's teardown of its modules, which with torch and transformers
    loaded takes 0.5 to 1 s a job (measured), more than the work of many jobs."""
    import atexit

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    atexit._run_exitfuncs()
    os._exit(0)
