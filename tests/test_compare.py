"""`python -m samesky.compare`: two results folders, table by table, within declared tolerances."""

import shutil

import pandas as pd
import pytest

from samesky.compare import compare_runs, main, spread_table
from samesky.tolerances import entry_for, load_entries

TOLERANCES = """
tables:
  - pattern: "tables/table2_crossmodal.csv"
    key: [family, size]
    exact: [params_m]
    default: 0.5
    conclusions:
      - {name: best aligned with DESI, kind: best, value: desi, label: [family, size], within: 0.5,
         where: "family != 'null'"}
  - pattern: "tables/trend_tests.csv"
    key: [test]
    exact: [comparisons, decided_up, decided_down]
    columns: {increases: 1, p_value: 0.2, decided_p: 0.2}
    conclusions:
      - {name: decided steps, kind: equal, columns: [decided_up, decided_down]}
      - {name: grows with size, kind: significant, column: decided_p, alpha: 0.05}
  - pattern: "tables/probe_bootstrap.csv"
    default: 0.05
    conclusions:
      - {name: which reads it better, kind: interval, lo: delta_lo, hi: delta_hi}
  - pattern: "*"
    default: 0.0
"""


@pytest.fixture()
def runs(tmp_path):
    a = tmp_path / "a" / "tables"
    a.mkdir(parents=True)
    pd.DataFrame({"family": ["vit", "vit", "dinov2", "null"], "size": ["base", "large", "giant", ""],
                  "params_m": [86.0, 304.0, 1100.0, float("nan")], "desi": [5.0, 7.0, 9.27, 1.3]}).to_csv(
        a / "table2_crossmodal.csv", index=False)
    pd.DataFrame({"test": ["intramodal", "crossmodal"], "increases": [18, 28], "comparisons": [18, 33],
                  "p_value": [3.8e-6, 3.3e-5], "decided_up": [15, 20], "decided_down": [0, 1],
                  "decided_p": [3e-5, 1e-5]}).to_csv(a / "trend_tests.csv", index=False)
    pd.DataFrame({"a": ["desi/specformer"], "b": ["hsc/vit"], "target": ["log_z"], "delta": [0.1],
                  "delta_lo": [0.06], "delta_hi": [0.13]}).to_csv(a / "probe_bootstrap.csv", index=False)
    pd.DataFrame({"pair": ["desi_hsc"], "matched": [776]}).to_csv(a / "summary.csv", index=False)
    b = tmp_path / "b" / "tables"
    shutil.copytree(a, b)
    spec = tmp_path / "tolerances.yaml"
    spec.write_text(TOLERANCES)
    return tmp_path / "a", tmp_path / "b", load_entries(spec), spec


def _edit(folder, name, changes):
    path = folder / "tables" / name
    frame = pd.read_csv(path, keep_default_na=False)
    for (row, column), value in changes.items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def test_identical_folders_agree_and_exit_zero(runs, capsys):
    a, b, entries, spec = runs
    results = compare_runs(a, b, entries)
    assert all(r.ok for r in results) and len(results) == 4
    assert main([str(a), str(b), "--tolerances", str(spec)]) == 0
    assert "4 agree (4 identical" in capsys.readouterr().out


def test_differences_within_tolerance_agree(runs, tmp_path):
    a, b, entries, spec = runs
    edits = {(0, "desi"): 5.4, (2, "desi"): 9.28}  # DINOv2 giant 9.27 -> 9.28: within 0.5
    _edit(b, "table2_crossmodal.csv", edits)
    _edit(b, "trend_tests.csv", {(1, "increases"): 29, (1, "p_value"): 5.5e-6})  # the raw count moves by one
    results = compare_runs(a, b, entries)
    assert all(r.ok for r in results)
    spread = spread_table(results).set_index(["table", "column"])
    assert spread.loc[("tables/table2_crossmodal.csv", "desi"), "largest_difference"] == pytest.approx(0.4)
    assert spread.loc[("tables/trend_tests.csv", "increases"), "largest_difference"] == 1
    assert spread["within"].all()
    assert main([str(a), str(b), "--tolerances", str(spec), "--spread", str(tmp_path / "s.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(spread)


def test_a_number_beyond_its_tolerance_fails_and_is_named(runs, capsys):
    a, b, entries, spec = runs
    _edit(b, "table2_crossmodal.csv", {(0, "desi"): 6.0})
    _edit(b, "summary.csv", {(0, "matched"): 775})  # the catch-all: exact
    assert main([str(a), str(b), "--tolerances", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "desi (family=vit, size=base): 5.0 vs 6.0, |diff| 1 > 0.5" in out
    assert "matched (pair=desi_hsc): 776 vs 775" in out
    assert "2 differ" in out


def test_a_changed_conclusion_fails_even_within_the_numbers_tolerance(runs, capsys):
    a, b, entries, spec = runs
    _edit(b, "trend_tests.csv", {(1, "decided_p"): 0.19})  # within 0.2 of 1e-5, but far from significant now
    results = {r.path: r for r in compare_runs(a, b, entries)}
    trend = results["tables/trend_tests.csv"]
    assert not trend.beyond and trend.changed == [("grows with size", "crossmodal", "True", "False")]
    assert main([str(a), str(b), "--tolerances", str(spec)]) == 1
    assert "conclusion changed: grows with size (crossmodal): True -> False" in capsys.readouterr().out


def test_a_conclusion_on_a_near_tie_is_named_not_failed(runs, capsys):
    a, b, entries, spec = runs
    _edit(a, "trend_tests.csv", {(0, "decided_p"): 0.03})
    _edit(b, "trend_tests.csv", {(0, "decided_p"): 0.07})  # both within a factor 3 of 0.05
    _edit(a, "probe_bootstrap.csv", {(0, "delta_lo"): 0.03})
    _edit(b, "probe_bootstrap.csv", {(0, "delta_lo"): -0.01, (0, "delta"): 0.08})  # within 0.05: now spans 0
    results = {r.path: r for r in compare_runs(a, b, entries)}
    assert all(r.ok for r in results.values())
    assert results["tables/trend_tests.csv"].near == [("grows with size", "intramodal", "True", "False")]
    assert results["tables/probe_bootstrap.csv"].near[0][2:] == ("above 0", "spans 0")
    assert main([str(a), str(b), "--tolerances", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "near-tie, not a disagreement: grows with size (intramodal): True -> False" in out
    assert "conclusions changed: 0; on near-ties: 2" in out


def test_a_decided_count_is_a_conclusion_that_may_move_by_its_near_ties(runs):
    a, b, entries, spec = runs
    _edit(b, "trend_tests.csv", {(1, "decided_up"): 19})
    trend = {r.path: r for r in compare_runs(a, b, entries)}["tables/trend_tests.csv"]
    assert ("decided steps: decided_up", "crossmodal", "20", "19") in trend.changed
    assert trend.beyond[0][1] == "decided_up"  # and an exact column
    text = spec.read_text().replace("columns: [decided_up, decided_down]}", "columns: [decided_up, decided_down], slack: near_ties}")
    spec.write_text(text)
    for folder in (a, b):
        _edit(folder, "trend_tests.csv", {(1, "near_ties"): 1})
    trend = {r.path: r for r in compare_runs(a, b, load_entries(spec))}["tables/trend_tests.csv"]
    assert not trend.changed and trend.near == [("decided steps: decided_up", "crossmodal", "20 (±1 near-ties)",
                                                 "19 (±1 near-ties)")]


def test_the_best_model_may_swap_within_a_near_tie_but_not_beyond(runs):
    a, b, entries, _ = runs
    _edit(a, "table2_crossmodal.csv", {(1, "desi"): 9.2})  # ViT-large 0.07 below DINOv2-giant's 9.27
    _edit(b, "table2_crossmodal.csv", {(1, "desi"): 9.3})  # ... and 0.03 above it: a new best, a near-tie
    table = {r.path: r for r in compare_runs(a, b, entries)}["tables/table2_crossmodal.csv"]
    assert not table.changed and table.near[0][2:] == ("dinov2 / giant (within tolerance: vit / large)",
                                                        "vit / large (within tolerance: dinov2 / giant)")
    _edit(b, "table2_crossmodal.csv", {(1, "desi"): 9.9})  # now 0.63 above DINOv2 giant: another best
    table = {r.path: r for r in compare_runs(a, b, entries)}["tables/table2_crossmodal.csv"]
    assert table.changed[0][:2] == ("best aligned with DESI", "all")


def test_missing_tables_rows_and_columns_are_differences(runs):
    a, b, entries, _ = runs
    (b / "tables" / "summary.csv").unlink()
    frame = pd.read_csv(b / "tables" / "table2_crossmodal.csv")
    frame.iloc[:2].assign(extra=1).to_csv(b / "tables" / "table2_crossmodal.csv", index=False)
    results = {r.path: r for r in compare_runs(a, b, entries)}
    assert results["tables/summary.csv"].status == "only in A"
    beyond = results["tables/table2_crossmodal.csv"].beyond
    assert ("(header)", "extra") in [(row, column) for row, column, *_ in beyond]
    assert sum(column == "(row)" for _, column, *_ in beyond) == 2


def test_bad_arguments_and_tolerance_files_are_refused_with_status_two(runs, tmp_path, capsys):
    a, b, _, _ = runs
    assert main([str(a), str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such results folder" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables:\n  - {pattern: '*', conclusions: [{name: x, kind: guess}]}\n")
    assert main([str(a), str(b), "--tolerances", str(bad)]) == 2
    assert "conclusion kind 'guess'" in capsys.readouterr().err


def test_the_shipped_tolerances_cover_the_headline_tables():
    entries = load_entries()
    assert entries[-1].pattern == "*"
    for table in ("tables/trend_tests.csv", "tables/table2_crossmodal.csv", "tables/metric_trend_tests.csv",
                  "tables/size_delta_trends.csv", "tables/probe_bootstrap.csv", "alignment/desi_hsc/scores.csv"):
        entry = entry_for(table, entries)
        assert entry.pattern != "*" and entry.conclusions, table


def test_row_overrides_selected_rows_and_tables_left_out(tmp_path):
    from samesky.compare import compare_tables
    from samesky.tolerances import Entry

    a = pd.DataFrame({"pair": ["jwst_hsc", "desi_hsc"], "kind": ["crossmodal"] * 2, "mknn": [0.10, 0.10],
                      "null_q975": [0.02, 0.095], "p_value": [0.001, 0.01]})
    b = a.assign(mknn=[0.104, 0.12], p_value=[0.001, 0.3])  # the spectra's score moves more, across its null
    entry = Entry(pattern="x", key=["pair", "kind"], ignore=["p_value"], columns={"mknn": 0.005},
                  rows=[{"where": "pair == 'desi_hsc'", "columns": {"mknn": 0.025}}],
                  conclusions=[{"name": "above null", "kind": "significant", "column": "p_value", "value": "mknn",
                                "line": "null_q975"}])
    assert list(entry.tolerances("mknn", a)) == [0.005, 0.025]
    result = compare_tables(a, b, entry)
    assert not result.beyond and result.ok  # 0.02 is within the spectra's 0.025
    assert result.near == [("above null", "desi_hsc / crossmodal", "True", "False")]  # 0.10 is 0.005 from its line
    far = compare_tables(a.assign(null_q975=[0.02, 0.05]), b.assign(null_q975=[0.02, 0.05]), entry)
    assert far.changed == [("above null", "desi_hsc / crossmodal", "True", "False")]
    assert not compare_tables(a, b.assign(mknn=[0.2, 0.1]), Entry(pattern="x", compare=False)).beyond
    picked = Entry(pattern="x", key=["pair"], select="pair == 'jwst_hsc'", ignore=["p_value"], default=0.01)
    assert compare_tables(a, b, picked).ok and not compare_tables(a, b, Entry(pattern="x", key=["pair"])).ok
