"""The script every rule runs: the package step named after the rule (samesky.steps), with the rule's
inputs, outputs, params, log and config. All logic lives in the package, so this file stays this short."""

from samesky.steps import run_rule

run_rule(snakemake)  # noqa: F821  (Snakemake defines it)
