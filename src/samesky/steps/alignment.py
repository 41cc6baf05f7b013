"""Alignment: every score of one pair with its null and CKA, the Platonic Universe's tables and Figure 1,
and the dataset-size curves of Plato's Cave."""

from __future__ import annotations

from ..io import load_dataset_dir, write_csv, write_text
from .runner import step

# Each step imports what it uses: every job imports this package, and scipy, sklearn or torch cost a job
# seconds of start-up it should only pay when it needs them.


def _files(settings):
    """The pair's embeddings files, less the sides a released repository does not hold (their record
    says so: released_embeddings writes no file for them)."""
    from ..align.scores import EmbeddingFile
    from ..io import not_released

    files = [EmbeddingFile(**f) for f in settings["files"]]
    return [f for f in files if not not_released(f.path)]


@step(reads=("alignment.k", "alignment.table_k", "alignment.metrics.k", "alignment.search"))
def search_neighbours(inputs, outputs, settings):
    """The neighbour lists of every embedding of pair ``settings.pair``, each row set searched once past the
    largest k the alignment rules ask for (samesky.align.neighbours.search_depth)."""
    import pandas as pd

    from ..align.knn import search_device
    from ..align.neighbours import search_depth, search_pair, write_lists

    reference, other = settings["surveys"]
    opts = settings["alignment"]
    k = search_depth(opts)
    device = search_device(opts["search"]["gpu"])
    keys, lists, records = search_pair(reference, other, _files(settings), k, device)
    write_lists(outputs.neighbours, keys, lists)
    write_csv(outputs.searches, pd.DataFrame(records))
    return {"pair": settings["pair"], "k": k, "device": device or "cpu (faiss)", "searches": len(records),
            "inputs": [f["path"] for f in settings["files"]]}


@step(reads=("alignment.k", "alignment.table_k", "alignment.n_permutations", "seed"))
def align_pair(inputs, outputs, settings):
    """Every crossmodal and intramodal score of pair ``settings.pair`` (sides ``settings.surveys``; its
    embeddings files ``settings.files``), and each object's overlap at table_k in every comparison."""
    return _align(outputs, settings)


@step(reads=("alignment.k", "alignment.table_k", "alignment.n_permutations", "seed"))
def align_variant(inputs, outputs, settings):
    """``align_pair`` on a preprocessing variant's embeddings (its image models' files; the spectra's
    own): the same comparisons, seeds and permutations as the run's own, so only the pixels differ."""
    return {**_align(outputs, settings), "variant": settings["variant"]}


def _align(outputs, settings):
    from ..align.scores import align_pair as pair_scores
    from ..io import write_parquet

    reference, other = settings["surveys"]
    opts = settings["alignment"]
    scores, overlaps = pair_scores(settings["pair"], reference, other, _files(settings), opts["k"],
                                   opts["n_permutations"], settings["seed"], overlap_k=opts["table_k"])
    overlaps.insert(0, "pair", settings["pair"])
    write_csv(outputs.scores, scores)
    write_parquet(outputs.overlaps, overlaps)
    return {"pair": settings["pair"], "inputs": [f["path"] for f in settings["files"]]}


@step(reads=("alignment.table_k", "alignment.hsc_pair", "alignment.trend_bootstrap", "seed"))
def alignment_tables(inputs, outputs, settings):
    """Tables 1 and 2 and the CKA table (CSV, Markdown, LaTeX, captions from ``settings.captions``), the
    trend tests with every size step's paired bootstrap, and Figure 1."""
    import pandas as pd

    from ..align import tables
    from ..report import caption

    k = settings["alignment"]["table_k"]
    scores = pd.concat([pd.read_csv(p) for p in inputs.all("scores")], ignore_index=True)
    made = {"table1": (tables.intramodal_table(scores, k, settings["alignment"]["hsc_pair"]), "tab:intramodal"),
            "table2": (tables.crossmodal_table(scores, k), "tab:crossmodal"),
            "cka": (tables.crossmodal_table(scores, k, measure="cka_debiased"), "tab:cka")}
    labels = settings["labels"]
    note = _not_released_note(inputs.all("audit"))
    for name, (table, label) in made.items():
        text = caption(settings["captions"][name], settings) + note
        write_csv(outputs[name], table)
        write_text(outputs[f"{name}_md"], tables.to_markdown(table, text, labels))
        write_text(outputs[f"{name}_tex"], tables.to_latex(table, text, label, labels))
    overlaps = pd.concat([pd.read_parquet(p) for p in inputs.all("overlaps")], ignore_index=True)
    steps = tables.trend_steps(scores, k, overlaps=overlaps, n_bootstrap=settings["alignment"]["trend_bootstrap"],
                               seed=settings["seed"])
    # a verdict whose interval edge lies within what another computer may move it is a near-tie
    from ..tolerances import entry_for, load_entries

    entry = entry_for("tables/trend_steps.csv", load_entries(inputs.tolerances))
    steps = tables.mark_near_ties(steps, entry.tolerances("lo", steps))
    write_csv(outputs.steps, steps)
    write_csv(outputs.trends, tables.trend_tests(scores, k, steps))
    tables.figure1(scores, k, outputs.figure1, labels)


def _not_released_note(audits: list[str]) -> str:
    """The released preset's note under the tables: the (pair, model) files the repository does not hold."""
    import pandas as pd

    if not audits:
        return ""
    audit = pd.read_csv(audits[0], keep_default_na=False)
    absent = audit[audit["verdict"].str.startswith("not released") & audit["kind"].eq("final")]
    if absent.empty:
        return ""
    items = "; ".join(f"{pair}: {', '.join(group['model'])}" for pair, group in absent.groupby("pair", sort=False))
    return f" Not released at this revision, so not in the table: {items}."


@step(reads=("alignment.k", "alignment.size_curves"))
def size_curves(inputs, outputs, settings):
    """MKNN against dataset size, with the class decomposition, for every crossmodal comparison of one pair."""
    import pandas as pd

    from ..align.curves import class_labels, class_source, pair_size_curves

    opts = settings["alignment"]
    classes = opts["size_curves"]["classes"]
    reference, other = settings["surveys"]
    where = {"other": other, "pair": settings["pair"]}
    if classes["source"] == "none":
        labels = None
    elif classes["source"] == "truth":
        labels = class_labels(classes, reference, truth=pd.read_parquet(inputs.truth), **where)
    else:
        labels = class_labels(classes, reference, dataset=load_dataset_dir(inputs.dataset), dataset_name=inputs.dataset,
                              **where)
    curves = pair_size_curves(reference, other, _files(settings), opts["k"], opts["size_curves"]["seeds"], labels,
                              opts["size_curves"]["smallest"])
    curves.insert(0, "pair", settings["pair"])
    curves["property"] = class_source(classes, other) if labels is not None else ""
    write_csv(outputs.table, curves)
    return {"pair": settings["pair"]}


@step(reads=("alignment.size_curves.decomposition_model",))
def size_curve_summary(inputs, outputs, settings):
    """All pairs' size curves in one table, and their two figures (MKNN against N; the decomposition)."""
    import pandas as pd

    from ..align.curves import size_curve_figures

    curves = pd.concat([pd.read_csv(p) for p in inputs.all("tables")], ignore_index=True)
    write_csv(outputs.table, curves)
    size_curve_figures(curves, outputs.mknn, outputs.decomposition,
                       settings["alignment"]["size_curves"]["decomposition_model"])


@step(reads=("alignment.table_k", "alignment.layers", "alignment.layer_permutations", "alignment.prh_clamp",
             "alignment.search", "seed"))
def layer_grids(inputs, outputs, settings):
    """Every comparison of one pair at every layer pair, with the max-null (``alignment.layers``), and
    their heatmaps."""
    from ..align.knn import search_device
    from ..align.layers import heatmaps, pair_layer_grids

    opts = settings["alignment"]
    if opts["layers"] == "final":
        raise ValueError("alignment.layers is 'final': the layer grids need the embedding jobs to write every layer; "
                         "run with alignment.layers: all (--configfile config/layers.yaml)")
    reference, other = settings["surveys"]
    grids, best, cells = pair_layer_grids(settings["pair"], reference, other, _files(settings), opts["table_k"],
                                          opts["layers"], opts["layer_permutations"], settings["seed"],
                                          opts["prh_clamp"], search_device(opts["search"]["gpu"]))
    write_csv(outputs.grids, grids)
    write_csv(outputs.best, best)
    heatmaps(cells, outputs.heatmaps)
    return {"pair": settings["pair"], "prh_clamp": opts["prh_clamp"]}


@step()
def layer_summary(inputs, outputs, settings):
    """All pairs' best layer pairs in one table, and the depth of the best layer against model size. Column
    ``reference_near_best``: the tables' cell (the final layers) scores within the layer grids' tolerance of the
    best pair (samesky/tolerances.yaml): "the best pair is not the final layer" is then a near-tie, which
    another computer may flip."""
    import pandas as pd

    from ..align.layers import depth_figure
    from ..tolerances import entry_for, load_entries

    best = pd.concat([pd.read_csv(p) for p in inputs.all("best")], ignore_index=True)
    tolerance = entry_for("alignment/pair/layer_grids.csv", load_entries(inputs.tolerances)).tolerances("mknn", best)
    best["reference_near_best"] = (best["mknn_best"] - best["mknn_reference"]) <= tolerance
    write_csv(outputs.table, best)
    depth_figure(best, outputs.figure)
