"""`brainlid lid` and `brainlid demo`: output, --json keys, file formats, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from brainlid.cli import main
from brainlid.geometry import global_dimension, lid


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return (rng.random((300, 4)) @ rng.standard_normal((4, 16))).astype(np.float32)


def run_json(capsys, args):
    code = main(args + ["--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _save(fmt, path, X):
    if fmt == "npy":
        np.save(path, X)
    elif fmt == "npz":
        np.savez(path, feats=X, stimulus_ids=np.arange(len(X)))
    elif fmt == "h5":
        import h5py

        with h5py.File(path, "w") as f:
            f["feats"] = X
    elif fmt == "parquet":
        pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])]).to_parquet(path)
    elif fmt == "csv":
        df = pd.DataFrame(X.astype(np.float64), columns=[f"c{i}" for i in range(X.shape[1])])
        df.insert(0, "stimulus_id", [f"s{i}" for i in range(len(X))])
        df.to_csv(path, index=False, float_format="%.9g")
    elif fmt == "pt":
        torch.save({"feats": torch.from_numpy(X)}, path)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file({"feats": X}, str(path))


@pytest.mark.parametrize("fmt", ["npy", "npz", "h5", "parquet", "csv", "pt", "safetensors"])
def test_json_output_for_every_format(tmp_path, capsys, X, fmt):
    path = tmp_path / f"feats.{fmt}"
    _save(fmt, path, X)
    out = run_json(capsys, ["lid", str(path), "--k", "10", "--sweep", "5,20"])
    for key in ("n", "dim", "estimator", "k", "lid", "sweep", "global"):
        assert key in out
    assert (out["n"], out["dim"], out["k"], out["estimator"]) == (300, 16, 10, "mle")
    assert out["lid"] == pytest.approx(lid(X, 10), rel=1e-6)
    assert set(out["sweep"]) == {"5", "10", "20"}
    assert out["sweep"]["20"] == pytest.approx(lid(X, 20), rel=1e-6)
    for key in ("participation_ratio", "pca90", "pca95", "pca99", "twonn"):
        assert key in out["global"]
    g = global_dimension(X, full_mle=False)
    assert out["global"]["participation_ratio"] == pytest.approx(g["participation_ratio"], rel=1e-5)
    assert out["global"]["pca95"] == g["pca95"]


def test_options_reach_the_estimator(tmp_path, capsys, X):
    np.save(tmp_path / "f.npy", X)
    out = run_json(capsys, ["lid", str(tmp_path / "f.npy"), "--k", "12", "--estimator", "mom", "--aggregate", "median"])
    assert out["lid"] == pytest.approx(lid(X, 12, "mom", "median"), rel=1e-9)
    assert set(out["sweep"]) == {"5", "10", "12", "20", "50", "100", "200"}
    out = run_json(capsys, ["lid", str(tmp_path / "f.npy"), "--k", "8", "--norm", "k-2", "--aggregate", "harmonic"])
    assert out["lid"] == pytest.approx(lid(X, 8, aggregate="harmonic", norm="k-2"), rel=1e-9)


def test_float64_files_keep_their_precision(tmp_path, capsys):
    """A float64 file far from the origin gives the value of the centred data (it was read as float32 before)."""
    rng = np.random.default_rng(5)
    X64 = rng.random((300, 4)) @ rng.standard_normal((4, 16))
    np.save(tmp_path / "far.npy", X64 + 1e4)
    np.save(tmp_path / "big.npy", X64 * 1e20)
    want = lid(X64, 10)
    for name in ("far.npy", "big.npy"):
        out = run_json(capsys, ["lid", str(tmp_path / name), "--k", "10", "--sweep", "5,20"])
        assert out["lid"] == pytest.approx(want, rel=1e-9)
        assert out["n_distinct"] == 300 and out["sweep"]["20"] == pytest.approx(lid(X64, 20), rel=1e-9)


def test_human_readable_table(tmp_path, capsys, X):
    np.save(tmp_path / "f.npy", X)
    assert main(["lid", str(tmp_path / "f.npy"), "--k", "10"]) == 0
    out = capsys.readouterr().out
    assert "participation ratio" in out and "K-sweep" in out
    assert f"{lid(X, 10):.3f}" in out


def test_duplicates_reported_as_one_warning_line(tmp_path, capsys, X):
    np.save(tmp_path / "d.npy", np.vstack([X, X[:4]]))
    code = main(["lid", str(tmp_path / "d.npy"), "--k", "10", "--json"])
    res = capsys.readouterr()
    assert code == 0
    assert json.loads(res.out)["n_distinct"] == 300
    assert "brainlid: warning:" in res.err and "8 of 304 points" in res.err
    # default sweep with duplicates: K up to n_distinct - 1 only
    np.save(tmp_path / "d2.npy", np.vstack([X[:30], X[:30]]))
    assert main(["lid", str(tmp_path / "d2.npy"), "--k", "10", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["sweep"]) == {"5", "10", "20"}
    assert main(["lid", str(tmp_path / "d2.npy"), "--k", "30"]) == 1
    assert "k=30 is too large for 30 distinct points (X has 60 rows): the largest valid k is 29" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setup,args,message",
    [
        (lambda p: p.write_bytes(b"\x93NUMPY garbage"), [], "bad.npy"),
        (lambda p: np.save(p, np.arange(5.0)), [], "2-D"),
        (lambda p: np.save(p, np.zeros((6, 3))), ["--k", "3"], "identical"),
        (lambda p: np.save(p, np.random.default_rng(0).random((8, 3))), ["--k", "8"], "largest valid k is 7"),
        (None, [], "no such file"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, capsys, setup, args, message):
    path = tmp_path / "bad.npy"
    if setup is not None:
        setup(path)
    assert main(["lid", str(path), *args]) != 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("brainlid: error:") and "bad.npy" in lines[0] and message in lines[0]


def test_error_in_a_real_process_has_no_traceback(tmp_path):
    path = tmp_path / "bad.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    res = subprocess.run([sys.executable, "-m", "brainlid", "lid", str(path)], capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("brainlid: error:")
    assert "bad.npy" in res.stderr and "Traceback" not in res.stderr


def test_bad_sweep_value(tmp_path, capsys, X):
    np.save(tmp_path / "f.npy", X)
    assert main(["lid", str(tmp_path / "f.npy"), "--sweep", "5,x"]) != 0
    assert "'x' is not an integer" in capsys.readouterr().err


def test_demo_runs(capsys):
    assert main(["demo", "--geometry-only", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by = {r["dataset"]: r for r in rows}
    assert set(by) == {"digits", "cube5_in_64d", "swiss_roll"}
    assert by["digits"]["n"] == 1797 and by["digits"]["dim"] == 64
    # known dimensions are recovered by the local estimators at k = 20
    assert abs(by["cube5_in_64d"]["MLE-MG k=20"] - 5) < 0.8
    assert abs(by["swiss_roll"]["MLE k=20"] - 2) < 0.3
    assert by["swiss_roll"]["PCA95"] == 3


def test_json_null_comes_with_its_reason(tmp_path, capsys, X):
    """`mle_full` is null in `lid --json`; a reason field says why and what computes it (and the value it gives is real)."""
    np.save(tmp_path / "f.npy", X)
    g = run_json(capsys, ["lid", str(tmp_path / "f.npy"), "--k", "10"])["global"]
    assert g["mle_full"] is None
    assert "not computed" in g["mle_full_reason"] and "full_mle=True" in g["mle_full_reason"]
    assert not [k for k, v in g.items() if v is None and f"{k}_reason" not in g]  # no other unexplained null
    assert np.isfinite(global_dimension(X, full_mle=True)["mle_full"])  # what the reason points to works
