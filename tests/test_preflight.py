"""The preflight, on local folders in the real layouts (the Smith42 sets as MMU's cross-match leaves them,
PROVABGS, model repositories), good and deliberately broken."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
from datasets import Array2D, Dataset, Features, Sequence, Value

from samesky.preflight import PreflightError, check_hub_reachable, report, run_preflight
from samesky.surveys import DESI_NPIX

from conftest import copy_repo, validated
from test_astroclip_data import _write_h5

N, PIX = 12, 8
HSC_BANDS = ["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"]
JWST_BANDS = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F444W"]
LEGACY_BANDS = ["DES-G", "DES-R", "DES-I", "DES-Z"]


def _image_feature():
    return Sequence({"band": Value("string"), "flux": Array2D((PIX, PIX), "float32"),
                     "ivar": Array2D((PIX, PIX), "float32"), "mask": Array2D((PIX, PIX), "bool")})


def _image(bands, rng):
    return {"band": list(bands), "flux": rng.normal(1, 0.1, (len(bands), PIX, PIX)).astype(np.float32),
            "ivar": np.ones((len(bands), PIX, PIX), np.float32), "mask": np.ones((len(bands), PIX, PIX), bool)}  # MMU: True = clean


def _spectrum(npix, rng, with_lambda=True, span=(3800, 9200)):
    out = {"flux": rng.normal(1, 0.1, npix).astype(np.float32), "ivar": np.ones(npix, np.float32),
           "mask": np.zeros(npix, bool)}
    if with_lambda:
        out["lambda"] = np.linspace(*span, npix).astype(np.float32)
    return out


EDITS: dict = {}  # dataset name -> f(row, k) -> row: write_layouts' ``edit``, applied as each set is saved


def _save(rows, features, folder):
    """A folder in the Hub's layout (data/train-*.parquet), which `load_dataset` streams as it does a Hub id."""
    (folder / "data").mkdir(parents=True)
    edit = EDITS.get(folder.name)
    rows = [edit(row, k) for k, row in enumerate(rows)] if edit else rows
    if isinstance(rows[0].get("object_id"), int):
        features = {**features, "object_id": Value("int64")}
    features = {c: f for c, f in features.items() if c in rows[0]}  # an edit may drop columns
    Dataset.from_list(rows, features=Features(features)).to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    return str(folder)


def write_layouts(root, *, jwst_bands=JWST_BANDS, desi_npix=DESI_NPIX, spectrum_column="spectrum", ids=None,
                  edit=None):
    """The four Smith42 sets and PROVABGS in their layouts; keyword arguments break one fact (``edit``:
    dataset name -> f(row, k) -> row, a change of values)."""
    EDITS.clear()
    EDITS.update(edit or {})
    rng = np.random.default_rng(0)
    ids = ids or [str(36411000000000 + i) for i in range(N)]
    sources = {}
    sources["jwst_hsc_crossmatched"] = _save(
        [{"object_id": i, "hsc_image": _image(HSC_BANDS, rng), "jwst_image": _image(jwst_bands, rng)} for i in ids],
        {"object_id": Value("string"), "hsc_image": _image_feature(), "jwst_image": _image_feature()},
        root / "jwst_hsc_crossmatched")
    sources["legacysurvey_hsc_crossmatched"] = _save(
        [{"object_id": i, "hsc_image": _image(HSC_BANDS, rng), "legacysurvey_image": _image(LEGACY_BANDS, rng)}
         for i in ids],
        {"object_id": Value("string"), "hsc_image": _image_feature(), "legacysurvey_image": _image_feature()},
        root / "legacysurvey_hsc_crossmatched")
    spectrum = Sequence({"flux": Value("float32"), "ivar": Value("float32"), "mask": Value("bool"),
                         "lambda": Value("float32")})
    sources["desi_hsc_crossmatched"] = _save(
        [{"object_id": str(39627000000 + k), "image": _image(HSC_BANDS, rng),  # MMU's merge keeps DESI's id
          spectrum_column: _spectrum(desi_npix, rng, span=(3600, 9824)),
          "Z": 0.1, "ZWARN": False, "TARGETID": 39627000000 + k, "ra": 150.0 + k / 100, "dec": 2.0}
         for k, i in enumerate(ids)],
        {"object_id": Value("string"), "image": _image_feature(), spectrum_column: spectrum, "Z": Value("float32"),
         "ZWARN": Value("bool"), "TARGETID": Value("int64"), "ra": Value("float64"), "dec": Value("float64")},
        root / "desi_hsc_crossmatched")
    sources["sdss_hsc_crossmatched"] = _save(
        [{"object_id": i, "image": _image(HSC_BANDS, rng), "spectrum": _spectrum(3800 + k, rng), "Z": 0.1,
          "ZWARNING": False} for k, i in enumerate(ids)],
        {"object_id": Value("string"), "image": _image_feature(), "spectrum": spectrum, "Z": Value("float32"),
         "ZWARNING": Value("bool")},
        root / "sdss_hsc_crossmatched")
    sources["provabgs"] = _save(
        [{"object_id": str(39627000000 + k), "ra": 150.0, "dec": 2.0, "LOG_MSTAR": 10.0, "Z_MW": 0.01,
          "TAGE_MW": 5.0, "AVG_SFR": 1.0, "MAG_R": 19.0} for k in range(N)],
        {"object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64"),
         **{c: Value("float32") for c in ("LOG_MSTAR", "Z_MW", "TAGE_MW", "AVG_SFR", "MAG_R")}},
        root / "provabgs")
    _write_h5(root / "astroclip_desi.h5")  # AstroCLIP's evaluation file in its layout
    (root / "gz_decals_volunteers_5.csv").write_text("iauname,ra,dec\n")  # the preflight only reaches it
    return sources


MODEL_FILES = {  # repository layouts as released (file names only: the preflight lists, it does not load)
    "facebook/convnextv2-nano-22k-224": ["config.json", "preprocessor_config.json", "pytorch_model.bin"],
    "facebook/dinov2-with-registers-small": ["config.json", "preprocessor_config.json", "model.safetensors"],
    "Smith42/astroPT_v2.0": ["astropt/015M/ckpt.pt", "astropt/095M/ckpt.pt", "astropt/850M/ckpt.pt", "README.md"],
    "polymathic-ai/specformer": ["specformer.ckpt"],
    "polymathic-ai/astroclip": ["astroclip.ckpt"],
}


def lister(files=MODEL_FILES):
    def list_files(hub_id, revision):
        if hub_id not in files:
            raise FileNotFoundError(f"404 Client Error: repository {hub_id} not found")
        return "0123456789abcdef0123", files[hub_id]
    return list_files


def paper_on(sources, paper_config, **crossmatch):
    """The paper preset with its datasets read from local folders (and a few models, to stay quick)."""
    config = copy.deepcopy(paper_config)
    for d in config["datasets"]:
        d["source"] = sources.get(d["name"], d["source"])
        if d["name"] == "astroclip_desi":
            d["source"] = str(sources["root"] / "astroclip_desi.h5")
    config["models"] = [{"family": "astropt", "sizes": ["small"]}, {"family": "convnextv2", "sizes": ["nano"]},
                        {"family": "dinov2", "sizes": ["small"]}, {"family": "specformer", "sizes": ["base"]},
                        {"family": "astroclip", "sizes": ["image", "spectrum"], "only_pairs": ["astroclip_desi"]}]
    config["crossmatch"].update(crossmatch)
    config["alignment"]["size_curves"]["decomposition_model"] = "dinov2-small"
    config["downstream"]["morphology"]["catalogue"]["path"] = str(sources["root"] / "gz_decals_volunteers_5.csv")
    return validated(config)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {**write_layouts(root), "root": root}


def test_the_paper_preset_on_good_layouts_passes_and_the_report_says_what_it_read(good, paper_config):
    found = run_preflight(paper_on(good, paper_config), sample_rows=8, list_files=lister())
    assert found.problems == []
    text = report(found, "paper preset, local layouts")
    assert "**No problem found**" in text
    sides = {(r["pair"], r["side"]): r for r in found.rows["sides"]}
    assert sides[("jwst_hsc", "jwst")]["bands / length"] == "f090w f115w f150w f200w f277w f356w f444w"
    assert sides[("desi_hsc", "desi")]["bands / length"] == str(DESI_NPIX)
    assert sides[("legacysurvey_hsc", "hsc")]["shape"] == f"5x{PIX}x{PIX}"
    datasets = {r["dataset"]: r for r in found.rows["datasets"]}
    assert datasets["desi_hsc_crossmatched"]["object id"] == "object_id: string"
    assert datasets["desi_hsc_crossmatched"]["rows sampled"] == 8
    assert datasets["astroclip_desi"]["status"].startswith("ok")
    assert datasets["downstream.morphology.catalogue"]["status"].startswith("ok")
    models = {r["model"]: r for r in found.rows["models"]}
    assert models["convnextv2-nano"]["weights"] == "pytorch .bin"  # the repository holds no safetensors
    assert models["dinov2-small"]["weights"] == "safetensors"
    assert models["astropt-small"]["loads"] == "astropt/015M/ckpt.pt"
    assert any("unverifiable" in n for n in found.notes)  # the Smith42 sets carry no positions
    assert ("dataset jwst_hsc_crossmatched: pair jwst_hsc has no positions: the conditional alignment skips its "
            "environment and sky regions (so reported in conditional_alignment.csv)") in "\n".join(found.notes)
    assert not any("pair desi_hsc has no positions" in n for n in found.notes)  # its own, or PROVABGS's
    # MMU's Hub sets are previews: PROVABGS holds 12 of the 221k objects the paper preset expects
    assert f"dataset provabgs: {N} rows at this revision of 221000 expected (0%): a preview" in "\n".join(found.notes)


@pytest.mark.parametrize("broken, config_change, expected", [
    ({"spectrum_column": "spec"}, {},
     "dataset desi_hsc_crossmatched: pair desi_hsc: columns ['spectrum'] named in the config's 'rename' are absent; "
     "has ['object_id', 'image', 'spec', 'Z', 'ZWARN', 'TARGETID', 'ra', 'dec']"),
    ({"jwst_bands": JWST_BANDS[1:]}, {},
     "dataset jwst_hsc_crossmatched: column 'jwst_image' field 'band': bands ['f090w'] needed, found "
     "['f115w', 'f150w', 'f200w', 'f277w', 'f356w', 'f444w']"),
    ({"desi_npix": 7780}, {},
     "dataset desi_hsc_crossmatched: column 'desi_spectrum' field 'flux': length [7780], the DESI grid has 7781 pixels"),
    ({"ids": ["1", "2", "2", "3"] * 3}, {"repeated_ids": "error"},
     "dataset jwst_hsc_crossmatched: pair jwst_hsc: field 'object_id' has 3 duplicated values, e.g. ['1', '2', '3']; "
     "pairs are joined by object id, so ids must be unique"),
])
def test_a_broken_layout_gives_one_line_naming_dataset_field_and_what_was_found(
        tmp_path, paper_config, broken, config_change, expected):
    sources = {**write_layouts(tmp_path, **broken), "root": tmp_path}
    found = run_preflight(paper_on(sources, paper_config, **config_change), sample_rows=12, list_files=lister())
    assert expected in found.problems
    assert f"- {expected}" in report(found, "broken")


def _nan_pixels(fraction):
    def edit(row, k):
        flux = np.array(row["hsc_image"]["flux"])
        flux.reshape(-1)[: int(fraction * flux.size)] = np.nan
        return {**row, "hsc_image": {**row["hsc_image"], "flux": flux}}
    return edit


def _side(column, **fields):
    """An edit setting fields of one side's column (callables get the old value)."""
    def edit(row, k):
        side = dict(row[column])
        side.update({f: (v(side[f]) if callable(v) else v) for f, v in fields.items()})
        return {**row, column: side}
    return edit


def _drop_planes(row, k):
    image = dict(row["jwst_image"])
    image["flux"] = np.asarray(image["flux"])[:6]
    image["ivar"], image["mask"] = np.asarray(image["ivar"])[:6], np.asarray(image["mask"])[:6]
    return {**row, "jwst_image": image}


@pytest.mark.parametrize("edit, expected", [
    ({"jwst_hsc_crossmatched": _nan_pixels(0.3)},
     "dataset jwst_hsc_crossmatched: column 'hsc_image' field 'flux': 70.0% of the sampled pixels finite (at least "
     "90.0%: preflight.values.min_finite_fraction)"),
    ({"desi_hsc_crossmatched": _side("spectrum", ivar=lambda v: np.zeros_like(v))},
     "dataset desi_hsc_crossmatched: column 'desi_spectrum' field 'ivar': 0.0% of the sampled pixels with inverse "
     "variance > 0 (at least 50.0%: preflight.values.min_positive_ivar_fraction)"),
    ({"legacysurvey_hsc_crossmatched": _side("legacysurvey_image", flux=lambda v: np.zeros_like(v))},
     "dataset legacysurvey_hsc_crossmatched: column 'legacysurvey_image' field 'flux': 12 of 12 sampled rows constant "
     "or empty: they would embed as one constant (at most 10.0%: preflight.values.max_constant_fraction)"),
    ({"sdss_hsc_crossmatched": _side("spectrum", **{"lambda": lambda v: np.asarray(v) / 1e4})},
     "dataset sdss_hsc_crossmatched: column 'sdss_spectrum' field 'lambda': spans 0.38-0.92 (microns?); sdss spans "
     "3800-9200 A (within 100 A: preflight.values.wavelength_tolerance_angstrom)"),
    ({"jwst_hsc_crossmatched": _side("jwst_image", mask=lambda v: ~np.asarray(v, bool))},  # True = bad, read as clean
     "dataset jwst_hsc_crossmatched: column 'jwst_image' field 'mask': 100.0% of the sampled pixels masked (at most "
     "50.0%: preflight.values.max_masked_fraction), read as True = bad; is the polarity reversed? The Multimodal "
     "Universe's image masks are True for clean pixels: set the dataset's image_mask: clean"),
    ({"jwst_hsc_crossmatched": _drop_planes},
     "dataset jwst_hsc_crossmatched: column 'jwst_image' field 'band': 12 of 12 sampled rows name 7 bands for 6 flux "
     "planes"),
    ({"provabgs": lambda row, k: {**row, "LOG_MSTAR": 10.0 ** row["LOG_MSTAR"]}},
     "dataset provabgs: column 'LOG_MSTAR' (probe targets): 12 of 12 sampled values outside [5, 13] (LOG_MSTAR) or "
     "not finite (found 1e+10 to 1e+10); at most 5.0%: preflight.values.max_outside_fraction"),
    ({"desi_hsc_crossmatched": lambda row, k: {**row, "Z": -1.0 if k % 2 else row["Z"]}},
     "dataset desi_hsc_crossmatched: column 'desi_Z' (downstream.redshift.column): 6 of 12 sampled values outside "
     "[0, 7] (redshift) or not finite (found -1 to 0.1); at most 5.0%: preflight.values.max_outside_fraction"),
])
def test_values_the_schema_allows_but_the_run_does_not_assume_are_named_with_their_tolerance(
        tmp_path, paper_config, edit, expected):
    sources = {**write_layouts(tmp_path, edit=edit), "root": tmp_path}
    found = run_preflight(paper_on(sources, paper_config), sample_rows=12, list_files=lister())
    assert expected in found.problems, found.problems
    assert f"- {expected}" in report(found, "broken values")


def test_a_set_without_positions_takes_them_from_a_catalogue_or_is_named(tmp_path, paper_config):
    """The DESI-HSC set without ra/dec: the paper preset joins PROVABGS's by id (pairs[].positions_from), so
    the preflight notes it and checks the catalogue's positions; without that, the morphology match would
    have nothing to match, a problem line."""
    edit = {"desi_hsc_crossmatched": lambda row, k: {c: v for c, v in row.items() if c not in ("ra", "dec")}}
    sources = {**write_layouts(tmp_path, edit=edit), "root": tmp_path}
    config = paper_on(sources, paper_config)
    found = run_preflight(config, sample_rows=12, list_files=lister())
    assert found.problems == []
    assert ("dataset desi_hsc_crossmatched: pair desi_hsc takes ra/dec from provabgs joined on object_id = object_id "
            "where its own are missing") in found.notes
    assert ("pair desi_hsc positions_from: 12 of the 12 sampled ids found among provabgs's 12 object_ids; the others "
            "stay without a position") in found.notes
    # ids of another survey (HSC's, had MMU's merge kept the left side's): no object would get a position
    hsc_ids = {"desi_hsc_crossmatched": lambda row, k: {**edit["desi_hsc_crossmatched"](row, k),
                                                        "object_id": str(36411000000000 + k)}}
    other = paper_on({**write_layouts(tmp_path / "hsc_ids", edit=hsc_ids), "root": tmp_path}, paper_config)
    assert run_preflight(other, sample_rows=12, list_files=lister()).problems == [
        "pair desi_hsc positions_from: object_id = provabgs.object_id: none of the 12 sampled ids (e.g. "
        "['36411000000000', '36411000000001']) is among the catalogue's 12 (e.g. ['39627000000', '39627000001']): "
        "no object would get a position"]
    next(p for p in config["pairs"] if p["name"] == "desi_hsc")["positions_from"] = None
    found = run_preflight(config, sample_rows=12, list_files=lister())
    assert found.problems == [
        "dataset desi_hsc_crossmatched: column 'ra' (downstream.morphology.pair): 12 of 12 sampled values not finite "
        "(the set carries no positions); at most 5.0%: preflight.values.max_outside_fraction",
        "dataset desi_hsc_crossmatched: column 'dec' (downstream.morphology.pair): 12 of 12 sampled values not finite "
        "(the set carries no positions); at most 5.0%: preflight.values.max_outside_fraction"]


def test_harmless_variants_pass_the_value_checks(tmp_path, paper_config):
    """Integer ids, band names in lower case, a Legacy release without the i band, SDSS plates whose grids
    start and end at different wavelengths, and a few NaN pixels and constant rows within the tolerances."""
    lower = _side("hsc_image", band=lambda v: [b.lower() for b in v])
    no_i = _side("legacysurvey_image", band=["DES-G", "DES-R", "DES-Z"], flux=lambda v: np.asarray(v)[[0, 1, 3]],
                 ivar=lambda v: np.asarray(v)[[0, 1, 3]], mask=lambda v: np.asarray(v)[[0, 1, 3]])
    plates = lambda row, k: _side("spectrum", **{"lambda": lambda v: np.asarray(v) + 10 * (k % 5 - 2)})(row, k)  # noqa: E731
    edit = {"jwst_hsc_crossmatched": lambda row, k: _nan_pixels(0.02)(lower(row, k), k),
            "legacysurvey_hsc_crossmatched": lambda row, k: {**no_i(row, k), "object_id": int(row["object_id"])},
            "sdss_hsc_crossmatched": plates}
    sources = {**write_layouts(tmp_path, edit=edit), "root": tmp_path}
    found = run_preflight(paper_on(sources, paper_config), sample_rows=12, list_files=lister())
    assert found.problems == []
    sides = {(r["pair"], r["side"]): r for r in found.rows["sides"]}
    assert sides["jwst_hsc", "hsc"]["finite"] == "98.1%" and sides["legacysurvey_hsc", "legacysurvey"]["bands / length"] == "g r z"
    assert sides["sdss_hsc", "sdss"]["wavelength (A)"] == "3780-9220"
    assert {r["dataset"]: r["object id"] for r in found.rows["datasets"]}["legacysurvey_hsc_crossmatched"] == "object_id: int64"


def test_repeated_ids_are_reported_not_refused_under_keep_closest(tmp_path, paper_config):
    sources = {**write_layouts(tmp_path, ids=["1", "2", "2", "3"] * 3), "root": tmp_path}
    found = run_preflight(paper_on(sources, paper_config), sample_rows=12, list_files=lister())
    assert found.problems == []
    assert {r["dataset"]: r["repeats in sample"] for r in found.rows["datasets"]}["jwst_hsc_crossmatched"] == 9


def test_a_model_repository_without_weights_or_missing_is_named(good, paper_config):
    files = {**MODEL_FILES, "facebook/convnextv2-nano-22k-224": ["config.json", "README.md"]}
    del files["polymathic-ai/specformer"]
    found = run_preflight(paper_on(good, paper_config), sample_rows=4, list_files=lister(files))
    assert ("model convnextv2-nano: repository facebook/convnextv2-nano-22k-224: no weights file (*.safetensors or "
            "*.bin) at this revision; has ['README.md', 'config.json']") in found.problems
    assert ("model specformer-base: repository polymathic-ai/specformer@main: cannot list its files: 404 Client Error: "
            "repository polymathic-ai/specformer not found") in found.problems
    assert len(found.problems) == 2


def test_gated_repositories_and_code_a_repository_ships_are_named_before_the_run(good, paper_config):
    """Issue 30: a gated repository this machine's token cannot download (DINOv3), a repository whose model is
    its own code (AM-RADIO) without trust_remote_code, and a random control (nothing to fetch)."""
    config = paper_on(good, paper_config)
    config["models"] += [{"family": "dinov3", "sizes": ["small"]}, {"family": "clip", "sizes": ["base"], "random_control": True},
                         {"family": "radio", "pooling": "cls", "sizes": {"b": {"hub_id": "nvidia/RADIO-B", "params_m": 98}}}]
    hf_layout = ["config.json", "preprocessor_config.json", "model.safetensors"]
    files = {**MODEL_FILES, "facebook/dinov3-vits16-pretrain-lvd1689m": hf_layout, "openai/clip-vit-base-patch16": hf_layout,
             "nvidia/RADIO-B": ["config.json", "hf_model.py", "radio_model.py", "model.safetensors"]}
    asked = []

    def access(hub_id):
        asked.append(hub_id)
        raise PermissionError(f"403 Client Error: access to model {hub_id} is restricted")

    found = run_preflight(paper_on(good, paper_config) | {"models": config["models"]}, sample_rows=4,
                          list_files=lister(files), check_access=access)
    assert asked == ["facebook/dinov3-vits16-pretrain-lvd1689m"]  # only the gated repository is asked
    assert ("model dinov3-small: repository facebook/dinov3-vits16-pretrain-lvd1689m: gated: accept its licence at "
            "https://huggingface.co/facebook/dinov3-vits16-pretrain-lvd1689m and log in (`hf auth login`, or HF_TOKEN) on "
            "the machines that download it (403 Client Error: access to model facebook/dinov3-vits16-pretrain-lvd1689m "
            "is restricted)") in found.problems
    assert ("model radio-b: repository nvidia/RADIO-B: ships its own code (hf_model.py, radio_model.py); to run it, set "
            "trust_remote_code: true in its models entry") in found.problems
    assert len(found.problems) == 2
    rows = {r["model"]: r for r in found.rows["models"]}
    assert rows["clip_random-base"]["status"] == "ok (built here)" and rows["clip-base"]["status"] == "ok"
    allowed = [*config["models"][:-1], {**config["models"][-1], "trust_remote_code": True}]
    found = run_preflight(paper_on(good, paper_config) | {"models": allowed}, sample_rows=4, list_files=lister(files),
                          check_access=lambda hub_id: None)
    assert found.problems == [] and rows["dinov3-small"]["status"] == "problem"
    assert {r["model"]: r["status"] for r in found.rows["models"]}["dinov3-small"] == "ok (gated: access granted)"


def test_a_missing_or_unreadable_evaluation_file_is_named(good, paper_config, tmp_path):
    config = paper_on(good, paper_config)
    for d in config["datasets"]:
        if d["name"] == "astroclip_desi":
            d["source"] = str(tmp_path / "nowhere.h5")
    found = run_preflight(config, sample_rows=4, list_files=lister())
    assert any(p.startswith(f"dataset astroclip_desi: file {tmp_path / 'nowhere.h5'}: unreachable") for p in found.problems)
    (tmp_path / "other.h5").write_bytes(b"not HDF5")
    config["datasets"][[d["name"] for d in config["datasets"]].index("astroclip_desi")]["source"] = str(tmp_path / "other.h5")
    found = run_preflight(config, sample_rows=4, list_files=lister())
    assert [p for p in found.problems if "other.h5" in p] != []


def test_offline_the_preflight_stops_at_once_with_cannot_reach_the_hub(paper_config, monkeypatch):
    import requests

    def stalled(*args, **kwargs):  # a DNS lookup that never answers
        time.sleep(30)

    monkeypatch.setattr(requests, "head", stalled)
    start = time.monotonic()
    with pytest.raises(PreflightError, match=r"cannot reach the Hub \(https://huggingface.co\)"):
        run_preflight(validated(paper_config), timeout_s=0.5)
    assert time.monotonic() - start < 10  # the deadline holds: no hang
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PreflightError, match="cannot reach the Hub .*HF_HUB_OFFLINE is set"):
        check_hub_reachable(5)


def _preflight(work, *configfiles, env=None):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "snakemake", "preflight", "--cores", "1", "--configfile",
                           "config/paper.yaml", *configfiles], cwd=work, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.fixture()
def work(tmp_path):
    return copy_repo(tmp_path / "samesky")


def test_snakemake_preflight_writes_its_report_and_fails_with_one_line_per_problem(work, paper_config):
    import yaml

    sources = write_layouts(work / "resources" / "layouts", desi_npix=7780)
    datasets = copy.deepcopy(paper_config["datasets"])
    for d in datasets:
        d["source"] = sources.get(d["name"], str(work / "resources" / "layouts" / "astroclip_desi.h5"))
    # the models are made here (no Hub): this run checks the datasets
    (work / "local.yaml").write_text(yaml.safe_dump({
        "results": "results/preflight", "datasets": datasets, "model_weights": "mini",
        "downstream": {"morphology": {"pair": "desi_hsc", "catalogue": {
            "source": "file", "path": str(work / "resources" / "layouts" / "gz_decals_volunteers_5.csv")}}},
        "mini_specformer_pretraining": {"dataset": "desi_hsc_crossmatched", "steps": 0}}))
    proc = _preflight(work, "local.yaml")
    assert proc.returncode != 0, proc.stderr[-3000:]
    line = ("dataset desi_hsc_crossmatched: column 'desi_spectrum' field 'flux': length [7780], the DESI grid has "
            "7781 pixels")
    assert f"1 problem(s) (report: results/preflight/preflight.md):\n{line}" in proc.stderr
    text = (work / "results" / "preflight" / "preflight.md").read_text()
    assert "**1 problem(s)**" in text and f"- {line}" in text and "| jwst_hsc | jwst | jwst_image |" in text
    assert not (work / "resources" / "paper").exists()  # nothing was downloaded


def test_snakemake_preflight_offline_fails_fast_naming_the_hub(work):
    proc = _preflight(work, env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0
    assert "cannot reach the Hub (https://huggingface.co): HF_HUB_OFFLINE is set" in proc.stderr
    assert "cannot reach the Hub" in (work / "results" / "paper" / "preflight.md").read_text()


def test_the_released_preset_checks_every_released_file_it_reads(tmp_path):
    import yaml
    from snakemake.utils import update_config

    from conftest import REPO
    from test_released import write_released

    write_released(tmp_path / "pu")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "released.yaml").read_text()))
    del config["probes"], config["downstream"]  # both null in the released preset
    config["released_embeddings"]["source"] = str(tmp_path / "pu")
    config["pairs"] = config["pairs"][::2]  # jwst_hsc, desi_hsc: the modes written
    config["models"] = [{"family": "dinov2", "sizes": ["small", "base", "large"]}, {"family": "specformer", "sizes": ["base"]}]
    config["alignment"]["hsc_pair"] = "jwst_hsc"
    found = run_preflight(validated(config))  # dinov2-large is not released: a note, the run goes on
    assert found.problems == [] and len(found.notes) == 2
    assert found.notes[0].startswith(f"released embeddings dinov2-large: pair jwst_hsc (final): not in {tmp_path / 'pu'}"
                                     "@main (tried jwst/dino_large.parquet, jwst/jwst_dino_large.parquet, ")
    assert [r["status"] for r in found.rows["models"]].count("ok") == 4
    config["released_embeddings"]["strict"] = True
    found = run_preflight(validated(config))
    assert [p.split(" (tried")[0] for p in found.problems] == [
        f"released embeddings dinov2-large: pair jwst_hsc (final): not in {tmp_path / 'pu'}@main",
        f"released embeddings dinov2-large: pair desi_hsc (final): not in {tmp_path / 'pu'}@main"]


def _parents_only(config: dict) -> dict:
    """The embedded default cut down to one pair (desi_hsc) of its ``datasets``, two models, no probes."""
    config["pairs"] = [{"name": "desi_hsc", "reference_dataset": "hsc", "other_dataset": "desi"}]
    config["models"] = [{"family": "vit", "sizes": ["base"]}, {"family": "specformer", "sizes": ["base"]}]
    config["mini_specformer_pretraining"]["dataset"] = "desi"
    config["alignment"]["hsc_pair"] = "desi_hsc"
    config["alignment"]["size_curves"].update(decomposition_model="vit-base",
                                           classes={"source": "none", "column": "", "n_bins": 2})
    config["alignment"]["conditional"].update(redshift={"source": "none", "column": ""}, brightness=None)
    del config["probes"], config["downstream"]
    return config


def test_parent_sets_in_mmus_layout_report_their_sizes_and_the_overlap_of_their_samples(tmp_path, default_config):
    """Two parents crossmatched here (MMU's layout: object_id, ra, dec, image or spectrum), one a preview
    smaller than its expected size: the report says how many rows each holds, names the preview, and how
    many of the sampled rows match."""
    rng = np.random.default_rng(1)
    ra, dec = 150 + rng.uniform(0, 0.1, N), 2 + rng.uniform(0, 0.1, N)
    hsc = _save([{"object_id": f"h{i}", "ra": ra[i], "dec": dec[i], "image": _image(HSC_BANDS, rng)} for i in range(N)],
                {"object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64"), "image": _image_feature()},
                tmp_path / "hsc")
    shift = np.where(np.arange(N) < 8, 0.2 / 3600, 0.01)  # 8 objects 0.2 arcsec away, the rest far
    spectrum = Sequence({"flux": Value("float32"), "ivar": Value("float32"), "mask": Value("bool"),
                         "lambda": Value("float32")})
    desi = _save([{"object_id": str(39627000000 + i), "ra": ra[i] + shift[i], "dec": dec[i], "Z": 0.1,
                   "spectrum": _spectrum(DESI_NPIX, rng, span=(3600, 9824))} for i in range(N)],
                 {"object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64"), "Z": Value("float32"),
                  "spectrum": spectrum}, tmp_path / "desi")
    config = copy.deepcopy(default_config)
    config["datasets"] = [{"name": "hsc", "kind": "image", "survey": "hsc", "source": hsc, "expected_rows": 477_000,
                           "image_mask": "clean"},
                          {"name": "desi", "kind": "spectrum", "survey": "desi", "source": desi}]
    config = _parents_only(config)
    found = run_preflight(validated(config), sample_rows=N, list_files=lister())
    assert found.problems == []
    rows = {r["dataset"]: r for r in found.rows["datasets"]}
    assert rows["hsc"]["rows at revision"] == N and rows["hsc"]["expected"] == 477_000
    assert f"dataset hsc: {N} rows at this revision of 477000 expected (0%): a preview, or a subset" in "\n".join(found.notes)
    assert f"pair desi_hsc: 8 of the sampled {N} x {N} rows match within 1 arcsec" in "\n".join(found.notes)
    assert {r["side"]: r["status"] for r in found.rows["sides"]} == {"hsc": "ok", "desi": "ok"}


def test_full_copies_of_mmus_parents_report_rows_values_and_the_pairs_the_crossmatch_will_make(tmp_path, default_config):
    """format mmu_hdf5 (MMU's HDF5 layout): rows counted from the files against the expected size, the
    sampled values read with the masks in the run's polarity (image_mask: clean), and the overlap from every
    row's position, matched one-to-one as the crossmatch will."""
    from mmu_layout import write_mmu_parent
    from test_mmu_data import _image_set, _spectrum_set

    rng = np.random.default_rng(2)
    hsc = _image_set(["hsc-g", "hsc-r", "hsc-i", "hsc-z", "hsc-y"], rng)
    desi = _spectrum_set(DESI_NPIX, rng, [0] * len(hsc), span=(3600, 9824))
    shift = np.where(np.arange(len(desi)) < 7, 0.3 / 3600, 0.01)  # 7 objects 0.3 arcsec away, the rest far
    desi = desi.map(lambda row, k: {"ra": row["ra"] + shift[k]}, with_indices=True)
    write_mmu_parent(hsc, tmp_path / "hsc", "hsc", "pdr3_dud_22.5")
    write_mmu_parent(desi, tmp_path / "desi", "desi", "dr1_main")
    config = copy.deepcopy(default_config)
    config["datasets"] = [
        {"name": "hsc", "kind": "image", "survey": "hsc", "format": "mmu_hdf5", "source": str(tmp_path / "hsc"),
         "config_name": "pdr3_dud_22.5", "image_mask": "clean", "expected_rows": 477_000},
        {"name": "desi", "kind": "spectrum", "survey": "desi", "format": "mmu_hdf5", "source": str(tmp_path / "desi"),
         "config_name": "dr1_main"}]
    config = _parents_only(config)
    found = run_preflight(validated(config), sample_rows=4, list_files=lister())
    assert found.problems == []
    rows = {r["dataset"]: r for r in found.rows["datasets"]}
    assert rows["hsc"]["rows at revision"] == len(hsc) and rows["hsc"]["rows sampled"] == 4
    notes = "\n".join(found.notes)
    assert f"dataset hsc: {len(hsc)} rows at this revision of 477000 expected" in notes
    assert (f"pair desi_hsc: the crossmatch will pair 7 objects ({len(hsc)} x {len(desi)} rows matched within 1 "
            "arcsec, one-to-one, as the run will)") in notes
    sides = {r["side"]: r for r in found.rows["sides"]}
    assert sides["hsc"]["status"] == "ok" and float(sides["hsc"]["masked"].rstrip("%")) < 50  # inverted: ~20%
    # read in the wrong polarity, the same files are stopped with the line that names the setting
    config["datasets"][0]["image_mask"] = "bad"
    wrong = run_preflight(validated(config), sample_rows=4, list_files=lister())
    assert any("field 'mask'" in p and "set the dataset's image_mask: clean" in p for p in wrong.problems)
