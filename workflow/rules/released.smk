# Released embeddings (model_weights: released, config/released.yaml): the Platonic Universe team's
# embeddings files instead of models. Each file is fetched, every file audited (are its rows paired?), and
# each model's sides written in the embeddings layout, so the alignment rules run on them unchanged.


rule fetch_released:
    output:
        file=f"{RESOURCES}/embeddings/{{pair}}/{{model}}.parquet",
        provenance=f"{RESOURCES}/embeddings/{{pair}}/{{model}}.provenance.json",
    params:
        config=step_config("fetch_released"),
        path=released_repo_path,
    log:
        f"{RESULTS}/logs/fetch_released/{{pair}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch_released/{{pair}}/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule audit_released:
    input:
        files=[released_file(p, m) for p, m in released_files()],
        provenance=[provenance_of(released_file(p, m)) for p, m in released_files()],
    output:
        table=report(f"{RESULTS}/tables/released_audit.csv", caption="../report/released_audit.rst", category="Released embeddings"),
        provenance=f"{RESULTS}/tables/released_audit.provenance.json",
    params:
        config=step_config("audit_released"),
        files=released_audit_files(),
    log:
        f"{RESULTS}/logs/audit_released.log",
    benchmark:
        f"{RESULTS}/benchmarks/audit_released.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule released_embeddings:
    input:
        unpack(released_embedding_inputs),
    output:
        embeddings=directory(f"{RESULTS}/embeddings/{{model}}"),
    params:
        spec=model_spec,
        sides=released_embedding_sides,
    log:
        f"{RESULTS}/logs/released_embeddings/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/released_embeddings/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
