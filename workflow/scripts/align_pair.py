"""Snakemake adapter: every alignment score of one pair."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from samesky.align.scores import EmbeddingFile, align_pair  # noqa: E402
from samesky.io import setup_logging, write_csv, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
opts = snakemake.params.alignment
reference, other = snakemake.params.surveys
files = [EmbeddingFile(**f) for f in snakemake.params.files]
scores = align_pair(snakemake.wildcards.pair, reference, other, files, opts["k"],
                    opts.get("n_permutations", 1000), snakemake.params.seed)
write_csv(snakemake.output.scores, scores)
write_json(snakemake.output.provenance, record(snakemake.config, "align_pair", snakemake.input.provenance,
                                               pair=snakemake.wildcards.pair,
                                               inputs=[f["path"] for f in snakemake.params.files]))
