# Released embeddings (model_weights: released, config/released.yaml): the Platonic Universe team's
# embeddings files instead of models. The repository is listed once and each file resolved among the
# names the peer's code uses; each file is fetched, every file audited (are its rows paired? which are not
# released?), and each model's sides written in the embeddings layout, so the alignment rules run on them
# unchanged.


rule list_released:
    output:
        listing=f"{RESOURCES}/embeddings/released_listing.json",
        provenance=f"{RESOURCES}/embeddings/released_listing.provenance.json",
    params:
        config=step_config("list_released"),
        requests=released_requests(),
    log:
        f"{RESULTS}/logs/list_released.log",
    resources:
        runtime=10,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule fetch_released:
    input:
        listing=rules.list_released.output.listing,
    output:
        file=f"{RESOURCES}/embeddings/{{pair}}/{{model}}.parquet",
        provenance=f"{RESOURCES}/embeddings/{{pair}}/{{model}}.provenance.json",
    params:
        pair="{pair}",
        model="{model}",
        kind="final",
    log:
        f"{RESULTS}/logs/fetch_released/{{pair}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch_released/{{pair}}/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


use rule fetch_released as fetch_released_layers with:
    output:
        file=f"{RESOURCES}/embeddings/{{pair}}/{{model}}.layers.parquet",
        provenance=f"{RESOURCES}/embeddings/{{pair}}/{{model}}.layers.provenance.json",
    params:
        pair="{pair}",
        model="{model}",
        kind="layers",
    log:
        f"{RESULTS}/logs/fetch_released_layers/{{pair}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch_released_layers/{{pair}}/{{model}}.tsv"
    resources:
        mem_mb=64000,
        runtime=60,


rule audit_released:
    input:
        files=[released_file(r["pair"], r["model"], r["kind"]) for r in released_requests()],
        provenance=[provenance_of(released_file(r["pair"], r["model"], r["kind"])) for r in released_requests()],
    output:
        table=report(f"{RESULTS}/tables/released_audit.csv", caption="../report/released_audit.rst", category="Released embeddings"),
        provenance=f"{RESULTS}/tables/released_audit.provenance.json",
    params:
        config=step_config("audit_released"),
        files=released_requests(),
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
        file_keys=released_file_keys,
        layers=bool(RELEASED_KINDS[1:]),
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
