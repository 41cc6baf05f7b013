# samesky: do foundation models see the same sky?
#
#   snakemake --cores 8                                      # embedded default (offline, minutes)
#   snakemake --cores 8 --configfile config/paper.yaml       # paper preset (Hub data and weights)
#   snakemake -n                                             # audit the DAG without running it
#
# Rules are split by stage under workflow/rules/; config validation and the rules' input functions live in
# common.smk. Every rule runs workflow/scripts/step.py, which calls the package step named after the rule
# (samesky.steps), so all logic is in the package and testable without Snakemake.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(DATASETS),
    pair="|".join(PAIRS),
    model="|".join({**MODELS, **ADAPTED}),
    weights="|".join(SHARED_DOWNLOADS),
    survey="[a-z0-9]+",
    variant="|".join(VARIANTS) or "none",


include: "workflow/rules/data.smk"
include: "workflow/rules/crossmatch.smk"
include: "workflow/rules/embed.smk"


if RELEASED:  # the released-embeddings preset: embeddings files instead of the embedding jobs

    include: "workflow/rules/released.smk"


include: "workflow/rules/alignment.smk"
include: "workflow/rules/metrics.smk"
if "probes" in config:  # `probes: null` switches them off (the released-embeddings preset)

    include: "workflow/rules/probes.smk"


if "downstream" in config:  # `downstream: null` switches them off (the released-embeddings preset)

    include: "workflow/rules/downstream.smk"
    include: "workflow/rules/adaptation.smk"


if VARIANTS and not RELEASED:  # issue 26: preprocessing as a study axis (config/adaptation.yaml)

    include: "workflow/rules/preprocessing.smk"


rule all:
    input:
        all_targets(),
    default_target: True


# Warm starts (samesky.steps.warm): on a local run, each job forks from a server that imported torch,
# scikit-learn and the rest once, instead of spending seconds importing them itself. SAMESKY_WARM=0: off.
WARM_SERVERS = []


onstart:
    if not workflow.non_local_exec:
        WARM_SERVERS.extend(warm.start(f"{RESULTS}/logs/warm_start.log"))


onsuccess:
    warm.stop(WARM_SERVERS)


onerror:
    warm.stop(WARM_SERVERS)
