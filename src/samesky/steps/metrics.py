"""What alignment scores mean (issue 17): the metric suite of every pair under one protocol and its summary,
the metrics checked against known truth (oracle embeddings of the mini universe), and alignment per object,
within bins of redshift, brightness, environment and sky region, after removing covariates, and its
change with model size with paired bootstrap CIs."""

from __future__ import annotations

import logging

from ..io import load_dataset_dir, write_csv, write_parquet, write_text
from .alignment import _files
from .runner import step

log = logging.getLogger(__name__)

# As in steps/alignment.py, each step imports what it uses (scipy, sklearn, astropy cost a job seconds).


@step(reads=("alignment.metrics", "alignment.table_k", "alignment.size_curves.smallest", "seed"))
def metric_suite(inputs, outputs, settings):
    """Every comparison of pair ``settings.pair`` with every metric (score, null, p, calibrated, k sweep),
    and each metric's dataset-size curve for its crossmodal comparisons."""
    from ..align.suite import NeighbourCache, pair_metric_size_curves, pair_metric_suite

    opts = settings["alignment"]["metrics"]
    reference, other = settings["surveys"]
    pair, files, names = settings["pair"], _files(settings), list(opts["names"])
    curve_k = settings["alignment"]["table_k"]
    neighbours = NeighbourCache(max([*opts["k"], curve_k]))  # each file searched once for both
    suite = pair_metric_suite(pair, reference, other, files, names, opts["k"], opts["n_permutations"],
                              opts["n_permutations_matrix"], opts["max_rows"], opts["rsa_rows"], settings["seed"],
                              neighbours)
    write_csv(outputs.suite, suite)
    curves = pair_metric_size_curves(pair, reference, other, files, names, [curve_k], opts["size_curve_seeds"],
                                     settings["alignment"]["size_curves"]["smallest"], opts["size_curve_models"],
                                     opts["max_rows"], opts["rsa_rows"], neighbours)
    write_csv(outputs.curves, curves)
    return {"pair": pair, "inputs": [f["path"] for f in settings["files"]]}


@step(reads=("alignment.table_k",))
def metric_suite_summary(inputs, outputs, settings):
    """All pairs' suites in one long table; the crossmodal calibrated scores per metric (CSV, Markdown); the
    binomial trend test of every metric; the suite and size-curve figures."""
    import pandas as pd

    from ..align import suite as s
    from ..align.tables import to_markdown
    from ..report import caption

    k = settings["alignment"]["table_k"]
    suite = pd.concat([pd.read_csv(p) for p in inputs.all("suites")], ignore_index=True)
    curves = pd.concat([pd.read_csv(p) for p in inputs.all("curves")], ignore_index=True)
    write_csv(outputs.table, suite)
    wide = s.crossmodal_wide(suite, k)
    write_csv(outputs.crossmodal, wide)
    shown = wide.astype(object)  # calibrated scores are small: three decimals (to_markdown's floats get two)
    for column in s.metric_order(suite):
        shown[column] = [f"{v:.3f}" if v == v else "" for v in wide[column]]
    shown["params_m"] = [f"{v:g}" for v in wide["params_m"]]
    write_text(outputs.crossmodal_md, to_markdown(shown, caption(settings["captions"]["crossmodal"], settings)))
    # a size step within what another computer may change (samesky/tolerances.yaml) is left undecided
    from ..tolerances import entry_for, load_entries

    entry = entry_for("tables/metric_suite.csv", load_entries(inputs.tolerances))
    write_csv(outputs.trends, s.metric_trend_tests(suite, k, lambda rows: entry.tolerances("score", rows)))
    s.suite_figure(suite, k, outputs.figure)
    write_csv(outputs.curves, curves)
    s.size_curve_figure(curves, outputs.curves_figure)


@step(reads=("alignment.oracle", "alignment.metrics.names", "alignment.metrics.max_rows",
             "alignment.metrics.rsa_rows", "seed"))
def oracle_validation(inputs, outputs, settings):
    """Every metric on oracle pairs built from the mini universe's true properties with a known shared
    fraction, and on nuisance pairs that share one property only; their curves, summary and figure."""
    import numpy as np
    import pandas as pd

    from ..align.oracle import latent_matrix, oracle_curves, oracle_figure

    opts, metrics = settings["alignment"]["oracle"], settings["alignment"]["metrics"]
    truth = pd.read_parquet(inputs.truth)
    if "kind" in truth.columns:
        truth = truth[truth["kind"] == "galaxy"]  # the catalogue's galaxies, not the surveys' interlopers
    if opts["objects"] is not None and len(truth) > opts["objects"]:
        rows = np.sort(np.random.default_rng([settings["seed"], 17]).choice(len(truth), opts["objects"], replace=False))
        truth = truth.iloc[rows]
    latents = latent_matrix(truth.reset_index(drop=True))
    log.info("oracle pairs on %d objects, %d latent properties", len(latents), latents.shape[1])
    curves, summary = oracle_curves(
        latents, fractions=opts["fractions"], metrics=list(metrics["names"]), seeds=opts["seeds"], ks=opts["k"],
        nuisance_weight=opts["nuisance_weight"], dim=opts["dim"], snr=opts["snr"],
        n_permutations=opts["n_permutations"], n_permutations_matrix=opts["n_permutations_matrix"],
        max_rows=metrics["max_rows"], rsa_rows=metrics["rsa_rows"])
    write_csv(outputs.curves, curves)
    write_csv(outputs.summary, summary)
    oracle_figure(curves, outputs.figure)
    return {"objects": len(latents)}


def pair_covariates(inputs, settings):
    """(covariates, skipped) of one pair's objects: a frame indexed by object id with the configured
    redshift, brightness, environment (bin and companion count) and sky region, and covariate -> why it is
    absent where configured but not available (a pair outside redshift.only_pairs, no positions)."""
    import numpy as np
    import pandas as pd

    from ..align.curves import object_values

    opts = settings["alignment"]["conditional"]
    reference, other = settings["surveys"]
    pair = settings["pair"]
    truth = pd.read_parquet(inputs.truth) if "truth" in inputs else None
    dataset = load_dataset_dir(inputs.dataset) if "dataset" in inputs else None
    columns, skipped = {}, {}
    redshift = opts["redshift"]
    values = object_values(redshift, reference, truth=truth, dataset=dataset, other=other, pair=pair,
                           dataset_name=inputs["dataset"] if dataset is not None else "", key="alignment.conditional.redshift")
    if values is not None:
        columns["redshift"] = pd.Series(values, dtype=float)
    elif redshift["source"] != "none":
        skipped["redshift"] = f"{pair} is not in alignment.conditional.redshift.only_pairs"
    if opts["brightness"] is not None:
        column = opts["brightness"]
        if column not in dataset.column_names:
            raise KeyError(f"{inputs.dataset}: no column '{column}' for alignment.conditional.brightness (pair {pair}); "
                           f"has {dataset.column_names}")
        columns["brightness"] = pd.Series(np.asarray(dataset[column], float), index=list(map(str, dataset["object_id"])))
    if opts["environment"] or opts["sky_regions"]:
        ids = np.asarray(list(map(str, dataset["object_id"])))
        ra, dec = np.asarray(dataset["ra"], float), np.asarray(dataset["dec"], float)
        ok = np.isfinite(ra) & np.isfinite(dec)
        if ok.sum() < 2:
            why = f"the pair dataset has no positions ({int(ok.sum())} of {len(ok)} objects with ra/dec)"
            skipped.update({name: why for name, on in (("environment", opts["environment"]),
                                                        ("sky_region", opts["sky_regions"])) if on})
        else:
            if (~ok).any():
                log.warning("%s: %d objects without ra/dec have no environment or sky region", pair, int((~ok).sum()))
            if opts["environment"]:
                from ..probes.robustness import environment

                env, threshold = environment(ra[ok], dec[ok])
                log.info("%s: environment within %.1f arcsec (Q3 + 1.5 IQR of nearest-neighbour separations)",
                         pair, threshold)
                columns["environment"] = pd.Series(env["env_bin"].to_numpy(object), index=ids[ok])
                columns["companions"] = pd.Series(env["companions"].to_numpy(float), index=ids[ok])
            if opts["sky_regions"]:
                from ..probes.robustness import sky_partitions

                regions = sky_partitions(ra[ok], dec[ok], opts["sky_regions"], settings["seed"])
                columns["sky_region"] = pd.Series([f"region {r}" for r in regions], index=ids[ok], dtype=object)
    covariates = pd.DataFrame(columns)
    covariates.index = covariates.index.astype(str)
    return covariates, skipped


@step(reads=("alignment.conditional", "alignment.table_k", "seed"))
def conditional_alignment(inputs, outputs, settings):
    """One pair's per-object overlaps, MKNN within bins and after regressing out covariates, and the paired
    bootstrap CIs of the change of MKNN between adjacent model sizes."""
    from ..align.conditional import pair_conditional

    opts = settings["alignment"]["conditional"]
    reference, other = settings["surveys"]
    covariates, skipped = pair_covariates(inputs, settings)
    per_object, conditional, deltas = pair_conditional(
        settings["pair"], reference, other, _files(settings), covariates, settings["alignment"]["table_k"],
        opts["n_bins"], opts["n_permutations"], opts["n_bootstrap"], opts["min_bin_objects"], opts["models"],
        settings["seed"], skipped)
    write_parquet(outputs.per_object, per_object)
    write_csv(outputs.conditional, conditional)
    write_csv(outputs.deltas, deltas)
    return {"pair": settings["pair"], "covariates": list(covariates.columns), "skipped": skipped}


@step()
def conditional_summary(inputs, outputs, settings):
    """All pairs' conditional scores and size deltas in one table each, the two trend tests side by side,
    and the figure."""
    import pandas as pd

    from ..align.conditional import conditional_figure, delta_trend_tests

    conditional = pd.concat([pd.read_csv(p) for p in inputs.all("conditional")], ignore_index=True)
    deltas = pd.concat([pd.read_csv(p) for p in inputs.all("deltas")], ignore_index=True)
    write_csv(outputs.table, conditional)
    write_csv(outputs.deltas, deltas)
    write_csv(outputs.trends, delta_trend_tests(deltas))
    conditional_figure(conditional, deltas, outputs.figure)
