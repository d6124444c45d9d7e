"""``brainlid align``: id matching, metrics, null calibration, errors."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from brainlid.alignment import similarity as sim
from brainlid.cli import main


def _feats(seed=0, n=80):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 6))
    A = (Z @ rng.standard_normal((6, 24)) + 0.5 * rng.standard_normal((n, 24))).astype(np.float32)
    B = (Z @ rng.standard_normal((6, 16)) + 0.5 * rng.standard_normal((n, 16))).astype(np.float32)
    return A, B


@pytest.fixture
def fake_reader(monkeypatch, tmp_path):
    """Route brainlid.io.read_features to an in-memory table {path: (X, ids)} (file formats are io's tests)."""
    table = {}
    try:
        import brainlid.io as io_mod
    except ImportError:
        io_mod = types.ModuleType("brainlid.io")
        monkeypatch.setitem(sys.modules, "brainlid.io", io_mod)

    def read_features(path, key=None):
        return table[str(path)]

    monkeypatch.setattr(io_mod, "read_features", read_features, raising=False)

    def add(name, X, ids):
        p = tmp_path / name
        p.write_bytes(b"x")  # click checks that the file exists
        table[str(p)] = (X, ids)
        return str(p)

    return add


def _run(capsys, args):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_align_matches_on_ids(fake_reader, capsys):
    A, B = _feats()
    n = A.shape[0]
    ids = np.array([f"img{i:03d}" for i in range(n)])
    perm = np.random.default_rng(1).permutation(n)
    pa = fake_reader("a.npz", A, ids)
    pb = fake_reader("b.npz", B[perm], ids[perm])  # same stimuli, another order
    for metric, fn in [
        ("mutual_knn", lambda: sim.mutual_knn(A, B, 7)),
        ("cknna", lambda: sim.cknna(A, B, 7)),
        ("cka_linear", lambda: sim.cka_linear(A, B)),
        ("rsa", lambda: sim.rsa_similarity(A, B)),
    ]:
        code, out, err = _run(capsys, ["align", pa, pb, "--metric", metric, "--k", "7", "--json"])
        assert code == 0, err
        res = json.loads(out)
        assert res["score"] == pytest.approx(fn(), rel=1e-5)
        assert res["matched_by"] == "stimulus_id" and res["n_stimuli"] == n
    code, out, err = _run(capsys, ["align", pa, pb, "--metric", "cka_linear", "--unbiased", "--json"])
    assert json.loads(out)["score"] == pytest.approx(sim.cka_linear(A, B, unbiased=True), rel=1e-5)
    # human-readable output
    code, out, err = _run(capsys, ["align", pa, pb])
    assert code == 0 and out.startswith("mutual_knn(k=10): ") and "80 stimuli, matched by stimulus_id" in out


def test_align_null(fake_reader, capsys):
    A, B = _feats()
    ids = np.arange(A.shape[0])
    pa, pb = fake_reader("a.npy", A, ids), fake_reader("b.npy", B, ids)
    code, out, err = _run(capsys, ["align", pa, pb, "--metric", "rsa", "--null", "49", "--seed", "2", "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["null"]["n_permutations"] == 49
    assert res["null"]["p"] == pytest.approx(1 / 50)
    assert res["null"]["calibrated"] == pytest.approx(res["score"] - res["null"]["null_mean"], abs=2e-6)
    code, out, err = _run(capsys, ["align", pa, pb, "--null", "20"])
    assert "null (20 permutations, seed 0)" in out and "calibrated" in out
    # ridge R^2 has its own CV seed; with --null both must work
    code, out, err = _run(capsys, ["align", pa, pb, "--metric", "ridge_r2", "--n-components", "5", "--null", "2",
                                   "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["score"] == pytest.approx(sim.ridge_r2(A, B, n_components=5, seed=0), rel=1e-5)
    assert res["null"]["n_permutations"] == 2 and res["null"]["null_mean"] < 0.2


def test_align_id_problems(fake_reader, capsys):
    A, B = _feats()
    pa = fake_reader("a.npz", A, np.arange(80))
    pb = fake_reader("b.npz", B, np.arange(1000, 1080))
    code, out, err = _run(capsys, ["align", pa, pb])
    assert code == 1
    assert err.startswith("brainlid: error: only 0 stimulus id(s) shared")
    # partial overlap: the shared ids are used, with a warning that counts the rest
    pc = fake_reader("c.npz", B[:60], np.arange(20, 80))
    code, out, err = _run(capsys, ["align", pa, pc, "--json"])
    res = json.loads(out)
    assert res["n_stimuli"] == 60
    assert any("60 stimulus ids shared" in w for w in res["warnings"])
    assert res["score"] == pytest.approx(sim.mutual_knn(A[20:], B[:60]), abs=1e-12)


def test_align_without_ids(fake_reader, capsys):
    A, B = _feats()
    pa, pb = fake_reader("a.npy", A, None), fake_reader("b.npy", B, None)
    code, out, err = _run(capsys, ["align", pa, pb, "--metric", "cka_linear"])
    assert code == 0
    assert "brainlid: warning: rows are paired by order" in err
    pc = fake_reader("c.npy", B[:50], None)
    code, out, err = _run(capsys, ["align", pa, pc])
    assert code == 1 and "has 80 rows" in err and "has 50" in err
    # bad features: NaN / constant columns are dropped with a count, never a NaN score
    Ab = A.copy()
    Ab[:, 0] = np.nan
    Ab[:, 1] = 1.0
    pn = fake_reader("n.npy", Ab, None)
    code, out, err = _run(capsys, ["align", pn, pb, "--metric", "cka_linear", "--json"])
    res = json.loads(out)
    assert np.isfinite(res["score"]) and any("dropped 2 of 24 features" in w for w in res["warnings"])
    # a time axis on one side
    pt = fake_reader("t.npy", np.repeat(A[:, :, None], 3, axis=2), None)
    code, out, err = _run(capsys, ["align", pt, pb])
    assert code == 1 and "time axis" in err


def test_align_real_files(tmp_path, capsys):
    io = pytest.importorskip("brainlid.io")
    assert hasattr(io, "read_features")
    A, B = _feats()
    n = A.shape[0]
    pa, pb = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(pa, A)
    np.save(pb, B)
    code, out, err = _run(capsys, ["align", str(pa), str(pb), "--metric", "cka_linear", "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["score"] == pytest.approx(sim.cka_linear(A, B), rel=1e-5)
    assert res["matched_by"] == "order"
    # npz with ids and two arrays (--key-a), csv with a stimulus_id column in another order
    ids = np.array([f"s{i}" for i in range(n)])
    perm = np.random.default_rng(3).permutation(n)
    np.savez(tmp_path / "a.npz", layer1=A, layer2=A[:, :5], stimulus_ids=ids)
    import pandas as pd

    df = pd.DataFrame(B[perm], columns=[f"f{j}" for j in range(B.shape[1])])
    df.insert(0, "stimulus_id", ids[perm])
    df.to_csv(tmp_path / "b.csv", index=False)
    code, out, err = _run(capsys, ["align", str(tmp_path / "a.npz"), str(tmp_path / "b.csv"), "--key-a", "layer1",
                                   "--metric", "mutual_knn", "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["matched_by"] == "stimulus_id"
    assert res["score"] == pytest.approx(sim.mutual_knn(A, B), abs=1e-12)


def _significant_digits(x: float) -> int:
    return len(f"{abs(x):.15g}".replace(".", "").lstrip("0").rstrip("0").split("e")[0])


def test_align_json_numbers_share_one_precision(fake_reader, capsys):
    """Every float in --json has at most 6 significant digits, whatever the metric (float32 noise is not printed)."""
    A, B = _feats()
    ids = np.arange(A.shape[0])
    pa, pb = fake_reader("a.npy", A, ids), fake_reader("b.npy", B, ids)
    exact = {"mutual_knn": sim.mutual_knn(A, B, 10), "cka_linear": sim.cka_linear(A, B), "rsa": sim.rsa_similarity(A, B)}
    for metric, value in exact.items():
        code, out, err = _run(capsys, ["align", pa, pb, "--metric", metric, "--null", "9", "--json"])
        assert code == 0, err
        res = json.loads(out)
        floats = [res["score"]] + [v for v in res["null"].values() if isinstance(v, float)]
        assert max(map(_significant_digits, floats)) <= 6, floats
        assert res["score"] == float(f"{value:.6g}")


def test_align_rejects_negative_null(fake_reader, capsys):
    """`--null -5` used to run with no null at all (exit 0)."""
    A, B = _feats()
    pa, pb = fake_reader("a.npy", A, None), fake_reader("b.npy", B, None)
    code, out, err = _run(capsys, ["align", pa, pb, "--null", "-5"])
    assert code == 2 and out == ""
    assert "Invalid value for '--null': -5 is not in the range x>=0" in err
