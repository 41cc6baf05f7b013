"""Crossmatch: each pair crossmatched here (one-to-one within the radius) or audited against it, and the
tables of all pairs."""

from __future__ import annotations

import json
import logging

from ..config import is_paired_upstream
from ..io import load_dataset_dir, save_dataset, write_csv
from .runner import step

log = logging.getLogger(__name__)


@step(reads=("crossmatch",))
def crossmatch(inputs, outputs, settings):
    """Pair ``settings.pair``: crossmatch its parent datasets (inputs ``reference``, ``other``) or audit its
    dataset paired upstream (input ``paired``); ``settings.surveys`` are its sides."""
    import pandas as pd

    from ..pairs import audit_crossmatched, crossmatch_datasets

    pair, (ref_survey, other_survey) = settings["pair"], settings["surveys"]
    radius = settings["crossmatch"]["radius_arcsec"]
    if is_paired_upstream(pair):
        paired, pairs, summary = audit_crossmatched(
            load_dataset_dir(inputs.paired), ref_survey, other_survey, radius, rename=pair["rename"],
            name=pair["dataset"], require_positions=settings["crossmatch"]["require_positions"],
            repeated_ids=settings["crossmatch"]["repeated_ids"])
    else:
        paired, pairs, summary = crossmatch_datasets(
            load_dataset_dir(inputs.reference), load_dataset_dir(inputs.other), ref_survey, other_survey, radius,
            ref_name=pair["reference_dataset"], other_name=pair["other_dataset"])
    paired = clean_masks_to_bad(paired, pair["name"], (ref_survey, other_survey), settings["image_masks"])
    if pair["positions_from"] is not None:
        paired, pairs, summary = positions_from_catalogue(paired, pairs, summary, pair, inputs.positions)
    if pair["good_redshift"] is not None:
        paired, pairs, summary = good_redshifts(paired, pairs, summary, pair)
    log.info("%s: %s", pair["name"], json.dumps(summary))
    summary = {"pair": pair["name"], "reference": ref_survey, "other": other_survey, **summary}
    save_dataset(paired, outputs.dataset)
    write_csv(outputs.pairs, pairs)
    write_csv(outputs.summary, pd.DataFrame([summary]))
    return {"pair": pair, "summary": summary}


def clean_masks_to_bad(paired, name: str, surveys, image_masks: dict):
    """The pair's image masks in the run's polarity (True = bad): the image sides of a dataset configured
    ``image_mask: clean`` inverted (``image_masks``: that setting by role, paired or reference/other)."""
    from ..pairs import invert_masks
    from ..surveys import modality_of

    if "paired" in image_masks:
        sides = list(surveys) if image_masks["paired"] == "clean" else []
    else:
        sides = [s for s, role in zip(surveys, ("reference", "other")) if image_masks[role] == "clean"]
    columns = [f"{s}_image" for s in sides if modality_of(s) == "image" and f"{s}_image" in paired.column_names]
    return invert_masks(paired, columns, name)


def positions_from_catalogue(paired, pairs, summary: dict, pair: dict, catalogue_dir):
    """ra/dec of the pair's objects from a catalogue joined by id (pairs[].positions_from), where the pair's
    own are missing; counted in the summary. The later rules (morphology, environment, sky regions) then
    read them as any position."""
    import numpy as np

    from ..crossmatch import CrossmatchError

    opts = pair["positions_from"]
    cat = load_dataset_dir(catalogue_dir)
    missing = [c for c in (opts["catalogue_id"], "ra", "dec") if c not in cat.column_names]
    if missing or opts["pair_id"] not in paired.column_names:
        raise CrossmatchError(f"pair {pair['name']}: positions_from: no column(s) "
                              f"{missing or [opts['on']]} in {'the catalogue ' + opts['dataset'] if missing else 'the pair'}")
    cat = cat.select_columns([opts["catalogue_id"], "ra", "dec"]).to_pandas()
    cat = cat.drop_duplicates(opts["catalogue_id"]).set_index(cat[opts["catalogue_id"]].astype(str).to_numpy())
    ids = np.asarray(paired[opts["pair_id"]]).astype(str)
    ra, dec = np.asarray(paired["ra"], float), np.asarray(paired["dec"], float)
    need = ~(np.isfinite(ra) & np.isfinite(dec))
    found = cat.reindex(ids)
    fill = need & found["ra"].notna().to_numpy() & found["dec"].notna().to_numpy()
    ra[fill], dec[fill] = found["ra"].to_numpy(float)[fill], found["dec"].to_numpy(float)[fill]
    log.info("%s: %d of %d objects without a position get one from %s by %s", pair["name"], int(fill.sum()),
             int(need.sum()), opts["dataset"], opts["pair_id"])
    paired = paired.remove_columns(["ra", "dec"]).add_column("ra", list(ra)).add_column("dec", list(dec))
    order = ["object_id", "ra", "dec"]
    paired = paired.select_columns(order + [c for c in paired.column_names if c not in order])
    pairs = pairs.assign(ra=ra, dec=dec) if {"ra", "dec"} <= set(pairs.columns) else pairs
    return paired, pairs, {**summary, "positions_from_catalogue": int(fill.sum()),
                           "without_position": int((need & ~fill).sum())}


def good_redshifts(paired, pairs, summary: dict, pair: dict):
    """The pair's rows whose redshift warning column equals the configured good value (pairs[].good_redshift);
    the others are dropped and counted in the summary."""
    import numpy as np

    from ..crossmatch import CrossmatchError

    cut = pair["good_redshift"]
    if cut["column"] not in paired.column_names:
        raise CrossmatchError(f"pair {pair['name']}: good_redshift.column '{cut['column']}' is not a column of the "
                              f"pair; has {paired.column_names}")
    values = np.asarray(paired[cut["column"]])
    if values.dtype == bool and not isinstance(cut["good"], bool):  # raw DESI's "0 = good" on MMU's booleans
        raise CrossmatchError(f"pair {pair['name']}: {cut['column']} is boolean, good_redshift.good is "
                              f"{cut['good']!r}; give true or false (the Multimodal Universe's DESI ZWARN is True "
                              "for no warning, its SDSS ZWARNING True for a warning: samesky.surveys.GOOD_REDSHIFT)")
    keep = np.flatnonzero(values == cut["good"])
    if len(keep) == 0:
        raise CrossmatchError(f"pair {pair['name']}: no row has {cut['column']} == {cut['good']!r}; check the flag's "
                              "polarity (samesky.surveys.GOOD_REDSHIFT)")
    log.info("%s: %d of %d rows dropped by the redshift quality cut %s == %r", pair["name"], len(paired) - len(keep),
             len(paired), cut["column"], cut["good"])
    summary = {**summary, "matched": len(keep), "dropped_redshift_warning": len(paired) - len(keep)}
    return paired.select(keep), pairs.iloc[keep].reset_index(drop=True), summary


@step()
def crossmatch_summary(inputs, outputs, settings):
    """Every pair's crossmatch summary in one table."""
    import pandas as pd

    write_csv(outputs.table, pd.concat([pd.read_csv(p) for p in inputs.all("summaries")], ignore_index=True))


@step()
def crossmatch_truth_recovery(inputs, outputs, settings):
    """Embedded default: completeness and purity of each crossmatch against the mini universe's true pairs
    (``settings.pairs``: name, reference and other survey of each, in the order of ``inputs.pairs``)."""
    import pandas as pd

    from ..mini_universe.truth import truth_recovery

    truth = pd.read_parquet(inputs.truth)
    rows = []
    for pair, path in zip(settings["pairs"], inputs.all("pairs")):
        found = pd.read_csv(path, dtype=str).astype({"separation_arcsec": float})
        row = {"pair": pair["name"], **truth_recovery(truth, found, pair["reference"], pair["other"])}
        log.info("%s", row)
        rows.append(row)
    write_csv(outputs.table, pd.DataFrame(rows))
