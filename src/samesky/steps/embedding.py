"""Models and embeddings: fetch (or make) each model, pre-train the mini Specformer, resample SDSS spectra
onto the DESI grid, prepare each image side's RGB once, embed every side a model reads with that model
loaded once, and list every embeddings file."""

from __future__ import annotations

import logging
import time

from ..io import load_dataset_dir, read_embeddings, save_dataset, write_csv, write_embeddings
from ..provenance import lineage, read_records
from ..surveys import modality_of
from .runner import step

log = logging.getLogger(__name__)

# The pre-trained weights depend on torch's intra-op thread count (the order of float sums), so it is fixed:
# every machine, whatever its cores, gets the same mini Specformer (the rule asks for as many threads). One:
# a cropped step's matrices are small, and with a second thread it ran 4x slower whenever another job
# held a core (OpenMP waits at every barrier), as on a 2-core machine running `--cores 8` (measured).
PRETRAINING_THREADS = 1


@step(reads=("model_weights", "seed"))
def fetch_model(inputs, outputs, settings):
    """The model ``settings.spec``: a random-weights control of the learned model ``inputs.learned``; weights
    that ship in a package or lie in a local folder; a small random instance (model_weights mini); or the
    released weights, downloaded here or, where other models load the same files (``inputs.shared``), once
    for all of them."""
    from ..embed import models
    from ..hub import is_local

    spec = settings["spec"]
    if spec.is_control:
        models.write_control(spec, inputs.learned, outputs.model, seed=settings["seed"])
    elif spec.weights == "package":
        models.write_package_model(spec, outputs.model)
    elif is_local(spec.hub_id):
        models.copy_local_model(spec, outputs.model)
    elif settings["model_weights"] == "mini":
        models.write_mini_model(spec, outputs.model, seed=settings["seed"])
    else:
        models.download_model(spec, outputs.model, shared=inputs.shared if "shared" in inputs else None)


@step()
def fetch_shared_weights(inputs, outputs, settings):
    """The released files that several models load (``settings.spec``, the first of them), downloaded once."""
    from ..embed.models import download_model

    download_model(settings["spec"], outputs.weights)


@step(reads=("mini_specformer_pretraining", "seed"), critical_path=True)
def pretrain_mini_specformer(inputs, outputs, settings):
    """Pre-train the random mini Specformer (``inputs.model``) on the spectra of ``inputs.spectra`` with
    AstroCLIP's masked reconstruction; the spectra's lineage goes into the model's manifest."""
    import torch

    from ..embed.models import pretrain_mini_specformer as pretrain
    from ..embed.spectra import flux_matrix

    torch.set_num_threads(PRETRAINING_THREADS)
    spectra, skipped = flux_matrix(load_dataset_dir(inputs.spectra))
    source = {"path": inputs.spectra, "datasets": lineage(read_records(inputs.all("provenance")))["datasets"],
              "n_left_out": len(skipped)}
    pretrain(inputs.model, outputs.model, spectra, settings["mini_specformer_pretraining"], settings["seed"], source)


@step()
def resample_spectra(inputs, outputs, settings):
    """One pair's spectra of survey ``settings.survey`` (SDSS) resampled onto the DESI coadd grid."""
    from ..embed.spectra import resample_dataset

    resampled, report = resample_dataset(load_dataset_dir(inputs.dataset), f"{settings['survey']}_spectrum")
    done, skipped = report["status"] == "resampled", report["status"] == "skipped"
    log.info("%d spectra resampled, %d skipped; median %s DESI pixels outside coverage", done.sum(), skipped.sum(),
             report.loc[done, "n_outside"].median())
    save_dataset(resampled, outputs.dataset)
    write_csv(outputs.summary, report)
    return {"survey": settings["survey"], "grid": "np.linspace(3600, 9824, 7781)", "n_resampled": int(done.sum()),
            "skipped": report.loc[skipped, "object_id"].tolist()}


@step(reads=("embedding.scaling_images", "embedding.blank_rule"))
def prepare_images(inputs, outputs, settings):
    """Side ``settings.survey`` of a pair as 8-bit RGB, once for every model that takes RGB: the dataset-wide
    percentile scaling, then every image scaled (``outputs.rgb``, memory-mappable) and its row facts."""
    from ..embed.images import prepare_rgb, write_objects

    survey = settings["survey"]
    prepared = prepare_rgb(load_dataset_dir(inputs.dataset), f"{survey}_image", survey,
                           settings["embedding"]["scaling_images"], rgb_path=outputs.rgb,
                           blank_rule=settings["embedding"]["blank_rule"])
    write_objects(prepared, outputs.objects)
    return {"survey": survey, "n_images": len(prepared.ids), "preprocessing": prepared.metadata()}


@step(reads=("embedding",), records=True)
def embed(inputs, outputs, settings, record):
    """Every side ``settings.sides`` of one model ``settings.spec``, the model loaded once: from the prepared
    RGB images (``inputs.images``, ``inputs.objects``) or the pair datasets (``inputs.datasets``: image
    flux, spectra), each written with its record into the model's folder ``outputs.embeddings``."""
    from pathlib import Path

    from ..embed.images import read_prepared
    from ..embed.models import load_model, model_record, read_manifest
    from ..embed.run import embed_images, embed_prepared, embed_spectra, pick_device
    from ..io import atomic_path, layers_path, write_json, write_layers

    opts, spec = settings["embedding"], settings["spec"]
    device = pick_device(opts["device"])
    model = load_model(inputs.model, spec, device=device)
    layered = settings["write_layers"] and len(model.layer_names()) > 1
    if spec.adapter == "astropt":
        model.transposed = opts["astropt_input"] == "transposed"
    common = {"batch_size": opts["batch_size"], "device": device, "bf16": opts["bf16"]}
    model_info = model_record(read_manifest(inputs.model), spec, pooling=model.pooling_label)
    sources = zip(inputs.all("images"), inputs.all("objects")) if spec.takes == "rgb" else inputs.all("datasets")
    with atomic_path(outputs.embeddings, is_dir=True) as folder:
        for side, source, upstream in zip(settings["sides"], sources, inputs.all("provenance")):
            pair, survey = side["pair"], side["survey"]
            side_model = model.with_pooling(side["specformer_pooling"])
            start = time.time()
            layer_arrays = None
            if spec.takes == "rgb":
                prepared = read_prepared(*source)
                log.info("%s on %s %s: %d prepared images, device %s", spec.name, pair, survey, len(prepared.ids), device)
                ids, emb, extra, meta, *layer_arrays = embed_prepared(
                    prepared, side_model, workers=opts["loader_workers"], layers=layered, **common)
            else:
                ds = load_dataset_dir(source)
                log.info("%s on %s %s: %d objects, device %s", spec.name, pair, survey, len(ds), device)
                if modality_of(survey) == "image":  # image flux, scaled by the model itself (AstroCLIP, AION)
                    ids, emb, extra, meta, *layer_arrays = embed_images(ds, f"{survey}_image", survey, side_model,
                                                                        layers=layered, **common)
                else:
                    ids, emb, extra, meta, *layer_arrays = embed_spectra(ds, f"{survey}_spectrum", side_model,
                                                                         layers=layered, **common)
            seconds = time.time() - start
            info = {
                "model": model_info,
                "data": {"pair": pair, "survey": survey, "n_objects": len(ids), "dim": int(emb.shape[1]) if len(ids) else 0},
                "run": {"device": str(device), "bf16": bool(opts["bf16"] and device.type == "cuda"),
                        **({"astropt_input": opts["astropt_input"]} if spec.adapter == "astropt" else {}),
                        "batch_size": opts["batch_size"], "seconds": round(seconds, 3)},
                **meta,
            }
            path = Path(folder) / pair / f"{survey}.parquet"
            write_embeddings(path, ids, emb, extra, metadata=info)
            if layer_arrays:  # every block's pooled output beside the embedding (alignment.layers)
                write_layers(layers_path(path), ids, side_model.layer_names(), layer_arrays[0],
                             side_model.reference_layer, metadata=info)
            write_json(path.with_suffix(".provenance.json"), record([upstream], models={spec.name: model_info}, **info))
            log.info("%s %s: wrote %d x %d embeddings in %.1f s", pair, survey, len(ids), info["data"]["dim"], seconds)


@step()
def embedding_summary(inputs, outputs, settings):
    """One row per embeddings file: pair, side, model, size, weights, pooling, objects, dimension."""
    import pandas as pd

    rows = []
    for path in settings["files"]:
        ids, emb, meta = read_embeddings(path)
        rows.append({"pair": meta["data"]["pair"], "survey": meta["data"]["survey"],
                     "family": meta["model"]["family"], "size": meta["model"]["size"],
                     "params_m": meta["model"]["params_m"], "weights": meta["model"]["weights"],
                     "pooling": meta["model"]["pooling"], "n_objects": len(ids), "dim": emb.shape[1]})
    write_csv(outputs.table, pd.DataFrame(rows))


# Released embeddings (model_weights: released): fetched, audited, then written in the layout above ------


@step(reads=("released_embeddings",))
def fetch_released(inputs, outputs, settings):
    """One released file (``settings.path`` in the repository) of one model on one pair."""
    from ..provenance import dataset_entry
    from ..released import fetch_released as fetch

    r = settings["released_embeddings"]
    info = fetch(r["source"], r["revision"], settings["path"], outputs.file)
    log.info("released %s of %s (revision %s)", settings["path"], r["source"], info["revision_resolved"])
    return {"datasets": {f"released:{settings['path']}": dataset_entry(info)}, **info}


@step(reads=("released_embeddings.audit", "seed"))
def audit_released(inputs, outputs, settings):
    """Every released file: are its two sides' rows the same objects (ids, or the scramble check)? And in a
    spectroscopic pair, does every file carry the same spectrum embeddings in the same order?"""
    import pandas as pd

    from ..registry import spec_by_name
    from ..released import audit_file, same_spectra

    opts = settings["released_embeddings"]["audit"]
    rows = []
    for f, path in zip(settings["files"], inputs.all("files")):
        rows.append(audit_file(path, f["pair"], spec_by_name(f["model"]), f["reference"], f["other"], opts["k"],
                               opts["n_permutations"], opts["alpha"], settings["seed"]))
        log.info("%s", rows[-1])
    table = pd.DataFrame(rows)
    table["same_spectra_as_first_file"] = ""
    for pair in table["pair"].unique():
        f0 = next(f for f in settings["files"] if f["pair"] == pair)
        if modality_of(f0["other"]) != "spectrum":
            continue
        files = {f["model"]: p for f, p in zip(settings["files"], inputs.all("files")) if f["pair"] == pair}
        same = same_spectra(files, {m: spec_by_name(m) for m in files}, f0["other"])
        for model, ok in same.items():
            table.loc[(table["pair"] == pair) & (table["model"] == model), "same_spectra_as_first_file"] = \
                "yes" if ok else "NO: the files' row orders differ"
    write_csv(outputs.table, table)
    bad = table[~table["verdict"].eq("paired") | table["same_spectra_as_first_file"].str.startswith("NO")]
    if len(bad):
        log.warning("released files not usable: %s", bad[["pair", "model", "verdict"]].to_dict("records"))


@step(records=True)
def released_embeddings(inputs, outputs, settings, record):
    """One model's sides (``settings.sides``: pair, survey, and the released file and model that holds it)
    as embeddings files, refused where the audit (``inputs.audit``) found the file's rows not paired."""
    from pathlib import Path

    import pandas as pd

    from ..embed.models import model_record
    from ..io import atomic_path, write_json
    from ..registry import spec_by_name
    from ..released import ReleasedError, to_embeddings

    audit = pd.read_csv(inputs.audit, keep_default_na=False)
    spec = settings["spec"]
    with atomic_path(outputs.embeddings, is_dir=True) as folder:
        for side, path, upstream in zip(settings["sides"], inputs.all("files"), inputs.all("provenance")):
            row = audit[(audit["pair"] == side["pair"]) & (audit["model"] == side["file_model"])].iloc[0]
            if row["verdict"] != "paired" or row["same_spectra_as_first_file"].startswith("NO"):
                raise ReleasedError(
                    f"{path} ({side['released_path']}): refused, its rows are not paired ({row['verdict']}; MKNN {row['mknn']:.4f} against a "
                    f"null of {row['null_mean']:.4f}, p = {row['p_value']:.3g}; same spectra: "
                    f"{row['same_spectra_as_first_file'] or 'n/a'}); see {inputs.audit}. Leave {side['file_model']} "
                    f"out of `models`, or take a revision whose file is fixed")
            ids, emb = to_embeddings(path, spec_by_name(side["file_model"]), side["survey"])
            model_info = {**model_record({"hub_id": None, "revision": None, "weights": "released embeddings",
                                          "seed": None}, spec), "released_file": str(path)}
            info = {"model": model_info,
                    "data": {"pair": side["pair"], "survey": side["survey"], "n_objects": len(ids),
                             "dim": int(emb.shape[1])},
                    "released": {"file": str(path), "column_of": side["file_model"],
                                 "rows_joined_by": row["rows_joined_by"], "audit": {
                                     k: row[k] for k in ("mknn", "null_mean", "p_value", "verdict")}}}
            out = Path(folder) / side["pair"] / f"{side['survey']}.parquet"
            write_embeddings(out, ids, emb, metadata=info)
            write_json(out.with_suffix(".provenance.json"), record([upstream], models={spec.name: model_info}, **info))
            log.info("%s %s: %d x %d released embeddings (%s)", side["pair"], side["survey"], len(ids), emb.shape[1],
                     row["rows_joined_by"])
