"""Config checks that a JSON schema cannot express, and the readers of the config's structured values.

The schema (workflow/schemas/config.schema.yaml) checks keys, types and ranges and fills in defaults;
``check_config`` then checks that every name a pair, model or probe uses exists and fits. Each error
names the config key at fault. The small readers below (a pair's surveys and datasets, an embedding
reference) are the only places those config values are interpreted, for the workflow and the checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError
from .registry import model_specs
from .surveys import modality_of

PARENT_KINDS = ("image", "spectrum")  # datasets of one survey, which a pair crossmatches
CROSSMATCHED_KEYS = ("reference_dataset", "other_dataset")
PAIRED_KEYS = ("dataset", "reference_survey", "other_survey")


@dataclass(frozen=True)
class EmbeddingRef:
    """One embedding of a pair: a side (by survey) and a model size, e.g. desi / specformer-base."""

    survey: str
    model: str

    @classmethod
    def of(cls, entry) -> EmbeddingRef:
        """From a config entry ``{survey: ..., model: ...}``."""
        return cls(entry["survey"], entry["model"])

    @property
    def label(self) -> str:
        """'survey/model', as tables and figures name it (and as its file lies under the pair's folder)."""
        return f"{self.survey}/{self.model}"


def is_paired_upstream(pair) -> bool:
    """True for a pair downloaded already paired (``dataset``), False for one crossmatched here."""
    return "dataset" in pair


def pair_datasets(pair) -> list[str]:
    """The datasets a pair is made from: its paired dataset, or its two parent datasets."""
    return [pair["dataset"]] if is_paired_upstream(pair) else [pair["reference_dataset"], pair["other_dataset"]]


def pair_surveys(pair, datasets: dict) -> tuple[str, str]:
    """The survey names of a pair's reference and other side (the column prefixes of its dataset)."""
    if is_paired_upstream(pair):
        return pair["reference_survey"], pair["other_survey"]
    return datasets[pair["reference_dataset"]]["survey"], datasets[pair["other_dataset"]]["survey"]


def embedding_jobs(config: dict, pair: str | None = None, specs: dict | None = None) -> list[tuple[str, str, str]]:
    """(pair, survey, model) for every side of every pair (or of ``pair``) and every configured model size
    that reads its data: the model's modality, the surveys it reads, its ``only_pairs``. ``specs``: the
    run's model specs where the caller has them already (``model_specs(config["models"])``)."""
    datasets = {d["name"]: d for d in config["datasets"]}
    specs = specs if specs is not None else model_specs(config["models"])
    return [
        (p["name"], survey, name)
        for p in config["pairs"] if pair is None or p["name"] == pair
        for survey in pair_surveys(p, datasets)
        for name, spec in specs.items()
        if spec.modality == modality_of(survey) and spec.reads_survey(survey)
        and (spec.only_pairs is None or p["name"] in spec.only_pairs)
    ]


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
    _check_datasets(config)
    _check_pairs(config["pairs"], datasets)
    specs = model_specs(config["models"])
    pair_names = {p["name"] for p in config["pairs"]}
    for i, m in enumerate(config["models"]):
        for j, name in enumerate(m["only_pairs"] or []):
            if name not in pair_names:
                raise ConfigError(f"config key models[{i}].only_pairs[{j}]: unknown pair '{name}'; "
                                  f"known: {sorted(pair_names)}")
    _check_weights(config, specs)
    alignment = config.get("alignment")
    aligned = {p["name"] for p in config["pairs"] if p["align"]}
    if alignment:
        curves = alignment.get("size_curves")
        if curves and curves["decomposition_model"] not in specs:
            raise ConfigError(f"config key alignment.size_curves.decomposition_model: "
                              f"'{curves['decomposition_model']}' is not among the configured models "
                              f"{sorted(specs)}")
        # the per-object properties named as {source, column, only_pairs}: each only_pairs lists aligned pairs
        named = {"alignment.size_curves.classes": (curves or {}).get("classes"),
                 "alignment.conditional.redshift": (alignment.get("conditional") or {}).get("redshift")}
        for key, spec in named.items():
            for j, name in enumerate((spec or {}).get("only_pairs") or []):
                if name not in aligned:
                    raise ConfigError(f"config key {key}.only_pairs[{j}]: '{name}' is not a pair of the alignment "
                                      f"{sorted(aligned)}")
        metrics = alignment.get("metrics")
        if metrics and alignment["table_k"] not in metrics["k"]:
            raise ConfigError(f"config key alignment.metrics.k: {metrics['k']} leaves out alignment.table_k = "
                              f"{alignment['table_k']}, the k the metric suite's tables report")
        if aligned and alignment["hsc_pair"] not in aligned:
            raise ConfigError(f"config key alignment.hsc_pair: '{alignment['hsc_pair']}' is not a pair of the "
                              f"alignment {sorted(aligned)}")
    if config.get("probes"):
        _check_probes(config["probes"], config, specs)
    if config.get("downstream"):
        _check_downstream(config["downstream"], config, specs)
    audit = (config.get("released_embeddings") or {}).get("audit")
    if audit and 1 / (audit["n_permutations"] + 1) > audit["alpha"]:
        raise ConfigError(f"config key released_embeddings.audit.n_permutations: {audit['n_permutations']} permutations "
                          f"cannot give a p-value at or below alpha = {audit['alpha']} (the smallest is 1/(n+1)), so "
                          "every file would be refused")
    if config["model_weights"] == "released" and "released_embeddings" not in config:
        raise ConfigError("config key released_embeddings: model_weights 'released' needs it (where the files are)")
    _check_pretraining(config, datasets)


def _check_weights(config: dict, specs: dict) -> None:
    """Every model can be made where the run makes it: the embedded default (model_weights mini) builds
    random mini instances, so a model without a mini configuration needs its weights at hand (a local
    folder, or weights that ship in a package); the released preset reads only the zoo's released names."""
    from .hub import is_local

    entries = {f"{m['family']}-{s}": i for i, m in enumerate(config["models"]) for s in m["sizes"]}
    for name, spec in specs.items():
        key = f"config key models[{entries.get(spec.control_of or name, 0)}]"
        if config["model_weights"] == "mini" and not (spec.mini or spec.is_control or spec.weights == "package"
                                                      or is_local(spec.hub_id)):
            raise ConfigError(f"{key}: {name} has no mini configuration, so the embedded default cannot make it "
                              f"offline: give a local folder as its hub_id, or run with model_weights: hub")
        if config["model_weights"] == "hub" and not (spec.hub_id or spec.is_control or spec.weights == "package"):
            raise ConfigError(f"{key}: {name} has no hub_id, so model_weights 'hub' cannot fetch it")
        if config["model_weights"] == "released" and (spec.released is None or spec.is_control):
            raise ConfigError(f"{key}: no released embeddings of {name} (the released preset reads the families "
                              "the Platonic Universe team released)")


def _check_datasets(config: dict) -> None:
    mini_surveys = (config.get("mini_universe") or {}).get("surveys", {})
    for i, d in enumerate(config["datasets"]):
        key = f"config key datasets[{i}]"
        parent = d["kind"] in PARENT_KINDS
        if parent and "survey" not in d:
            raise ConfigError(f"{key}.survey: an {d['kind']} dataset names its survey (the prefix of its columns "
                              f"in a pair)")
        if not parent and "survey" in d:
            raise ConfigError(f"{key}.survey: a {d['kind']} dataset has no survey of its own"
                              + ("; its pair names the survey of each side (reference_survey, other_survey)"
                                 if d["kind"] == "paired" else ""))
        if d["source"] == "mini":
            if "mini_universe" not in config:
                raise ConfigError(f"{key}.source: 'mini' needs a 'mini_universe' section")
            if not parent:
                raise ConfigError(f"{key}.kind: the mini universe makes image and spectrum datasets, not '{d['kind']}'")
            if d["survey"] not in mini_surveys:
                raise ConfigError(f"{key}.survey: '{d['survey']}' is not a survey of mini_universe.surveys "
                                  f"{sorted(mini_surveys)}")
            if mini_surveys[d["survey"]]["kind"] != d["kind"]:
                raise ConfigError(f"{key}.kind: '{d['kind']}' but mini survey '{d['survey']}' is of kind "
                                  f"'{mini_surveys[d['survey']]['kind']}'")
        elif d["format"] == "astroclip_h5":
            if d["kind"] != "paired":
                raise ConfigError(f"{key}.kind: AstroCLIP's file (format astroclip_h5) holds paired images and spectra")
        elif d["format"] == "mmu_hdf5":
            if not parent:
                raise ConfigError(f"{key}.kind: a Multimodal Universe parent set (format mmu_hdf5) is an image or "
                                  f"spectrum dataset of one survey, not '{d['kind']}'")
            if not d["config_name"]:
                raise ConfigError(f"{key}.config_name: format mmu_hdf5 reads <source>/<config_name>/healpix=*/*.hdf5; "
                                  "name the configuration (e.g. pdr3_dud_22.5, dr10_south_21, dr1_main)")
        else:
            from pathlib import Path

            if not Path(d["source"]).exists() and not d["revision"]:
                raise ConfigError(f"{key}.revision: Hub dataset '{d['source']}' needs a pinned revision")


def _check_pairs(pairs: list[dict], datasets: dict) -> None:
    for i, p in enumerate(pairs):
        key = f"config key pairs[{i}]"
        crossmatched = [k for k in CROSSMATCHED_KEYS if k in p]
        paired = [k for k in PAIRED_KEYS if k in p]
        if not ((crossmatched == list(CROSSMATCHED_KEYS) and not paired)
                or (paired == list(PAIRED_KEYS) and not crossmatched)):
            raise ConfigError(f"{key}: give either {' and '.join(CROSSMATCHED_KEYS)} (crossmatched here) or "
                              f"{', '.join(PAIRED_KEYS[:-1])} and {PAIRED_KEYS[-1]} (paired upstream); has "
                              f"{crossmatched + paired}")
        if paired:
            if p["dataset"] not in datasets:
                raise ConfigError(f"{key}.dataset: unknown dataset '{p['dataset']}'; known: {sorted(datasets)}")
            if datasets[p["dataset"]]["kind"] != "paired":
                raise ConfigError(f"{key}.dataset: '{p['dataset']}' is not a dataset of kind 'paired'")
            if p["reference_survey"] == p["other_survey"]:
                raise ConfigError(f"{key}: reference_survey and other_survey are the same survey '{p['other_survey']}'")
            source = (p.get("positions_from") or {}).get("dataset")
            if source is not None and (source not in datasets or datasets[source]["kind"] != "catalogue"):
                raise ConfigError(f"{key}.positions_from.dataset: '{source}' is not a dataset of kind 'catalogue'; "
                                  f"known: {sorted(datasets)}")
            continue
        if p.get("positions_from"):
            raise ConfigError(f"{key}.positions_from: only a pair paired upstream ('dataset') takes positions from a "
                              "catalogue; a pair crossmatched here has its parents'")
        if p["rename"]:
            raise ConfigError(f"{key}.rename: only a pair paired upstream ('dataset') can rename columns")
        for side in CROSSMATCHED_KEYS:
            name = p[side]
            if name not in datasets:
                raise ConfigError(f"{key}.{side}: unknown dataset '{name}'; known: {sorted(datasets)}")
            if datasets[name]["kind"] not in PARENT_KINDS:
                raise ConfigError(f"{key}.{side}: '{name}' is a {datasets[name]['kind']} dataset; crossmatch parent "
                                  f"image or spectrum datasets")
        ref, other = pair_surveys(p, datasets)
        if ref == other:
            raise ConfigError(f"{key}: reference and other dataset are the same survey '{other}'")


def _check_pretraining(config: dict, datasets: dict) -> None:
    """The mini Specformer's pre-training set must be a configured spectrum dataset on the DESI grid."""
    pre = config.get("mini_specformer_pretraining")
    uses = config["model_weights"] == "mini" and any(m["family"] == "specformer" for m in config["models"])
    if not (pre and pre["steps"] > 0 and uses):
        return
    key, name = "config key mini_specformer_pretraining.dataset", pre["dataset"]
    if name not in datasets or datasets[name]["kind"] != "spectrum":
        spectra = sorted(n for n, d in datasets.items() if d["kind"] == "spectrum")
        raise ConfigError(f"{key}: '{name}' is not a spectrum dataset of `datasets` {spectra}")
    d = datasets[name]
    mini_surveys = config["mini_universe"]["surveys"] if d["source"] == "mini" else {}
    if d["source"] == "mini" and mini_surveys[d["survey"]]["grid"] != "desi":
        raise ConfigError(f"{key}: '{name}' is not on the DESI grid Specformer reads (mini survey "
                          f"'{d['survey']}' has grid '{mini_surveys[d['survey']]['grid']}')")


def _check_probes(probes: dict, config: dict, specs: dict) -> None:
    pair = next((p for p in config["pairs"] if p["name"] == probes["pair"]), None)
    if pair is None:
        raise ConfigError(f"config key probes.pair: unknown pair '{probes['pair']}'")
    datasets = {d["name"]: d for d in config["datasets"]}
    sides = pair_surveys(pair, datasets)
    entries = [(f"compare[{i}][{j}]", e) for i, ab in enumerate(probes["compare"]) for j, e in enumerate(ab)]
    for key in ("structure_models", "robustness_models"):
        entries += [(f"{key}[{i}]", e) for i, e in enumerate(probes[key])]
    for key, entry in entries:
        ref = EmbeddingRef.of(entry)
        if ref.survey not in sides or ref.model not in specs:
            raise ConfigError(f"config key probes.{key}: {ref.label} is not a side of pair {probes['pair']} "
                              f"{list(sides)} with a configured model")
        spec = specs[ref.model]
        reads = spec.modality == modality_of(ref.survey) and spec.reads_survey(ref.survey)
        if not reads or (spec.only_pairs and pair["name"] not in spec.only_pairs):
            raise ConfigError(f"config key probes.{key}: {ref.label}: model {ref.model} does not embed "
                              f"{ref.survey} data of pair {pair['name']}")
    catalogue = probes["catalogue"]
    needs = {"mini_universe": set(), "dataset": {"dataset"}, "file": {"path"}}[catalogue["source"]]
    given = set(catalogue) - {"source"}
    if given != needs:
        raise ConfigError(f"config key probes.catalogue: source '{catalogue['source']}' takes "
                          f"{sorted(needs) or 'no other key'}; has {sorted(given)}")
    if catalogue["source"] == "dataset":
        name = catalogue["dataset"]
        if name not in datasets or datasets[name]["kind"] != "catalogue":
            raise ConfigError(f"config key probes.catalogue.dataset: '{name}' is not a dataset of kind 'catalogue'; "
                              f"those are {sorted(n for n, d in datasets.items() if d['kind'] == 'catalogue')}")
    if catalogue["source"] == "mini_universe" and "mini_universe" not in config:
        raise ConfigError("config key probes.catalogue: source 'mini_universe' needs a 'mini_universe' section")


def _check_downstream(down: dict, config: dict, specs: dict) -> None:
    """Issue 18's pairs and models: each pair exists, has the sides its task needs, and each named model
    embeds the side it is named for."""
    pairs = {p["name"]: p for p in config["pairs"]}
    datasets = {d["name"]: d for d in config["datasets"]}
    jobs = set(embedding_jobs(config, specs=specs))

    def sides(key, name):
        if name not in pairs:
            raise ConfigError(f"config key downstream.{key}: unknown pair '{name}'; known: {sorted(pairs)}")
        return pair_surveys(pairs[name], datasets)

    sides("morphology.pair", down["morphology"]["pair"])
    catalogue = down["morphology"]["catalogue"]
    if (catalogue["source"] == "file") != ("path" in catalogue):
        raise ConfigError("config key downstream.morphology.catalogue: source 'file' takes a path, source "
                          f"'mini_universe' none; has {sorted(catalogue)}")
    if catalogue["source"] == "mini_universe" and "mini_universe" not in config:
        raise ConfigError("config key downstream.morphology.catalogue: source 'mini_universe' needs a 'mini_universe' "
                          "section")
    reference = sides("morphology.pair", down["morphology"]["pair"])[0]
    if down["morphology"]["supervised_epochs"] and modality_of(reference) != "image":
        raise ConfigError(f"config key downstream.morphology.supervised_epochs: the CNN learns from the pair's "
                          f"reference images, but '{reference}' of pair '{down['morphology']['pair']}' has none; set 0")
    sides("redshift.pair", down["redshift"]["pair"])
    sim = down["similarity"]
    for i, name in enumerate(sim["image_pairs"]):
        if any(modality_of(s) != "image" for s in sides(f"similarity.image_pairs[{i}]", name)):
            raise ConfigError(f"config key downstream.similarity.image_pairs[{i}]: pair '{name}' does not have two "
                              f"image sides {sides('', name)}")
    spectra = sim["spectrum_pairs"]
    if spectra:
        found = [sides(f"similarity.spectrum_pairs[{i}]", name) for i, name in enumerate(spectra)]
        if len(spectra) != 2 or found[0][0] != found[1][0] or any(modality_of(o) != "spectrum" for _, o in found):
            raise ConfigError(f"config key downstream.similarity.spectrum_pairs: {spectra}: two pairs with one "
                              f"reference survey and a spectrum side each expected; their sides are {found}")
    for i, entry in enumerate(sim["crossmodal"]):
        key = f"similarity.crossmodal[{i}]"
        reference, other = sides(f"{key}.pair", entry["pair"])
        if {modality_of(reference), modality_of(other)} != {"image", "spectrum"}:
            raise ConfigError(f"config key downstream.{key}: pair '{entry['pair']}' has no image and spectrum side")
        if entry["map"] == "direct" and not entry.get("models"):
            raise ConfigError(f"config key downstream.{key}.models: map 'direct' needs the [image, spectrum] model "
                              "pairs whose encoders share a space")
        for j, (image, spectrum) in enumerate(entry.get("models") or []):
            for model, modality in ((image, "image"), (spectrum, "spectrum")):
                survey = reference if modality_of(reference) == modality else other
                if (entry["pair"], survey, model) not in jobs:
                    raise ConfigError(f"config key downstream.{key}.models[{j}]: {model} does not embed the "
                                      f"{modality} side ({survey}) of pair '{entry['pair']}'")
    examples = sim.get("examples")
    if examples and examples.get("model"):
        pair = down["morphology"]["pair"]
        reference = sides("morphology.pair", pair)[0]
        if (pair, reference, examples["model"]) not in jobs:
            raise ConfigError(f"config key downstream.similarity.examples.model: {examples['model']} does not embed "
                              f"the {reference} images of the morphology pair '{pair}'")
