"""Issue 26, seed 003's adaptation study: the preprocessing variants' conclusions (alignment and
morphology), the fine-tuning of backbones on the morphology task, and the attention maps."""

from __future__ import annotations

import logging

from ..io import write_csv
from .runner import step

log = logging.getLogger(__name__)


@step(reads=("alignment.table_k", "alignment.hsc_pair", "alignment.trend_bootstrap", "seed"))
def preprocessing_alignment(inputs, outputs, settings):
    """Tables 1-2's MKNN, nulls and trend tests of every preprocessing variant beside the run's own
    (``inputs.scores`` / ``inputs.overlaps``: the default's first, then ``settings.variants``' in order, each
    over ``settings.pairs``); the conclusions table and the figure."""
    import pandas as pd

    from ..align import preprocessing

    names = [preprocessing.DEFAULT, *settings["variants"]]
    n_pairs = len(settings["pairs"])
    score_files, overlap_files = inputs.all("scores"), inputs.all("overlaps")
    scores = {v: pd.concat([pd.read_csv(p) for p in score_files[i * n_pairs:(i + 1) * n_pairs]], ignore_index=True)
              for i, v in enumerate(names)}
    overlaps = {v: pd.concat([pd.read_parquet(p) for p in overlap_files[i * n_pairs:(i + 1) * n_pairs]],
                             ignore_index=True) for i, v in enumerate(names)}
    opts = settings["alignment"]
    table = preprocessing.scores_table(scores, opts["table_k"])
    verdicts = preprocessing.conclusions(scores, overlaps, opts["table_k"], opts["hsc_pair"], opts["trend_bootstrap"],
                                         settings["seed"])
    write_csv(outputs.scores, table)
    write_csv(outputs.conclusions, verdicts)
    preprocessing.figure(table, outputs.figure)
    changed = verdicts[~verdicts["same_as_default"]]
    log.info("preprocessing: %d of %d conclusions differ from the default's%s", len(changed), len(verdicts),
             "".join(f"\n  {r.variant}: {r.conclusion} ({r.value}, p = {r.p_value})" for r in changed.itertuples()))
    return {"variants": names, "changed_conclusions": len(changed)}


@step(reads=("downstream.morphology.label_fractions", "downstream.morphology.seeds", "downstream.morphology.heads"))
def preprocessing_morphology(inputs, outputs, settings):
    """Seed 003's frozen heads on every variant's embeddings of the morphology pair's reference images
    (``settings.embeddings``: variant, model, path), beside the run's own (``inputs.default``, the
    morphology summary); the mean macro F1 per variant, head and label fraction, and the figure."""
    import pandas as pd

    from ..downstream import figures
    from .downstream import heads_on

    sample = pd.read_parquet(inputs.sample)
    runs = pd.concat(heads_on(sample, settings["embeddings"], settings["downstream"]["morphology"],
                              ("variant", "model")), ignore_index=True)
    summary = runs.groupby(["variant", "model", "head", "label_fraction"], sort=False).agg(
        macro_f1=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std"), seeds=("seed", "nunique")).reset_index()
    default = pd.read_csv(inputs.default)
    default = default[default["model"].isin(set(summary["model"]))]
    default = default.assign(variant="default")[["variant", "model", "head", "label_fraction", "macro_f1",
                                                 "macro_f1_std", "seeds"]]
    summary = pd.concat([default, summary], ignore_index=True)
    base = default.set_index(["model", "head", "label_fraction"])["macro_f1"]
    summary["delta_macro_f1"] = summary["macro_f1"] - summary.set_index(
        ["model", "head", "label_fraction"]).index.map(base).to_numpy(float)
    write_csv(outputs.table, summary)
    figures.f1_by_variant(summary, outputs.figure)
    top = summary[summary["label_fraction"] == summary["label_fraction"].max()]
    log.info("macro F1 at %s of the labels, mean over models:\n%s", top["label_fraction"].iloc[0],
             top.groupby(["variant", "head"])["macro_f1"].mean().unstack().round(3).to_string())
    return {"objects": len(sample)}


FINE_TUNE_POOLINGS = ("cls", "patch_mean", "token_mean", "spatial_mean")  # a backbone(pixel_values=...) output


@step(reads=("adaptation", "downstream.morphology.label_fractions", "downstream.morphology.heads", "embedding.device"))
def fine_tune(inputs, outputs, settings):
    """Seed 003's adaptation of one backbone (``settings.spec``) to the morphology task, at every label
    fraction and seed, scored on the fixed test set: ``settings.methods`` among frozen (the heads of
    downstream.morphology on its pooled features), full (the head alone, then everything), lora (adapters
    on ``adaptation.lora.target_modules``, the rest frozen) and scratch (the same architecture from random
    weights, everything trained: seed 003's supervised baselines). The images are the morphology pair's
    reference cutouts, each model's own processor applied once."""
    import copy

    import numpy as np
    import pandas as pd
    import torch

    from ..downstream import classify, finetune, labels
    from ..embed.models import load_model
    from .downstream import _one_thread, sample_cutouts

    opts, spec = settings["adaptation"], settings["spec"]
    fractions = opts["label_fractions"] or settings["downstream"]["morphology"]["label_fractions"]
    torch.set_num_threads(settings["threads"])
    requested = settings["embedding"]["device"]
    device = ("cuda" if torch.cuda.is_available() else "cpu") if requested == "auto" else requested
    if spec.pooling not in FINE_TUNE_POOLINGS:
        raise ValueError(f"{spec.name}: pooling '{spec.pooling}' is not a backbone output this rule fine-tunes "
                         f"(one of {FINE_TUNE_POOLINGS}); leave it out of adaptation.models")
    sample = pd.read_parquet(inputs.sample)
    rgb = sample_cutouts(inputs, sample)
    loaded = load_model(inputs.model, spec, device="cpu")
    if not hasattr(loaded, "transform") or loaded.transform is None:
        raise ValueError(f"{spec.name}: not a transformers vision model with an image processor")
    with torch.no_grad():
        pixels = torch.cat([loaded.prepare_images(rgb[i:i + 256])["pixel_values"] for i in range(0, len(rgb), 256)])
    classes = sorted(set(sample["label"]))
    y = sample["label"].to_numpy(object)
    target = np.array([classes.index(c) for c in y])
    is_test = (sample["split"] == "test").to_numpy()
    x_test = pixels[is_test]

    def pool(out, px):  # the embedding's own pooling, so the frozen features are the embeddings
        return loaded._final(out, {"pixel_values": px})

    with torch.no_grad():
        n_features = int(pool(loaded.model(pixel_values=pixels[:1]), pixels[:1]).shape[1])
    train_opts = {"batch_size": opts["batch_size"], "weight_decay": opts["weight_decay"]}
    counts = {}

    def epochs_for(n, epochs):  # a small subset still gets min_steps updates
        return max(epochs, -(-opts["min_steps"] // -(-n // opts["batch_size"])))

    def weights(idx):
        found = np.bincount(target[idx], minlength=len(classes))
        return len(idx) / (len(classes) * np.maximum(found, 1))  # inversely proportional to the counts (seed 003)

    def run(method):
        def fit(idx, seed):
            torch.manual_seed(seed)
            if method == "scratch":
                from transformers import AutoModel

                backbone = AutoModel.from_config(loaded.model.config)
            else:
                backbone = copy.deepcopy(loaded.model)
            model = finetune.Classifier(backbone, n_features, len(classes), pooling=pool).to(device)
            x, t = pixels[idx].to(device), target[idx]
            kwargs = {**train_opts, "seed": seed, "class_weights": weights(idx)}
            lr = opts["learning_rate"]
            if method == "full":
                finetune.fine_tune(model, x, t, opts["head_epochs"], epochs_for(len(idx), opts["epochs"]), lr["head"],
                                   lr["full"], **kwargs)
            elif method == "lora":
                lora = opts["lora"]
                modules = lora["target_modules"]
                finetune.with_lora(model, lora["rank"], lora["alpha"], lora["dropout"],
                                   modules[spec.family] if spec.family in modules else modules["default"])
                finetune.train(model, x, t, epochs_for(len(idx), opts["epochs"]), lr["lora"], **kwargs)
            else:  # scratch
                finetune.train(model, x, t, epochs_for(len(idx), opts["epochs"]), lr["scratch"], **kwargs)
            counts[method] = finetune.parameter_counts(model)
            log.info("%s %s: %d training images, seed %d", spec.name, method, len(idx), seed)
            return np.asarray([classes[i] for i in finetune.predict(model, x_test.to(device))], dtype=object)
        return fit

    fits = {m: run(m) for m in settings["methods"] if m != "frozen"}
    parts = []
    if fits:
        parts.append(classify.run_protocol(y, is_test, fractions, opts["seeds"], fits, labels.CLASSES,
                                           scorer=classify.detailed_scores))
    if "frozen" in settings["methods"]:
        with torch.no_grad():
            x = np.concatenate([pool(loaded.model(pixel_values=pixels[i:i + 256]), pixels[i:i + 256]).numpy()
                                for i in range(0, len(pixels), 256)])
        heads = settings["downstream"]["morphology"]["heads"]
        with _one_thread():
            frozen = classify.run_protocol(
                y, is_test, fractions, opts["seeds"],
                {h: (lambda h: lambda idx, seed: classify.fit_predict(h, x[idx], y[idx], x[is_test], seed))(h)
                 for h in heads}, labels.CLASSES, scorer=classify.detailed_scores)
        counts["frozen"] = {"trainable": 0, "total": sum(p.numel() for p in loaded.model.parameters()), "fraction": 0.0}
        parts.append(frozen.assign(method="frozen"))
    runs = pd.concat(parts, ignore_index=True)
    runs["method"] = runs["method"].fillna(runs["head"]) if "method" in runs else runs["head"]
    runs.loc[runs["method"] != "frozen", "head"] = "linear"  # fine-tuned: seed 003's linear head on top
    for key in ("trainable", "total", "fraction"):
        runs[f"params_{key}"] = runs["method"].map(lambda m: counts.get(m, {}).get(key))
    runs.insert(0, "model", spec.name)
    write_csv(outputs.runs, runs)
    log.info("%s macro F1 by method and label fraction:\n%s", spec.name,
             runs.groupby(["method", "head", "label_fraction"])["macro_f1"].mean().unstack().round(3).to_string())
    from ..embed.models import model_record, read_manifest

    return {"device": device, "classes": classes, "parameters": counts,
            "models": {spec.name: model_record(read_manifest(inputs.model), spec, pooling=loaded.pooling_label)}}


@step()
def adaptation_table(inputs, outputs, settings):
    """Every fine_tune run with the small CNN's (``inputs.supervised``): the runs, their summary over seeds
    (macro F1 per model, method, head and label fraction, with the trainable share of the parameters), the
    F1-against-labels figure and the per-class figure."""
    import pandas as pd

    from ..downstream import adaptation_figures, classify

    runs = pd.concat([pd.read_csv(p) for p in inputs.all("runs")], ignore_index=True)
    for path in inputs.all("supervised"):
        runs = pd.concat([runs, pd.read_csv(path).assign(model="cnn-scratch", method="scratch", head="cnn")],
                         ignore_index=True)
    lead = ["model", "method", "head"]
    runs = runs[lead + [c for c in runs.columns if c not in lead]]
    summary = classify.summarise(runs, keys=("model", "method"))
    params = runs.groupby(["model", "method"], sort=False)[["params_trainable", "params_total", "params_fraction"]].first()
    summary = summary.join(params, on=["model", "method"])
    write_csv(outputs.runs, runs)
    write_csv(outputs.table, summary)
    adaptation_figures.f1_by_method(summary, outputs.figure)
    adaptation_figures.per_class(runs, outputs.per_class)
    top = summary[summary["label_fraction"] == summary["label_fraction"].max()]
    log.info("macro F1 with all labels:\n%s", top.pivot_table(index=["model"], columns=["method", "head"],
                                                               values="macro_f1").round(3).to_string())
    return {"runs": len(runs)}


@step(reads=("adaptation.attention", "preprocessing.crop"))
def attention_maps(inputs, outputs, settings):
    """Seed 003's Fig. 6 for one transformer (``settings.spec``): its CLS token's attention in every block
    over example galaxies of each morphology class (the first ``examples_per_class`` test objects of each),
    uncropped and closely cropped (samesky.embed.geometry), outlined at the ``percentile``."""
    import numpy as np
    import pandas as pd
    import torch

    from ..downstream.attention import attention_figure, attention_maps as maps_of
    from ..embed import geometry
    from ..embed.models import load_model
    from .downstream import _image_rows

    opts, spec = settings["adaptation"]["attention"], settings["spec"]
    sample = pd.read_parquet(inputs.sample)
    test = sample[sample["split"] == "test"]
    chosen = test.groupby("label", sort=True).head(opts["examples_per_class"]).sort_values(["label", "object_id"])
    rows = _image_rows(inputs.image_objects, chosen["object_id"]).astype(np.int64)
    rgb = np.asarray(np.load(inputs.images, mmap_mode="r")[rows])
    crop = settings["preprocessing"]["crop"]
    cropped = geometry.close_crop(rgb, crop["extent"], crop["min_size"], crop["nsigma"], crop["npixels"])
    images = np.concatenate([rgb, cropped.rgb])
    labels = [f"{c} ({o})" for c, o in zip(chosen["label"], chosen["object_id"])]
    labels = labels + [f"{c}, cropped" for c in chosen["label"]]
    loaded = load_model(inputs.model, spec, device="cpu")
    if getattr(loaded, "transform", None) is None or spec.pooling not in ("cls", "patch_mean"):
        raise ValueError(f"{spec.name}: attention maps need a transformers vision transformer with a CLS token "
                         f"(pooling cls or patch_mean), not pooling '{spec.pooling}'")
    with torch.no_grad():
        pixels = loaded.prepare_images(images)["pixel_values"]
    h, w = pixels.shape[-2:]
    patch = loaded.patch_size if isinstance(loaded.patch_size, int) else loaded.patch_size[0]
    maps = maps_of(loaded.model, pixels, (h // patch, w // patch))
    attention_figure(images, maps, labels, outputs.figure, percentile=opts["percentile"],
                     title=f"{spec.name}: CLS attention per block, {opts['percentile']:g}th percentile")
    from ..embed.models import model_record, read_manifest

    return {"examples": labels, "blocks": int(maps.shape[1]), "uncropped": int(cropped.uncropped.sum()),
            "models": {spec.name: model_record(read_manifest(inputs.model), spec, pooling=loaded.pooling_label)}}
