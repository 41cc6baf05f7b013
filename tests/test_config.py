"""Config validation: the schema and the reference checks stop a bad config and name the key."""

import copy
import subprocess
import sys

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from samesky.config import ConfigError, check_config

SCHEMA = "workflow/schemas/config.schema.yaml"


def _validate(repo, config):
    validate(config, str(repo / SCHEMA))
    check_config(config)


def test_both_presets_are_valid(repo, default_config, paper_config):
    _validate(repo, default_config)
    _validate(repo, paper_config)
    assert paper_config["preset"] == "paper" and paper_config["results"] != default_config["results"]
    assert {d["source"] for d in paper_config["datasets"]} == {
        "Smith42/jwst_hsc_crossmatched", "Smith42/legacysurvey_hsc_crossmatched",
        "Smith42/desi_hsc_crossmatched", "Smith42/sdss_hsc_crossmatched",
        "https://users.flatironinstitute.org/~flanusse/astroclip_desi.1.1.5.h5", "MultimodalUniverse/desi_provabgs"}
    sizes = sum(len(m["sizes"]) for m in paper_config["models"] if m["only_pairs"] is None)
    assert sizes == 17, "the paper's 17 model sizes (16 vision + Specformer)"
    probe_only = {f"{m['family']}-{s}" for m in paper_config["models"] if m["only_pairs"] for s in m["sizes"]}
    assert probe_only == {"astroclip-image", "astroclip-spectrum", "astrodino-large"}


def _broken(config, path, value):
    config = copy.deepcopy(config)
    *parents, last = path
    node = config
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize("path, value, message", [
    (("crossmatch", "radius_arcsec"), KeyError, "'radius_arcsec' is a required property"),
    (("crossmatch", "radius_arcsec"), 0, "instance['crossmatch']['radius_arcsec']"),
    (("alignment", "k"), [10, 0], "instance['alignment']['k'][1]"),
    (("seed",), "forty-two", "instance['seed']"),
    (("models", 0, "family"), "Res-Net", "instance['models'][0]['family']"),
    (("models", 0, "pooling"), 3, "instance['models'][0]['pooling']"),
    (("models", 0, "sizes"), {"tiny": {"hub_id": "me/tiny", "params_m": 1, "colour": "red"}},
     "instance['models'][0]['sizes']"),  # oneOf: the schema names the key, not which branch failed
    (("crossmatch", "radius"), 1.0, "Additional properties are not allowed ('radius' was unexpected)"),
    (("probes", "mlp"), "deep", "instance['probes']['mlp']"),
    (("probes", "test_fraction"), 1.5, "instance['probes']['test_fraction']"),
    (("alignment", "metrics", "names"), ["mknn", "cosine"], "instance['alignment']['metrics']['names'][1]"),
    (("alignment", "conditional", "redshift", "source"), "catalogue",
     "instance['alignment']['conditional']['redshift']['source']"),
    (("alignment", "oracle", "dim"), 8, "instance['alignment']['oracle']['dim']"),
])
def test_schema_errors_name_the_key(repo, default_config, path, value, message):
    with pytest.raises(WorkflowError) as err:
        _validate(repo, _broken(default_config, path, value))
    assert message in str(err.value)


@pytest.mark.parametrize("path, value, message", [
    (("models", 2, "sizes"), ["small", "colossal"], "config key models[2].sizes[1]: unknown size 'colossal' of dinov2"),
    (("models", 0), {"family": "mynet", "sizes": ["small"]},
     "config key models[0].family: 'mynet' is not a family of the zoo"),
    (("models", 0), {"family": "vit_random", "sizes": ["base"]},
     "config key models[0].family: 'vit_random': names ending in '_random' are the random controls'"),
    (("models", 0), {"family": "mynet", "sizes": {"tiny": {"hub_id": "me/mynet-tiny", "params_m": 5}}},
     "config key models[0].pooling: model family 'mynet' needs a pooling"),
    (("models", 0), {"family": "mynet", "pooling": "cls", "sizes": {"tiny": {"params_m": 5}}},
     "config key models[0].sizes.tiny.hub_id: model mynet-tiny needs one"),
    (("models", 0), {"family": "mynet", "pooling": "cls", "sizes": {"tiny": {"hub_id": "me/mynet-tiny", "params_m": 5}}},
     "config key models[0]: mynet-tiny has no mini configuration, so the embedded default cannot make it offline"),
    (("models", 0), {"family": "mynet", "pooling": "cls", "needs_remote_code": True,
                     "sizes": {"tiny": {"hub_id": "me/mynet-tiny", "params_m": 5}}},
     "config key models[0].trust_remote_code: mynet-tiny (me/mynet-tiny) runs code its repository ships"),
    (("pairs", 1, "other_dataset"), "euclid", "config key pairs[1].other_dataset: unknown dataset 'euclid'"),
    (("datasets", 1, "name"), "hsc", "config key datasets[1].name: 'hsc' is used twice"),
    (("datasets", 3, "kind"), "image", "config key datasets[3].kind: 'image' but mini survey 'desi'"),
    (("alignment", "size_curves", "decomposition_model"), "vit-colossal",
     "config key alignment.size_curves.decomposition_model: 'vit-colossal' is not among the configured models"),
    (("alignment", "hsc_pair"), "euclid_hsc", "config key alignment.hsc_pair: 'euclid_hsc' is not a pair of the alignment"),
    (("models", 0, "only_pairs"), ["euclid_hsc"], "config key models[0].only_pairs[0]: unknown pair 'euclid_hsc'"),
    (("probes", "catalogue"), {"source": "dataset", "dataset": "desi"},
     "config key probes.catalogue.dataset: 'desi' is not a dataset of kind 'catalogue'"),
    (("probes", "catalogue"), {"source": "file"}, "config key probes.catalogue: source 'file' takes ['path']; has []"),
    (("pairs", 0, "reference_dataset"), "provabgs_cat",
     "config key pairs[0].reference_dataset: unknown dataset 'provabgs_cat'"),
    (("pairs", 0, "dataset"), "hsc", "config key pairs[0]: give either reference_dataset and other_dataset "
     "(crossmatched here) or dataset, reference_survey and other_survey (paired upstream); "
     "has ['reference_dataset', 'other_dataset', 'dataset']"),
    (("datasets", 0, "kind"), "paired", "config key datasets[0].survey: a paired dataset has no survey of its own"),
    (("probes", "pair"), "euclid_hsc", "config key probes.pair: unknown pair 'euclid_hsc'"),
    (("probes", "structure_models", 0), {"survey": "hsc", "model": "vit-colossal"},
     "config key probes.structure_models[0]: hsc/vit-colossal is not a side of pair desi_hsc"),
    (("probes", "compare", 0, 1), {"survey": "sdss", "model": "dinov2-giant"},
     "config key probes.compare[0][1]: sdss/dinov2-giant is not"),
    (("probes", "robustness_models", 1), {"survey": "desi", "model": "dinov2-giant"},
     "config key probes.robustness_models[1]: desi/dinov2-giant: model dinov2-giant does not embed desi data"),
    (("mini_specformer_pretraining", "dataset"), "hsc",
     "config key mini_specformer_pretraining.dataset: 'hsc' is not a spectrum dataset of `datasets` ['desi', 'sdss']"),
    (("mini_specformer_pretraining", "dataset"), "sdss",
     "config key mini_specformer_pretraining.dataset: 'sdss' is not on the DESI grid"),
    (("alignment", "metrics", "k"), [5, 20],
     "config key alignment.metrics.k: [5, 20] leaves out alignment.table_k = 10"),
    (("alignment", "conditional", "redshift", "only_pairs"), ["euclid_hsc"],
     "config key alignment.conditional.redshift.only_pairs[0]: 'euclid_hsc' is not a pair of the alignment"),
    (("downstream", "morphology", "pair"), "euclid_hsc", "config key downstream.morphology.pair: unknown pair 'euclid_hsc'"),
    (("downstream", "morphology", "catalogue"), {"source": "file"},
     "config key downstream.morphology.catalogue: source 'file' takes a path"),
    (("downstream", "similarity", "image_pairs"), ["desi_hsc"],
     "config key downstream.similarity.image_pairs[0]: pair 'desi_hsc' does not have two image sides"),
    (("downstream", "similarity", "spectrum_pairs"), ["desi_hsc"],
     "config key downstream.similarity.spectrum_pairs: ['desi_hsc']: two pairs with one reference survey"),
    (("downstream", "similarity", "crossmodal", 0), {"pair": "desi_hsc", "map": "direct"},
     "config key downstream.similarity.crossmodal[0].models: map 'direct' needs the [image, spectrum] model pairs"),
    (("downstream", "similarity", "crossmodal", 0), {"pair": "desi_hsc", "map": "cca",
                                                    "models": [["dinov2-giant", "dinov2-small"]]},
     "config key downstream.similarity.crossmodal[0].models[0]: dinov2-small does not embed the spectrum side (desi)"),
    (("downstream", "similarity", "examples"), {"model": "specformer-base"},
     "config key downstream.similarity.examples.model: specformer-base does not embed the hsc images"),
])
def test_reference_errors_name_the_key(repo, default_config, path, value, message):
    with pytest.raises(ConfigError, match=None) as err:
        _validate(repo, _broken(default_config, path, value))
    assert message in str(err.value)


def test_a_hub_dataset_without_revision_is_refused(repo, paper_config):
    broken = copy.deepcopy(paper_config)
    del broken["datasets"][0]["revision"]
    with pytest.raises(ConfigError, match=r"datasets\[0\].revision: Hub dataset 'Smith42/jwst_hsc_crossmatched'"):
        _validate(repo, broken)


def test_snakemake_stops_before_any_job_on_a_bad_config(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("alignment:\n  k: [0]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)],
        cwd=repo, capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "instance['alignment']['k'][0]" in proc.stderr + proc.stdout
    assert "Job stats" not in proc.stdout


@pytest.mark.parametrize("text, message", [
    ("adaptation: {models: [vit-nope]}\n", "config key adaptation.models: unknown model vit-nope"),
    ("preprocessing: {variants: [{name: default, stretch: log}]}\n", "config key preprocessing.variants: names must"),
    ("preprocessing: {variants: [{name: a, crop: true}, {name: a, stretch: log}]}\n", "must be unique")])
def test_a_bad_adaptation_config_stops_the_dry_run_naming_its_key(repo, tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout and "Job stats" not in proc.stdout


def test_astroclip_encoders_are_refused_on_data_they_do_not_read(repo, paper_config):
    config = copy.deepcopy(paper_config)
    spectra = [{"survey": "desi", "model": "astroclip-spectrum"}, {"survey": "desi", "model": "specformer-base"}]
    config["probes"]["compare"][0] = spectra
    _validate(repo, config)
    config["probes"]["structure_models"] = [{"survey": "hsc", "model": "astroclip-image"}]  # not a side of the pair
    with pytest.raises(ConfigError, match="structure_models\\[0\\]: hsc/astroclip-image"):
        _validate(repo, config)
    config = copy.deepcopy(paper_config)
    config["probes"]["pair"] = "desi_hsc"
    config["probes"]["compare"] = [spectra]
    config["probes"]["structure_models"] = config["probes"]["robustness_models"] = [spectra[1]]
    with pytest.raises(ConfigError, match="model astroclip-spectrum does not embed desi data of pair desi_hsc"):
        _validate(repo, config)
    config = copy.deepcopy(paper_config)
    config["alignment"]["hsc_pair"] = "astroclip_desi"  # a probe-only pair
    with pytest.raises(ConfigError, match="not a pair of the alignment"):
        _validate(repo, config)


def test_config_readme_documents_every_key_as_the_schema_says(repo):
    """config/README.md is generated from the schema (python -m samesky.configdoc), so it cannot drift;
    every key in it has a description."""
    import yaml

    from samesky.configdoc import render

    text = render(yaml.safe_load((repo / SCHEMA).read_text()))
    assert (repo / "config" / "README.md").read_text() == text, "run: python -m samesky.configdoc > config/README.md"
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) > 80
    for row in rows:
        assert row.rstrip(" |").split("|")[-1].strip(), f"no description: {row}"
    for key in ("probes.catalogue.source", "pairs[].reference_dataset", "alignment.size_curves.classes.column",
                "mini_universe.surveys.<name>.bright_limit", "probes.compare[][].model", "resources"):
        assert f"`{key}`" in text or f"## `{key}`" in text, key


def test_the_released_preset_is_valid_and_its_audit_must_be_able_to_pass(repo, default_config):
    import yaml
    from snakemake.utils import update_config

    config = copy.deepcopy(default_config)
    update_config(config, yaml.safe_load((repo / "config" / "released.yaml").read_text()))
    assert config.pop("probes") is None  # `probes: null`: the workflow removes the section before validating
    assert config.pop("downstream") is None
    _validate(repo, config)
    check_config(config)
    config["released_embeddings"]["audit"]["n_permutations"] = 50
    with pytest.raises(ConfigError, match=r"released_embeddings.audit.n_permutations: 50 permutations cannot give a "
                                          r"p-value at or below alpha = 0.01"):
        check_config(config)
    del config["released_embeddings"]
    with pytest.raises(ConfigError, match="model_weights 'released' needs it"):
        check_config(config)
