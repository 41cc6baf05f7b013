# Models and embeddings: one embedding job per model size, which loads the model once and embeds every
# side of every pair it reads into results/embeddings/<family>-<size>/<pair>/<survey>.parquet. Each model
# is made (small random instances, embedded default) or downloaded (paper preset) into
# resources/models/<family>-<size>/; the
# embedded default's mini Specformer is then pre-trained on the mini DESI spectra into results/models/
# (AstroCLIP's masked reconstruction), since a random spectrum transformer keeps little of a spectrum.
# SDSS spectra are resampled onto the DESI grid first, so Specformer sees the grid it was trained on. The
# images of each (pair, side) are scaled to 8-bit RGB once (prepare_images) for every model that takes RGB.


rule fetch_shared_weights:
    # released files that several models load (AstroCLIP's 1.7 GB checkpoint holds three encoders): once
    output:
        weights=directory(f"{RESOURCES}/models/shared/{{weights}}"),
    params:
        spec=shared_weights_spec,
    log:
        f"{RESULTS}/logs/fetch_shared_weights/{{weights}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch_shared_weights/{{weights}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule fetch_model:
    input:
        unpack(fetch_model_inputs),
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
    # the longest job, on the embedded default's critical path (Specformer's embeddings, then its probes and
    # scores): started as soon as it can, not after the image jobs; its step keeps its CPU priority
    # (samesky.steps.runner: the other jobs yield when cores are oversubscribed)
    priority: 50
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
    threads: 1  # samesky.steps.embedding.PRETRAINING_THREADS
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


rule prepare_images:
    input:
        dataset=f"{RESULTS}/crossmatch/{{pair}}/dataset",
        provenance=f"{RESULTS}/crossmatch/{{pair}}/provenance.json",
    output:
        rgb=f"{RESULTS}/images/{{pair}}/{{survey}}/rgb.npy",
        objects=f"{RESULTS}/images/{{pair}}/{{survey}}/objects.parquet",
        provenance=f"{RESULTS}/images/{{pair}}/{{survey}}/provenance.json",
    params:
        config=step_config("prepare_images"),
        survey="{survey}",
    log:
        f"{RESULTS}/logs/prepare_images/{{pair}}/{{survey}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_images/{{pair}}/{{survey}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


# the released-embeddings preset takes its embeddings from released_embeddings (released.smk) instead
if not RELEASED:

    rule embed:
        input:
            unpack(embedding_inputs),
        output:
            embeddings=directory(f"{RESULTS}/embeddings/{{model}}"),
        params:
            config=step_config("embed"),
            spec=model_spec,
            sides=embedding_sides,
            write_layers=config["alignment"]["layers"] != "final",
        log:
            f"{RESULTS}/logs/embed/{{model}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/embed/{{model}}.tsv"
        threads: embed_threads()
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
        embeddings=[embedding_dir(m) for m in embedded_models()],
    output:
        table=f"{RESULTS}/embeddings/summary.csv",
        provenance=f"{RESULTS}/embeddings/summary.provenance.json",
    params:
        files=[embedding_path(*job) for job in embedding_jobs()],
        upstream=[provenance_of(embedding_path(*job)) for job in embedding_jobs()],
    log:
        f"{RESULTS}/logs/embedding_summary.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
