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
"""

from . import adaptation, alignment, data, downstream, embedding, matching, metrics, probes  # noqa: F401  (each module registers its steps)
from .runner import STEPS, Files, Settings, Step, job_log, run_rule, step

__all__ = ["STEPS", "Files", "Settings", "Step", "job_log", "run_rule", "step"]


def __getattr__(name: str) -> Step:
    """``samesky.steps.<rule>``: the step of that rule."""
    try:
        return STEPS[name]
    except KeyError:
        raise AttributeError(f"samesky.steps has no step '{name}' (known: {sorted(STEPS)})") from None
