"""Data: the embedded default's mini universe, and every dataset loaded and saved with its revision."""

from __future__ import annotations

import logging
from pathlib import Path

from ..provenance import config_hash, dataset_entry
from .runner import step

log = logging.getLogger(__name__)


@step(reads=("mini_universe", "seed"), critical_path=True)
def mini_universe(inputs, outputs, settings):
    """Generate the mini universe: one Hub-layout dataset per survey, a PROVABGS-like catalogue, the truth."""
    from ..mini_universe import build_mini_universe

    truth = build_mini_universe(settings["mini_universe"], settings["seed"], outputs.hub, outputs.truth,
                                workers=settings["threads"])
    return {"n_objects": len(truth)}


@step(critical_path=True)  # the mini Specformer waits on the DESI spectra
def download_dataset(inputs, outputs, settings):
    """Load one dataset (``settings.dataset``, its config entry) from ``settings.source`` and save it."""
    from ..astroclip_data import convert_astroclip_h5
    from ..hub import download_dataset as load_and_save

    d = settings["dataset"]
    if d["format"] == "astroclip_h5":  # AstroCLIP's evaluation file, read into the pair layout
        info = convert_astroclip_h5(settings["source"], outputs.data, split=d["split"])
    elif d["format"] == "mmu_hdf5":  # a full local copy of a Multimodal Universe parent set
        from ..mmu_data import convert_mmu_hdf5

        info = convert_mmu_hdf5(settings["source"], outputs.data, d["config_name"], d["survey"],
                                cache_dir=Path(outputs.data).parent)
    else:
        info = load_and_save(settings["source"], outputs.data, revision=d["revision"], split=d["split"],
                             config_name=d["config_name"], cache_dir=Path(outputs.data).parent)
    return {"datasets": {d["name"]: dataset_entry(info)}, "dataset": d["name"], **info}


@step()
def preflight(inputs, outputs, settings):
    """Check the run's datasets and models (``settings.run``: its config) and write the report
    (``settings.report``); fail with one line per problem."""
    from ..io import write_text
    from ..preflight import Findings, PreflightError, report, run_preflight

    run = settings["run"]
    title = f"preset {run['preset']} (config {config_hash(run)[:12]})"
    try:
        found = run_preflight(run, run["preflight"]["sample_rows"], run["preflight"]["timeout_s"],
                              throughputs=settings["throughputs"])
    except PreflightError as exc:  # the Hub cannot be reached: nothing else was checked
        found = Findings(problems=[str(exc)])
    text = report(found, title)
    write_text(settings["report"], text)
    log.info("report written to %s\n%s", settings["report"], text)
    if found.problems:
        raise PreflightError(f"{len(found.problems)} problem(s) (report: {settings['report']}):\n"
                             + "\n".join(found.problems))
