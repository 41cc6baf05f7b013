"""The tolerances two runs of the study are compared with (``samesky.compare``), declared once in
tolerances.yaml beside this file. Only yaml here (pandas only where a ``rows`` override is evaluated): the
workflow names the file while it parses, and the trend steps read it (a step within a tolerance of its
line is a near-tie: ``tables.mark_near_ties``, ``suite.metric_trend_tests``)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TOLERANCES = Path(__file__).with_name("tolerances.yaml")


@dataclass
class Entry:
    """How one table (or the tables one pattern matches) is compared."""

    pattern: str
    key: list[str] | None = None
    default: float = 0.0
    columns: dict[str, float] = field(default_factory=dict)
    exact: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    conclusions: list[dict] = field(default_factory=list)
    select: str = ""  # a pandas query: only these rows are compared (the rest are not comparable row by row)
    compare: bool = True  # false: the table is listed as not compared, with `why`
    why: str = ""

    def tolerance(self, column: str) -> float:
        """The column's tolerance where no ``rows`` override applies."""
        if column in self.exact:
            return 0.0
        return float(self.columns.get(column, self.default))

    def tolerances(self, column: str, frame):
        """The column's tolerance row by row of ``frame``: ``rows`` entries ({where: a pandas query, columns:
        {name: tolerance}}) override it on the rows they select, the last one that selects a row winning
        (e.g. the spectra's comparisons, where a trained model moves more than a frozen one)."""
        import numpy as np

        out = np.full(len(frame), self.tolerance(column))
        if column in self.exact:
            return out
        for override in self.rows:
            if column in override.get("columns", {}):
                try:
                    hit = frame.reset_index(drop=True).query(override["where"]).index.to_numpy()
                except Exception as exc:  # pandas raises several kinds for a bad query
                    raise ValueError(f"tolerances entry {self.pattern!r}: rows where {override['where']!r}: "
                                     f"{type(exc).__name__}: {exc}") from exc
                out[hit] = float(override["columns"][column])
        return out


def load_entries(path: str | Path | None = None, kinds=None) -> list[Entry]:
    """tolerances.yaml's entries, in order (the last should be the catch-all ``"*"``); ``kinds``: the
    conclusion kinds a caller knows (``compare.CONCLUSIONS``), checked where given."""
    path = Path(path) if path else TOLERANCES
    spec = yaml.safe_load(path.read_text())
    entries = []
    for i, item in enumerate(spec.get("tables", [])):
        unknown = set(item) - set(Entry.__dataclass_fields__)
        if unknown or "pattern" not in item:
            raise ValueError(f"{path}: tables[{i}] has unknown keys {sorted(unknown)} or no 'pattern'")
        for r in item.get("rows", []):
            if set(r) != {"where", "columns"}:
                raise ValueError(f"{path}: tables[{i}] ({item['pattern']}): each of 'rows' needs exactly 'where' "
                                 f"and 'columns', got {sorted(r)}")
        for c in item.get("conclusions", []):
            if kinds is not None and c.get("kind") not in kinds:
                raise ValueError(f"{path}: tables[{i}] ({item['pattern']}): conclusion kind {c.get('kind')!r} is "
                                 f"not one of {sorted(kinds)}")
            if "name" not in c:
                raise ValueError(f"{path}: tables[{i}] ({item['pattern']}): a conclusion without a 'name'")
        entries.append(Entry(**item))
    return entries


def entry_for(relpath: str, entries: list[Entry]) -> Entry:
    for entry in entries:
        if fnmatch.fnmatchcase(relpath, entry.pattern):
            return entry
    return Entry(pattern="(none)")

