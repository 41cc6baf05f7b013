"""Models and embeddings: fetch (or make) each model, pre-train the mini Specformer, resample SDSS spectra
onto the DESI grid, embed one side of one pair with one model, and list every embeddings file."""

from __future__ import annotations

import logging
import time

import pandas as pd

from ..io import load_dataset_dir, read_embeddings, save_dataset, write_csv, write_embeddings
from ..provenance import lineage, read_records
from ..surveys import modality_of
from .runner import step

log = logging.getLogger(__name__)


@step(reads=("model_weights", "seed"))
def fetch_model(inputs, outputs, settings):
    """The model ``settings.spec``: a small random instance (model_weights mini) or the released weights."""
    from ..embed.models import download_model, write_mini_model

    if settings["model_weights"] == "mini":
        write_mini_model(settings["spec"], outputs.model, seed=settings["seed"])
    else:
        download_model(settings["spec"], outputs.model)


@step(reads=("mini_specformer_pretraining", "seed"))
def pretrain_mini_specformer(inputs, outputs, settings):
    """Pre-train the random mini Specformer (``inputs.model``) on the spectra of ``inputs.spectra`` with
    AstroCLIP's masked reconstruction; the spectra's lineage goes into the model's manifest."""
    import torch

    from ..embed.models import pretrain_mini_specformer as pretrain
    from ..embed.spectra import flux_matrix

    torch.set_num_threads(settings["threads"])
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


@step(reads=("embedding",))
def embed(inputs, outputs, settings):
    """Embed side ``settings.survey`` of pair ``settings.pair`` with the model ``settings.spec``."""
    from ..embed.models import load_model, model_record, read_manifest
    from ..embed.run import embed_images, embed_spectra, pick_device

    opts, spec, survey = settings["embedding"], settings["spec"], settings["survey"]
    ds = load_dataset_dir(inputs.dataset)
    model = load_model(inputs.model, specformer_pooling=settings["specformer_pooling"])
    device = pick_device(opts["device"])
    log.info("%s on %s %s: %d objects, device %s", spec.name, settings["pair"], survey, len(ds), device)
    start = time.time()
    if modality_of(survey) == "image":
        ids, emb, extra, meta = embed_images(ds, f"{survey}_image", survey, model, batch_size=opts["batch_size"],
                                             device=device, bf16=opts["bf16"], scaling_images=opts["scaling_images"])
    else:
        ids, emb, extra, meta = embed_spectra(ds, f"{survey}_spectrum", model, batch_size=opts["batch_size"],
                                              device=device, bf16=opts["bf16"])
    seconds = time.time() - start
    info = {
        "model": model_record(read_manifest(inputs.model), spec),
        "data": {"pair": settings["pair"], "survey": survey, "n_objects": len(ids),
                 "dim": int(emb.shape[1]) if len(ids) else 0},
        "run": {"device": str(device), "bf16": bool(opts["bf16"] and device.type == "cuda"),
                "batch_size": opts["batch_size"], "seconds": round(seconds, 3)},
        **meta,
    }
    write_embeddings(outputs.embeddings, ids, emb, extra, metadata=info)
    log.info("wrote %d x %d embeddings in %.1f s", len(ids), info["data"]["dim"], seconds)
    return {"models": {spec.name: info["model"]}, **info}


@step()
def embedding_summary(inputs, outputs, settings):
    """One row per embeddings file: pair, side, model, size, weights, pooling, objects, dimension."""
    rows = []
    for path in inputs.all("embeddings"):
        ids, emb, meta = read_embeddings(path)
        rows.append({"pair": meta["data"]["pair"], "survey": meta["data"]["survey"],
                     "family": meta["model"]["family"], "size": meta["model"]["size"],
                     "params_m": meta["model"]["params_m"], "weights": meta["model"]["weights"],
                     "pooling": meta["model"]["pooling"], "n_objects": len(ids), "dim": emb.shape[1]})
    write_csv(outputs.table, pd.DataFrame(rows))
