# Downstream tasks on frozen embeddings (issue 18): morphology labels joined by position, seed 003's
# classification protocol, a redshift probe and similarity search. One rule per analysis; each reads the
# embeddings its pair already has, so none embeds anything.


rule morphology_sample:
    input:
        unpack(morphology_sample_inputs),
    output:
        sample=f"{RESULTS}/downstream/morphology_sample.parquet",
        labels=report(f"{RESULTS}/tables/morphology_labels.csv", caption="../report/morphology_labels.rst",
                      category="Downstream tasks"),
        provenance=f"{RESULTS}/downstream/morphology_sample.provenance.json",
    params:
        config=step_config("morphology_sample"),
        catalogue=morphology_catalogue(),
    log:
        f"{RESULTS}/logs/downstream/morphology_sample.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule morphology_supervised:
    input:
        unpack(morphology_supervised_inputs),
    output:
        runs=f"{RESULTS}/downstream/morphology_supervised.csv",
        provenance=f"{RESULTS}/downstream/morphology_supervised.provenance.json",
    params:
        config=step_config("morphology_supervised"),
    log:
        f"{RESULTS}/logs/downstream/morphology_supervised.log",
    benchmark:
        f"{RESULTS}/benchmarks/downstream/morphology_supervised.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1 if config["embedding"]["gpu"] else 0,
    conda:
        "../../envs/gpu.yaml" if config["embedding"]["gpu"] else "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule morphology_classification:
    input:
        unpack(morphology_classification_inputs),
    output:
        runs=f"{RESULTS}/tables/morphology_f1_runs.csv",
        summary=report(f"{RESULTS}/tables/morphology_f1.csv", caption="../report/morphology_f1.rst",
                       category="Downstream tasks"),
        markdown=f"{RESULTS}/tables/morphology_f1.md",
        fraction_figure=report(f"{RESULTS}/figures/morphology_f1_fraction.pdf", caption="../report/morphology_f1.rst",
                               category="Downstream tasks"),
        params_figure=report(f"{RESULTS}/figures/morphology_f1_params.pdf",
                             caption="../report/morphology_f1_params.rst", category="Downstream tasks"),
        provenance=f"{RESULTS}/tables/morphology_f1.provenance.json",
    params:
        config=step_config("morphology_classification"),
        embeddings=downstream_embeddings(morphology_pair()),
        upstream=[provenance_of(e["path"]) for e in downstream_embeddings(morphology_pair())],
        caption=caption_file("morphology_f1"),
        images_of=morphology_images()["rgb"].split("/")[-2],  # the survey whose cutouts the CNN learnt from
    log:
        f"{RESULTS}/logs/downstream/morphology_classification.log",
    benchmark:
        f"{RESULTS}/benchmarks/downstream/morphology_classification.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule redshift_probe:
    input:
        unpack(redshift_inputs),
    output:
        table=report(f"{RESULTS}/tables/redshift_probe.csv", caption="../report/redshift_probe.rst",
                     category="Downstream tasks"),
        predictions=f"{RESULTS}/downstream/redshift_predictions.parquet",
        figure=report(f"{RESULTS}/figures/redshift_scatter.pdf", caption="../report/redshift_probe.rst",
                      category="Downstream tasks"),
        provenance=f"{RESULTS}/tables/redshift_probe.provenance.json",
    params:
        config=step_config("redshift_probe"),
        embeddings=downstream_embeddings(config["downstream"]["redshift"]["pair"]),
        upstream=[provenance_of(e["path"]) for e in downstream_embeddings(config["downstream"]["redshift"]["pair"])],
    log:
        f"{RESULTS}/logs/downstream/redshift_probe.log",
    benchmark:
        f"{RESULTS}/benchmarks/downstream/redshift_probe.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule similarity_search:
    input:
        unpack(similarity_inputs),
    output:
        recall=report(f"{RESULTS}/tables/similarity_recall.csv", caption="../report/similarity_recall.rst",
                      category="Downstream tasks"),
        neighbours=report(f"{RESULTS}/tables/similarity_neighbours.csv", caption="../report/similarity_neighbours.rst",
                          category="Downstream tasks"),
        recall_figure=report(f"{RESULTS}/figures/similarity_recall.pdf", caption="../report/similarity_recall.rst",
                             category="Downstream tasks"),
        examples_figure=report(f"{RESULTS}/figures/similarity_examples.pdf",
                               caption="../report/similarity_examples.rst", category="Downstream tasks"),
        provenance=f"{RESULTS}/tables/similarity.provenance.json",
    params:
        config=step_config("similarity_search"),
        tasks=similarity_tasks(),
        neighbour_embeddings=downstream_embeddings(morphology_pair()),
        examples=similarity_examples(),
        upstream=similarity_upstream(),
    log:
        f"{RESULTS}/logs/downstream/similarity_search.log",
    benchmark:
        f"{RESULTS}/benchmarks/downstream/similarity_search.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
