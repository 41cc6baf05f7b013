"""Snakemake adapter: generate the embedded default's mini universe."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from samesky.io import setup_logging, write_json  # noqa: E402
from samesky.mini_universe import build_mini_universe  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
truth = build_mini_universe(snakemake.params.mini, snakemake.params.seed, snakemake.output.hub, snakemake.output.truth)
write_json(snakemake.output.provenance, record(snakemake.config, "mini_universe", n_objects=len(truth)))
