# Models and embeddings: one embedding job per (model size, pair, side). Each model is made (small random
# instances, embedded default) or downloaded (paper preset) into resources/models/<family>-<size>/; the
# embedded default's mini Specformer is then pre-trained on the mini DESI spectra into results/models/
# (AstroCLIP's masked reconstruction), since a random spectrum transformer keeps little of a spectrum.
# SDSS spectra are resampled onto the DESI grid first, so Specformer sees the grid it was trained on.


rule fetch_model:
    output:
        model=directory(f"{RESOURCES}/models/{{model}}"),
    params:
        config=step_config("fetch_model"),
        spec=model_spec,
    log:
        f"{RESULTS}/logs/fetch_model/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch_model/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=model_mem_mb,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule pretrain_mini_specformer:
    input:
        unpack(pretraining_inputs),
    output:
        model=directory(f"{RESULTS}/models/{{model}}"),
    params:
        config=step_config("pretrain_mini_specformer"),
    log:
        f"{RESULTS}/logs/pretrain_mini_specformer/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain_mini_specformer/{{model}}.tsv"
    threads: 2
    resources:
        mem_mb=model_mem_mb,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule resample_spectra:
    input:
        dataset=f"{RESULTS}/crossmatch/{{pair}}/dataset",
        provenance=f"{RESULTS}/crossmatch/{{pair}}/provenance.json",
    output:
        dataset=directory(f"{RESULTS}/spectra/{{pair}}/dataset"),
        summary=f"{RESULTS}/spectra/{{pair}}/resampling.csv",
        provenance=f"{RESULTS}/spectra/{{pair}}/provenance.json",
    params:
        survey=resampled_survey,
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
        "../scripts/step.py"


rule embed:
    input:
        unpack(embedding_inputs),
    output:
        embeddings=f"{RESULTS}/embeddings/{{pair}}/{{survey}}/{{model}}.parquet",
        provenance=f"{RESULTS}/embeddings/{{pair}}/{{survey}}/{{model}}.provenance.json",
    params:
        config=step_config("embed"),
        spec=model_spec,
        pair="{pair}",
        survey="{survey}",
        specformer_pooling=specformer_pooling_of,
    log:
        f"{RESULTS}/logs/embed/{{pair}}/{{survey}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed/{{pair}}/{{survey}}/{{model}}.tsv"
    threads: 2
    resources:
        gpu=1 if config["embedding"]["gpu"] else 0,
        mem_mb=embed_mem_mb,
        gpu_mem_mb=embed_gpu_mem_mb,
        runtime=embed_runtime,
    conda:
        "../../envs/gpu.yaml" if config["embedding"]["gpu"] else "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


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
        "../scripts/step.py"
