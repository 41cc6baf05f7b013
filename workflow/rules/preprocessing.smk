# Preprocessing as a study axis (issue 26; seed 003 §3.2): each variant of config `preprocessing.variants`
# (a stretch, an input size, a close crop) prepares the images of each (pair, image side) once, every RGB
# model embeds them once, each pair is aligned as the run's own is; then one table of conclusions and one
# of morphology F1, each against the run's own preprocessing. Flux and spectrum models read their own data,
# the same in every variant, so their own embeddings are reused.


rule prepare_variant_images:
    input:
        dataset=f"{RESULTS}/crossmatch/{{pair}}/dataset",
        provenance=f"{RESULTS}/crossmatch/{{pair}}/provenance.json",
    output:
        rgb=f"{RESULTS}/preprocessing/{{variant}}/images/{{pair}}/{{survey}}/rgb.npy",
        objects=f"{RESULTS}/preprocessing/{{variant}}/images/{{pair}}/{{survey}}/objects.parquet",
        provenance=f"{RESULTS}/preprocessing/{{variant}}/images/{{pair}}/{{survey}}/provenance.json",
    params:
        config=step_config("prepare_variant_images"),
        survey="{survey}",
        variant=lambda wildcards: VARIANTS[wildcards.variant],
    log:
        f"{RESULTS}/logs/preprocessing/{{variant}}/prepare_images/{{pair}}/{{survey}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocessing/{{variant}}/prepare_images/{{pair}}/{{survey}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule embed_variant:
    input:
        unpack(variant_embedding_inputs),
    output:
        embeddings=directory(f"{RESULTS}/preprocessing/{{variant}}/embeddings/{{model}}"),
    params:
        config=step_config("embed_variant"),
        spec=model_spec,
        sides=variant_embedding_sides,
        write_layers=False,
        variant=lambda wildcards: VARIANTS[wildcards.variant],
    log:
        f"{RESULTS}/logs/preprocessing/{{variant}}/embed/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocessing/{{variant}}/embed/{{model}}.tsv"
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


rule align_variant:
    input:
        unpack(variant_pair_inputs),
    output:
        scores=f"{RESULTS}/preprocessing/{{variant}}/alignment/{{pair}}/scores.csv",
        overlaps=f"{RESULTS}/preprocessing/{{variant}}/alignment/{{pair}}/overlaps.parquet",
        provenance=f"{RESULTS}/preprocessing/{{variant}}/alignment/{{pair}}/provenance.json",
    params:
        config=step_config("align_variant"),
        pair="{pair}",
        surveys=pair_sides,
        files=variant_pair_files,
        upstream=variant_pair_upstream,
        variant=lambda wildcards: VARIANTS[wildcards.variant],
    log:
        f"{RESULTS}/logs/preprocessing/{{variant}}/align/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocessing/{{variant}}/align/{{pair}}.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule preprocessing_alignment:
    input:
        scores=variant_scores("scores.csv"),
        overlaps=variant_scores("overlaps.parquet"),
        provenance=variant_scores("provenance.json"),
    output:
        scores=report(f"{RESULTS}/tables/preprocessing_alignment.csv", caption="../report/preprocessing.rst",
                      category="Adaptation"),
        conclusions=report(f"{RESULTS}/tables/preprocessing_conclusions.csv", caption="../report/preprocessing.rst",
                           category="Adaptation"),
        figure=report(f"{RESULTS}/figures/preprocessing_alignment.pdf", caption="../report/preprocessing.rst",
                      category="Adaptation"),
        provenance=f"{RESULTS}/tables/preprocessing_alignment.provenance.json",
    params:
        config=step_config("preprocessing_alignment"),
        variants=list(VARIANTS),
        pairs=ALIGNED_PAIRS,
    log:
        f"{RESULTS}/logs/preprocessing/preprocessing_alignment.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


if "downstream" in config:

    rule preprocessing_morphology:
        input:
            unpack(lambda wildcards: _with_embeddings(
                {"sample": f"{RESULTS}/downstream/morphology_sample.parquet",
                 "default": f"{RESULTS}/tables/morphology_f1.csv"}, variant_morphology_embeddings())),
        output:
            table=report(f"{RESULTS}/tables/preprocessing_morphology.csv", caption="../report/preprocessing.rst",
                         category="Adaptation"),
            figure=report(f"{RESULTS}/figures/preprocessing_morphology.pdf", caption="../report/preprocessing.rst",
                          category="Adaptation"),
            provenance=f"{RESULTS}/tables/preprocessing_morphology.provenance.json",
        params:
            config=step_config("preprocessing_morphology"),
            embeddings=variant_morphology_embeddings(),
            upstream=[provenance_of(e["path"]) for e in variant_morphology_embeddings()],
        log:
            f"{RESULTS}/logs/preprocessing/preprocessing_morphology.log",
        benchmark:
            f"{RESULTS}/benchmarks/preprocessing/preprocessing_morphology.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=120,
        conda:
            "../../envs/cpu.yaml"
        script:
            "../scripts/step.py"
