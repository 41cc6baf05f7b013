# Data: the embedded default's mini universe, and the download of every dataset (Hub or local) through
# `datasets.load_dataset`, saved locally with its resolved revision.


rule mini_universe:
    output:
        hub=directory(MINI_HUB),
        truth=f"{RESULTS}/mini_universe/truth.parquet",
        provenance=f"{RESULTS}/mini_universe/provenance.json",
    params:
        mini=config.get("mini_universe"),
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/mini_universe.log",
    benchmark:
        f"{RESULTS}/benchmarks/mini_universe.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/make_mini_universe.py"


rule download_dataset:
    input:
        download_inputs,
    output:
        data=directory(f"{RESULTS}/data/{{dataset}}"),
        provenance=f"{RESULTS}/data/{{dataset}}.provenance.json",
    params:
        spec=lambda wildcards: DATASETS[wildcards.dataset],
        source=lambda wildcards: dataset_source(wildcards.dataset),
    log:
        f"{RESULTS}/logs/download_dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download_dataset/{{dataset}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/download_dataset.py"
