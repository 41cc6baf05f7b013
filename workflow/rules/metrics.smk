# What alignment scores mean (issue 17). Per pair: every comparison scored with every metric of the suite
# under one protocol (score, permutation null, p-value, calibrated score, k sweep) and each metric's
# dataset-size curve; alignment per object, within bins of redshift, brightness, environment and sky
# region, after regressing covariates out, and its change between adjacent model sizes with paired
# bootstrap CIs. Once: the metrics checked against known truth (oracle pairs from the mini universe).


rule metric_suite:
    input:
        unpack(searched_pair),
    output:
        suite=f"{RESULTS}/alignment/{{pair}}/metric_suite.csv",
        curves=f"{RESULTS}/alignment/{{pair}}/metric_size_curves.csv",
        provenance=f"{RESULTS}/alignment/{{pair}}/metric_suite.provenance.json",
    params:
        config=step_config("metric_suite"),
        pair="{pair}",
        surveys=pair_sides,
        files=pair_files,
        upstream=pair_upstream,
    log:
        f"{RESULTS}/logs/metric_suite/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/metric_suite/{{pair}}.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=480,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule metric_suite_summary:
    input:
        suites=expand(f"{RESULTS}/alignment/{{pair}}/metric_suite.csv", pair=ALIGNED_PAIRS),
        curves=expand(f"{RESULTS}/alignment/{{pair}}/metric_size_curves.csv", pair=ALIGNED_PAIRS),
        provenance=expand(f"{RESULTS}/alignment/{{pair}}/metric_suite.provenance.json", pair=ALIGNED_PAIRS),
        tolerances=TOLERANCES,  # a size step within what another computer may change is a tie
    output:
        table=f"{RESULTS}/tables/metric_suite.csv",
        crossmodal=report(
            f"{RESULTS}/tables/metric_suite_crossmodal.csv", caption="../report/metric_suite.rst", category="Metrics"
        ),
        crossmodal_md=f"{RESULTS}/tables/metric_suite_crossmodal.md",
        trends=report(
            f"{RESULTS}/tables/metric_trend_tests.csv", caption="../report/metric_trends.rst", category="Metrics"
        ),
        figure=report(
            f"{RESULTS}/figures/metric_suite.pdf", caption="../report/metric_suite_figure.rst", category="Metrics"
        ),
        curves=f"{RESULTS}/tables/metric_size_curves.csv",
        curves_figure=report(
            f"{RESULTS}/figures/metric_size_curves.pdf", caption="../report/metric_size_curves.rst", category="Metrics"
        ),
        provenance=f"{RESULTS}/tables/metric_suite.provenance.json",
    params:
        config=step_config("metric_suite_summary"),
        captions={"crossmodal": caption_file("metric_suite")},
    log:
        f"{RESULTS}/logs/metric_suite_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/metric_suite_summary.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule oracle_validation:
    """Embedded default only (it needs the mini universe's true properties)."""
    input:
        truth=f"{RESOURCES}/mini_universe/truth.parquet",
        provenance=f"{RESOURCES}/mini_universe/provenance.json",
    output:
        curves=f"{RESULTS}/tables/oracle_curves.csv",
        summary=report(f"{RESULTS}/tables/oracle_summary.csv", caption="../report/oracle_summary.rst", category="Metrics"),
        figure=report(f"{RESULTS}/figures/oracle.pdf", caption="../report/oracle.rst", category="Metrics"),
        provenance=f"{RESULTS}/tables/oracle.provenance.json",
    params:
        config=step_config("oracle_validation"),
    log:
        f"{RESULTS}/logs/oracle_validation.log",
    benchmark:
        f"{RESULTS}/benchmarks/oracle_validation.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule conditional_alignment:
    input:
        unpack(conditional_inputs),
    output:
        per_object=f"{RESULTS}/alignment/{{pair}}/per_object.parquet",
        conditional=f"{RESULTS}/alignment/{{pair}}/conditional.csv",
        deltas=f"{RESULTS}/alignment/{{pair}}/size_deltas.csv",
        provenance=f"{RESULTS}/alignment/{{pair}}/conditional.provenance.json",
    params:
        config=step_config("conditional_alignment"),
        pair="{pair}",
        surveys=pair_sides,
        files=pair_files,
        upstream=pair_upstream,
    log:
        f"{RESULTS}/logs/conditional_alignment/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/conditional_alignment/{{pair}}.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule conditional_summary:
    input:
        conditional=expand(f"{RESULTS}/alignment/{{pair}}/conditional.csv", pair=ALIGNED_PAIRS),
        deltas=expand(f"{RESULTS}/alignment/{{pair}}/size_deltas.csv", pair=ALIGNED_PAIRS),
        provenance=expand(f"{RESULTS}/alignment/{{pair}}/conditional.provenance.json", pair=ALIGNED_PAIRS),
    output:
        table=report(
            f"{RESULTS}/tables/conditional_alignment.csv", caption="../report/conditional.rst", category="Metrics"
        ),
        deltas=f"{RESULTS}/tables/size_deltas.csv",
        trends=report(f"{RESULTS}/tables/size_delta_trends.csv", caption="../report/size_deltas.rst", category="Metrics"),
        figure=report(
            f"{RESULTS}/figures/conditional_alignment.pdf", caption="../report/conditional.rst", category="Metrics"
        ),
        provenance=f"{RESULTS}/tables/conditional_alignment.provenance.json",
    log:
        f"{RESULTS}/logs/conditional_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/conditional_summary.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
