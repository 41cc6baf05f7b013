"""Compare two results folders, table by table: which numbers differ beyond their tolerance, and which
conclusions change. For a reviewer's rerun against our published figures, or a run on another computer:

    python -m samesky.compare RUN_A RUN_B [--spread spread.csv] [--tolerances my.yaml]

RUN_A and RUN_B are results folders (``results/`` of two runs). Every CSV under either is compared; the
tolerances and conclusions are declared once, in ``samesky/tolerances.yaml`` (how they were chosen:
docs/results.md, "On another computer"). Exit status 0 when every number is within its tolerance and every
conclusion agrees or differs only on a near-tie (named in the report), 1 otherwise, 2 on bad arguments.

How a table is compared (its entry in tolerances.yaml, the first whose pattern matches its path):
- rows are matched on ``key`` (default: every text column that is not a result), repeated keys in order;
  a row in one run only is a difference;
- each number against ``columns[name]`` (an absolute tolerance; ``exact`` columns 0) or the entry's
  ``default``; text columns must be equal; ``ignore`` columns are not compared (times, free text);
- ``conclusions`` name what a reader concludes from the table (a p-value under alpha, an interval clear of
  0, a count, the best of a group within a tolerance): these must agree, or differ only on a near-tie.
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

# --- conclusions: each maps a table to {(conclusion name, row label): Verdict} ------------------------
# Two runs agree on a conclusion when its values are equal. Where they differ and the conclusion sits within
# its tolerance of the line that decides it in either run (a p-value near alpha, an interval's edge near 0, a
# count that differs by no more than its near-ties, a best model within `within` of the other's), it hangs
# on a near-tie: named in the report, not a disagreement. Otherwise it changed.

@dataclass(frozen=True)
class Verdict:
    value: object
    near: bool = False  # within tolerance of the line that decides it
    slack: float = 0.0  # for counts: how far it may move on near-ties
    near_set: frozenset = frozenset()  # for best: the labels within `within` of the best

    def __str__(self):
        shown = str(self.value)
        if self.near_set and len(self.near_set) > 1:
            shown += f" (within tolerance: {', '.join(sorted(self.near_set - {self.value}))})"
        return shown + (f" (±{self.slack:g} near-ties)" if self.slack else "")


def _rows(frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    return frame.query(spec["where"]) if spec.get("where") else frame


def _label(row, columns) -> str:
    return " / ".join(str(row[c]) for c in columns if c in row.index)


def _significant(frame, spec, key, entry):
    """Row by row: is ``column`` (a p-value) below ``alpha``? Near alpha: within a factor ``margin`` (3) of it,
    p-values moving on a log scale. No p-value (a test of nothing, e.g. no decided step) is not significant."""
    alpha, margin = float(spec.get("alpha", 0.05)), float(spec.get("margin", 3.0))
    out = {}
    rows = _rows(frame, spec)
    # with `value` and `line` (a score and its null's quantile), also near when the score is within its
    # tolerance of the line: a p-value from a few objects (MKNN at k = 1) can jump from 0.005 to 0.3
    tol = entry.tolerances(spec["value"], rows) if spec.get("value") else np.zeros(len(rows))
    for (_, r), t in zip(rows.iterrows(), tol):
        p = r[spec["column"]]
        value = bool(p < alpha) if pd.notna(p) else False
        near = bool(pd.notna(p) and alpha / margin <= p <= alpha * margin)
        if spec.get("value"):
            near = near or bool(abs(r[spec["value"]] - r[spec["line"]]) <= t)
        out[spec["name"], _label(r, key)] = Verdict(value, near)
    return out


def _interval(frame, spec, key, entry):
    """Row by row: is the interval [lo, hi] above 0, below 0, or across it? Near: an edge within the ``lo``
    column's tolerance of 0."""
    rows = _rows(frame, spec)
    lo_col, hi_col = spec.get("lo", "lo"), spec.get("hi", "hi")
    tol = entry.tolerances(lo_col, rows)
    out = {}
    for (_, r), t in zip(rows.iterrows(), tol):
        lo, hi = r[lo_col], r[hi_col]
        value = "above 0" if lo > 0 else "below 0" if hi < 0 else "spans 0"
        out[spec["name"], _label(r, key)] = Verdict(value, bool(min(abs(lo), abs(hi)) <= t))
    return out


def _equal(frame, spec, key, entry):
    """Row by row: the values of ``columns`` (counts, verdicts) themselves; with ``slack`` (a column: the
    row's near-ties), two counts that differ by no more than it are a near-tie."""
    out = {}
    for _, r in _rows(frame, spec).iterrows():
        slack = float(r[spec["slack"]]) if spec.get("slack") and pd.notna(r.get(spec["slack"])) else 0.0
        for c in spec["columns"]:
            out[f"{spec['name']}: {c}", _label(r, key)] = Verdict(_plain(r[c]), slack=slack)
    return out


def _best(frame, spec, key, entry):
    """Per group of ``by``: the best row (largest ``value``; smallest with ``lowest: true``) and those within
    ``within`` of it. Two runs whose bests differ are a near-tie when each one's best is among the other's
    near-best."""
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
        out[spec["name"], str(group)] = Verdict(best, len(near) > 1,
                                                near_set=frozenset(_label(r, spec["label"]) for _, r in near.iterrows()))
    return out


CONCLUSIONS = {"significant": _significant, "interval": _interval, "equal": _equal, "best": _best}


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    return value


def agreement(a: Verdict | None, b: Verdict | None) -> str:
    """'same', 'near-tie' or 'changed'."""
    if a is None or b is None:
        return "same" if a is b else "changed"
    if a.value == b.value:
        return "same"
    if a.near_set or b.near_set:
        return "near-tie" if a.value in b.near_set and b.value in a.near_set else "changed"
    if a.slack or b.slack:
        try:
            return "near-tie" if abs(float(a.value) - float(b.value)) <= max(a.slack, b.slack) else "changed"
        except (TypeError, ValueError):
            return "changed"
    return "near-tie" if a.near or b.near else "changed"


def conclusions(frame: pd.DataFrame, entry: Entry) -> dict:
    key = _key_columns(frame, entry)
    out = {}
    for spec in entry.conclusions:
        needed = (spec.get("column"), spec.get("value"), spec.get("line"), spec.get("lo"), spec.get("hi"),
                  *spec.get("columns", []))
        if any(c and c not in frame.columns for c in needed):
            continue  # a table from before the column existed: its header differences are reported as such
        out.update(CONCLUSIONS[spec["kind"]](frame, spec, key, entry))
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
    near: list = field(default_factory=list)  # conclusions that differ on a near-tie: (conclusion, row, a, b)
    ratio: dict = field(default_factory=dict)  # column -> largest |a - b| / its tolerance
    rows: tuple = (0, 0)

    @property
    def ok(self) -> bool:
        return self.status in ("compared", "not compared") and not self.beyond and not self.changed


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, entry: Entry, path: str = "") -> TableResult:
    result = TableResult(path, entry, rows=(len(a), len(b)))
    if not entry.compare:
        result.status = "not compared"
        return result
    if entry.select:
        a, b = a.query(entry.select), b.query(entry.select)
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
    rows_a = ia.loc[common].reset_index()  # the rows' columns, for the tolerances' `rows` overrides
    for column in [c for c in ia.columns if c in ib.columns and c not in entry.ignore]:
        va, vb = ia.loc[common, column], ib.loc[common, column]
        if pd.api.types.is_numeric_dtype(va) and pd.api.types.is_numeric_dtype(vb):
            fa, fb = va.astype(float).to_numpy(), vb.astype(float).to_numpy()
            same_nan = np.isnan(fa) & np.isnan(fb)
            diff = np.where(same_nan, 0.0, np.abs(fa - fb))
            diff = np.where(np.isnan(diff), math.inf, diff)  # a number in one run, NaN in the other
            result.largest[column] = float(diff.max()) if len(diff) else 0.0
            tol = entry.tolerances(column, rows_a)
            if len(diff):  # a difference over a zero tolerance is infinitely beyond it
                ratio = np.divide(diff, tol, out=np.where(diff > 0, math.inf, 0.0), where=tol > 0)
                result.ratio[column] = float(ratio.max())
            for i in np.flatnonzero(diff > tol + 1e-12):
                result.beyond.append((_row_name(common[i], key), column, _plain(va.iloc[i]), _plain(vb.iloc[i]),
                                      float(diff[i]), float(tol[i])))
        else:
            sa, sb = va.astype(str).to_numpy(), vb.astype(str).to_numpy()
            differs = np.flatnonzero(sa != sb)
            result.largest[column] = f"{len(differs)} differ" if len(differs) else "same"
            for i in differs:
                result.beyond.append((_row_name(common[i], key), column, sa[i], sb[i], math.inf, 0.0))
    ca, cb = conclusions(a, entry), conclusions(b, entry)
    for name in list(dict.fromkeys([*ca, *cb])):
        va, vb = ca.get(name), cb.get(name)
        verdict = agreement(va, vb)
        if verdict != "same":
            (result.changed if verdict == "changed" else result.near).append(
                (name[0], name[1], str(va) if va else "absent", str(vb) if vb else "absent"))
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
    """The largest difference of every numeric column of every table, beside its tolerance (where ``rows``
    overrides it, the column's default) and the largest ratio of a difference to its row's tolerance."""
    rows = []
    for r in results:
        for column, largest in r.largest.items():
            if isinstance(largest, float):
                ratio = r.ratio.get(column, 0.0)
                rows.append({"table": r.path, "column": column, "largest_difference": largest,
                             "tolerance": r.entry.tolerance(column), "largest_ratio": ratio,
                             "within": ratio <= 1 + 1e-9})
    return pd.DataFrame(rows, columns=["table", "column", "largest_difference", "tolerance", "largest_ratio", "within"])


def report(results: list[TableResult], limit: int = 10) -> str:
    lines = []
    agree = [r for r in results if r.ok and r.status == "compared"]
    bad = [r for r in results if not r.ok]
    skipped = [r for r in results if r.status == "not compared"]
    identical = sum(1 for r in agree if all(v in (0.0, "same") for v in r.largest.values()))
    lines.append(f"{len(results)} tables: {len(agree)} agree ({identical} identical, {len(agree) - identical} within "
                 f"tolerance), {len(bad)} differ, {len(skipped)} not compared")
    for r in skipped:
        lines.append(f"  not compared: {r.path} ({r.entry.why})")
    for r in results:
        if r.ok and not r.near:
            continue
        lines.append(f"\n{r.path} [{r.status if not r.ok else 'agrees'}; tolerances: {r.entry.pattern}]")
        for name, row, va, vb in r.changed[:limit]:
            lines.append(f"  conclusion changed: {name} ({row}): {va} -> {vb}")
        if len(r.changed) > limit:
            lines.append(f"  ... and {len(r.changed) - limit} more conclusions")
        for name, row, va, vb in r.near[:limit]:
            lines.append(f"  near-tie, not a disagreement: {name} ({row}): {va} -> {vb}")
        if len(r.near) > limit:
            lines.append(f"  ... and {len(r.near) - limit} more near-ties")
        for row, column, va, vb, diff, tol in r.beyond[:limit]:
            lines.append(f"  {column} ({row}): {va} vs {vb}" + (f", |diff| {diff:.4g} > {tol:g}" if math.isfinite(diff) else ""))
        if len(r.beyond) > limit:
            lines.append(f"  ... and {len(r.beyond) - limit} more values")
    lines.append(f"\nconclusions changed: {sum(len(r.changed) for r in results)}; on near-ties: "
                 f"{sum(len(r.near) for r in results)}; values beyond tolerance: {sum(len(r.beyond) for r in results)}")
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
