# Data: the embedded default's mini universe, and every dataset (Hub or local) loaded through
# `datasets.load_dataset` and saved under resources/ with its resolved revision.


rule mini_universe:
    # on the critical path (everything reads it): scheduled first, and its step keeps its CPU priority
    priority: 50
    output:
        hub=directory(MINI_HUB),
        truth=f"{RESOURCES}/mini_universe/truth.parquet",
        provenance=f"{RESOURCES}/mini_universe/provenance.json",
    params:
        config=step_config("mini_universe"),
    log:
        f"{RESULTS}/logs/mini_universe.log",
    benchmark:
        f"{RESULTS}/benchmarks/mini_universe.tsv"
    threads: 2  # its surveys rendered side by side (the same files with any number of threads)
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule download_dataset:
    # the mini Specformer's pre-training waits on the DESI spectra: scheduled before the model jobs
    priority: 50
    input:
        unpack(download_inputs),
    output:
        data=directory(f"{RESOURCES}/data/{{dataset}}"),
        provenance=f"{RESOURCES}/data/{{dataset}}.provenance.json",
    params:
        dataset=dataset_entry,
        source=dataset_source,
    log:
        f"{RESULTS}/logs/download_dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download_dataset/{{dataset}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule preflight:
    # `snakemake preflight --configfile config/paper.yaml`: before a cluster run, check without a GPU that
    # every dataset and model is there at its revision in the layout the run reads. No output, so it runs
    # whenever it is asked for; the report is a log, kept when the check fails.
    params:
        run=preflight_settings(),
        report=f"{RESULTS}/preflight.md",
        throughputs=workflow.source_path("../../benchmarks/measured/embed_throughput_h200.txt"),
    log:
        log=f"{RESULTS}/logs/preflight.log",
        report=f"{RESULTS}/preflight.md",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
