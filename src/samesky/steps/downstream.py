"""Issue 18's downstream tasks on frozen embeddings: the morphology sample (Galaxy Zoo DECaLS-like votes
joined by position), seed 003's classification protocol, the redshift probe and similarity search."""

from __future__ import annotations

import hashlib
import logging

from ..io import load_dataset_dir, read_embeddings, write_csv, write_parquet, write_text
from .runner import step

log = logging.getLogger(__name__)


def _one_thread():
    """scikit-learn's BLAS on one thread: these fits are small, and on a busy machine several BLAS threads
    per job made a logistic regression 20-50 times slower (measured)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def _aligned(path, ids):
    """The rows of an embeddings file for the given object ids, in their order (a clear error names any
    id the file lacks)."""
    file_ids, emb, _ = read_embeddings(path)
    return _select(path, file_ids, emb, ids)


def _select(path, file_ids, emb, ids):
    """The rows of ``emb`` (read from ``path``, rows as ``file_ids``) for ``ids``, in their order."""
    import numpy as np

    where = {str(i): n for n, i in enumerate(file_ids)}
    missing = [i for i in ids if str(i) not in where]
    if missing:
        raise ValueError(f"{path}: {len(missing)} of {len(ids)} objects have no embedding (e.g. {missing[:3]})")
    return emb[np.array([where[str(i)] for i in ids], dtype=np.int64)]


def sample_cutouts(inputs, sample):
    """The prepared RGB cutouts (``inputs.images``, rows as ``inputs.image_objects``) of the morphology
    sample's objects, in its order; an error names the file where an object has none."""
    import numpy as np

    rows = _image_rows(inputs.image_objects, sample["object_id"])
    if np.isnan(rows).any():
        raise ValueError(f"{inputs.image_objects}: {int(np.isnan(rows).sum())} objects of the morphology sample have "
                         "no prepared image")
    return np.load(inputs.images, mmap_mode="r")[rows.astype(np.int64)]


def _image_rows(objects_path, ids):
    """The row of each id in the prepared images (their ``objects.parquet``), NaN where it has none."""
    import numpy as np
    import pandas as pd

    image_ids = pd.read_parquet(objects_path)["object_id"].astype(str)
    return pd.Series(np.arange(len(image_ids)), index=image_ids.to_numpy()).reindex(list(map(str, ids))).to_numpy()


@step(reads=("downstream.morphology.pair", "downstream.morphology.radius_arcsec", "downstream.morphology.test_fraction",
             "downstream.morphology.split_seed", "downstream.morphology.votes", "downstream.redshift.pair",
             "downstream.redshift.column"))
def morphology_sample(inputs, outputs, settings):
    """The morphology pair's objects matched by position to the vote-fraction catalogue
    (``settings.catalogue``), with their class, soft labels, redshift (where the pair has the redshift
    column) and the fixed stratified split; and the class counts (with the agreement of each class with the
    mini universe's true morphology, where its truth is an input)."""
    import numpy as np
    import pandas as pd

    from ..crossmatch import match_one_to_one
    from ..downstream import classify, labels
    from ..probes.targets import read_catalogue

    opts, source = settings["downstream"]["morphology"], str(settings["catalogue"])
    redshift = settings["downstream"]["redshift"]
    z_column = redshift["column"] if redshift["pair"] == opts["pair"] else None  # kept for the neighbours' |dz|
    ds = load_dataset_dir(inputs.dataset)
    missing = [c for c in ("object_id", "ra", "dec") if c not in ds.column_names]
    if missing:
        raise labels.LabelError(f"{inputs.dataset}: pair {opts['pair']} has no column(s) {missing} to match the "
                                f"morphology catalogue on; has {ds.column_names}")
    columns = ["object_id", "ra", "dec"] + ([z_column] if z_column in ds.column_names else [])
    pair = ds.select_columns(columns).to_pandas().rename(columns={z_column: "z"} if z_column else {})
    catalogue = read_catalogue(source, "downstream.morphology.catalogue")
    votes = opts["votes"]
    labels.check_columns(catalogue, source, votes["kind"], votes["min_total_votes"])
    enough = labels.enough_votes(catalogue, votes["min_total_votes"])
    if not enough.all():
        log.info("morphology catalogue: %d of %d rows with fewer than %d votes on the first question left out",
                 int((~enough).sum()), len(catalogue), votes["min_total_votes"])
        catalogue = catalogue[enough].reset_index(drop=True)
    match = match_one_to_one(pair["ra"], pair["dec"], catalogue["ra"], catalogue["dec"], opts["radius_arcsec"],
                             names=(f"{inputs.dataset} (ra, dec)", f"{source} (ra, dec)"))
    log.info("morphology catalogue: %s", match.summary())
    matched = catalogue.iloc[match.right_index].reset_index(drop=True)
    sample = pair.iloc[match.left_index].reset_index(drop=True)
    sample["catalogue_separation_arcsec"] = match.separation_arcsec
    sample["label"] = labels.morphology_classes(matched, source, votes["kind"])
    soft = labels.soft_labels(matched, votes["kind"]).add_prefix("soft_")
    sample = pd.concat([sample, soft], axis=1)
    unlabelled = int((sample["label"] == "").sum())
    sample = sample[sample["label"] != ""]
    counts = sample["label"].value_counts()
    rare = [c for c, n in counts.items() if n < 5]  # a class needs a few objects on each side of the split
    if rare:
        log.warning("classes with fewer than 5 objects left out: %s", {c: int(counts[c]) for c in rare})
        sample = sample[~sample["label"].isin(rare)]
    if sample["label"].nunique() < 2:
        raise labels.LabelError(f"{source}: fewer than two classes among the {len(sample)} matched objects of pair "
                                f"{opts['pair']}; nothing to classify")
    sample = sample.sort_values("object_id", kind="stable").reset_index(drop=True)
    sample["split"] = np.where(classify.test_split(sample["label"].to_numpy(), opts["test_fraction"],
                                                   opts["split_seed"]), "test", "train")
    table = (sample.groupby("label")
             .agg(objects=("object_id", "size"), test=("split", lambda s: int((s == "test").sum())))
             .reindex([c for c in labels.CLASSES if c in set(sample["label"])]).reset_index())
    table["share"] = table["objects"] / table["objects"].sum()
    if "truth" in inputs:  # the mini universe: how often the volunteers' class is the true one
        truth = pd.read_parquet(inputs.truth, columns=["hsc_object_id", "morphology"])
        truth = truth[truth["hsc_object_id"] != ""].set_index("hsc_object_id")  # "" = not seen by HSC
        true_class = truth["morphology"].reindex(sample["object_id"].astype(str)).to_numpy()
        sample["true_morphology"] = true_class
        agree = pd.Series(true_class == sample["label"].to_numpy()).groupby(sample["label"].to_numpy()).mean()
        table["label_is_true_class"] = table["label"].map(agree)
    write_parquet(outputs.sample, sample)
    write_csv(outputs.labels, table)
    log.info("morphology sample: %d objects (%d test), %d matched without a class; classes %s", len(sample),
             int((sample["split"] == "test").sum()), unlabelled, counts.to_dict())
    content = hashlib.sha256(pd.util.hash_pandas_object(catalogue, index=False).values.tobytes()).hexdigest()
    return {"datasets": {"morphology_catalogue": {"source": source, "revision_resolved": f"sha256:{content}",
                                                  "n_rows": len(catalogue)}},
            "match": match.summary(), "unlabelled": unlabelled, "classes_left_out": rare}


@step(reads=("downstream.morphology.label_fractions", "downstream.morphology.supervised_epochs",
             "downstream.morphology.supervised_seeds", "embedding.device"))
def morphology_supervised(inputs, outputs, settings):
    """Seed 003's supervised baseline: a small CNN trained from scratch on the reference side's cutouts (the
    8-bit RGB images the models see) at each label fraction, scored on the same test set as the heads."""
    import pandas as pd
    import torch

    from ..downstream import classify, labels, supervised

    opts = settings["downstream"]["morphology"]
    torch.set_num_threads(settings["threads"])
    requested = settings["embedding"]["device"]  # as the embedding jobs read it (embed.run.pick_device, whose
    device = ("cuda" if torch.cuda.is_available() else "cpu") if requested == "auto" else requested  # import is slow)
    sample = pd.read_parquet(inputs.sample)
    images = sample_cutouts(inputs, sample)
    y = sample["label"].to_numpy(object)
    is_test = (sample["split"] == "test").to_numpy()

    def cnn(idx, seed):
        log.info("CNN from scratch: %d training images, seed %d, %d epochs", len(idx), seed, opts["supervised_epochs"])
        return supervised.fit_predict_cnn(images[idx], y[idx], images[is_test], seed, opts["supervised_epochs"],
                                          device=device)

    runs = classify.run_protocol(y, is_test, opts["label_fractions"], opts["supervised_seeds"], {"cnn": cnn},
                                 labels.CLASSES)
    write_csv(outputs.runs, runs)
    log.info("CNN from scratch, macro F1 by label fraction: %s",
             runs.groupby("label_fraction")["macro_f1"].mean().round(3).to_dict())
    return {"device": device, "image_shape": list(images.shape[1:])}


@step(reads=("downstream.morphology.label_fractions", "downstream.morphology.seeds", "downstream.morphology.heads",
             "downstream.morphology.pair", "downstream.morphology.test_fraction"))  # the last two: the caption
def morphology_classification(inputs, outputs, settings):
    """Seed 003's protocol on every embedding of the morphology pair (``settings.embeddings``): each head at
    each label fraction and seed, the fixed test set; per-run scores, their summary over seeds, the
    Markdown table and the two figures (F1 against label fraction, F1 against parameters)."""
    import pandas as pd

    from ..downstream import classify, figures, supervised
    from ..report import caption

    sample = pd.read_parquet(inputs.sample)
    is_test = (sample["split"] == "test").to_numpy()
    parts = heads_on(sample, settings["embeddings"], settings["downstream"]["morphology"],
                     ("survey", "model", "family", "size", "params_m", "modality"))
    if "supervised" in inputs:  # seed 003's supervised baseline, trained on the reference side's pixels
        parts.append(pd.read_csv(inputs.supervised).assign(
            survey=settings["images_of"], model="cnn-scratch", family="cnn (supervised)", size="scratch",
            params_m=supervised.PARAMS_M, modality="image"))
    runs = pd.concat(parts, ignore_index=True)
    lead = ["survey", "model", "family", "size", "params_m", "modality"]
    runs = runs[lead + [c for c in runs.columns if c not in lead]]
    summary = classify.summarise(runs)
    write_csv(outputs.runs, runs)
    write_csv(outputs.summary, summary)
    write_text(outputs.markdown, figures.f1_markdown(summary, caption(settings["caption"], settings)))
    figures.f1_vs_fraction(summary, outputs.fraction_figure)
    figures.f1_vs_params(summary, outputs.params_figure)
    return {"objects": len(sample), "test_objects": int(is_test.sum())}


def heads_on(sample, entries, opts, keys) -> list:
    """Seed 003's protocol (``opts``: downstream.morphology) on each embeddings file of ``entries`` for the
    morphology ``sample``: one frame of runs per entry, tagged with the entry's ``keys``."""
    from ..downstream import classify, labels

    is_test = (sample["split"] == "test").to_numpy()
    parts = []
    with _one_thread():
        for entry in entries:
            x = _aligned(entry["path"], sample["object_id"].astype(str).tolist())
            runs = classify.classify_embedding(x, sample["label"].to_numpy(), is_test, opts["label_fractions"],
                                               opts["seeds"], opts["heads"], labels.CLASSES)
            parts.append(runs.assign(**{k: entry[k] for k in keys}))
            best = runs[runs["head"] != "chance"].groupby("head")["macro_f1"].mean().round(3).to_dict()
            log.info("%s: mean macro F1 %s", entry["path"], best)
    return parts


@step(reads=("downstream.redshift.pair", "downstream.redshift.column", "downstream.redshift.test_fraction",
             "downstream.redshift.split_seed", "downstream.redshift.n_neighbours", "downstream.redshift.mlp"))
def redshift_probe(inputs, outputs, settings):
    """Zero-shot kNN and few-shot MLP redshift probes on every embedding of the redshift pair
    (``settings.embeddings``), on one fixed split: scores, test predictions and the scatter plots."""
    import numpy as np
    import pandas as pd

    from ..downstream import figures, redshift
    from ..probes.targets import split_labels

    opts = settings["downstream"]["redshift"]
    ds = load_dataset_dir(inputs.dataset)
    if opts["column"] not in ds.column_names:
        raise ValueError(f"{inputs.dataset}: pair {opts['pair']} has no column '{opts['column']}' (config "
                         f"downstream.redshift.column); has {ds.column_names}")
    frame = ds.select_columns(["object_id", opts["column"]]).to_pandas()
    z_all = pd.to_numeric(frame[opts["column"]], errors="coerce").to_numpy(float)
    ok = np.isfinite(z_all) & (z_all > -1)
    if not ok.all():
        log.warning("%d of %d objects have no usable %s; left out", int((~ok).sum()), len(ok), opts["column"])
    frame = frame[ok].sort_values("object_id", kind="stable").reset_index(drop=True)
    z = frame[opts["column"]].to_numpy(float)
    is_test = split_labels(len(frame), opts["test_fraction"], opts["split_seed"]) == "test"
    rows, preds = [], []
    with _one_thread():
        for entry in settings["embeddings"]:
            x = _aligned(entry["path"], frame["object_id"].astype(str).tolist())
            for method, pred in redshift.probe_redshift(x, z, is_test, opts["split_seed"], opts["n_neighbours"],
                                                        opts["mlp"]).items():
                rows.append({"survey": entry["survey"], "model": entry["model"], "method": method,
                             "n_train": int((~is_test).sum()), "n_test": int(is_test.sum()),
                             **redshift.redshift_scores(z[is_test], pred)})
                preds.append(pd.DataFrame({"survey": entry["survey"], "model": entry["model"], "method": method,
                                           "object_id": frame["object_id"][is_test].to_numpy(), "z": z[is_test],
                                           "z_pred": pred}))
    table = pd.DataFrame(rows)
    write_csv(outputs.table, table)
    predictions = pd.concat(preds, ignore_index=True)
    write_parquet(outputs.predictions, predictions)
    figures.redshift_scatter(predictions, table, outputs.figure)
    return {"objects": len(frame), "test_objects": int(is_test.sum())}


@step(reads=("downstream.similarity.k",))
def similarity_search(inputs, outputs, settings):
    """Recall@k of the same object for every retrieval task in ``settings.tasks`` (in-modal across surveys
    and spectrographs, cross-modal through a CCA or an aligned space); the neighbour agreement of every
    embedding of the morphology pair (``settings.neighbour_embeddings``); and the example figure."""
    import numpy as np
    import pandas as pd

    from ..downstream import figures, retrieval
    from ..probes.targets import split_labels

    ks = sorted(settings["downstream"]["similarity"]["k"])
    rows = []
    for task in settings["tasks"]:
        q_ids, query, _ = read_embeddings(task["query"])  # each file read once: ids and rows
        g_ids, gallery, _ = read_embeddings(task["gallery"])
        common = sorted(set(map(str, q_ids)) & set(map(str, g_ids)))
        name = f"{task['kind']} {task['query_label']} -> {task['gallery_label']}"
        if len(common) <= max(ks):
            log.warning("%s: only %d objects in both; skipped", name, len(common))
            continue
        query = _select(task["query"], q_ids, query, common)
        gallery = _select(task["gallery"], g_ids, gallery, common)
        if task["map"] == "cca":
            test = split_labels(len(common), task["test_fraction"], task["split_seed"]) == "test"
            with _one_thread():
                query, gallery = retrieval.cca_common_space(query[~test], gallery[~test], query[test], gallery[test],
                                                            task["n_components"])
        elif query.shape[1] != gallery.shape[1]:
            raise ValueError(f"{name}: map 'direct' needs one space, but the embeddings have {query.shape[1]} and "
                             f"{gallery.shape[1]} dimensions")
        ranks = retrieval.true_match_ranks(query, gallery)
        rows.append({"kind": task["kind"], "pair": task["pair"], "query": task["query_label"],
                     "gallery": task["gallery_label"], "model": task["model"], "map": task["map"],
                     "objects": len(ranks), "median_rank": float(np.median(ranks)) + 1,
                     **{f"recall@{k}": v for k, v in retrieval.recall_at(ranks, ks).items()},
                     **{f"chance@{k}": k / len(ranks) for k in ks}})
    recall = pd.DataFrame(rows)
    write_csv(outputs.recall, recall)

    sample = pd.read_parquet(inputs.sample)
    ids = sample["object_id"].astype(str).tolist()
    z = sample["z"].to_numpy(float) if "z" in sample.columns else None
    agreement = []
    for entry in settings["neighbour_embeddings"]:
        nn = retrieval.neighbours(_aligned(entry["path"], ids), max(ks))
        for k in ks:
            agreement.append({"survey": entry["survey"], "model": entry["model"], "k": k,
                              **retrieval.neighbour_agreement(nn[:, :k], sample["label"].to_numpy(), z)})
    write_csv(outputs.neighbours, pd.DataFrame(agreement))
    figures.recall_bars(recall, ks, outputs.recall_figure)

    examples = settings["examples"]
    images = np.load(inputs.images, mmap_mode="r")
    nn = retrieval.neighbours(_aligned(examples["path"], ids), examples["neighbours"])
    queries = figures.example_queries(sample, seed=0)
    figures.neighbour_thumbnails(images, _image_rows(inputs.image_objects, ids), sample, queries, nn,
                                 f"{examples['survey']}/{examples['model']}", outputs.examples_figure)
    return {"retrieval_tasks": len(recall)}
