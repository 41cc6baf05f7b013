"""Snakemake adapter: embed one side of one pair with one model size."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from samesky.embed.models import load_model, read_manifest  # noqa: E402
from samesky.embed.run import embed_images, embed_spectra, pick_device, write_embeddings  # noqa: E402
from samesky.io import load_dataset_dir, setup_logging, write_json  # noqa: E402
from samesky.provenance import record  # noqa: E402
from samesky.surveys import modality_of  # noqa: E402

setup_logging(snakemake.log[0])
log = logging.getLogger("embed")
opts = snakemake.params.embedding
spec = snakemake.params.spec
survey = snakemake.wildcards.survey
ds = load_dataset_dir(snakemake.input.dataset)
model = load_model(snakemake.input.model, specformer_pooling=snakemake.params.specformer_pooling)
device = pick_device(opts["device"])
log.info("%s on %s %s: %d objects, device %s", spec.name, snakemake.wildcards.pair, survey, len(ds), device)
start = time.time()
if modality_of(survey) == "image":
    ids, emb, extra, meta = embed_images(ds, f"{survey}_image", survey, model, batch_size=opts["batch_size"],
                                         device=device, bf16=opts["bf16"],
                                         scaling_images=opts.get("scaling_images", 10_000))
else:
    ids, emb, extra, meta = embed_spectra(ds, f"{survey}_spectrum", model, batch_size=opts["batch_size"],
                                          device=device, bf16=opts["bf16"])
seconds = time.time() - start
manifest = read_manifest(snakemake.input.model)
info = {
    "model": {"family": spec.family, "size": spec.size, "hub_id": manifest.get("hub_id"),
              "revision": manifest.get("revision_resolved") or manifest.get("revision"),
              "weights": manifest["weights"], "seed": manifest.get("seed"), "pooling": spec.pooling, "params_m": spec.params_m,
              **({"pretraining": {k: v for k, v in manifest["pretraining"].items() if k != "loss_every_10_steps"}}
                 if "pretraining" in manifest else {})},
    "data": {"pair": snakemake.wildcards.pair, "survey": survey, "n_objects": len(ids),
             "dim": int(emb.shape[1]) if len(ids) else 0},
    "run": {"device": str(device), "bf16": bool(opts["bf16"] and device.type == "cuda"),
            "batch_size": opts["batch_size"], "seconds": round(seconds, 3)},
    **meta,
}
write_embeddings(snakemake.output.embeddings, ids, emb, extra, metadata=info)
write_json(snakemake.output.provenance, record(snakemake.config, "embed", [snakemake.input.provenance],
                                                  models={snakemake.wildcards.model: info["model"]}, **info))
log.info("wrote %d x %d embeddings in %.1f s", len(ids), info["data"]["dim"], seconds)
