"""Config checks that a JSON schema cannot express: names that refer to other entries.

The schema (workflow/schemas/config.schema.yaml) checks keys, types and ranges; this checks that every
name a pair or model uses exists. Each error names the config key at fault.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .registry import check_models, get_spec
from .surveys import modality_of


def _unique(entries: list[dict], key: str) -> dict:
    seen: dict = {}
    for i, entry in enumerate(entries):
        if entry["name"] in seen:
            raise ConfigError(f"config key {key}[{i}].name: '{entry['name']}' is used twice")
        seen[entry["name"]] = entry
    return seen


def check_config(config: dict) -> None:
    datasets = _unique(config["datasets"], "datasets")
    _unique(config["pairs"], "pairs")
    mini_surveys = (config.get("mini_universe") or {}).get("surveys", {})
    for i, d in enumerate(config["datasets"]):
        key = f"config key datasets[{i}]"
        if d["source"] == "mini":
            if "mini_universe" not in config:
                raise ConfigError(f"{key}.source: 'mini' needs a 'mini_universe' section")
            if d["survey"] not in mini_surveys:
                raise ConfigError(f"{key}.survey: '{d['survey']}' is not a survey of mini_universe.surveys {sorted(mini_surveys)}")
            if mini_surveys[d["survey"]]["kind"] != d["modality"]:
                raise ConfigError(f"{key}.modality: '{d['modality']}' but mini survey '{d['survey']}' is of kind "
                                  f"'{mini_surveys[d['survey']]['kind']}'")
        elif d.get("format", "hub") == "astroclip_h5":
            if d["modality"] != "pair":
                raise ConfigError(f"{key}.modality: AstroCLIP's file (format astroclip_h5) is a 'pair' of images and spectra")
        elif not Path(d["source"]).exists() and not d.get("revision"):
            raise ConfigError(f"{key}.revision: Hub dataset '{d['source']}' needs a pinned revision")
    for i, p in enumerate(config["pairs"]):
        key = f"config key pairs[{i}]"
        if "dataset" in p:
            if p["dataset"] not in datasets:
                raise ConfigError(f"{key}.dataset: unknown dataset '{p['dataset']}'; known: {sorted(datasets)}")
            if datasets[p["dataset"]]["modality"] != "pair":
                raise ConfigError(f"{key}.dataset: '{p['dataset']}' is not a pre-crossmatched (modality 'pair') dataset")
            continue
        if "rename" in p:
            raise ConfigError(f"{key}.rename: only a pre-crossmatched pair ('dataset:') can rename columns")
        for side in ("reference", "other"):
            name = p[side]
            if name not in datasets:
                raise ConfigError(f"{key}.{side}: unknown dataset '{name}'; known: {sorted(datasets)}")
            if datasets[name]["modality"] in ("pair", "catalogue"):
                raise ConfigError(f"{key}.{side}: '{name}' is a {datasets[name]['modality']}; crossmatch parent "
                                  f"image or spectrum datasets")
        if datasets[p["reference"]]["survey"] == datasets[p["other"]]["survey"]:
            raise ConfigError(f"{key}: reference and other are the same survey '{datasets[p['other']]['survey']}'")
    check_models(config.get("models", []))
    pair_names = {p["name"] for p in config["pairs"]}
    for i, m in enumerate(config.get("models", [])):
        for j, name in enumerate(m.get("pairs", [])):
            if name not in pair_names:
                raise ConfigError(f"config key models[{i}].pairs[{j}]: unknown pair '{name}'; known: {sorted(pair_names)}")
    curves = config.get("alignment", {}).get("size_curves", {})
    model_names = {f"{m['family']}-{size}" for m in config.get("models", []) for size in m["sizes"]}
    if curves and curves["decomposition_model"] not in model_names:
        raise ConfigError(f"config key alignment.size_curves.decomposition_model: '{curves['decomposition_model']}' "
                          f"is not among the configured models {sorted(model_names)}")
    hsc_pair = config.get("alignment", {}).get("hsc_pair")
    aligned = {p["name"] for p in config["pairs"] if p.get("align", True)}
    if hsc_pair is not None and aligned and hsc_pair not in aligned:
        raise ConfigError(f"config key alignment.hsc_pair: '{hsc_pair}' is not a pair of the alignment {sorted(aligned)}")
    probes = config.get("probes")
    if probes:
        _check_probes(probes, config, model_names)
    _check_pretraining(config, datasets, mini_surveys)


def _check_pretraining(config: dict, datasets: dict, mini_surveys: dict) -> None:
    """The mini Specformer's pre-training set must be a configured spectrum dataset on the DESI grid."""
    pre = config.get("mini_specformer_pretraining")
    uses = config["model_weights"] == "mini" and any(m["family"] == "specformer" for m in config.get("models", []))
    if not (pre and pre["steps"] > 0 and uses):
        return
    key, name = "config key mini_specformer_pretraining.dataset", pre["dataset"]
    if name not in datasets or datasets[name]["modality"] != "spectrum":
        spectra = sorted(n for n, d in datasets.items() if d["modality"] == "spectrum")
        raise ConfigError(f"{key}: '{name}' is not a spectrum dataset of `datasets` {spectra}")
    d = datasets[name]
    if d["source"] == "mini" and mini_surveys[d["survey"]].get("grid") != "desi":
        raise ConfigError(f"{key}: '{name}' is not on the DESI grid Specformer reads (mini survey "
                          f"'{d['survey']}' has grid '{mini_surveys[d['survey']].get('grid')}')")


def surveys_of_pair(pair: dict, datasets: dict) -> tuple[str, str]:
    """The survey names of a pair's reference and other side (the column prefixes of its dataset)."""
    if "dataset" in pair:
        return pair["reference"], pair["other"]
    return datasets[pair["reference"]]["survey"], datasets[pair["other"]]["survey"]


def _check_probes(probes: dict, config: dict, model_names: set) -> None:
    pair = next((p for p in config["pairs"] if p["name"] == probes["pair"]), None)
    if pair is None:
        raise ConfigError(f"config key probes.pair: unknown pair '{probes['pair']}'")
    sides = surveys_of_pair(pair, {d["name"]: d for d in config["datasets"]})
    names = [("compare", i, e) for i, ab in enumerate(probes["compare"]) for e in ab]
    names += [(key, i, e) for key in ("structure_models", "robustness_models") for i, e in enumerate(probes[key])]
    for key, i, entry in names:
        survey, _, model = entry.partition("/")
        if survey not in sides or model not in model_names:
            raise ConfigError(f"config key probes.{key}[{i}]: '{entry}' is not '<survey>/<family>-<size>' with a "
                              f"survey of pair {probes['pair']} {list(sides)} and a configured model")
        spec = get_spec(*model.split("-", 1))
        allowed = next((m.get("pairs") for m in config["models"] if m["family"] == spec.family
                        and spec.size in m["sizes"]), None)
        if spec.modality != modality_of(survey) or not spec.reads_survey(survey) or (allowed and pair["name"] not in allowed):
            raise ConfigError(f"config key probes.{key}[{i}]: '{entry}': model {model} does not embed {survey} data "
                              f"of pair {pair['name']}")
    source = probes["catalogue"]
    if source.startswith("dataset:"):
        datasets = {d["name"]: d for d in config["datasets"]}
        name = source.removeprefix("dataset:")
        if name not in datasets or datasets[name]["modality"] != "catalogue":
            raise ConfigError(f"config key probes.catalogue: '{source}' does not name a dataset of modality "
                              f"'catalogue'; those are {sorted(n for n, d in datasets.items() if d['modality'] == 'catalogue')}")

