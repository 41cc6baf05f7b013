# Crossmatch: one-to-one nearest pairs within the radius (astropy), or the audit of a set paired upstream
# against the same radius. Every pair ends in the same layout (samesky.pairs).


rule crossmatch:
    input:
        unpack(crossmatch_inputs),
    output:
        dataset=directory(f"{RESULTS}/crossmatch/{{pair}}/dataset"),
        pairs=f"{RESULTS}/crossmatch/{{pair}}/pairs.csv",
        summary=f"{RESULTS}/crossmatch/{{pair}}/summary.csv",
        provenance=f"{RESULTS}/crossmatch/{{pair}}/provenance.json",
    params:
        config=step_config("crossmatch"),
        pair=pair_entry,
        surveys=pair_sides,
        image_masks=pair_image_masks,
    log:
        f"{RESULTS}/logs/crossmatch/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/crossmatch/{{pair}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule crossmatch_summary:
    input:
        summaries=expand(f"{RESULTS}/crossmatch/{{pair}}/summary.csv", pair=PAIRS),
        provenance=expand(f"{RESULTS}/crossmatch/{{pair}}/provenance.json", pair=PAIRS),
    output:
        table=report(f"{RESULTS}/crossmatch/summary.csv", caption="../report/crossmatch.rst", category="Data"),
        provenance=f"{RESULTS}/crossmatch/summary.provenance.json",
    log:
        f"{RESULTS}/logs/crossmatch_summary.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule crossmatch_truth_recovery:
    """Embedded default only: how many true pairs of the mini universe each crossmatch recovered."""
    input:
        truth=f"{RESOURCES}/mini_universe/truth.parquet",
        pairs=expand(f"{RESULTS}/crossmatch/{{pair}}/pairs.csv", pair=PAIRS),
        provenance=expand(f"{RESULTS}/crossmatch/{{pair}}/provenance.json", pair=PAIRS),
    output:
        table=f"{RESULTS}/crossmatch/truth_recovery.csv",
        provenance=f"{RESULTS}/crossmatch/truth_recovery.provenance.json",
    params:
        pairs=crossmatched_pairs(),
    log:
        f"{RESULTS}/logs/crossmatch_truth_recovery.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
