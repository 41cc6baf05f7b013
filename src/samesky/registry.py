"""The models of a run: the zoo's families (``zoo.yaml``) and the config's ``models`` entries, as specs.

A config entry names a family of the zoo and picks its sizes (``{family: dinov2, sizes: [small, giant]}``),
may override any of the family's keys (a pinned ``revision``, another ``pooling``), or defines a family the
zoo does not have (its ``adapter``, ``pooling`` and per-size ``hub_id`` and ``params_m``: docs/models.md).
``random_control: true`` adds, beside every size, the same architecture with seeded random weights: family
``<family>_random``, the same sizes (``random_twin``).

Each spec holds what the embedding stage needs: the Hub id (and subfolder), revision, parameter count,
modality, what the model takes, its pooling, the adapter that loads it, and ``mini``: the configuration of
the embedded default's small randomly initialised instance of the same architecture.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError

ZOO = Path(__file__).with_name("zoo.yaml")
CONTROL_SUFFIX = "_random"  # the family name of a random-weights control: dinov2 -> dinov2_random

# Revisions: no commit SHA could be looked up offline, so the Hub revisions are the default branch; the
# download resolves each to its commit and records it in the model's manifest
# (resources/models/<family>-<size>/samesky_model.json).
HUB_REVISION = "main"

# Keys a family (or a size) may set, with the value a family has where neither it nor its config entry does
FAMILY_DEFAULTS = {"label": None, "adapter": "hf", "modality": "image", "takes": "rgb", "reads": None,
                   "pooling": None, "input_size": None, "revision": HUB_REVISION, "gated": False,
                   "trust_remote_code": False, "needs_remote_code": False, "weights": "hub", "random_control": False,
                   "prompt": None, "frames": None, "dtype": "float32", "config_overrides": {}, "released": None,
                   "mini": None}
SIZE_KEYS = ("hub_id", "params_m", "subfolder")


@dataclass(frozen=True)
class ModelSpec:
    family: str
    size: str
    hub_id: str | None
    params_m: float  # parameters, millions (Platonic Universe, Table 3)
    modality: str  # image | spectrum
    pooling: str  # a pooling name of embed.hf.POOLINGS (adapter hf), else the family's own, in words
    input_size: int | None  # pixels on a side for images (the processor resizes), or spectrum pixels
    mini: dict | None = field(default_factory=dict)
    subfolder: str | None = None  # AstroPT keeps each size in a folder of one repository
    revision: str = HUB_REVISION
    reads: tuple[str, ...] | None = None  # the only surveys whose data the model takes (None: any of its modality)
    # what it takes: "rgb", 8-bit images made by the study's scaling, shared by every such model of a
    # (pair, side); "flux", calibrated image flux it scales itself (AstroCLIP, AION); or "spectrum"
    takes: str = "rgb"
    adapter: str = "hf"  # embed.families' name for the code that loads it, or 'module:Class' / 'file.py:Class'
    label: str | None = None  # the family as tables name it
    weights: str = "hub"  # where the released weights come from: hub, or package (installed with pip)
    gated: bool = False  # the repository needs an accepted licence and a token
    trust_remote_code: bool = False  # the config's switch: run code the repository ships
    needs_remote_code: bool = False  # the repository's model is defined by code it ships
    prompt: str | None = None  # vision-language models: the text beside the image
    frames: int | None = None  # video models: a still image repeated as this many frames
    dtype: str = "float32"  # the weights' dtype on a GPU (the CPU always runs float32)
    config_overrides: dict = field(default_factory=dict)  # set on the model's config when it is loaded
    released: dict | None = None  # the released embeddings' names: {alias, sizes: {ours: theirs}}
    control_of: str | None = None  # a random-weights control: the name of the learned model it mirrors
    only_pairs: tuple[str, ...] | None = None  # embed only these pairs' data (config)

    @property
    def name(self) -> str:
        return f"{self.family}-{self.size}"

    @property
    def is_control(self) -> bool:
        return self.control_of is not None

    def reads_survey(self, survey: str) -> bool:
        return self.reads is None or survey in self.reads

    @property
    def download(self) -> tuple[str, str, str | None]:
        """What its released weights are fetched as (repository, revision, folder in it): models with the same
        load the same files (AstroCLIP's three encoders, one checkpoint), which the workflow fetches once."""
        return self.hub_id, self.revision, self.subfolder

    @property
    def download_folder(self) -> str:
        """The folder name of a shared download, 'owner--name'."""
        return self.hub_id.replace("/", "--") + (f"--{self.subfolder.replace('/', '-')}" if self.subfolder else "")

    @property
    def bytes_per_param(self) -> int:
        return 2 if self.dtype == "bfloat16" else 4

    def tokens(self) -> int:
        """Tokens per object, roughly: one per 14-pixel patch of the input (a video model's frames in pairs,
        its tubelets); a spectrum one per 10 pixels, as Specformer's windows."""
        size = self.input_size or 224
        if self.modality == "spectrum":
            return size // 10
        return math.ceil(size / 14) ** 2 * max(1, (self.frames or 1) // 2)

    def gflops_per_object(self) -> float:
        """A forward pass's cost, roughly 2 x parameters x tokens: for run-time requests, not science."""
        return 2 * self.params_m * 1e6 * self.tokens() / 1e9

    def gpu_mem_mb(self, batch: int = 128) -> int:
        """GPU memory of an embedding job at this batch size: the weights in their GPU dtype and a quarter
        more, the activations (80 kB a token for vision encoders; 0.5 MB for a vision-language model, whose
        every layer's hidden state is kept for the masked mean), plus 2 GB. Fitted to peaks measured on an
        H200 at batch 256 (docs/models.md): ViT-B 3 GB, SigLIP-so400m 12 GB, V-JEPA 2 giant 42 GB."""
        per_token = 0.5 if self.pooling == "masked_mean" else 0.08
        return int(2000 + 1.25 * self.params_m * self.bytes_per_param + batch * self.tokens() * per_token)


@functools.cache
def zoo() -> dict:
    """The zoo's families as written in zoo.yaml (family -> entry with a ``sizes`` mapping). Read with
    libyaml where PyYAML has it (the same data, ~10 x faster: every snakemake command reads the zoo)."""
    with open(ZOO) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def is_control_family(family: str) -> bool:
    """A random-weights control's family (``<family>_random``), as tables and trend tests read it."""
    return family.endswith(CONTROL_SUFFIX)


def learned_family(family: str) -> str:
    """The learned family a control mirrors (``dinov2_random`` -> ``dinov2``); any other family itself."""
    return family.removesuffix(CONTROL_SUFFIX)


def family_label(family: str, labels: dict | None = None) -> str:
    """How tables name a family: its label (the config's, else the zoo's: AstroPTv2, DINOv2; else its name),
    with '(random)' after a control's."""
    base = learned_family(family)
    own = labels[base] if labels and base in labels else None  # labels may be a step's strict Settings
    label = own or (zoo().get(base) or {}).get("label") or base
    return f"{label} (random)" if is_control_family(family) else label


def _family_entry(entry: dict, key: str) -> dict:
    """The zoo's entry of a config entry's family with the config's keys over it; sizes as a mapping."""
    family = entry["family"]
    base = copy.deepcopy(zoo().get(family) or {"sizes": {}})
    if is_control_family(family):
        raise ConfigError(f"config key {key}.family: '{family}': names ending in '{CONTROL_SUFFIX}' are the random "
                          f"controls' (set random_control: true on '{learned_family(family)}')")
    merged = {**FAMILY_DEFAULTS, **{k: v for k, v in base.items() if k != "sizes"}}
    overrides = {k: v for k, v in entry.items() if k not in ("family", "sizes", "only_pairs")}
    merged.update(overrides)
    # precedence: the zoo's family keys, its sizes' keys, the config's family keys, the config's size keys
    base["sizes"] = {size: {k: v for k, v in own.items() if k not in overrides} for size, own in base["sizes"].items()}
    sizes = entry["sizes"]
    if isinstance(sizes, dict):  # sizes defined or extended by the config
        chosen = {}
        for size, own in sizes.items():
            chosen[size] = {**base["sizes"].get(size, {}), **(own or {})}
    else:
        unknown = [s for s in sizes if s not in base["sizes"]]
        if family not in zoo():
            raise ConfigError(f"config key {key}.family: '{family}' is not a family of the zoo {sorted(zoo())}; "
                              f"to add your own, give its sizes as a mapping with hub_id and params_m "
                              f"(docs/models.md)")
        if unknown:
            j = sizes.index(unknown[0])
            raise ConfigError(f"config key {key}.sizes[{j}]: unknown size '{unknown[0]}' of {family}; known: "
                              f"{list(base['sizes'])}")
        chosen = {s: base["sizes"][s] for s in sizes}
    merged["sizes"] = chosen
    return merged


def _spec(family: str, size: str, fam: dict, key: str, only_pairs) -> ModelSpec:
    own = fam["sizes"][size]
    values = {k: own.get(k, fam[k]) for k in FAMILY_DEFAULTS if k not in ("random_control", "mini")}
    if own.get("params_m") is None:
        raise ConfigError(f"config key {key}.sizes.{size}.params_m: model {family}-{size} needs one")
    if own.get("hub_id") is None and values["weights"] != "package" and not own.get("mini"):
        raise ConfigError(f"config key {key}.sizes.{size}.hub_id: model {family}-{size} needs one (or a mini "
                          "configuration, for the embedded default alone)")
    if values["pooling"] is None:
        raise ConfigError(f"config key {key}.pooling: model family '{family}' needs a pooling (docs/models.md)")
    if values["needs_remote_code"] and not values["trust_remote_code"]:
        raise ConfigError(f"config key {key}.trust_remote_code: {family}-{size} ({own['hub_id']}) runs code its "
                          "repository ships; set trust_remote_code: true to allow it (it is recorded in provenance)")
    family_mini, size_mini = fam.get("mini"), own.get("mini")
    if family_mini and "model_class" in family_mini:  # transformers families: class, config, processor
        mini = {**copy.deepcopy(family_mini), "config": {**family_mini.get("config", {}), **(size_mini or {})}}
    else:  # own-code families: the size's mini is the whole configuration
        mini = copy.deepcopy(size_mini)
    reads = values.pop("reads")
    reads = tuple(reads) if reads is not None else None
    return ModelSpec(family=family, size=size, hub_id=own.get("hub_id"), params_m=float(own["params_m"]),
                     subfolder=own.get("subfolder"), mini=mini, reads=reads,
                     only_pairs=tuple(only_pairs) if only_pairs else None, **values)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def random_twin(spec: ModelSpec) -> ModelSpec:
    """The random-weights control of a model: its architecture and inputs, family ``<family>_random``."""
    from dataclasses import replace

    return replace(spec, family=spec.family + CONTROL_SUFFIX, control_of=spec.name, gated=False)


def model_specs(models: list[dict]) -> dict[str, ModelSpec]:
    """Every model size of a config's ``models`` (and each random control after its model), by name;
    a ConfigError names the key of the first entry that cannot be made a spec."""
    specs: dict[str, ModelSpec] = {}
    for i, entry in enumerate(models):
        entry = _plain(entry)  # a step's strict Settings become plain values
        key = f"models[{i}]"
        fam = _family_entry(entry, key)
        for size in fam["sizes"]:
            spec = _spec(entry["family"], size, fam, key, entry.get("only_pairs"))
            if spec.name in specs:
                raise ConfigError(f"config key {key}: model {spec.name} is listed twice")
            specs[spec.name] = spec
        if fam["random_control"]:
            for size in fam["sizes"]:
                twin = random_twin(specs[f"{entry['family']}-{size}"])
                specs[twin.name] = twin
    return specs


def specs_of(config: dict) -> dict[str, ModelSpec]:
    return model_specs(config["models"])


@functools.cache
def _zoo_specs() -> dict[str, ModelSpec]:
    return model_specs([{"family": f, "sizes": list(e["sizes"]),
                         **({"trust_remote_code": True} if e.get("needs_remote_code") else {})}
                        for f, e in zoo().items()])


def zoo_specs() -> dict[str, ModelSpec]:
    """Every size of every family of the zoo (tests, docs, the released preset's names)."""
    return dict(_zoo_specs())


def get_spec(family: str, size: str) -> ModelSpec:
    """A size of a zoo family (its default settings)."""
    return spec_by_name(f"{family}-{size}")


def spec_by_name(name: str, specs: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec of a model size named '<family>-<size>' (``ModelSpec.name``), e.g. 'dinov2-giant', among
    ``specs`` (a run's) or the zoo's."""
    specs = specs if specs is not None else zoo_specs()
    try:
        return specs[name]
    except KeyError:
        raise ConfigError(f"unknown model {name}; known: {sorted(specs)}") from None
