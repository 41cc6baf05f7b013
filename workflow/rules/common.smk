# Config validation and the helpers every stage uses. Validation runs when the workflow is parsed, so a
# bad config stops `snakemake` (and `snakemake -n`) before any job starts.

import os
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # the package, whether pip-installed or not

from samesky.config import check_config, surveys_of_pair
from samesky.registry import get_spec
from samesky.surveys import modality_of

validate(config, "../schemas/config.schema.yaml")
check_config(config)

DATASETS = {d["name"]: d for d in config["datasets"]}
PAIRS = {p["name"]: p for p in config["pairs"]}
ALIGNED_PAIRS = [name for name, p in PAIRS.items() if p.get("align", True)]  # the rest are for probes only
RESULTS = config.get("results", "results")  # one folder per preset, so presets never overwrite each other
MINI_HUB = f"{RESULTS}/mini_universe/hub"
MODELS = {f"{m['family']}-{size}": get_spec(m["family"], size) for m in config["models"] for size in m["sizes"]}
MODEL_PAIRS = {f"{m['family']}-{size}": m.get("pairs") for m in config["models"] for size in m["sizes"]}
RESAMPLED_SURVEYS = ("sdss",)  # spectra that Specformer sees only after resampling onto the DESI grid


def dataset_source(name):
    """Where a dataset is downloaded from (a Hub id, a local folder, or the mini universe)."""
    d = DATASETS[name]
    return f"{MINI_HUB}/{d['survey']}" if d["source"] == "mini" else d["source"]


def download_inputs(wildcards):
    # only the mini universe is made here; Hub ids and local folders are read as they are
    return [MINI_HUB] if DATASETS[wildcards.dataset]["source"] == "mini" else []


def pretraining_of(model):
    """The mini Specformer's pre-training settings, or None where the model is used as initialised/released."""
    pre = config.get("mini_specformer_pretraining")
    if config["model_weights"] != "mini" or MODELS[model].family != "specformer" or not pre or pre["steps"] == 0:
        return None
    return pre


def fetch_model_inputs(wildcards):
    pre = pretraining_of(wildcards.model)
    if pre is None:
        return {}
    return {"spectra": f"{RESULTS}/data/{pre['dataset']}", "provenance": f"{RESULTS}/data/{pre['dataset']}.provenance.json"}


def pair_inputs(wildcards):
    p = PAIRS[wildcards.pair]
    names = [p["dataset"]] if "dataset" in p else [p["reference"], p["other"]]
    return {name: f"{RESULTS}/data/{name}" for name in names}


def pair_surveys(pair):
    """The survey names of a pair's reference and other side (the column prefixes of its dataset)."""
    return surveys_of_pair(PAIRS[pair], DATASETS)


def embedding_jobs(pair=None):
    """(pair, survey, model) for every side of every pair and every model size that reads its data."""
    return [
        (p, survey, name)
        for p in ([pair] if pair else PAIRS)
        for survey in pair_surveys(p)
        for name, spec in MODELS.items()
        if spec.modality == modality_of(survey) and spec.reads_survey(survey)
        and (MODEL_PAIRS[name] is None or p in MODEL_PAIRS[name])
    ]


def specformer_pooling_of(pair):
    """The pair's own Specformer pooling, else the embedding section's (seed 000 and seed 001 differ)."""
    return PAIRS[pair].get("specformer_pooling", config["embedding"].get("specformer_pooling", "exclude_stats"))


def embedding_path(pair, survey, model):
    return f"{RESULTS}/embeddings/{pair}/{survey}/{model}.parquet"


def embedding_targets():
    return [embedding_path(*job) for job in embedding_jobs()]


def pair_embedding_files(pair):
    """What the alignment of one pair reads: each embeddings file with its survey and model facts."""
    return [
        {"survey": survey, "family": MODELS[model].family, "size": MODELS[model].size,
         "params_m": MODELS[model].params_m, "path": embedding_path(pair, survey, model)}
        for pair_, survey, model in embedding_jobs(pair)
    ]


def provenance_of(path):
    """The provenance record a job writes beside an output: X.parquet -> X.provenance.json, and
    <stage>/<pair>/dataset -> <stage>/<pair>/provenance.json."""
    folder, name = os.path.split(path)
    if name == "dataset":
        return os.path.join(folder, "provenance.json")
    return os.path.join(folder, name.rsplit(".", 1)[0] + ".provenance.json")


def embedding_dataset(wildcards):
    if wildcards.survey in RESAMPLED_SURVEYS:
        return f"{RESULTS}/spectra/{wildcards.pair}/dataset"
    return f"{RESULTS}/crossmatch/{wildcards.pair}/dataset"


def alignment_targets():
    if not ALIGNED_PAIRS:  # every pair is probe-only
        return []
    tables = ["table1_intramodal", "table2_crossmodal", "crossmodal_cka"]
    return (
        [f"{RESULTS}/tables/{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")]
        + [f"{RESULTS}/tables/trend_tests.csv", f"{RESULTS}/figures/figure1_crossmodal.pdf"]
        + [f"{RESULTS}/tables/size_curves.csv", f"{RESULTS}/figures/size_curves.pdf",
           f"{RESULTS}/figures/agreement_decomposition.pdf"]
    )


def size_curve_inputs(wildcards):
    """The pair's embeddings, plus where its class labels come from (mini truth or the pair dataset)."""
    paths = [f["path"] for f in pair_embedding_files(wildcards.pair)]
    inputs = {"embeddings": paths, "provenance": [provenance_of(p) for p in paths]}
    if config["alignment"]["size_curves"]["property"].startswith("truth:"):
        inputs["truth"] = f"{RESULTS}/mini_universe/truth.parquet"
    else:
        inputs["dataset"] = f"{RESULTS}/crossmatch/{wildcards.pair}/dataset"
    return inputs


def probe_embeddings():
    """(survey, model) of every embedding of the probe pair: each image model on HSC, Specformer on DESI."""
    return [(survey, model) for _, survey, model in embedding_jobs(config["probes"]["pair"])]


def _embedding_names(entries):
    return [tuple(entry.split("/", 1)) for entry in entries]


def structure_embeddings():
    return _embedding_names(config["probes"]["structure_models"])


def robustness_embeddings():
    return _embedding_names(config["probes"]["robustness_models"])


def compared_pairs():
    """`probes.compare` as ((survey, model), (survey, model)) pairs."""
    return [tuple(_embedding_names(pair)) for pair in config["probes"]["compare"]]


def compared_embeddings():
    """Every embedding named in a `probes.compare` pair, once."""
    return list(dict.fromkeys(e for pair in compared_pairs() for e in pair))


def probe_prediction_inputs(embeddings):
    paths = [f"{RESULTS}/probes/predictions/{s}/{m}.parquet" for s, m in embeddings]
    return {"sample": f"{RESULTS}/probes/sample.parquet", "predictions": paths,
            "provenance": [provenance_of(p) for p in paths]}


def probe_catalogue_source():
    """'mini' -> the mini universe's catalogue; 'dataset:<name>' -> that configured dataset, downloaded;
    anything else is a path or URL read as it is."""
    source = config["probes"]["catalogue"]
    if source == "mini":
        return f"{MINI_HUB}/provabgs"
    if source.startswith("dataset:"):
        return f"{RESULTS}/data/{source.removeprefix('dataset:')}"
    return source


def probe_sample_inputs(wildcards):
    pair = config["probes"]["pair"]
    inputs = {"dataset": f"{RESULTS}/crossmatch/{pair}/dataset",
              "provenance": f"{RESULTS}/crossmatch/{pair}/provenance.json"}
    source = config["probes"]["catalogue"]
    if source == "mini":
        inputs["catalogue"] = MINI_HUB
    elif source.startswith("dataset:"):
        inputs["catalogue"] = probe_catalogue_source()
        inputs["catalogue_provenance"] = probe_catalogue_source() + ".provenance.json"
    return inputs


def probe_options(*keys):
    """The probes settings one rule reads, so that editing another (say, the compared pairs) does not
    rerun it: Snakemake reruns a job when its params change."""
    return {k: config["probes"][k] for k in keys if k in config.get("probes", {})}


def probe_targets():
    if "probes" not in config:
        return []
    tables = ["probe_r2_test.csv", "probe_r2_oof.csv", "probe_bootstrap.csv", "probe_environment.csv",
              "probe_brightness.csv", "probe_sky.csv", "structure_kmeans.csv", "residual_outliers.csv",
              "residual_net_wins.csv"]
    return [f"{RESULTS}/tables/{t}" for t in tables]


def uses_mini_universe():
    return any(d["source"] == "mini" for d in DATASETS.values())


def all_targets():
    targets = [f"{RESULTS}/crossmatch/summary.csv", f"{RESULTS}/embeddings/summary.csv"] + alignment_targets()
    targets += probe_targets()
    if uses_mini_universe():
        targets.append(f"{RESULTS}/crossmatch/truth_recovery.csv")
    return targets
