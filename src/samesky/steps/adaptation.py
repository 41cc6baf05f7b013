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

    from ..downstream import classify, figures, labels
    from .downstream import _aligned, _one_thread

    opts = settings["downstream"]["morphology"]
    sample = pd.read_parquet(inputs.sample)
    is_test = (sample["split"] == "test").to_numpy()
    parts = []
    with _one_thread():
        for entry in settings["embeddings"]:
            x = _aligned(entry["path"], sample["object_id"].astype(str).tolist())
            runs = classify.classify_embedding(x, sample["label"].to_numpy(), is_test, opts["label_fractions"],
                                               opts["seeds"], opts["heads"], labels.CLASSES)
            parts.append(runs.assign(variant=entry["variant"], model=entry["model"]))
    runs = pd.concat(parts, ignore_index=True)
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
