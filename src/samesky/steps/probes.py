"""Property probes (the AstroCLIP benchmark, AstroCLIP's protocol): the probe sample, kNN and MLP probes of
every embedding of the probe pair, then one step per analysis of their predictions."""

from __future__ import annotations

import hashlib
import logging

from ..io import load_dataset_dir, read_embeddings, write_csv, write_parquet, write_text
from .runner import step

log = logging.getLogger(__name__)

# Each step imports the analysis modules it uses (scikit-learn, astropy, matplotlib, UMAP): start-up every
# probe job would otherwise pay.


def _predictions(inputs, settings) -> dict:
    """(survey, model) -> that embedding's probe predictions, in the order of ``settings.embeddings``."""
    import pandas as pd

    return {tuple(e): pd.read_parquet(p) for e, p in zip(settings["embeddings"], inputs.all("predictions"))}


@step(reads=("probes.pair", "probes.join_on", "probes.brightness", "probes.brightness_from_magnitude",
             "probes.positions_from_catalogue", "probes.ssfr", "probes.catalogue_id", "probes.sky_groups",
             "probes.test_fraction", "probes.split_seed", "seed"))
def probe_sample(inputs, outputs, settings):
    """The probe pair's objects with catalogue properties (read from ``settings.catalogue``), with the
    fixed split, brightness class, environment and sky partition of each."""
    import pandas as pd

    from ..probes import robustness, targets

    opts, source = settings["probes"], str(settings["catalogue"])
    pair = opts["pair"]
    ds = load_dataset_dir(inputs.dataset)
    flags = [c for c in opts["brightness"] if c in ds.column_names]
    columns = ["object_id", "ra", "dec", opts["join_on"], *flags]
    missing = [c for c in columns[:4] if c not in ds.column_names]
    if missing:
        raise targets.ProbeDataError(f"{inputs.dataset}: pair {pair} has no column(s) {missing} (config "
                                     f"probes.join_on); has {ds.column_names}")
    frame = ds.select_columns(list(dict.fromkeys(columns))).to_pandas()
    catalogue = targets.read_catalogue(source, "probes.catalogue")
    by_mag = opts["brightness_from_magnitude"]
    keep = [c for c in ("ra", "dec") if opts["positions_from_catalogue"] and c in catalogue.columns]
    keep += [by_mag["column"]] if by_mag else []
    properties, n_dropped = targets.provabgs_targets(catalogue, opts["ssfr"], name=source,
                                                     id_column=opts["catalogue_id"], keep=tuple(keep))
    sample = targets.probe_sample(frame, properties, opts["join_on"], name=pair)
    if opts["positions_from_catalogue"]:
        sample = targets.fill_positions(sample, name=pair)
    if by_mag:
        sample["brightness"] = targets.brightness_from_magnitude(sample[f"catalogue_{by_mag['column']}"],
                                                                 by_mag["bright_below"], by_mag["faint_below"])
    elif len(flags) == 2:
        sample["brightness"] = targets.brightness_labels(sample[flags[0]], sample[flags[1]])
    else:
        log.warning("pair %s has no brightness flags %s: the brightness analysis will be empty", pair,
                    list(opts["brightness"]))
        sample["brightness"] = ""
    env, threshold = robustness.environment(sample["ra"], sample["dec"])
    sample = pd.concat([sample, env], axis=1)
    sample["sky_group"] = robustness.sky_partitions(sample["ra"], sample["dec"], opts["sky_groups"], settings["seed"])
    sample["split"] = targets.split_labels(len(sample), opts["test_fraction"], opts["split_seed"])
    log.info("probe sample: %d objects (%d test); environment threshold %.2f arcsec; bins %s", len(sample),
             (sample["split"] == "test").sum(), threshold, sample["env_bin"].value_counts().to_dict())
    write_parquet(outputs.sample, sample)
    content = hashlib.sha256(pd.util.hash_pandas_object(catalogue, index=False).values.tobytes()).hexdigest()
    return {"datasets": {"probes_catalogue": {"source": source, "revision_resolved": f"sha256:{content}",
                                              "n_rows": len(catalogue)}},
            "n_objects": len(sample), "catalogue_rows_dropped": n_dropped,
            "ssfr": targets.SSFR_DEFINITIONS[opts["ssfr"]], "environment_threshold_arcsec": threshold}


@step(reads=("probes.split_seed", "probes.n_folds", "probes.n_neighbours", "probes.mlp"))
def probe_regressions(inputs, outputs, settings):
    """kNN and MLP probes of the four properties on the embedding ``settings.survey``/``settings.model``
    (the file ``settings.embeddings_file`` in its model's folder)."""
    import pandas as pd

    from ..probes import analyses

    opts, path = settings["probes"], settings["embeddings_file"]
    sample = pd.read_parquet(inputs.sample)
    ids, emb, _ = read_embeddings(path)
    pred = analyses.probe_embedding(sample, ids, emb, opts["split_seed"], opts["n_folds"], opts["n_neighbours"],
                                    opts["mlp"], name=path, sample_name=inputs.sample)
    log.info("%s/%s: %d objects probed (%d test)", settings["survey"], settings["model"], len(pred),
             (pred["split"] == "test").sum())
    write_parquet(outputs.predictions, pred)
    return {"survey": settings["survey"], "model": settings["model"], "mlp": opts["mlp"]}


@step(reads=("probes.pair", "probes.test_fraction", "probes.ssfr", "probes.mlp", "probes.n_bootstrap",
             "probes.split_seed"))
def probe_tables(inputs, outputs, settings):
    """The benchmark's Tables 3-6: test, train and out-of-fold R^2, bootstrap CIs of the compared pairs
    (``settings.compare``), the Markdown Table 3 (caption from ``settings.caption``) and its figure."""
    import pandas as pd

    from ..probes import analyses, figures, targets
    from ..report import caption

    opts = settings["probes"]
    sample = pd.read_parquet(inputs.sample)
    predictions = _predictions(inputs, settings)
    test = analyses.r2_table(sample, predictions, "test")
    write_csv(outputs.r2_test, test)
    write_csv(outputs.r2_train, analyses.r2_table(sample, predictions, "train"))
    write_csv(outputs.r2_oof, analyses.r2_table(sample, predictions, "oof"))
    write_text(outputs.r2_md, analyses.table3_markdown(test, caption(settings["caption"], settings)))
    write_csv(outputs.bootstrap, analyses.comparison_table(sample, predictions, [tuple(map(tuple, ab)) for ab in
                                                                                 settings["compare"]],
                                                           opts["n_bootstrap"], opts["split_seed"]))
    figures.r2_bars(test, outputs.figure)
    return {"ssfr": targets.SSFR_DEFINITIONS[opts["ssfr"]]}


def _group_analysis(inputs, outputs, settings, column: str, panel=None, order=None):
    """R^2 of the out-of-fold predictions per value of the sample's ``column``, with a figure."""
    import pandas as pd

    from ..probes import analyses, figures

    sample = pd.read_parquet(inputs.sample)
    table = analyses.group_table(sample, _predictions(inputs, settings), column)
    write_csv(outputs.table, table)
    figures.group_r2(table, column, outputs.figure, order=order(sample) if order else None,
                     extra=panel(sample) if panel else None)
    return sample, table, {"objects_per_group": sample[column].astype(str).value_counts().to_dict()}


@step()
def probe_environment(inputs, outputs, settings):
    """R^2 per angular-environment bin (the benchmark's Table 15, Figures 10-11)."""
    from ..probes.figures import environment_panel
    from ..probes.robustness import ENV_BINS

    def order(sample):
        return [b for b in ENV_BINS if b in set(sample["env_bin"])]

    return _group_analysis(inputs, outputs, settings, "env_bin", environment_panel, order)[2]


@step()
def probe_brightness(inputs, outputs, settings):
    """R^2 per brightness class, and bright minus faint (the benchmark's Tables 16-17)."""
    from ..probes import analyses

    _, table, extra = _group_analysis(inputs, outputs, settings, "brightness")
    write_csv(outputs.difference, analyses.bright_minus_faint(table) if len(table) else table)
    return extra


@step()
def probe_sky(inputs, outputs, settings):
    """R^2 per sky partition (the benchmark's Tables 13-14, Figure 9)."""
    from ..probes.figures import sky_panel

    return _group_analysis(inputs, outputs, settings, "sky_group", sky_panel)[2]


@step(reads=("seed",))
def probe_structure(inputs, outputs, settings):
    """K-means (inertia, k = 3 clusters and their mean properties), AMI with property bins, HDBSCAN cluster
    counts and UMAP projections of each embedding in ``settings.embeddings`` (the benchmark's §4.3)."""
    import numpy as np
    import pandas as pd

    from ..probes import figures, structure, targets

    sample = pd.read_parquet(inputs.sample).set_index("object_id")
    parts: dict[str, list] = {"inertia": [], "clusters": [], "ami": [], "hdbscan": []}
    projections = {}
    for (survey, model), path in zip(settings["embeddings"], settings["files"]):
        name = f"{survey}/{model}"
        ids, emb, _ = read_embeddings(path)
        keep = np.isin(ids.astype(str), sample.index)
        ids, x = ids[keep].astype(str), emb[keep]
        log.info("%s: %d objects", name, len(ids))
        tables = structure.structure_of(name, x, sample.loc[ids, list(targets.TARGETS)], settings["seed"])
        for key in parts:
            parts[key].append(tables[key])
        projections[name] = (ids, tables["umap"])
    write_csv(outputs.clusters, pd.concat(parts["clusters"])[["embedding", "cluster", "frequency", *targets.TARGETS]])
    write_csv(outputs.ami, pd.DataFrame(parts["ami"]))
    write_csv(outputs.hdbscan, pd.concat(parts["hdbscan"]))
    inertia = pd.concat(parts["inertia"])[["embedding", "k", "inertia"]]
    write_csv(outputs.inertia, inertia)
    figures.inertia_and_umap(inertia, projections, sample.reset_index(), outputs.figure)


@step()
def probe_residuals(inputs, outputs, settings):
    """Residual outliers and how often they recur across properties (the benchmark's Table 18), and the
    absolute residual histograms with MDL bin counts (Figure 12)."""
    import pandas as pd

    from ..probes import analyses, figures

    table, histograms = analyses.outlier_table(pd.read_parquet(inputs.sample), _predictions(inputs, settings))
    write_csv(outputs.table, table)
    figures.residual_histograms(histograms, outputs.figure)


@step()
def probe_net_wins(inputs, outputs, settings):
    """Where in each property's range one embedding's probe beats another's, for every compared pair
    (the benchmark's §4.7.2, Figures 13-15)."""
    import pandas as pd

    from ..probes import analyses, figures

    compare = [tuple(map(tuple, ab)) for ab in settings["compare"]]
    table = analyses.net_wins_table(pd.read_parquet(inputs.sample), _predictions(inputs, settings), compare)
    write_csv(outputs.table, table)
    figures.net_wins_bars(table, outputs.figure)
