"""`brainlid score`, `benchmarks list`, `analyze`: outputs and one-line errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from brainlid.cli import main


def _run(args, env=None):
    import os

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "brainlid", *args], capture_output=True, text=True, env=e)


def _one_line_error(res, *needles):
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("brainlid: error:"), res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_benchmarks_list(capsys):
    assert main(["benchmarks", "list", "--dataset", "nsd", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ids = {r["id"] for r in rows}
    assert "nsd.subj01.EBA.encoding" in ids and len(ids) == 8 * 17 * 2
    r = next(r for r in rows if r["id"] == "nsd.subj01.EBA.encoding")
    assert r["version"] == 2 and r["lid_stimulus_set"] == "nsd.subj01.test" and r["ceiling"] == "ncsnr"
    # every built-in benchmark is at version 2 (issue 14 changed what their scores mean)
    assert main(["benchmarks", "list", "--json"]) == 0
    assert {r["version"] for r in json.loads(capsys.readouterr().out)} == {2}


def test_bad_inputs_are_one_line_errors(tmp_path, demo_home):
    home, zoo, root = demo_home
    env = {"BRAINLID_HOME": str(tmp_path / "home")}
    spec = zoo["spec"].iloc[0]
    _one_line_error(_run(["score", "--model", spec, "--benchmark", "nsd.subj01.EBA.encodng"], env),
                    "unknown benchmark", "nsd.subj01.EBA.encoding")
    _one_line_error(_run(["score", "--model", "module:/no/such/net.py:Net", "--benchmark", "nsd.subj01.EBA.encoding"], env),
                    "net.py")
    # the synthetic copy has subjects 1-2 only: subject 5 is missing and the error says what to fetch
    _one_line_error(_run(["score", "--model", spec, "--benchmark", "nsd.subj05.nsdgeneral.encoding",
                          "--data-root", str(root), "--no-store"], env), "subj05")
    _one_line_error(_run(["analyze"], env), "no results store")
    from brainlid.scoring.store import ResultsStore

    ResultsStore(tmp_path / "empty.sqlite")
    _one_line_error(_run(["analyze", "--store", str(tmp_path / "empty.sqlite")], env), "empty")


def test_score_cli(tmp_path, demo_home, monkeypatch, capsys):
    home, zoo, root = demo_home
    monkeypatch.setenv("BRAINLID_HOME", str(home))
    store = tmp_path / "r.sqlite"
    args = ["score", "--model", zoo["spec"].iloc[0], "--benchmark", "nsd.subj01.nsdgeneral.encoding", "--data-root", str(root),
            "--layers", "embed", "--out", str(tmp_path / "out"), "--store", str(store), "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    models = {r["model"] for r in rows}
    assert {"encoding_r2", "encoding_r"} <= {r["metric"] for r in rows}
    assert "baseline:pixels" in models and any(m.endswith("@random") for m in models) and any(m.endswith("#shuffled") for m in models)
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    # --json rows are self-describing: every score column, both splits of the selected layer, and where the data came from
    from brainlid.scoring.tables import SCORE_COLUMNS

    assert all(set(r) == set(SCORE_COLUMNS) for r in rows)
    assert {r["split"] for r in rows} == {"val", "test"} and all(r["selected"] for r in rows)
    assert len(rows) == int(scores["selected"].sum())
    for r in rows:
        assert r["subject"] == "subj01" and r["benchmark_version"] == 2 and r["n_units"] > 0
        assert r["data_source"] == "synthetic"  # the demo's NSD copy carries the fixture marker
    test_n = {r["n_stimuli"] for r in rows if r["split"] == "test"}
    val_n = {r["n_stimuli"] for r in rows if r["split"] == "val"}
    assert test_n == {150} and len(val_n) == 1 and val_n != test_n  # the held-out ceiling's stimuli are named
    assert "SYNTHETIC DATA" in captured.err and "nsd.subj01.nsdgeneral.encoding" in captured.err
    assert set(scores["data_source"]) == {"synthetic"}
    assert {"model", "layer", "benchmark", "time", "value", "ci_low", "ci_high", "ceiling", "normalised", "n_units",
            "n_stimuli", "brainlid_version", "benchmark_version", "feature_cache_key"} <= set(scores.columns)
    from brainlid.analysis import is_baseline

    enc = scores[(scores.metric == "encoding_r2") & (scores.split == "test") & ~scores.model.map(is_baseline)]
    # the model is named by its id: the spec with the weights path shortened to the file name
    assert set(enc["model"]) == {f"entrypoint:brainlid.demo.zoo:{zoo['model'].iloc[0]}@{zoo['model'].iloc[0]}.safetensors"}
    assert (enc["feature_cache_key"].str.len() > 0).all() and (enc["n_stimuli"] == 150).all()
    assert (tmp_path / "out" / "geometry.csv").exists()
    # re-running keeps the stored cells (duplicates rejected, not doubled)
    count = lambda: len(pd.read_sql_query("SELECT * FROM scores", sqlite3.connect(store)))  # noqa: E731
    n = count()
    assert main(args[:-1]) == 0  # the table form
    table = capsys.readouterr().out
    assert "encoding_r2" in table and "baseline:pixels" in table
    header = next(line for line in table.splitlines() if "model" in line and "benchmark" in line)
    assert "value" in header and " time " not in header  # all-NaN columns (fMRI: no time axis) are left out
    assert count() == n


def test_analyze_cli_on_a_store(tmp_path, demo_run, capsys):
    store = demo_run.out / "results.sqlite"
    assert main(["analyze", "--store", str(store), "--out", str(tmp_path / "an"), "--k", "10", "--reference", "mlp_w64_d1"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and (tmp_path / "an" / "report.html").exists()
    corr = pd.read_csv(tmp_path / "an" / "correlations.csv")
    assert set(corr[corr.headline]["measure"]) == {"lid_mle_K10"}
    assert "model_model_ref:mutual_knn" in set(corr["target"])


def test_analyze_cli_from_tables_with_generalization(tmp_path, demo_run, capsys):
    out = demo_run.out
    gen = tmp_path / "acc.csv"
    demo_run.zoo.rename(columns={"test_acc": "top1"})[["model", "top1"]].to_csv(gen, index=False)
    assert main(["analyze", "--table", str(out / "scores.parquet"), "--table", str(out / "geometry.csv"),
                 "--generalization", str(gen), "--out", str(tmp_path / "an")]) == 0
    capsys.readouterr()
    head = pd.read_csv(tmp_path / "an" / "correlations.csv").query("headline and scope == 'pooled'")
    assert "generalization" in set(head["target"])
    # the same numbers as the demo's own analysis (same tables, same seed)
    want = demo_run.analysis.headline().set_index("target").loc["generalization", "pearson_r"]
    assert head.set_index("target").loc["generalization", "pearson_r"] == pytest.approx(want, abs=1e-9)
