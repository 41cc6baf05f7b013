"""Snakemake adapter: Tables 1 and 2 (CSV, Markdown, LaTeX), trend tests and Figure 1."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from samesky.align import tables  # noqa: E402
from samesky.io import setup_logging, write_csv, write_json, write_text  # noqa: E402
from samesky.provenance import record  # noqa: E402

setup_logging(snakemake.log[0])
opts = snakemake.params.alignment
k = opts.get("table_k", 10)
scores = pd.concat([pd.read_csv(p) for p in snakemake.input.scores], ignore_index=True)
out = snakemake.output
t1 = tables.intramodal_table(scores, k, opts.get("hsc_pair", "legacysurvey_hsc"))
t2 = tables.crossmodal_table(scores, k)
cap1 = f"Intramodal MKNN (%, k = {k}) between adjacent sizes of each family, per imaging dataset (seed 000, Table 1)."
cap2 = (f"Crossmodal MKNN (%, k = {k}) of each model size, each dataset against HSC; DESI and SDSS use Specformer "
        "spectra against the model's HSC images; the last row is the mean permutation null (seed 000, Table 2).")
t3 = tables.crossmodal_table(scores, k, measure="cka_debiased")
cap3 = ("Crossmodal debiased linear CKA (x 100) on the same objects as Table 2: the second alignment measure "
        "seed 000 names as future work (linear CKA is in results/alignment/<pair>/scores.csv).")
for name, table, caption, label in (("table1", t1, cap1, "tab:intramodal"), ("table2", t2, cap2, "tab:crossmodal"),
                                    ("cka", t3, cap3, "tab:cka")):
    write_csv(out[name], table)
    write_text(out[f"{name}_md"], tables.to_markdown(table, caption))
    write_text(out[f"{name}_tex"], tables.to_latex(table, caption, label))
write_csv(out.trends, tables.trend_tests(scores, k))
tables.figure1(scores, k, out.figure1)
write_json(out.provenance, record(snakemake.config, "alignment_tables", snakemake.input.provenance))
