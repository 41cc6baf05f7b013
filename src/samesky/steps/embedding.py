"""Models and embeddings: fetch (or make) each model, pre-train the mini Specformer, resample SDSS spectra
onto the DESI grid, prepare each image side's RGB once, embed every side a model reads with that model
loaded once, and list every embeddings file."""

from __future__ import annotations

import logging
import os
import time

from ..io import layers_path, load_dataset_dir, read_embeddings, save_dataset, write_csv, write_embeddings
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


@step(reads=("embedding.scaling_images", "embedding.blank_rule", "embedding.stretch", "embedding.stretch_a"))
def prepare_images(inputs, outputs, settings):
    """Side ``settings.survey`` of a pair as 8-bit RGB, once for every model that takes RGB: the dataset-wide
    percentile scaling and the stretch (``embedding.stretch``), then every image scaled (``outputs.rgb``,
    memory-mappable) and its row facts."""
    from ..embed.images import prepare_rgb, write_objects

    survey, opts = settings["survey"], settings["embedding"]
    prepared = prepare_rgb(load_dataset_dir(inputs.dataset), f"{survey}_image", survey, opts["scaling_images"],
                           rgb_path=outputs.rgb, blank_rule=opts["blank_rule"], stretch=opts["stretch"],
                           a=opts["stretch_a"])
    write_objects(prepared, outputs.objects)
    return {"survey": survey, "n_images": len(prepared.ids), "preprocessing": prepared.metadata()}


@step(reads=("embedding.scaling_images", "embedding.blank_rule", "preprocessing.crop"))
def prepare_variant_images(inputs, outputs, settings):
    """Side ``settings.survey`` of a pair prepared as preprocessing variant ``settings.variant`` (issue 26):
    its stretch, then (``size``, ``crop``) samesky.embed.geometry on the 8-bit cutouts, batch by batch into
    a memory map, so a paper-sized side never sits in memory whole."""
    import numpy as np

    from ..embed import geometry
    from ..embed.images import prepare_rgb, write_objects
    from ..io import atomic_path

    survey, opts, variant = settings["survey"], settings["embedding"], settings["variant"]
    geometric = bool(variant["size"] or variant["crop"])
    stretched_path = f"{outputs.rgb}.stretched.npy" if geometric else outputs.rgb
    prepared = prepare_rgb(load_dataset_dir(inputs.dataset), f"{survey}_image", survey, opts["scaling_images"],
                           rgb_path=stretched_path, blank_rule=opts["blank_rule"], stretch=variant["stretch"],
                           a=variant["stretch_a"])
    facts = {"variant": variant, "survey": survey, "n_images": len(prepared.ids)}
    if geometric:
        crop = settings["preprocessing"]["crop"]
        n, h, w, _ = prepared.rgb.shape
        size = (variant["size"], variant["size"]) if variant["size"] else (h, w)
        half, uncropped = np.full(n, h / 2.0), np.zeros(n, bool)
        with atomic_path(outputs.rgb) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *size, 3))
            for start in range(0, n, 512):
                chunk = np.asarray(prepared.rgb[start:start + 512])
                if variant["crop"]:
                    result = geometry.close_crop(chunk, crop["extent"], crop["min_size"], crop["nsigma"],
                                                 crop["npixels"], skip=prepared.blank[start:start + 512])
                    chunk = result.rgb
                    half[start:start + len(chunk)], uncropped[start:start + len(chunk)] = result.half_size, result.uncropped
                out[start:start + len(chunk)] = geometry.resize(chunk, variant["size"]) if variant["size"] else chunk
            out.flush()
            del out
        del prepared.rgb
        os.remove(stretched_path)
        prepared.rgb = np.load(outputs.rgb, mmap_mode="r")
        if variant["crop"]:
            kept = ~prepared.blank & ~uncropped
            facts["crop"] = {**crop, "uncropped": int(uncropped[~prepared.blank].sum()),
                             "half_size_px_median": float(np.median(half[kept])) if kept.any() else None}
            log.info("%s: close crop, median half side %s px; %d images without a segment under the centre kept "
                     "whole", survey, facts["crop"]["half_size_px_median"], facts["crop"]["uncropped"])
    write_objects(prepared, outputs.objects)
    return {**facts, "preprocessing": prepared.metadata()}


@step(reads=("embedding",), records=True)
def embed(inputs, outputs, settings, record):
    """Every side ``settings.sides`` of one model ``settings.spec``, the model loaded once: from the prepared
    RGB images (``inputs.images``, ``inputs.objects``) or the pair datasets (``inputs.datasets``: image
    flux, spectra), each written with its record into the model's folder ``outputs.embeddings``."""
    _embed(inputs, outputs, settings, record)


@step(reads=("embedding",), records=True)
def embed_variant(inputs, outputs, settings, record):
    """``embed`` on one preprocessing variant's images (``settings.variant``), at its input size."""
    _embed(inputs, outputs, settings, record, variant=settings["variant"])


def _embed(inputs, outputs, settings, record, variant=None):
    from pathlib import Path

    from ..embed.images import read_prepared
    from ..embed.models import load_model, model_record, read_manifest
    from ..embed.run import embed_images, embed_prepared, embed_spectra, pick_device
    from ..io import atomic_path, layers_path, write_json, write_layers

    opts, spec = settings["embedding"], settings["spec"]
    device = pick_device(opts["device"])
    model = load_model(inputs.model, spec, device=device)
    if variant and variant["size"]:
        model.set_input_size(variant["size"])
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
                **({"preprocessing_variant": variant} if variant else {}),
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

    from ..io import not_released

    rows = []
    for path in settings["files"]:
        if not_released(path):
            continue
        ids, emb, meta = read_embeddings(path)
        rows.append({"pair": meta["data"]["pair"], "survey": meta["data"]["survey"],
                     "family": meta["model"]["family"], "size": meta["model"]["size"],
                     "params_m": meta["model"]["params_m"], "weights": meta["model"]["weights"],
                     "pooling": meta["model"]["pooling"], "n_objects": len(ids), "dim": emb.shape[1]})
    write_csv(outputs.table, pd.DataFrame(rows))


# Released embeddings (model_weights: released): fetched, audited, then written in the layout above ------


@step(reads=("released_embeddings", "alignment.layers"))
def list_released(inputs, outputs, settings):
    """Each released repository listed once at its revision (the layerwise one too where the layer grids
    read it), and every (pair, model, kind) the run reads (``settings.requests``) resolved among the names
    the peer's code uses; ``released_embeddings.strict`` makes a file not released an error."""
    from ..io import write_json
    from ..provenance import dataset_entry
    from ..registry import spec_by_name
    from ..released import NOT_RELEASED, ReleasedError, list_repository, resolve

    opts = settings["released_embeddings"]
    repositories = {"final": list_repository(opts["source"], opts["revision"])}
    if settings["alignment"]["layers"] != "final" and opts["layerwise"]:
        repositories["layers"] = list_repository(opts["layerwise"]["source"], opts["layerwise"]["revision"])
    resolutions = []
    for request in settings["requests"]:
        if request["kind"] not in repositories:
            continue
        found = resolve(repositories[request["kind"]]["files"], request["mode"], spec_by_name(request["model"]),
                        request["reference"], request["other"], layerwise=request["kind"] == "layers")
        resolutions.append({**request, **found})
        log.info("%s %s (%s): %s %s", request["pair"], request["model"], request["kind"], found["status"],
                 " ".join(sorted(set(found["paths"].values()))) or f"(tried {', '.join(found['tried'])})")
    missing = [r for r in resolutions if r["status"] == NOT_RELEASED]
    if missing and opts["strict"]:
        raise ReleasedError("released_embeddings.strict: not in the repository at this revision:\n" + "\n".join(
            f"  {r['pair']} {r['model']} ({r['kind']}): tried {', '.join(r['tried'])}" for r in missing))
    write_json(outputs.listing, {"repositories": repositories, "resolutions": resolutions})
    return {"datasets": {f"released:{kind}:{r['source']}": dataset_entry(r) for kind, r in repositories.items()},
            "not_released": [(r["pair"], r["model"], r["kind"]) for r in missing]}


@step()
def fetch_released(inputs, outputs, settings):
    """One released (pair, model, kind) as its listing resolved it, in the normalised layout."""
    import json
    from pathlib import Path

    from ..provenance import dataset_entry
    from ..registry import spec_by_name
    from ..released import fetch_released as fetch

    listing = json.loads(Path(inputs.listing).read_text())
    resolution = next(r for r in listing["resolutions"] if (r["pair"], r["model"], r["kind"]) ==
                      (settings["pair"], settings["model"], settings["kind"]))
    repository = listing["repositories"][settings["kind"]]
    info = fetch(repository, resolution, spec_by_name(settings["model"]), resolution["reference"],
                 resolution["other"], outputs.file)
    log.info("released %s %s (%s): %s %s of %s (revision %s)", settings["pair"], settings["model"],
             settings["kind"], info["status"], " ".join(sorted(set(info["paths"].values()))), info["source"],
             info["revision_resolved"])
    return {"datasets": {f"released:{settings['kind']}:{info['source']}": dataset_entry(info)}, **info}


fetch_released_layers = step(name="fetch_released_layers")(fetch_released.func)  # a layerwise file: the same step


@step(reads=("released_embeddings.audit", "seed"))
def audit_released(inputs, outputs, settings):
    """Every released file: are its two sides' rows the same objects (ids, or the scramble check)? In a
    spectroscopic pair, does every file carry the same spectrum embeddings in the same order? And which
    files the repository does not hold."""
    import pandas as pd

    from ..registry import spec_by_name
    from ..released import audit_columns, audit_file, released_meta, same_spectra

    opts = settings["released_embeddings"]["audit"]
    entries = list(zip(settings["files"], inputs.all("files")))
    rows = []
    for f, path in entries:
        rows.append(audit_file(path, f["pair"], spec_by_name(f["model"]), f["reference"], f["other"], opts["k"],
                               opts["n_permutations"], opts["alpha"], settings["seed"], layerwise=f["kind"] == "layers"))
        log.info("%s", rows[-1])
    table = pd.DataFrame(rows)
    table["same_spectra_as_first_file"] = ""
    for pair, kind in table[["pair", "kind"]].drop_duplicates().itertuples(index=False):
        group = [(f, p) for f, p in entries if (f["pair"], f["kind"]) == (pair, kind)]
        if modality_of(group[0][0]["other"]) != "spectrum":
            continue
        held = [(f, p) for f, p in group if released_meta(p).get("status") != "not released"]
        columns = {f["model"]: audit_columns(p, spec_by_name(f["model"]), f["reference"], f["other"], kind == "layers")[1]
                   for f, p in held}
        same = same_spectra({f["model"]: p for f, p in held}, columns)
        for model, ok in same.items():
            where = (table["pair"] == pair) & (table["kind"] == kind) & (table["model"] == model)
            table.loc[where, "same_spectra_as_first_file"] = "yes" if ok else "NO: the files' row orders differ"
    write_csv(outputs.table, table)
    bad = table[~table["verdict"].eq("paired") & ~table["verdict"].str.startswith("not released")
                | table["same_spectra_as_first_file"].str.startswith("NO")]
    if len(bad):
        log.warning("released files not usable: %s", bad[["pair", "model", "kind", "verdict"]].to_dict("records"))
    absent = table[table["verdict"].str.startswith("not released")]
    if len(absent):
        log.warning("not released at this revision (left out of the tables): %s",
                    absent[["pair", "model", "kind"]].to_dict("records"))


@step(records=True)
def released_embeddings(inputs, outputs, settings, record):
    """One model's sides (``settings.sides``: pair, survey, and the models whose released files hold it, in
    order) as embeddings files (and layers files, from the layerwise repository, where the run reads
    layers). A file whose rows the audit (``inputs.audit``) found not paired is refused; a side no file
    holds (not released) gets only its record, saying so, and the alignment leaves it out."""
    import json
    from pathlib import Path

    import pandas as pd

    from ..embed.models import model_record
    from ..io import atomic_path, write_json, write_layers
    from ..registry import spec_by_name
    from ..released import NOT_RELEASED, ReleasedError, to_embeddings, to_layers

    audit = pd.read_csv(inputs.audit)
    text = ["verdict", "same_spectra_as_first_file", "repository_files", "name_found", "rows_joined_by"]
    audit[text] = audit[text].fillna("")
    spec = settings["spec"]
    files = {tuple(f): (path, upstream) for f, path, upstream in
             zip(settings["file_keys"], inputs.all("files"), inputs.all("provenance"))}

    def usable(side, kind):
        """The first holder's file the repository holds, refused if its rows are not paired; else None."""
        for holder in side["holders"]:
            row = audit[(audit["pair"] == side["pair"]) & (audit["model"] == holder) & (audit["kind"] == kind)].iloc[0]
            if row["verdict"].startswith(NOT_RELEASED):
                continue
            path, upstream = files[(side["pair"], holder, kind)]
            if row["verdict"] != "paired" or row["same_spectra_as_first_file"].startswith("NO"):
                raise ReleasedError(
                    f"{path} ({row['repository_files']}): refused, its rows are not paired ({row['verdict']}; MKNN "
                    f"{row['mknn']:.4f} against a null of {row['null_mean']:.4f}, p = {row['p_value']:.3g}; same "
                    f"spectra: {row['same_spectra_as_first_file'] or 'n/a'}); see {inputs.audit}. Leave {holder} "
                    f"out of `models`, or take a revision whose file is fixed")
            return holder, path, upstream, row
        return None

    with atomic_path(outputs.embeddings, is_dir=True) as folder:
        for side in settings["sides"]:
            out = Path(folder) / side["pair"] / f"{side['survey']}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            found = usable(side, "final")
            if found is None:
                upstream = [files[(side["pair"], h, "final")][1] for h in side["holders"]]
                tried = {h: json.loads(Path(u).read_text()).get("tried") for h, u in zip(side["holders"], upstream)}
                write_json(out.with_suffix(".provenance.json"),
                           record(upstream, not_released={"pair": side["pair"], "survey": side["survey"], "tried": tried}))
                log.warning("%s %s: not released (tried %s): left out of the alignment", side["pair"], side["survey"], tried)
                continue
            holder, path, upstream, row = found
            ids, emb = to_embeddings(path, spec_by_name(holder), side["survey"])
            model_info = {**model_record({"hub_id": None, "revision": None, "weights": "released embeddings",
                                          "seed": None}, spec), "released_file": row["repository_files"]}
            info = {"model": model_info,
                    "data": {"pair": side["pair"], "survey": side["survey"], "n_objects": len(ids),
                             "dim": int(emb.shape[1])},
                    "released": {"file": row["repository_files"], "name_found": row["name_found"], "column_of": holder,
                                 "rows_joined_by": row["rows_joined_by"], "audit": {
                                     k: row[k] for k in ("mknn", "null_mean", "p_value", "verdict")}}}
            write_embeddings(out, ids, emb, metadata=info)
            upstreams = [upstream]
            if settings["layers"]:
                layered = usable(side, "layers")
                if layered is None:  # read_layers then takes the final embedding as the one layer
                    log.warning("%s %s: no released layerwise file: the layer grids take its final embedding only",
                                side["pair"], side["survey"])
                else:
                    l_holder, l_path, l_upstream, l_row = layered
                    l_ids, names, arrays = to_layers(l_path, side["survey"], *side["surveys"])
                    write_layers(layers_path(out), l_ids, names, arrays, len(names) - 1,
                                 metadata={**info, "released_layers": {"file": l_row["repository_files"],
                                                                       "name_found": l_row["name_found"]}})
                    upstreams.append(l_upstream)
            write_json(out.with_suffix(".provenance.json"),
                       record(upstreams, models={spec.name: model_info}, **info))
            log.info("%s %s: %d x %d released embeddings (%s)", side["pair"], side["survey"], len(ids), emb.shape[1],
                     row["rows_joined_by"])
