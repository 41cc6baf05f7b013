# Config validation and the helpers every stage uses. Validation runs when the workflow is parsed, so a
# bad config stops `snakemake` (and `snakemake -n`) before any job starts. The schema fills in every
# default; the helpers below are the input functions and params of the rules, named for what they give.

import os
from pathlib import Path

from snakemake.utils import validate

from samesky.tolerances import TOLERANCES as TOLERANCES_PATH
from samesky.config import ConfigError, EmbeddingRef, check_config, pair_datasets, pair_surveys
from samesky.config import embedding_jobs as config_embedding_jobs
from samesky.registry import spec_by_name, specs_of
from samesky.surveys import modality_of
from samesky.steps import STEPS, warm

for _section in ("probes", "downstream"):  # `probes: null` in a later --configfile switches a stage off (a config
    if _section in config and config[_section] is None:  # file cannot delete a key)
        del config[_section]
validate(config, "../schemas/config.schema.yaml")
check_config(config)

RESULTS = config["results"]  # computed results; one folder per preset, so presets never overwrite each other
RESOURCES = config["resources"]  # inputs: the mini universe, datasets as loaded, model weights
MINI_HUB = f"{RESOURCES}/mini_universe/hub"
TOLERANCES = str(TOLERANCES_PATH)  # samesky/tolerances.yaml: what another computer may change
REPORT = Path(workflow.basedir) / "workflow" / "report"  # the captions (one .rst per figure or table)
DATASETS = {d["name"]: d for d in config["datasets"]}
PAIRS = {p["name"]: p for p in config["pairs"]}
ALIGNED_PAIRS = [name for name, p in PAIRS.items() if p["align"]]  # the rest are for probes only
MODELS = specs_of(config)  # every model size by name ('dinov2-giant'), each random control after its model
FAMILY_LABELS = {s.family: s.label for s in MODELS.values() if s.label}  # how tables name each family
_ADAPT = config["adaptation"]
# issue 26: models adapted to the morphology task or drawn in the attention figure, the zoo's where the run
# does not embed them (fetched, never embedded)
def _adapted(key, names):
    try:
        return {name: MODELS.get(name) or spec_by_name(name) for name in names}
    except ConfigError as exc:
        raise ConfigError(f"config key {key}: {exc}") from None


ADAPTED = {**_adapted("adaptation.models", _ADAPT["models"]), **_adapted("adaptation.scratch", _ADAPT["scratch"]),
           **_adapted("adaptation.attention.models", _ADAPT["attention"]["models"])}


def spec_of(model):
    """A model's spec: the run's, else an adapted model's."""
    return MODELS.get(model) or ADAPTED[model]
RESAMPLED_SURVEYS = ("sdss",)  # spectra that Specformer sees only after resampling onto the DESI grid


def step_config(rule):
    """The config keys the rule's step declares it reads (samesky.steps): its params, so a job reruns when
    one of them changes and not when another key does."""
    out = {}
    for key in STEPS[rule].reads:
        *parents, last = key.split(".")
        source, target = config, out
        for part in parents:
            source, target = source[part], target.setdefault(part, {})
        target[last] = source[last]
    return out


def caption_file(name):
    """A figure's or table's caption (the report's, and the Markdown and LaTeX tables')."""
    return str(REPORT / f"{name}.rst")


def provenance_of(path):
    """The provenance record a job writes beside an output: X.parquet -> X.provenance.json, and
    <stage>/<pair>/dataset -> <stage>/<pair>/provenance.json."""
    folder, name = os.path.split(path)
    if name == "dataset":
        return os.path.join(folder, "provenance.json")
    return os.path.join(folder, name.rsplit(".", 1)[0] + ".provenance.json")


# Data --------------------------------------------------------------------------------------------------


def dataset_path(name):
    return f"{RESOURCES}/data/{name}"


def uses_mini_universe():
    return any(d["source"] == "mini" for d in DATASETS.values())


def dataset_entry(wildcards):
    return DATASETS[wildcards.dataset]


def dataset_source(wildcards):
    """Where a dataset is loaded from: the mini universe's folder of its survey, or its configured source."""
    d = DATASETS[wildcards.dataset]
    return f"{MINI_HUB}/{d['survey']}" if d["source"] == "mini" else d["source"]


def download_inputs(wildcards):
    """Only the mini universe is made here; Hub ids and local folders are read as they are."""
    return {"mini_universe": MINI_HUB} if DATASETS[wildcards.dataset]["source"] == "mini" else {}


def preflight_settings():
    """The config sections the preflight checks the run against."""
    keys = ("preset", "datasets", "pairs", "models", "model_weights", "crossmatch", "embedding", "alignment",
            "probes", "downstream", "preflight", "released_embeddings")
    return {key: config[key] for key in keys if key in config}


# Crossmatch --------------------------------------------------------------------------------------------


def crossmatch_inputs(wildcards):
    """The datasets a pair is made from, by their role, and their provenance records."""
    names = pair_datasets(PAIRS[wildcards.pair])
    roles = ["paired"] if len(names) == 1 else ["reference", "other"]
    inputs = {role: dataset_path(n) for role, n in zip(roles, names)}
    positions = PAIRS[wildcards.pair].get("positions_from")
    if positions:  # ra/dec joined by id from a catalogue
        inputs["positions"] = dataset_path(positions["dataset"])
        names = [*names, positions["dataset"]]
    return {**inputs, "provenance": [f"{dataset_path(n)}.provenance.json" for n in names]}


def pair_entry(wildcards):
    return PAIRS[wildcards.pair]


def pair_image_masks(wildcards):
    """What True means in the image masks of each dataset the pair is made from, by role."""
    names = pair_datasets(PAIRS[wildcards.pair])
    roles = ["paired"] if len(names) == 1 else ["reference", "other"]
    return {role: DATASETS[n]["image_mask"] for role, n in zip(roles, names)}


def pair_sides(wildcards):
    return pair_surveys(PAIRS[wildcards.pair], DATASETS)


def crossmatched_pairs():
    """Name and surveys of every pair, for the mini universe's truth recovery."""
    pairs = []
    for name, pair in PAIRS.items():
        reference, other = pair_surveys(pair, DATASETS)
        pairs.append({"name": name, "reference": reference, "other": other})
    return pairs


# Models and embeddings ---------------------------------------------------------------------------------


def pretraining_of(model):
    """The mini Specformer's pre-training settings, or None where the model is used as made or released."""
    pre = config.get("mini_specformer_pretraining")  # an optional section: None where absent
    spec = spec_of(model)
    if config["model_weights"] != "mini" or spec.adapter != "specformer" or spec.is_control or not pre or pre["steps"] == 0:
        return None
    return pre


def model_dir(model):
    """The folder an embedding job loads: the pre-trained mini Specformer (a result), else the model as made
    or downloaded (a resource)."""
    return f"{RESULTS}/models/{model}" if pretraining_of(model) else f"{RESOURCES}/models/{model}"


def pretrained_models():
    return [m for m in MODELS if pretraining_of(m)]


def pretraining_inputs(wildcards):
    name = config["mini_specformer_pretraining"]["dataset"]
    return {"model": f"{RESOURCES}/models/{wildcards.model}", "spectra": dataset_path(name),
            "provenance": f"{dataset_path(name)}.provenance.json"}


def model_spec(wildcards):
    return spec_of(wildcards.model)


def _shared_downloads():
    """Folder name -> the models that load the same released files (AstroCLIP's three encoders, one
    checkpoint), for the Hub weights only: those files are downloaded once."""
    if config["model_weights"] != "hub":
        return {}
    groups = {}
    for name, spec in MODELS.items():
        if not spec.is_control and spec.weights == "hub":
            groups.setdefault(spec.download, []).append(name)
    return {MODELS[names[0]].download_folder: names for names in groups.values() if len(names) > 1}


SHARED_DOWNLOADS = _shared_downloads()


def learned_model(model):
    """A random control's learned model folder, whose configuration gives its architecture ({} otherwise)."""
    control_of = spec_of(model).control_of
    return {"learned": model_dir(control_of)} if control_of else {}


def fetch_model_inputs(wildcards):
    """The shared download a model's folder points into, where it has one; a random control's learned model."""
    if spec_of(wildcards.model).control_of:
        return learned_model(wildcards.model)
    for folder, names in SHARED_DOWNLOADS.items():
        if wildcards.model in names:
            return {"shared": f"{RESOURCES}/models/shared/{folder}"}
    return {}


def shared_weights_spec(wildcards):
    return MODELS[SHARED_DOWNLOADS[wildcards.weights][0]]


def model_mem_mb(wildcards):
    """Making a mini model, downloading one or writing a control's manifest: no model-sized memory."""
    return 4000


def resampled_survey(wildcards):
    """The spectrum side of a pair whose spectra are resampled (SDSS)."""
    return pair_surveys(PAIRS[wildcards.pair], DATASETS)[1]


def embedding_jobs(pair=None):
    """(pair, survey, model) for every side of every pair and every model size that reads its data."""
    return config_embedding_jobs(config, pair, MODELS)


def model_sides(model):
    """The (pair, survey) sides one model embeds: one embedding job writes all of them."""
    return [(pair, survey) for pair, survey, m in embedding_jobs() if m == model]


def embedded_models(pair=None):
    """The models with an embedding job (of one pair's sides, if given), each once."""
    return list(dict.fromkeys(model for _, _, model in embedding_jobs(pair)))


def embedding_dir(model):
    """One model's embeddings, every side in one folder: the output of its one embedding job."""
    return f"{RESULTS}/embeddings/{model}"


def embedding_path(pair, survey, model):
    return f"{embedding_dir(model)}/{pair}/{survey}.parquet"


def side_dataset(pair, survey):
    """The pair dataset a side is read from: SDSS spectra after resampling onto the DESI grid."""
    if survey in RESAMPLED_SURVEYS:
        return f"{RESULTS}/spectra/{pair}/dataset"
    return f"{RESULTS}/crossmatch/{pair}/dataset"


def prepared_images(pair, survey):
    """The files of one (pair, side) prepared as 8-bit RGB for every model that takes RGB."""
    folder = f"{RESULTS}/images/{pair}/{survey}"
    return {"rgb": f"{folder}/rgb.npy", "objects": f"{folder}/objects.parquet", "provenance": f"{folder}/provenance.json"}


def embedding_inputs(wildcards):
    """The model, and what it reads of each side it embeds, in the order of ``embedding_sides``: the
    prepared RGB images (rgb models), or the pair dataset (image flux, spectra); each with its record."""
    inputs = {"model": model_dir(wildcards.model), "images": [], "objects": [], "datasets": [], "provenance": [],
              **learned_model(wildcards.model)}  # a control reads its learned model's configuration
    for pair, survey in model_sides(wildcards.model):
        if MODELS[wildcards.model].takes == "rgb":
            files = prepared_images(pair, survey)
            inputs["images"].append(files["rgb"])
            inputs["objects"].append(files["objects"])
            inputs["provenance"].append(files["provenance"])
        else:
            inputs["datasets"].append(side_dataset(pair, survey))
            inputs["provenance"].append(provenance_of(side_dataset(pair, survey)))
    return inputs


def embedding_sides(wildcards):
    """Each side the job embeds: its pair and survey, and the pair's Specformer pooling."""
    return [{"pair": pair, "survey": survey, "specformer_pooling": specformer_pooling_of(pair)}
            for pair, survey in model_sides(wildcards.model)]


def specformer_pooling_of(pair):
    """The pair's own Specformer pooling, else the embedding section's (the two papers pool differently)."""
    own = PAIRS[pair]["specformer_pooling"]
    return own if own is not None else config["embedding"]["specformer_pooling"]


def embed_threads():
    """One thread on the CPU (the mini models gain nothing from more, and jobs then run side by side); on a
    GPU node, one more per background image reader."""
    return 1 + config["embedding"]["loader_workers"] if config["embedding"]["gpu"] else 1


def embed_mem_mb(wildcards):
    """Host memory: the job's data and one copy of the weights in their GPU dtype (loaded on the host, then
    moved to the device)."""
    spec = MODELS[wildcards.model]
    return 8000 + int(spec.params_m * spec.bytes_per_param)


def embed_gpu_mem_mb(wildcards):
    return MODELS[wildcards.model].gpu_mem_mb(config["embedding"]["batch_size"])


def embed_runtime(wildcards):
    """Minutes for every side of one model: 30, plus its forward passes over 102k objects a side (the
    paper's largest pair; a bound for the others) at 50 TFLOP/s, a bf16 rate current data-centre GPUs
    sustain (ModelSpec.gflops_per_object): under an hour for a ViT-B, hours for the largest vision models,
    days for the 10-28B vision-language models, past many queues' limits: give those fewer sides
    (only_pairs), or set their runtime in the profile (docs/models.md)."""
    spec = MODELS[wildcards.model]
    seconds = len(model_sides(wildcards.model)) * 102_000 * spec.gflops_per_object() * 1e9 / 50e12
    return 30 + int(seconds / 60)


# Released embeddings (model_weights: released) -------------------------------------------------------


RELEASED = config["model_weights"] == "released"
# The layer grids read the layerwise repository where one is named (released_embeddings.layerwise)
RELEASED_KINDS = ["final"] + (["layers"] if RELEASED and config["alignment"]["layers"] != "final"
                              and config["released_embeddings"].get("layerwise") else [])


def released_files():
    """(pair, image model) of every released file read: one per image model size and pair; a spectroscopic
    pair's spectrum embeddings lie in its image models' files."""
    return list(dict.fromkeys((p, m) for p, _, m in embedding_jobs() if MODELS[m].modality == "image"))


def released_file(pair, model, kind="final"):
    return f"{RESOURCES}/embeddings/{pair}/{model}{'.layers' if kind == 'layers' else ''}.parquet"


def released_mode(pair):
    """The folder of the released repository a pair's files lie in: the survey compared with HSC, unless
    released_embeddings.modes names another (cosmosweb for a COSMOS-Web HSC-JWST pair)."""
    return (config["released_embeddings"].get("modes") or {}).get(pair, pair_surveys(PAIRS[pair], DATASETS)[1])


def released_requests():
    """Every (pair, model, kind) the run reads, with the folder and sides it is resolved by."""
    return [{"pair": p, "model": m, "kind": kind, "mode": released_mode(p),
             "reference": pair_surveys(PAIRS[p], DATASETS)[0], "other": pair_surveys(PAIRS[p], DATASETS)[1]}
            for p, m in released_files() for kind in RELEASED_KINDS]


def released_sides(model):
    """Each side a model has, with the image models whose released files hold it, in order: the model's
    own (images), or each of the pair's image models' (spectra: the first released one is read)."""
    return [{"pair": pair, "survey": survey, "surveys": list(pair_surveys(PAIRS[pair], DATASETS)),
             "holders": [model] if MODELS[model].modality == "image" else [m for p, m in released_files() if p == pair]}
            for pair, survey in model_sides(model)]


def released_file_keys(wildcards):
    return [(s["pair"], h, kind) for s in released_sides(wildcards.model) for h in s["holders"] for kind in RELEASED_KINDS]


def released_embedding_inputs(wildcards):
    files = [released_file(*key) for key in released_file_keys(wildcards)]
    return {"files": files, "provenance": [provenance_of(f) for f in files],
            "audit": f"{RESULTS}/tables/released_audit.csv"}


def released_embedding_sides(wildcards):
    return released_sides(wildcards.model)


# Alignment ---------------------------------------------------------------------------------------------


def pair_embedding_files(pair):
    """What the alignment of one pair reads: each embeddings file with its survey and model facts."""
    return [
        {"survey": survey, "family": MODELS[model].family, "size": MODELS[model].size,
         "params_m": MODELS[model].params_m, "path": embedding_path(pair, survey, model)}
        for _, survey, model in embedding_jobs(pair)
    ]


def pair_embeddings(wildcards):
    """The embedding folders of the models of one pair."""
    return {"embeddings": [embedding_dir(m) for m in embedded_models(wildcards.pair)]}


def searched_pair(wildcards):
    """The pair's embeddings and their neighbour lists (rule search_neighbours), which its rule reads."""
    return {**pair_embeddings(wildcards), "neighbours": f"{RESULTS}/alignment/{wildcards.pair}/neighbours.npz"}


def search_mem_mb(wildcards, input):
    """The pair's embeddings (each file read whole and held while the pair is searched) twice over, for the
    row set being searched and its normalised copy, plus 2 GB: O(N d) per file, never N^2."""
    files = [f["path"] for f in pair_embedding_files(wildcards.pair)]
    size = sum(os.path.getsize(p) for p in files if os.path.exists(p))
    return 2000 + 2 * size // 1_000_000


def search_runtime(wildcards, input):
    """Minutes: the searches' 2 N^2 d FLOP at 20 GFLOP/s a thread (a quarter of a core's matrix rate),
    at least 10; on a GPU it takes a fraction of that."""
    total = 0.0
    for f in pair_embedding_files(wildcards.pair):
        if os.path.exists(f["path"]):
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(f["path"]).metadata
            total += 2.0 * meta.num_rows ** 2 * 1024
    return max(10, int(total / (20e9 * config["alignment"]["threads"]) / 60) + 10)


def pair_upstream(wildcards):
    """The records of the pair's embeddings files. They lie inside the models' folders, which Snakemake
    does not take as inputs file by file, so the steps get them as params (``upstream``)."""
    return [provenance_of(f["path"]) for f in pair_embedding_files(wildcards.pair)]


def pair_files(wildcards):
    return pair_embedding_files(wildcards.pair)


def size_curve_inputs(wildcards):
    """The pair's embeddings and their lists, plus where its classes come from (the mini truth or the pair
    dataset)."""
    inputs = searched_pair(wildcards)
    source = config["alignment"]["size_curves"]["classes"]["source"]
    if source == "truth":
        inputs["truth"] = f"{RESOURCES}/mini_universe/truth.parquet"
    elif source == "pair":
        inputs["dataset"] = f"{RESULTS}/crossmatch/{wildcards.pair}/dataset"
        inputs["provenance"] = f"{RESULTS}/crossmatch/{wildcards.pair}/provenance.json"
    return inputs


def conditional_inputs(wildcards):
    """The pair's embeddings, plus what its covariates are read from: the mini truth (redshift source truth)
    and the pair dataset (redshift source pair, the brightness column, the positions of the environment and
    the sky regions)."""
    inputs = searched_pair(wildcards)
    opts = config["alignment"]["conditional"]
    if opts["redshift"]["source"] == "truth":
        inputs["truth"] = f"{RESOURCES}/mini_universe/truth.parquet"
    if opts["redshift"]["source"] == "pair" or opts["brightness"] is not None or opts["environment"] or opts["sky_regions"]:
        if RELEASED:
            raise ValueError("alignment.conditional: the released embeddings have no pair dataset to read covariates "
                             "from; set redshift.source none, brightness null, environment false, sky_regions 0 "
                             "(config/released.yaml does)")
        inputs["dataset"] = f"{RESULTS}/crossmatch/{wildcards.pair}/dataset"
        inputs["provenance"] = f"{RESULTS}/crossmatch/{wildcards.pair}/provenance.json"
    return inputs


def alignment_targets():
    if not ALIGNED_PAIRS:  # every pair is probe-only
        return []
    tables = ["table1_intramodal", "table2_crossmodal", "crossmodal_cka"]
    return (
        [f"{RESULTS}/tables/{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")]
        + [f"{RESULTS}/tables/trend_tests.csv", f"{RESULTS}/tables/trend_steps.csv", f"{RESULTS}/figures/figure1_crossmodal.pdf"]
        + [f"{RESULTS}/tables/size_curves.csv", f"{RESULTS}/figures/size_curves.pdf",
           f"{RESULTS}/figures/agreement_decomposition.pdf"]
        + metric_targets()
        + layer_targets()
    )


def metric_targets():
    """Issue 17: the metric suite, the conditional alignment and, where the mini universe's truth exists
    (the embedded default), the oracle check of the metrics."""
    targets = [f"{RESULTS}/tables/{t}" for t in ("metric_suite.csv", "metric_suite_crossmodal.csv",
                                                 "metric_suite_crossmodal.md", "metric_trend_tests.csv",
                                                 "metric_size_curves.csv", "conditional_alignment.csv",
                                                 "size_deltas.csv", "size_delta_trends.csv")]
    targets += [f"{RESULTS}/figures/{f}.pdf" for f in ("metric_suite", "metric_size_curves", "conditional_alignment")]
    if uses_mini_universe():
        targets += [f"{RESULTS}/tables/oracle_curves.csv", f"{RESULTS}/tables/oracle_summary.csv",
                    f"{RESULTS}/figures/oracle.pdf"]
    return targets


def layer_targets():
    """The layer grids, when more than the final layer is scored (alignment.layers)."""
    if config["alignment"]["layers"] == "final":
        return []
    return ([f"{RESULTS}/tables/layer_best.csv", f"{RESULTS}/figures/layer_depth.pdf"]
            + [f"{RESULTS}/figures/layer_grids_{pair}.pdf" for pair in ALIGNED_PAIRS])


# Probes ------------------------------------------------------------------------------------------------


def _embeddings(entries):
    """Config embedding entries as (survey, model), the key of the probe tables."""
    return [(ref.survey, ref.model) for ref in map(EmbeddingRef.of, entries)]


def probe_embeddings():
    """Every embedding of the probe pair: each image model on its image side, each spectrum model on DESI."""
    return [(survey, model) for _, survey, model in embedding_jobs(config["probes"]["pair"])]


def structure_embeddings():
    return _embeddings(config["probes"]["structure_models"])


def robustness_embeddings():
    return _embeddings(config["probes"]["robustness_models"])


def compared_pairs():
    """`probes.compare` as ((survey, model), (survey, model)) pairs."""
    return [tuple(_embeddings(pair)) for pair in config["probes"]["compare"]]


def compared_embeddings():
    """Every embedding named in a `probes.compare` pair, once."""
    return list(dict.fromkeys(e for pair in compared_pairs() for e in pair))


def probe_embedding_path(wildcards):
    return embedding_path(config["probes"]["pair"], wildcards.survey, wildcards.model)


def probe_embedding_dir(wildcards):
    return embedding_dir(wildcards.model)


def probe_embedding_upstream(wildcards):
    return [provenance_of(probe_embedding_path(wildcards))]


def predictions_of(embeddings):
    """The probe sample and the predictions of the given embeddings, for an analysis rule's input."""
    paths = [f"{RESULTS}/probes/predictions/{s}/{m}.parquet" for s, m in embeddings]
    return {"sample": f"{RESULTS}/probes/sample.parquet", "predictions": paths,
            "provenance": [provenance_of(p) for p in paths]}


def probe_catalogue():
    """Where the probes' catalogue is read from (a path or URL)."""
    catalogue = config["probes"]["catalogue"]
    if catalogue["source"] == "mini_universe":
        return f"{MINI_HUB}/provabgs"
    if catalogue["source"] == "dataset":
        return dataset_path(catalogue["dataset"])
    return catalogue["path"]


def probe_sample_inputs(wildcards):
    pair = config["probes"]["pair"]
    catalogue = config["probes"]["catalogue"]
    inputs = {"dataset": f"{RESULTS}/crossmatch/{pair}/dataset",
              "provenance": [f"{RESULTS}/crossmatch/{pair}/provenance.json"]}
    if catalogue["source"] == "mini_universe":
        inputs["mini_universe"] = MINI_HUB  # the catalogue lies inside it
    elif catalogue["source"] == "dataset":
        inputs["catalogue"] = probe_catalogue()
        inputs["provenance"].append(probe_catalogue() + ".provenance.json")
    return inputs


def structure_files():
    return [embedding_path(config["probes"]["pair"], s, m) for s, m in structure_embeddings()]


def structure_inputs(wildcards):
    return {"sample": f"{RESULTS}/probes/sample.parquet",
            "embeddings": list(dict.fromkeys(embedding_dir(m) for _, m in structure_embeddings())),
            "provenance": f"{RESULTS}/probes/sample.provenance.json"}


def probe_tables_inputs(wildcards):
    return predictions_of(probe_embeddings())


def robustness_inputs(wildcards):
    return predictions_of(robustness_embeddings())


def residual_inputs(wildcards):
    return predictions_of(structure_embeddings())


def net_wins_inputs(wildcards):
    return predictions_of(compared_embeddings())


def probe_targets():
    if "probes" not in config:
        return []
    tables = ["probe_r2_test.csv", "probe_r2_oof.csv", "probe_bootstrap.csv", "probe_environment.csv",
              "probe_brightness.csv", "probe_sky.csv", "structure_kmeans.csv", "residual_outliers.csv",
              "residual_net_wins.csv"]
    return [f"{RESULTS}/tables/{t}" for t in tables]


# Downstream tasks (issue 18) ----------------------------------------------------------------------------


def downstream_embeddings(pair):
    """Every embedding of a pair with the facts the tables and figures group by: the alignment's, plus the
    model's name and modality."""
    return [{**files, "model": model, "modality": MODELS[model].modality}
            for files, (_, _, model) in zip(pair_embedding_files(pair), embedding_jobs(pair))]


def morphology_pair():
    return config["downstream"]["morphology"]["pair"]


def morphology_catalogue():
    """Where the vote fractions are read from: the mini universe's GZD-5-like table, or a path or URL."""
    catalogue = config["downstream"]["morphology"]["catalogue"]
    return f"{MINI_HUB}/galaxy_zoo" if catalogue["source"] == "mini_universe" else catalogue["path"]


def morphology_sample_inputs(wildcards):
    pair = morphology_pair()
    inputs = {"dataset": f"{RESULTS}/crossmatch/{pair}/dataset",
              "provenance": f"{RESULTS}/crossmatch/{pair}/provenance.json"}
    if config["downstream"]["morphology"]["catalogue"]["source"] == "mini_universe":
        inputs["mini_universe"] = MINI_HUB  # the catalogue lies inside it; the truth says how right its classes are
        inputs["truth"] = f"{RESOURCES}/mini_universe/truth.parquet"
    return inputs


def _with_embeddings(inputs, entries):
    """An analysis's inputs plus the folders of the models whose files ``entries`` read."""
    folders = [os.path.dirname(os.path.dirname(e["path"])) for e in entries]
    return {**inputs, "embeddings": list(dict.fromkeys(folders))}


def morphology_images():
    """The prepared RGB cutouts of the morphology pair's reference side (HSC): the CNN's and the examples'."""
    return prepared_images(morphology_pair(), pair_surveys(PAIRS[morphology_pair()], DATASETS)[0])


def morphology_supervised_inputs(wildcards):
    sample, images = f"{RESULTS}/downstream/morphology_sample.parquet", morphology_images()
    return {"sample": sample, "images": images["rgb"], "image_objects": images["objects"],
            "provenance": [provenance_of(sample), images["provenance"]]}


def morphology_classification_inputs(wildcards):
    sample = f"{RESULTS}/downstream/morphology_sample.parquet"
    inputs = {"sample": sample, "provenance": [provenance_of(sample)]}
    if config["downstream"]["morphology"]["supervised_epochs"]:  # the CNN's line in the figure and table
        inputs["supervised"] = f"{RESULTS}/downstream/morphology_supervised.csv"
        inputs["provenance"].append(provenance_of(inputs["supervised"]))
    return _with_embeddings(inputs, downstream_embeddings(morphology_pair()))


def redshift_inputs(wildcards):
    pair = config["downstream"]["redshift"]["pair"]
    return _with_embeddings({"dataset": f"{RESULTS}/crossmatch/{pair}/dataset",
                             "provenance": f"{RESULTS}/crossmatch/{pair}/provenance.json"}, downstream_embeddings(pair))


def similarity_tasks():
    """The retrieval tasks: query and gallery files of the same objects, and how they are put in one space."""
    sim, jobs = config["downstream"]["similarity"], set(embedding_jobs())
    tasks = []
    for pair in sim["image_pairs"]:
        reference, other = pair_surveys(PAIRS[pair], DATASETS)
        for model in embedded_models(pair):
            if (pair, reference, model) in jobs and (pair, other, model) in jobs:
                tasks.append({"kind": "image -> image", "pair": pair, "model": model, "map": "direct",
                              "query": embedding_path(pair, other, model), "query_label": other,
                              "gallery": embedding_path(pair, reference, model), "gallery_label": reference})
    if sim["spectrum_pairs"]:
        first, second = sim["spectrum_pairs"]
        gallery, query = pair_surveys(PAIRS[first], DATASETS)[1], pair_surveys(PAIRS[second], DATASETS)[1]
        for model in embedded_models(first):
            if (first, gallery, model) in jobs and (second, query, model) in jobs:
                tasks.append({"kind": "spectrum -> spectrum", "pair": f"{second}, {first}", "model": model,
                              "map": "direct", "query": embedding_path(second, query, model), "query_label": query,
                              "gallery": embedding_path(first, gallery, model), "gallery_label": gallery})
    for entry in sim["crossmodal"]:
        pair = entry["pair"]
        sides = pair_surveys(PAIRS[pair], DATASETS)
        image = next(s for s in sides if modality_of(s) == "image")
        spectrum = next(s for s in sides if modality_of(s) == "spectrum")
        models = entry.get("models") or [
            (i, s) for i in embedded_models(pair) if (pair, image, i) in jobs
            for s in embedded_models(pair) if (pair, spectrum, s) in jobs]
        for image_model, spectrum_model in models:
            tasks.append({"kind": "image -> spectrum", "pair": pair, "model": f"{image_model} | {spectrum_model}",
                          "map": entry["map"], "query": embedding_path(pair, image, image_model), "query_label": image,
                          "gallery": embedding_path(pair, spectrum, spectrum_model), "gallery_label": spectrum,
                          "n_components": entry["n_components"], "test_fraction": entry["test_fraction"],
                          "split_seed": entry["split_seed"]})
    return tasks


def similarity_examples():
    """The example figure's embedding: the configured model, else the largest that embeds the morphology
    pair's reference images."""
    pair = morphology_pair()
    reference = pair_surveys(PAIRS[pair], DATASETS)[0]
    ex = config["downstream"]["similarity"]["examples"]
    model = ex["model"] or max((m for p, s, m in embedding_jobs(pair) if s == reference),
                               key=lambda m: MODELS[m].params_m)
    return {**ex, "model": model, "survey": reference, "path": embedding_path(pair, reference, model)}


def similarity_inputs(wildcards):
    sample = f"{RESULTS}/downstream/morphology_sample.parquet"
    images = morphology_images()
    entries = ([{"path": t[side]} for t in similarity_tasks() for side in ("query", "gallery")]
               + downstream_embeddings(morphology_pair()) + [similarity_examples()])
    return _with_embeddings({"sample": sample, "images": images["rgb"], "image_objects": images["objects"],
                             "provenance": [provenance_of(sample), images["provenance"]]}, entries)


def similarity_upstream():
    files = {t[side] for t in similarity_tasks() for side in ("query", "gallery")}
    files |= {e["path"] for e in downstream_embeddings(morphology_pair())}
    return sorted(provenance_of(f) for f in files)


def downstream_targets():
    if "downstream" not in config:
        return []
    tables = ["morphology_labels.csv", "morphology_f1.csv", "morphology_f1.md", "redshift_probe.csv",
              "similarity_recall.csv", "similarity_neighbours.csv"]
    figures = ["morphology_f1_fraction", "morphology_f1_params", "redshift_scatter", "similarity_recall",
               "similarity_examples"]
    return [f"{RESULTS}/tables/{t}" for t in tables] + [f"{RESULTS}/figures/{f}.pdf" for f in figures]


# Preprocessing variants (issue 26) --------------------------------------------------------------------

VARIANTS = {v["name"]: v for v in config["preprocessing"]["variants"]}
_names = [v["name"] for v in config["preprocessing"]["variants"]]
if len(set(_names)) < len(_names) or "default" in _names:  # "default" names the run's own in the tables
    raise ConfigError(f"config key preprocessing.variants: names must be unique and not 'default', got {_names}")


def variant_models(pair=None):
    """The models a variant changes: those that read the prepared RGB images (a flux or spectrum model
    reads its own data, the same in every variant)."""
    return [m for m in embedded_models(pair) if MODELS[m].takes == "rgb"]


def variant_path(variant, pair, survey, model):
    """A variant's embeddings file where the variant changes the model's input, else the run's own."""
    if model in variant_models() and modality_of(survey) == "image":
        return f"{RESULTS}/preprocessing/{variant}/embeddings/{model}/{pair}/{survey}.parquet"
    return embedding_path(pair, survey, model)


def variant_images(variant, pair, survey):
    folder = f"{RESULTS}/preprocessing/{variant}/images/{pair}/{survey}"
    return {"rgb": f"{folder}/rgb.npy", "objects": f"{folder}/objects.parquet", "provenance": f"{folder}/provenance.json"}


def variant_embedding_inputs(wildcards):
    """The model and one variant's images of every image side it embeds."""
    inputs = {"model": model_dir(wildcards.model), "images": [], "objects": [], "provenance": [],
              **learned_model(wildcards.model)}
    for pair, survey in variant_sides(wildcards):
        files = variant_images(wildcards.variant, pair, survey)
        for key, name in (("images", "rgb"), ("objects", "objects"), ("provenance", "provenance")):
            inputs[key].append(files[name])
    return inputs


def variant_sides(wildcards):
    """The image sides a variant's embedding job reads: those aligned or classified (not probe-only pairs)."""
    used = set(ALIGNED_PAIRS) | ({morphology_pair()} if "downstream" in config else set())
    return [(p, s) for p, s in model_sides(wildcards.model) if modality_of(s) == "image" and p in used]


def variant_embedding_sides(wildcards):
    return [{"pair": p, "survey": s, "specformer_pooling": specformer_pooling_of(p)} for p, s in variant_sides(wildcards)]


def variant_pair_files(wildcards):
    return [{**f, "path": variant_path(wildcards.variant, wildcards.pair, f["survey"], model)}
            for f, (_, _, model) in zip(pair_embedding_files(wildcards.pair), embedding_jobs(wildcards.pair))]


def variant_pair_inputs(wildcards):
    """A variant's embedding folders of the pair's RGB models, and the run's own of the others."""
    own = [embedding_dir(m) for m in embedded_models(wildcards.pair) if m not in variant_models()]
    return {"embeddings": [f"{RESULTS}/preprocessing/{wildcards.variant}/embeddings/{m}"
                           for m in variant_models(wildcards.pair)] + own}


def variant_pair_upstream(wildcards):
    return [provenance_of(f["path"]) for f in variant_pair_files(wildcards)]


def variant_scores(kind):
    """The run's own alignment files, then each variant's, pair by pair (the order the step splits them)."""
    own = [f"{RESULTS}/alignment/{pair}/{kind}" for pair in ALIGNED_PAIRS]
    return own + [f"{RESULTS}/preprocessing/{v}/alignment/{pair}/{kind}" for v in VARIANTS for pair in ALIGNED_PAIRS]


def variant_morphology_embeddings():
    """Every variant's embedding of the morphology pair's reference images, per RGB model."""
    pair = morphology_pair()
    reference = pair_surveys(PAIRS[pair], DATASETS)[0]
    return [{"variant": v, "model": m, "path": variant_path(v, pair, reference, m)}
            for v in VARIANTS for m in variant_models(pair) if (pair, reference, m) in set(embedding_jobs(pair))]


def preprocessing_targets():
    if not VARIANTS or RELEASED:
        return []
    targets = [f"{RESULTS}/tables/preprocessing_alignment.csv", f"{RESULTS}/tables/preprocessing_conclusions.csv",
               f"{RESULTS}/figures/preprocessing_alignment.pdf"] if ALIGNED_PAIRS else []
    if "downstream" in config:
        targets += [f"{RESULTS}/tables/preprocessing_morphology.csv", f"{RESULTS}/figures/preprocessing_morphology.pdf"]
    return targets


# Adaptation (issue 26) -----------------------------------------------------------------------------------


def adaptation_methods(model):
    """What the fine_tune job of a model does: adaptation.methods where it is listed in models, scratch where
    it is listed in scratch."""
    methods = list(_ADAPT["methods"]) if model in _ADAPT["models"] else []
    return methods + (["scratch"] if model in _ADAPT["scratch"] else [])


def fine_tune_inputs(wildcards):
    sample, images = f"{RESULTS}/downstream/morphology_sample.parquet", morphology_images()
    return {"model": model_dir(wildcards.model), "sample": sample, "images": images["rgb"],
            "image_objects": images["objects"], "provenance": [provenance_of(sample), images["provenance"]]}


def adapted_models():
    return [m for m in ADAPTED if adaptation_methods(m)]


def adaptation_targets():
    if "downstream" not in config or RELEASED:
        return []
    targets = []
    if adapted_models():
        targets += [f"{RESULTS}/tables/adaptation_f1.csv", f"{RESULTS}/figures/adaptation_f1.pdf",
                    f"{RESULTS}/figures/adaptation_per_class.pdf"]
    targets += [f"{RESULTS}/figures/attention_{m}.pdf" for m in _ADAPT["attention"]["models"]]
    return targets


def all_targets():
    if RELEASED:  # no data, no crossmatch: the released files, audited, and the alignment on them
        return [f"{RESULTS}/tables/released_audit.csv", f"{RESULTS}/embeddings/summary.csv"] + alignment_targets()
    targets = [f"{RESULTS}/crossmatch/summary.csv", f"{RESULTS}/embeddings/summary.csv"] + alignment_targets()
    targets += probe_targets() + downstream_targets() + preprocessing_targets()
    targets += adaptation_targets()
    if uses_mini_universe():
        targets.append(f"{RESULTS}/crossmatch/truth_recovery.csv")
    return targets
