# Alignment: per pair, every crossmodal (other survey vs HSC) and intramodal (adjacent sizes) mutual
# k-NN score with its permutation null and CKA; then the Platonic Universe's Tables 1-2, trend tests and
# Figure 1, and the dataset-size curves of Plato's Cave.


rule search_neighbours:
    # each embedding of the pair searched once (the GPU when alignment.search.gpu); every rule below that
    # needs full-N neighbours reads the lists (samesky.align.neighbours)
    input:
        unpack(pair_embeddings),
    output:
        neighbours=f"{RESULTS}/alignment/{{pair}}/neighbours.npz",
        searches=f"{RESULTS}/alignment/{{pair}}/searches.csv",
        provenance=f"{RESULTS}/alignment/{{pair}}/neighbours.provenance.json",
    params:
        config=step_config("search_neighbours"),
        pair="{pair}",
        surveys=pair_sides,
        files=pair_files,
        upstream=pair_upstream,
    log:
        f"{RESULTS}/logs/search_neighbours/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/search_neighbours/{{pair}}.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=search_mem_mb,
        runtime=search_runtime,
        gpu=1 if config["alignment"]["search"]["gpu"] else 0,
    conda:
        "../../envs/gpu.yaml" if config["alignment"]["search"]["gpu"] else "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule align_pair:
    input:
        unpack(searched_pair),
    output:
        scores=f"{RESULTS}/alignment/{{pair}}/scores.csv",
        overlaps=f"{RESULTS}/alignment/{{pair}}/overlaps.parquet",
        provenance=f"{RESULTS}/alignment/{{pair}}/provenance.json",
    params:
        config=step_config("align_pair"),
        pair="{pair}",
        surveys=pair_sides,
        files=pair_files,
        upstream=pair_upstream,
    log:
        f"{RESULTS}/logs/align_pair/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align_pair/{{pair}}.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule alignment_tables:
    input:
        scores=expand(f"{RESULTS}/alignment/{{pair}}/scores.csv", pair=ALIGNED_PAIRS),
        overlaps=expand(f"{RESULTS}/alignment/{{pair}}/overlaps.parquet", pair=ALIGNED_PAIRS),
        provenance=expand(f"{RESULTS}/alignment/{{pair}}/provenance.json", pair=ALIGNED_PAIRS),
        tolerances=TOLERANCES,  # which steps' verdicts are near-ties (samesky/tolerances.yaml)
        # the released preset: what the repository does not hold, noted under the tables
        audit=[f"{RESULTS}/tables/released_audit.csv"] if RELEASED else [],
    output:
        table1=report(f"{RESULTS}/tables/table1_intramodal.csv", caption="../report/table1.rst", category="Alignment"),
        table1_md=f"{RESULTS}/tables/table1_intramodal.md",
        table1_tex=f"{RESULTS}/tables/table1_intramodal.tex",
        table2=report(f"{RESULTS}/tables/table2_crossmodal.csv", caption="../report/table2.rst", category="Alignment"),
        table2_md=f"{RESULTS}/tables/table2_crossmodal.md",
        table2_tex=f"{RESULTS}/tables/table2_crossmodal.tex",
        cka=report(f"{RESULTS}/tables/crossmodal_cka.csv", caption="../report/cka.rst", category="Alignment"),
        cka_md=f"{RESULTS}/tables/crossmodal_cka.md",
        cka_tex=f"{RESULTS}/tables/crossmodal_cka.tex",
        trends=report(f"{RESULTS}/tables/trend_tests.csv", caption="../report/trends.rst", category="Alignment"),
        steps=f"{RESULTS}/tables/trend_steps.csv",
        figure1=report(
            f"{RESULTS}/figures/figure1_crossmodal.pdf", caption="../report/figure1.rst", category="Alignment"
        ),
        provenance=f"{RESULTS}/tables/alignment_tables.provenance.json",
    params:
        config=step_config("alignment_tables"),
        captions={name: caption_file(name) for name in ("table1", "table2", "cka")},
        labels=FAMILY_LABELS,
    log:
        f"{RESULTS}/logs/alignment_tables.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule size_curves:
    input:
        unpack(size_curve_inputs),
    output:
        table=f"{RESULTS}/alignment/{{pair}}/size_curves.csv",
        provenance=f"{RESULTS}/alignment/{{pair}}/size_curves.provenance.json",
    params:
        config=step_config("size_curves"),
        pair="{pair}",
        surveys=pair_sides,
        files=pair_files,
        upstream=pair_upstream,
    log:
        f"{RESULTS}/logs/size_curves/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/size_curves/{{pair}}.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule size_curve_summary:
    input:
        tables=expand(f"{RESULTS}/alignment/{{pair}}/size_curves.csv", pair=ALIGNED_PAIRS),
        provenance=expand(f"{RESULTS}/alignment/{{pair}}/size_curves.provenance.json", pair=ALIGNED_PAIRS),
    output:
        table=f"{RESULTS}/tables/size_curves.csv",
        mknn=report(f"{RESULTS}/figures/size_curves.pdf", caption="../report/size_curves.rst", category="Dataset size"),
        decomposition=report(
            f"{RESULTS}/figures/agreement_decomposition.pdf",
            caption="../report/decomposition.rst",
            category="Dataset size",
        ),
        provenance=f"{RESULTS}/tables/size_curves.provenance.json",
    params:
        config=step_config("size_curve_summary"),
    log:
        f"{RESULTS}/logs/size_curve_summary.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


# Alignment across layers (alignment.layers: all, or relative depths): every layer pair of every comparison,
# with the permutation null of the grid's maximum, so the best pair's p-value accounts for having picked it.


rule layer_grids:
    input:
        unpack(pair_embeddings),
    output:
        grids=f"{RESULTS}/alignment/{{pair}}/layer_grids.csv",
        best=f"{RESULTS}/alignment/{{pair}}/layer_best.csv",
        heatmaps=report(
            f"{RESULTS}/figures/layer_grids_{{pair}}.pdf", caption="../report/layer_grids.rst", category="Layers"
        ),
        provenance=f"{RESULTS}/alignment/{{pair}}/layer_grids.provenance.json",
    params:
        config=step_config("layer_grids"),
        pair="{pair}",
        surveys=pair_sides,
        files=pair_files,
        upstream=pair_upstream,
    log:
        f"{RESULTS}/logs/layer_grids/{{pair}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/layer_grids/{{pair}}.tsv"
    threads: config["alignment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=480,
        gpu=1 if config["alignment"]["search"]["gpu"] else 0,
    conda:
        "../../envs/gpu.yaml" if config["alignment"]["search"]["gpu"] else "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"


rule layer_summary:
    input:
        best=expand(f"{RESULTS}/alignment/{{pair}}/layer_best.csv", pair=ALIGNED_PAIRS),
        provenance=expand(f"{RESULTS}/alignment/{{pair}}/layer_grids.provenance.json", pair=ALIGNED_PAIRS),
        tolerances=TOLERANCES,  # a best layer pair within tolerance of the table's cell is a near-tie
    output:
        table=report(f"{RESULTS}/tables/layer_best.csv", caption="../report/layer_best.rst", category="Layers"),
        figure=report(f"{RESULTS}/figures/layer_depth.pdf", caption="../report/layer_depth.rst", category="Layers"),
        provenance=f"{RESULTS}/tables/layer_best.provenance.json",
    log:
        f"{RESULTS}/logs/layer_summary.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/step.py"
