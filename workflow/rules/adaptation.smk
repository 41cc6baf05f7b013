# Seed 003's adaptation study on the morphology task (issue 26): each backbone of `adaptation.models`
# frozen (the heads), fully fine-tuned and LoRA-adapted, each architecture of `adaptation.scratch` trained
# from random weights, at every label fraction and seed (one job per model: a GPU job in the SLURM
# profile); then the table and figures beside the small CNN; and the attention maps of seed 003's Fig. 6.


rule fine_tune:
    input:
        unpack(fine_tune_inputs),
    output:
        runs=f"{RESULTS}/adaptation/{{model}}/runs.csv",
        provenance=f"{RESULTS}/adaptation/{{model}}/runs.provenance.json",
    params:
        config=step_config("fine_tune"),
        spec=model_spec,
        methods=lambda wildcards: adaptation_methods(wildcards.model),
    log:
        f"{RESULTS}/logs/adaptation/fine_tune/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/adaptation/fine_tune/{{model}}.tsv"
    threads: 1
    resources:
        gpu=1 if config["embedding"]["gpu"] else 0,
        mem_mb=8000,
        runtime=720,
    conda:
        "../../envs/gpu.yaml" if config["embedding"]["gpu"] else "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule adaptation_table:
    input:
        runs=[f"{RESULTS}/adaptation/{m}/runs.csv" for m in adapted_models()],
        provenance=[f"{RESULTS}/adaptation/{m}/runs.provenance.json" for m in adapted_models()],
        supervised=[f"{RESULTS}/downstream/morphology_supervised.csv"]
        if config["downstream"]["morphology"]["supervised_epochs"] else [],
    output:
        runs=f"{RESULTS}/tables/adaptation_f1_runs.csv",
        table=report(f"{RESULTS}/tables/adaptation_f1.csv", caption="../report/adaptation.rst", category="Adaptation"),
        figure=report(f"{RESULTS}/figures/adaptation_f1.pdf", caption="../report/adaptation.rst", category="Adaptation"),
        per_class=report(f"{RESULTS}/figures/adaptation_per_class.pdf", caption="../report/adaptation.rst",
                         category="Adaptation"),
        provenance=f"{RESULTS}/tables/adaptation_f1.provenance.json",
    log:
        f"{RESULTS}/logs/adaptation/adaptation_table.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule attention_maps:
    input:
        model=lambda wildcards: model_dir(wildcards.model),
        sample=f"{RESULTS}/downstream/morphology_sample.parquet",
        images=morphology_images()["rgb"],
        image_objects=morphology_images()["objects"],
        provenance=[provenance_of(f"{RESULTS}/downstream/morphology_sample.parquet"), morphology_images()["provenance"]],
    output:
        figure=report(f"{RESULTS}/figures/attention_{{model}}.pdf", caption="../report/attention.rst",
                      category="Adaptation"),
        provenance=f"{RESULTS}/figures/attention_{{model}}.provenance.json",
    params:
        config=step_config("attention_maps"),
        spec=model_spec,
    log:
        f"{RESULTS}/logs/adaptation/attention_maps/{{model}}.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
