"""Compare two results folders, table by table: which numbers differ beyond their tolerance, and which
conclusions change. For a reviewer's rerun against our published figures, or a run on another computer:

    python -m samesky.compare RUN_A RUN_B [--spread spread.csv] [--tolerances my.yaml]

RUN_A and RUN_B are results folders (``results/`` of two runs). Every CSV under either is compared; the
tolerances and conclusions are declared once, in ``samesky/tolerances.yaml`` (docs/reproducibility.md says
how they were chosen). Exit status 0 when every number is within its tolerance and every conclusion agrees,
1 otherwise, 2 on bad arguments.

How a table is compared (its entry in tolerances.yaml, the first whose pattern matches its path):
- rows are matched on ``key`` (default: every text column that is not a result), repeated keys in order;
  a row in one run only is a difference;
- each number against ``columns[name]`` (an absolute tolerance; ``exact`` columns 0) or the entry's
  ``default``; text columns must be equal; ``ignore`` columns are not compared (times, free text);
- ``conclusions`` name what a reader concludes from the table (a p-value under alpha, an interval clear of
  0, a count, the best of a group within a tolerance): these must agree exactly.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .tolerances import Entry, entry_for, load_entries

# --- conclusions: each maps a table to {(conclusion name, row label): value}; equal values agree ---------

def _rows(frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    return frame.query(spec["where"]) if spec.get("where") else frame


def _label(row, columns) -> str:
    return " / ".join(str(row[c]) for c in columns if c in row.index)


def _significant(frame, spec, key):
    """Row by row: is ``column`` (a p-value) below ``alpha``?"""
    alpha = float(spec.get("alpha", 0.05))
    rows = _rows(frame, spec)
    return {(spec["name"], _label(r, key)): bool(r[spec["column"]] < alpha) if pd.notna(r[spec["column"]]) else None
            for _, r in rows.iterrows()}


def _interval(frame, spec, key):
    """Row by row: is the interval [lo, hi] above 0, below 0, or across it?"""
    rows = _rows(frame, spec)
    out = {}
    for _, r in rows.iterrows():
        lo, hi = r[spec.get("lo", "lo")], r[spec.get("hi", "hi")]
        out[spec["name"], _label(r, key)] = "above 0" if lo > 0 else "below 0" if hi < 0 else "spans 0"
    return out


def _equal(frame, spec, key):
    """Row by row: the values of ``columns`` (counts, verdicts) themselves."""
    rows = _rows(frame, spec)
    return {(f"{spec['name']}: {c}", _label(r, key)): _plain(r[c]) for _, r in rows.iterrows() for c in spec["columns"]}


def _best(frame, spec, key):
    """Per group of ``by``: the rows whose ``value`` is within ``within`` of the group's largest (smallest with
    ``lowest: true``). Two runs agree when each run's best is among the other's near-best (``_agree``)."""
    rows = _rows(frame, spec)
    sign = -1.0 if spec.get("lowest") else 1.0
    out = {}
    groups = rows.groupby(spec["by"], sort=False) if spec.get("by") else [("all", rows)]
    for group, sub in groups:
        values = sign * sub[spec["value"]].astype(float)
        if values.isna().all():
            continue
        near = sub[values >= values.max() - float(spec.get("within", 0.0))]
        best = _label(sub.loc[values.idxmax()], spec["label"])
        out[spec["name"], str(group)] = NearBest(best, frozenset(_label(r, spec["label"]) for _, r in near.iterrows()))
    return out


@dataclass(frozen=True)
class NearBest:
    best: str
    near: frozenset

    def __str__(self):
        return self.best + (f" (within tolerance: {', '.join(sorted(self.near - {self.best}))})"
                            if len(self.near) > 1 else "")


CONCLUSIONS = {"significant": _significant, "interval": _interval, "equal": _equal, "best": _best}


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    return value


def _agree(a, b) -> bool:
    if isinstance(a, NearBest) and isinstance(b, NearBest):
        return a.best in b.near and b.best in a.near
    return a == b


def conclusions(frame: pd.DataFrame, entry: Entry) -> dict:
    key = _key_columns(frame, entry)
    out = {}
    for spec in entry.conclusions:
        needed = (spec.get("column"), spec.get("value"), spec.get("lo"), spec.get("hi"), *spec.get("columns", []))
        if any(c and c not in frame.columns for c in needed):
            continue  # a table from before the column existed: its header differences are reported as such
        out.update(CONCLUSIONS[spec["kind"]](frame, spec, key))
    return out


# --- numbers ----------------------------------------------------------------------------------------

def _key_columns(frame: pd.DataFrame, entry: Entry) -> list[str]:
    if entry.key is not None:
        return [c for c in entry.key if c in frame.columns]
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) and c not in entry.exact
            and c not in entry.ignore and c not in entry.columns]


def _indexed(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame["_repeat"] = frame.groupby(key, sort=False, dropna=False).cumcount() if key else np.arange(len(frame))
    return frame.set_index([*key, "_repeat"])


@dataclass
class TableResult:
    path: str
    entry: Entry
    status: str = "compared"  # or "only in A", "only in B", "unreadable"
    largest: dict = field(default_factory=dict)  # column -> largest |a - b| (numbers), or differing count (text)
    beyond: list = field(default_factory=list)  # (row, column, a, b, |a - b|, tolerance)
    changed: list = field(default_factory=list)  # (conclusion, row, a, b)
    rows: tuple = (0, 0)

    @property
    def ok(self) -> bool:
        return self.status == "compared" and not self.beyond and not self.changed


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, entry: Entry, path: str = "") -> TableResult:
    result = TableResult(path, entry, rows=(len(a), len(b)))
    key = _key_columns(a, entry)
    if set(a.columns) != set(b.columns):
        for c in sorted(set(a.columns) ^ set(b.columns)):
            result.beyond.append(("(header)", c, "present" if c in a else "absent", "present" if c in b else "absent",
                                  math.inf, 0.0))
    ia, ib = _indexed(a, key), _indexed(b, key)
    for label, only in (("A", ia.index.difference(ib.index)), ("B", ib.index.difference(ia.index))):
        for row in only:
            result.beyond.append((_row_name(row, key), "(row)", "present" if label == "A" else "absent",
                                  "present" if label == "B" else "absent", math.inf, 0.0))
    common = ia.index.intersection(ib.index, sort=False)
    for column in [c for c in ia.columns if c in ib.columns and c not in entry.ignore]:
        va, vb = ia.loc[common, column], ib.loc[common, column]
        if pd.api.types.is_numeric_dtype(va) and pd.api.types.is_numeric_dtype(vb):
            fa, fb = va.astype(float).to_numpy(), vb.astype(float).to_numpy()
            same_nan = np.isnan(fa) & np.isnan(fb)
            diff = np.where(same_nan, 0.0, np.abs(fa - fb))
            diff = np.where(np.isnan(diff), math.inf, diff)  # a number in one run, NaN in the other
            result.largest[column] = float(diff.max()) if len(diff) else 0.0
            tol = entry.tolerance(column)
            for i in np.flatnonzero(diff > tol + 1e-12):
                result.beyond.append((_row_name(common[i], key), column, _plain(va.iloc[i]), _plain(vb.iloc[i]),
                                      float(diff[i]), tol))
        else:
            sa, sb = va.astype(str).to_numpy(), vb.astype(str).to_numpy()
            differs = np.flatnonzero(sa != sb)
            result.largest[column] = f"{len(differs)} differ" if len(differs) else "same"
            for i in differs:
                result.beyond.append((_row_name(common[i], key), column, sa[i], sb[i], math.inf, 0.0))
    ca, cb = conclusions(a, entry), conclusions(b, entry)
    for name in list(dict.fromkeys([*ca, *cb])):
        if not _agree(ca.get(name, "absent"), cb.get(name, "absent")):
            result.changed.append((name[0], name[1], str(ca.get(name, "absent")), str(cb.get(name, "absent"))))
    return result


def _row_name(row, key) -> str:
    values = row if isinstance(row, tuple) else (row,)
    named = [f"{k}={v}" for k, v in zip(key, values)]
    if len(values) > len(key) and values[-1]:
        named.append(f"#{values[-1] + 1}")
    return ", ".join(named) or f"row {values[-1]}"


def csv_tables(folder: Path) -> set[str]:
    """Every CSV under a results folder, as paths relative to it (Snakemake's hidden files left out)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*.csv")
            if not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def compare_runs(run_a: str | Path, run_b: str | Path, entries: list[Entry] | None = None) -> list[TableResult]:
    run_a, run_b = Path(run_a), Path(run_b)
    for run in (run_a, run_b):
        if not run.is_dir():
            raise FileNotFoundError(f"{run}: no such results folder")
    entries = load_entries(None, CONCLUSIONS) if entries is None else entries
    ta, tb = csv_tables(run_a), csv_tables(run_b)
    results = []
    for path in sorted(ta | tb):
        entry = entry_for(path, entries)
        if path not in tb or path not in ta:
            results.append(TableResult(path, entry, status="only in A" if path in ta else "only in B"))
            continue
        try:
            a, b = pd.read_csv(run_a / path), pd.read_csv(run_b / path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            if (run_a / path).read_bytes() == (run_b / path).read_bytes():
                continue  # an empty table in both (a job with nothing to write)
            results.append(TableResult(path, entry, status=f"unreadable ({exc})"))
            continue
        results.append(compare_tables(a, b, entry, path))
    return results


def spread_table(results: list[TableResult]) -> pd.DataFrame:
    """The largest difference of every numeric column of every table, beside its tolerance."""
    rows = []
    for r in results:
        for column, largest in r.largest.items():
            if isinstance(largest, float):
                rows.append({"table": r.path, "column": column, "largest_difference": largest,
                             "tolerance": r.entry.tolerance(column), "within": largest <= r.entry.tolerance(column) + 1e-12})
    return pd.DataFrame(rows, columns=["table", "column", "largest_difference", "tolerance", "within"])


def report(results: list[TableResult], limit: int = 10) -> str:
    lines = []
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    identical = sum(1 for r in ok if all(v in (0.0, "same") for v in r.largest.values()))
    lines.append(f"{len(results)} tables: {len(ok)} agree ({identical} identical, {len(ok) - identical} within "
                 f"tolerance), {len(bad)} differ")
    for r in bad:
        lines.append(f"\n{r.path} [{r.status}; tolerances: {r.entry.pattern}]")
        for name, row, va, vb in r.changed[:limit]:
            lines.append(f"  conclusion changed: {name} ({row}): {va} -> {vb}")
        if len(r.changed) > limit:
            lines.append(f"  ... and {len(r.changed) - limit} more conclusions")
        for row, column, va, vb, diff, tol in r.beyond[:limit]:
            lines.append(f"  {column} ({row}): {va} vs {vb}" + (f", |diff| {diff:.4g} > {tol:g}" if math.isfinite(diff) else ""))
        if len(r.beyond) > limit:
            lines.append(f"  ... and {len(r.beyond) - limit} more values")
    changed = sum(len(r.changed) for r in results)
    lines.append(f"\nconclusions changed: {changed}; values beyond tolerance: {sum(len(r.beyond) for r in results)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samesky.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", help="a results folder (e.g. results/)")
    parser.add_argument("run_b", help="the results folder to compare it with")
    parser.add_argument("--tolerances", help="a tolerances file in tolerances.yaml's format (default: ours)")
    parser.add_argument("--spread", help="write the largest difference of every numeric column here (CSV)")
    parser.add_argument("--limit", type=int, default=10, help="differences listed per table (default 10)")
    args = parser.parse_args(argv)
    try:
        results = compare_runs(args.run_a, args.run_b, load_entries(args.tolerances, CONCLUSIONS))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(results, args.limit))
    if args.spread:
        spread_table(results).to_csv(args.spread, index=False)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
