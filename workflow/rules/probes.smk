# Property probes (the AstroCLIP benchmark, AstroCLIP's protocol): the probe sample (objects of one pair
# with PROVABGS properties), kNN and MLP probes on every embedding of that pair, then one rule per analysis.


rule probe_sample:
    input:
        unpack(probe_sample_inputs),
    output:
        sample=f"{RESULTS}/probes/sample.parquet",
        provenance=f"{RESULTS}/probes/sample.provenance.json",
    params:
        config=step_config("probe_sample"),
        catalogue=probe_catalogue(),
    log:
        f"{RESULTS}/logs/probes/probe_sample.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_regressions:
    input:
        sample=f"{RESULTS}/probes/sample.parquet",
        embeddings=probe_embedding_dir,
        provenance=f"{RESULTS}/probes/sample.provenance.json",
    output:
        predictions=f"{RESULTS}/probes/predictions/{{survey}}/{{model}}.parquet",
        provenance=f"{RESULTS}/probes/predictions/{{survey}}/{{model}}.provenance.json",
    params:
        config=step_config("probe_regressions"),
        survey="{survey}",
        model="{model}",
        embeddings_file=probe_embedding_path,
        upstream=probe_embedding_upstream,
    log:
        f"{RESULTS}/logs/probes/regressions/{{survey}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/probes/regressions/{{survey}}/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_tables:
    input:
        unpack(probe_tables_inputs),
    output:
        r2_test=report(f"{RESULTS}/tables/probe_r2_test.csv", caption="../report/probe_r2.rst", category="Probes"),
        r2_train=f"{RESULTS}/tables/probe_r2_train.csv",
        r2_oof=report(f"{RESULTS}/tables/probe_r2_oof.csv", caption="../report/probe_r2_oof.rst", category="Probes"),
        r2_md=f"{RESULTS}/tables/probe_r2_test.md",
        bootstrap=report(
            f"{RESULTS}/tables/probe_bootstrap.csv", caption="../report/probe_bootstrap.rst", category="Probes"
        ),
        figure=report(f"{RESULTS}/figures/probe_r2.pdf", caption="../report/probe_r2.rst", category="Probes"),
        provenance=f"{RESULTS}/tables/probe_tables.provenance.json",
    params:
        config=step_config("probe_tables"),
        embeddings=probe_embeddings(),
        compare=compared_pairs(),
        caption=caption_file("probe_r2"),
    log:
        f"{RESULTS}/logs/probes/probe_tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/probes/probe_tables.tsv"
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_environment:
    input:
        unpack(robustness_inputs),
    output:
        table=report(
            f"{RESULTS}/tables/probe_environment.csv", caption="../report/probe_environment.rst", category="Probes"
        ),
        figure=report(
            f"{RESULTS}/figures/probe_environment.pdf", caption="../report/probe_environment.rst", category="Probes"
        ),
        provenance=f"{RESULTS}/tables/probe_environment.provenance.json",
    params:
        embeddings=robustness_embeddings(),
    log:
        f"{RESULTS}/logs/probes/probe_environment.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_brightness:
    input:
        unpack(robustness_inputs),
    output:
        table=report(
            f"{RESULTS}/tables/probe_brightness.csv", caption="../report/probe_brightness.rst", category="Probes"
        ),
        difference=f"{RESULTS}/tables/probe_brightness_difference.csv",
        figure=report(
            f"{RESULTS}/figures/probe_brightness.pdf", caption="../report/probe_brightness.rst", category="Probes"
        ),
        provenance=f"{RESULTS}/tables/probe_brightness.provenance.json",
    params:
        embeddings=robustness_embeddings(),
    log:
        f"{RESULTS}/logs/probes/probe_brightness.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_sky:
    input:
        unpack(robustness_inputs),
    output:
        table=report(f"{RESULTS}/tables/probe_sky.csv", caption="../report/probe_sky.rst", category="Probes"),
        figure=report(f"{RESULTS}/figures/probe_sky.pdf", caption="../report/probe_sky.rst", category="Probes"),
        provenance=f"{RESULTS}/tables/probe_sky.provenance.json",
    params:
        embeddings=robustness_embeddings(),
    log:
        f"{RESULTS}/logs/probes/probe_sky.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_structure:
    input:
        unpack(structure_inputs),
    output:
        clusters=report(
            f"{RESULTS}/tables/structure_kmeans.csv", caption="../report/structure.rst", category="Embedding structure"
        ),
        ami=report(f"{RESULTS}/tables/structure_ami.csv", caption="../report/structure.rst", category="Embedding structure"),
        hdbscan=f"{RESULTS}/tables/structure_hdbscan.csv",
        inertia=f"{RESULTS}/tables/structure_inertia.csv",
        figure=report(
            f"{RESULTS}/figures/structure_umap_kmeans.pdf", caption="../report/structure.rst", category="Embedding structure"
        ),
        provenance=f"{RESULTS}/tables/structure.provenance.json",
    params:
        config=step_config("probe_structure"),
        embeddings=structure_embeddings(),
        files=structure_files(),
        upstream=[provenance_of(p) for p in structure_files()],
    log:
        f"{RESULTS}/logs/probes/probe_structure.log",
    benchmark:
        f"{RESULTS}/benchmarks/probes/probe_structure.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_residuals:
    input:
        unpack(residual_inputs),
    output:
        table=report(
            f"{RESULTS}/tables/residual_outliers.csv", caption="../report/residuals.rst", category="Embedding structure"
        ),
        figure=report(f"{RESULTS}/figures/residuals.pdf", caption="../report/residuals.rst", category="Embedding structure"),
        provenance=f"{RESULTS}/tables/residual_outliers.provenance.json",
    params:
        embeddings=structure_embeddings(),
    log:
        f"{RESULTS}/logs/probes/probe_residuals.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule probe_net_wins:
    input:
        unpack(net_wins_inputs),
    output:
        table=report(
            f"{RESULTS}/tables/residual_net_wins.csv", caption="../report/net_wins.rst", category="Probes"
        ),
        figure=report(f"{RESULTS}/figures/residual_net_wins.pdf", caption="../report/net_wins.rst", category="Probes"),
        provenance=f"{RESULTS}/tables/residual_net_wins.provenance.json",
    params:
        embeddings=compared_embeddings(),
        compare=compared_pairs(),
    log:
        f"{RESULTS}/logs/probes/probe_net_wins.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
