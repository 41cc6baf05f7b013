# Embeddings: one job per (model size, pair, side). Models come from results/models/<family>-<size>/,
# written as small random instances (embedded default) or downloaded at a pinned revision (paper preset).
# The embedded default's mini Specformer is then pre-trained on the mini DESI spectra (AstroCLIP's masked
# reconstruction), since a random spectrum transformer keeps little of what a spectrum says (README).
# SDSS spectra are resampled onto the DESI grid first, so Specformer sees the grid it was trained on.


rule fetch_model:
    input:
        unpack(fetch_model_inputs),
    output:
        directory(f"{RESULTS}/models/{{model}}"),
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
        weights=config["model_weights"],
        seed=config["seed"],
        pretraining=lambda wildcards: pretraining_of(wildcards.model),
    log:
        f"{RESULTS}/logs/fetch_model/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch_model/{{model}}.tsv"
    threads: lambda wildcards: 2 if pretraining_of(wildcards.model) else 1
    resources:
        mem_mb=lambda wildcards: 2000 + int(MODELS[wildcards.model].params_m * 8),
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/fetch_model.py"


rule resample_spectra:
    input:
        dataset=f"{RESULTS}/crossmatch/{{pair}}/dataset",
        provenance=f"{RESULTS}/crossmatch/{{pair}}/provenance.json",
    output:
        dataset=directory(f"{RESULTS}/spectra/{{pair}}/dataset"),
        summary=f"{RESULTS}/spectra/{{pair}}/resampling.csv",
        provenance=f"{RESULTS}/spectra/{{pair}}/provenance.json",
    params:
        survey=lambda wildcards: pair_surveys(wildcards.pair)[1],
    log:
        f"{RESULTS}/logs/resample_spectra/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/resample_spectra/{{pair}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/resample_spectra.py"


rule embed:
    input:
        dataset=embedding_dataset,
        provenance=lambda wildcards: provenance_of(embedding_dataset(wildcards)),
        model=f"{RESULTS}/models/{{model}}",
    output:
        embeddings=f"{RESULTS}/embeddings/{{pair}}/{{survey}}/{{model}}.parquet",
        provenance=f"{RESULTS}/embeddings/{{pair}}/{{survey}}/{{model}}.provenance.json",
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
        embedding=config["embedding"],
        specformer_pooling=lambda wildcards: specformer_pooling_of(wildcards.pair),
    log:
        f"{RESULTS}/logs/embed/{{pair}}/{{survey}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed/{{pair}}/{{survey}}/{{model}}.tsv"
    threads: 2
    resources:
        gpu=1 if config["embedding"]["gpu"] else 0,
        mem_mb=lambda wildcards: 8000 + int(MODELS[wildcards.model].params_m * 8),
        gpu_mem_mb=lambda wildcards: MODELS[wildcards.model].gpu_mem_mb(),
        runtime=lambda wildcards: 30 + int(MODELS[wildcards.model].params_m / 10),
    conda:
        "../../envs/gpu.yaml" if config["embedding"]["gpu"] else "../../envs/cpu.yaml"
    script:
        "../scripts/embed.py"


rule embedding_summary:
    input:
        embeddings=embedding_targets(),
        provenance=[provenance_of(p) for p in embedding_targets()],
    output:
        table=f"{RESULTS}/embeddings/summary.csv",
        provenance=f"{RESULTS}/embeddings/summary.provenance.json",
    log:
        f"{RESULTS}/logs/embedding_summary.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/embedding_summary.py"
