"""The step layer: every rule's step runs without Snakemake, its log file catches everything (records,
warnings, stdout/stderr, the traceback of a failure), settings have no fallbacks, and every config key a
step reads is defined in the schema with a default or as required."""

import json
import logging
import subprocess
import sys
import warnings

import pandas as pd
import pytest
import yaml

from samesky import steps
from samesky.steps import STEPS, Settings, Step

SCHEMA = "workflow/schemas/config.schema.yaml"


def _failing(inputs, outputs, settings):
    logging.getLogger("samesky.test").info("a log record from the package")
    warnings.warn("a warning the log must keep", UserWarning)
    print("printed to stdout")
    print("printed to stderr", file=sys.stderr)
    raise ValueError(f"bad value in field '{settings['field']}'")


def test_a_failing_step_leaves_its_traceback_warnings_and_output_in_its_log(tmp_path, capsys):
    log_file = tmp_path / "logs" / "failing.log"
    with pytest.raises(ValueError, match="bad value in field 'x'"):
        Step("failing", _failing, ()).run({}, {"provenance": str(tmp_path / "p.json")}, {"field": "x"},
                                          log_file=log_file)
    text = log_file.read_text()
    for expected in ("INFO samesky.test: a log record from the package", "UserWarning: a warning the log must keep",
                     "printed to stdout", "printed to stderr", "ERROR samesky.steps.failing: step failing failed",
                     "Traceback (most recent call last)", "ValueError: bad value in field 'x'"):
        assert expected in text, expected
    assert not (tmp_path / "p.json").exists()  # a failed step writes no provenance
    # the console still gets the messages, and logging is back to normal afterwards
    assert "printed to stderr" in capsys.readouterr().err
    logging.getLogger("samesky.test").warning("after the step")
    assert "after the step" not in log_file.read_text()


def test_settings_have_no_fallbacks():
    settings = Settings({"probes": {"n_folds": 5}, "pair": "desi_hsc"}, "probe_regressions")
    assert settings["probes"]["n_folds"] == 5 and isinstance(settings["probes"], Settings)
    with pytest.raises(KeyError, match=r"probe_regressions.probes has no 'mlp' \(has \['n_folds'\]\)"):
        settings["probes"]["mlp"]
    with pytest.raises(TypeError, match="settings have no fallbacks"):
        settings["probes"].get("mlp", "hidden32")
    assert json.loads(json.dumps(settings)) == {"probes": {"n_folds": 5}, "pair": "desi_hsc"}


def _schema_node(schema, node):
    return schema["$defs"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node


def test_every_key_a_step_reads_is_defined_in_the_schema_with_its_default(repo):
    """A key left out of the schema, or optional there without a default, would leave a step to invent a
    fallback. Top-level sections may be absent (their rules then have nothing to do)."""
    schema = yaml.safe_load((repo / SCHEMA).read_text())
    assert len(STEPS) >= 23
    for name, s in STEPS.items():
        for key in s.reads:
            node = schema
            for depth, part in enumerate(key.split(".")):
                properties = node.get("properties", {})
                assert part in properties, f"step {name} reads config key '{key}', which the schema does not define"
                if depth > 0:
                    assert part in node.get("required", []) or "default" in properties[part], (
                        f"step {name} reads '{key}', optional in the schema and without a default")
                node = _schema_node(schema, properties[part])


def test_every_rule_has_its_step(repo):
    rules = set()
    # the released preset's rules replace `embed`; the adaptation preset's preprocessing rules exist with variants
    for extra in ([], ["--configfile", "config/released.yaml"], ["--configfile", "config/adaptation.yaml"]):
        out = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", *extra], cwd=repo,
                             capture_output=True, text=True, check=True).stdout
        rules |= {line.split()[0] for line in out.splitlines() if line.strip() and line.split()[0] != "all"}
    assert rules == set(STEPS)
    assert list((repo / "workflow" / "scripts").iterdir()) == [repo / "workflow" / "scripts" / "step.py"]


def test_a_step_runs_without_snakemake_and_carries_its_inputs_provenance(tmp_path):
    """crossmatch_summary, called as samesky.steps.crossmatch_summary.run: its table, and a provenance
    record that names the datasets its inputs' records name."""
    summaries, records = [], []
    for pair, dataset in (("a_hsc", "a"), ("b_hsc", "b")):
        path = tmp_path / f"{pair}.csv"
        pd.DataFrame([{"pair": pair, "matched": 3}]).to_csv(path, index=False)
        record = tmp_path / f"{pair}.provenance.json"
        record.write_text(json.dumps({"datasets": {dataset: {"source": dataset}}, "models": {}}))
        summaries.append(str(path))
        records.append(str(record))
    out = {"table": str(tmp_path / "summary.csv"), "provenance": str(tmp_path / "summary.provenance.json")}
    steps.crossmatch_summary.run({"summaries": summaries, "provenance": records}, out, {},
                                 config={"preset": "test", "seed": 1}, log_file=tmp_path / "summary.log")
    assert list(pd.read_csv(out["table"])["pair"]) == ["a_hsc", "b_hsc"]
    rec = json.loads((tmp_path / "summary.provenance.json").read_text())
    assert rec["step"] == "crossmatch_summary" and set(rec["datasets"]) == {"a", "b"} and rec["seed"] == 1


def test_a_failing_rule_writes_its_traceback_to_its_log_file(repo, tmp_path):
    """Through Snakemake: a dataset source with no data files fails the download job, and the reason is in
    results/logs/download_dataset/<name>.log, not only in Snakemake's own output."""
    (tmp_path / "not_a_dataset").mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "results": str(tmp_path / "results"), "resources": str(tmp_path / "resources"),
        "datasets": [{"name": "broken", "kind": "image", "survey": "hsc", "source": str(tmp_path / "not_a_dataset")},
                     {"name": "desi", "kind": "spectrum", "survey": "desi", "source": "mini"}],
        "pairs": [{"name": "desi_hsc", "reference_dataset": "broken", "other_dataset": "desi"}],
        "alignment": {"hsc_pair": "desi_hsc"}, "downstream": None}))  # it names pairs this config lacks
    target = tmp_path / "resources" / "data" / "broken.provenance.json"
    proc = subprocess.run([sys.executable, "-m", "snakemake", str(target), "--cores", "1", "--configfile", str(bad)],
                          cwd=repo, capture_output=True, text=True)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "download_dataset" / "broken.log").read_text()
    assert "Traceback (most recent call last)" in log and "step download_dataset failed" in log
    assert "EmptyDatasetError" in log and "doesn't contain any data files" in log
    assert not target.exists()


def test_every_step_is_reachable_by_its_rule_name():
    """samesky.steps.<rule> is the step, for every rule (a stage module named like a rule would shadow it)."""
    for name, s in STEPS.items():
        assert getattr(steps, name) is s, name


def _job(rule, inputs, outputs, log, params=None):
    """What a rule's script gets from Snakemake (``snakemake``), as far as a step reads it."""
    from types import SimpleNamespace

    from snakemake.iocontainers import Namedlist

    return SimpleNamespace(rule=rule, input=Namedlist(fromdict=inputs), output=Namedlist(fromdict=outputs),
                           params=Namedlist(fromdict=params or {}), log=Namedlist(fromdict={"log": str(log)}),
                           threads=1, config={"seed": 1})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="warm starts are Linux-only")
def test_a_warm_copy_runs_a_job_as_its_own_process_would_and_fails_as_it_would(tmp_path, monkeypatch):
    """samesky.steps.warm: a server forks a copy for a job; the copy writes the job's outputs and log and
    reports success; a job whose step fails gets exit status 1 and its traceback in its log. A model's
    first build imports ~1100 modules that torch and transformers load on first use (~1.7 s a job): the
    server has them already (PRELOAD), so the copy that makes a model imports next to none."""
    import re
    import time

    from samesky.registry import model_specs
    from samesky.steps import warm

    monkeypatch.delenv(warm.ENV, raising=False)  # restored after the test
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert warm.run(_job("crossmatch_summary", {}, {}, tmp_path / "x.log")) is None  # no server: run as usual
    for pair in ("a_hsc", "b_hsc"):
        pd.DataFrame({"pair": [pair], "matched": [3]}).to_csv(tmp_path / f"{pair}.csv", index=False)
    servers = warm.start(tmp_path / "warm.log")
    try:
        deadline = time.time() + 300
        while not warm.ready(1) and time.time() < deadline:
            assert all(s.poll() is None for s in servers), (tmp_path / "warm.log").read_text()
            time.sleep(0.2)
        out = {"table": str(tmp_path / "summary.csv"), "provenance": str(tmp_path / "summary.provenance.json")}
        done = _job("crossmatch_summary", {"summaries": [str(tmp_path / f"{p}.csv") for p in ("a_hsc", "b_hsc")]},
                    out, tmp_path / "ok.log")
        assert warm.run(done) == 0
        assert list(pd.read_csv(out["table"])["pair"]) == ["a_hsc", "b_hsc"]
        assert json.loads((tmp_path / "summary.provenance.json").read_text())["step"] == "crossmatch_summary"
        assert "ran in a warm copy" in (tmp_path / "ok.log").read_text()
        spec = model_specs([{"family": "vit", "sizes": ["base"]}])["vit-base"]
        model = _job("fetch_model", {}, {"model": str(tmp_path / "vit-base")}, tmp_path / "model.log",
                     {"config": {"model_weights": "mini", "seed": 1}, "spec": spec})
        assert warm.run(model) == 0 and (tmp_path / "vit-base" / "samesky_model.json").exists()
        imported = re.search(r"(\d+) modules imported beyond", (tmp_path / "model.log").read_text())
        assert int(imported.group(1)) < 100, imported.group(0)  # ~1100 with torch.nn and transformers' lazy ones
        failed = _job("crossmatch_summary", {"summaries": [str(tmp_path / "missing.csv")]},
                      {"table": str(tmp_path / "never.csv")}, tmp_path / "failed.log")
        assert warm.run(failed) == 1
        log = (tmp_path / "failed.log").read_text()
        assert "step crossmatch_summary failed" in log and "missing.csv" in log and "Traceback" in log
        assert not (tmp_path / "never.csv").exists()
    finally:
        warm.stop(servers)
    assert all(s.poll() is not None for s in servers)


def test_a_job_asks_the_warm_server_before_it_imports_any_step():
    """A job's own process (workflow/scripts/step.py) imports only the standard library before it asks the
    warm server (~0.12 s of CPU less a job, issue 28): the stages, with numpy and pandas, load on the first
    use of the registry, and then all of them."""
    code = ("import sys\n"
            "from samesky.steps import run_rule, warm\n"
            "early = [m for m in ('numpy', 'pandas', 'samesky.steps.runner', 'samesky.steps.embedding') if m in sys.modules]\n"
            "assert not early, early\n"
            "from samesky.steps import STEPS\n"
            "assert {'embed', 'probe_regressions', 'fine_tune'} <= set(STEPS) and 'numpy' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
