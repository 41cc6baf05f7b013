"""The workflow's steps: one function per Snakemake rule, named after it, taking plain paths and settings.

Every rule runs the one script ``workflow/scripts/step.py``, which calls ``run_rule``: it finds the step
named after the rule and runs it with the rule's inputs, outputs and params (see ``runner``). Without
Snakemake, a step runs as ``samesky.steps.<rule>.run(inputs, outputs, settings, config=..., log_file=...)``.

Stages, in DAG order: ``data`` (mini universe, downloads), ``matching`` (crossmatch), ``embedding``
(models, spectra, images, embeddings), ``alignment`` (scores, tables, size curves), ``metrics`` (the
metric suite, the oracle check, conditional alignment), ``probes`` (property probes and analyses) and
``downstream`` (morphology classification, the redshift probe, similarity search), ``adaptation`` (seed 003's
preprocessing variants, fine-tuning and attention maps; the variants' own preparation, embedding and
alignment steps sit beside the run's in ``embedding`` and ``alignment``). No module is named like a rule, so ``samesky.steps.<rule>`` is the step.

The stages are imported on first use (``STEPS``, a step, ``Step``...), not with the package: a job that a
warm server runs (``warm``) imports nothing of them in its own process, only the standard library, which
saves ~0.12 s of CPU on each of the ~100 jobs of a run (issue 28).
"""

import importlib
import importlib.util
import os
import sys

STAGES = ("adaptation", "alignment", "data", "downstream", "embedding", "matching", "metrics", "probes")
_RUNNER = ("STEPS", "Files", "Settings", "Step", "job_log", "step")  # what the package takes from ``runner``

__all__ = [*_RUNNER, "run_rule"]


def import_stages():
    """Import every stage module, each of which registers its steps in ``STEPS``; the registry."""
    for stage in STAGES:
        importlib.import_module(f"{__name__}.{stage}")
    from .runner import STEPS

    return STEPS


def run_rule(smk) -> None:
    """Run the step named after the Snakemake rule ``smk.rule`` (the one script every rule calls): in a
    warm copy of a local run's server where one answers (``warm``), else in this process."""
    from .warm import run

    status = run(smk)
    if status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    from .runner import end_job, run_in_process

    run_in_process(smk)
    end_job()


def __getattr__(name: str):
    """``STEPS`` and the runner's names, and ``samesky.steps.<rule>``: the step of that rule."""
    if name.startswith("__"):  # what tools probe a module for (__wrapped__, __file__...): not a step
        raise AttributeError(name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a module of the package (``warm``)
        return importlib.import_module(f"{__name__}.{name}")
    registry = import_stages()
    if name in _RUNNER:
        from . import runner

        return getattr(runner, name)
    try:
        return registry[name]
    except KeyError:
        raise AttributeError(f"samesky.steps has no step '{name}' (known: {sorted(registry)})") from None
