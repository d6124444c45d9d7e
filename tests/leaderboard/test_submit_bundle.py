"""Submission bundles: round trip, every rejection reason, check_bundle vs the scoring runner, the submit CLI."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from brainlid.leaderboard.bundle import BundleError, Limits, validate_bundle, write_bundle
from brainlid.leaderboard.scoring import BenchmarkData, check_bundle

BENCH = "nsd.subj01.EBA.encoding"
RSA = "nsd.subj01.EBA.rsa"


def _feats(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"conv1": rng.standard_normal((n, 12)).astype(np.float32), "fc": rng.standard_normal((n, 7)).astype(np.float32)}


def _valid(tmp_path, ids, **kw) -> Path:
    return write_bundle(tmp_path / "ok.zip", _feats(ids.size), ids, [BENCH], {"model_name": "net", "parameters": 10}, **kw)


def _rewrite(src: Path, dst: Path, *, manifest=None, members: dict | None = None, drop=(), raw_names: dict | None = None) -> Path:
    """Copy a bundle, replacing the manifest / members (bytes) and adding members under raw (unsanitised) names."""
    with zipfile.ZipFile(src) as zf:
        man = json.loads(zf.read("manifest.json"))
        content = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json" and n not in drop}
    if manifest is not None:
        man = manifest(man) if callable(manifest) else manifest
    content.update(members or {})
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(man))
        for n, b in content.items():
            zf.writestr(n, b)
        for n, b in (raw_names or {}).items():
            info = zipfile.ZipInfo("placeholder")
            info.filename = n  # bypass ZipInfo's normalisation, as a hostile tool would
            zf.writestr(info, b)
    return dst


def _npy(a, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _set_layer(man, i, data: bytes, **fields):
    man["layers"][i]["sha256"] = hashlib.sha256(data).hexdigest()
    man["layers"][i].update(fields)
    return man


def _reject(path, data, match, limits=None):
    with pytest.raises(BundleError, match=match):
        validate_bundle(path, limits=limits, published_ids=data.ids)
    rep = check_bundle(path, data=data, limits=limits)
    assert rep.status == "rejected" and rep.scores.empty


@pytest.mark.parametrize("fmt", ["npy", "safetensors"])
def test_round_trip_exact(tmp_path, board_ids, board_data, fmt):
    feats = _feats(board_ids.size, seed=3)
    p = write_bundle(tmp_path / "b.zip", feats, board_ids, [BENCH, RSA], {"model_name": "x", "url": "https://a.b/c"}, fmt=fmt)
    b = validate_bundle(p, published_ids=board_data.ids)
    assert list(b.features) == ["conv1", "fc"]
    for k in feats:
        np.testing.assert_array_equal(b.features[k], feats[k])
        assert b.features[k].dtype == np.float32
    np.testing.assert_array_equal(b.stimulus_ids, board_ids)
    assert b.benchmarks == [BENCH, RSA] and b.metadata["url"] == "https://a.b/c"
    assert b.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_check_bundle_equals_runner(tmp_path, board_ids, board_data):
    """check_bundle's scores are exactly score_features' on the same arrays (same code path, nothing altered)."""
    from brainlid.scoring import score_features

    p = _valid(tmp_path, board_ids)
    rep = check_bundle(p, data=board_data)
    assert rep.status == "scored", rep.reason
    _, brain = board_data.load(BENCH)
    ref, _ = score_features(_feats(board_ids.size), board_ids, BENCH, brain, model="net")
    got = rep.scores.sort_values(["layer", "split", "metric"]).reset_index(drop=True)
    ref = ref.sort_values(["layer", "split", "metric"]).reset_index(drop=True)
    np.testing.assert_allclose(got["value"].to_numpy(float), ref["value"].to_numpy(float), rtol=0, atol=0)
    assert got["selected"].tolist() == ref["selected"].tolist()
    summ = rep.summary()
    assert {r["metric"] for r in summ} == {"encoding_r", "encoding_r2"} and len({r["layer"] for r in summ}) == 1
    assert not rep.geometry.empty and set(rep.geometry["layer"]) == {"conv1", "fc"}


def test_wrong_ids_and_order(tmp_path, board_ids, board_data):
    p = write_bundle(tmp_path / "order.zip", _feats(board_ids.size), board_ids[::-1], [BENCH], {"model_name": "n"})
    _reject(p, board_data, "wrong order")
    other = board_ids.copy()
    other[0] = 999_999
    p = write_bundle(tmp_path / "ids.zip", _feats(board_ids.size), other, [BENCH], {"model_name": "n"})
    _reject(p, board_data, r"differ from benchmark .* 1 missing .* 1 unexpected")
    p = write_bundle(tmp_path / "few.zip", _feats(board_ids.size - 1), board_ids[:-1], [BENCH], {"model_name": "n"})
    _reject(p, board_data, "1 missing")


def test_shapes_nan_dtype(tmp_path, board_ids, board_data):
    ok = _valid(tmp_path, board_ids)
    n = board_ids.size
    bad = np.ones((n, 5), np.float32)  # manifest says (n, 12)
    _reject(_rewrite(ok, tmp_path / "shape.zip", members={"features/000.npy": _npy(bad)},
                     manifest=lambda m: _set_layer(m, 0, _npy(bad))), board_data, r"shape \[\d+, 5\] differs from the declared")
    rows = np.ones((n - 2, 12), np.float32)
    _reject(_rewrite(ok, tmp_path / "rows.zip", members={"features/000.npy": _npy(rows)},
                     manifest=lambda m: _set_layer(m, 0, _npy(rows), shape=[n - 2, 12])), board_data, "declared .* rows")
    for val, name in ((np.nan, "nan"), (np.inf, "inf")):
        a = np.ones((n, 12), np.float32)
        a[3, 4] = val
        _reject(_rewrite(ok, tmp_path / f"{name}.zip", members={"features/000.npy": _npy(a)},
                         manifest=lambda m: _set_layer(m, 0, _npy(a))), board_data, "1 NaN/inf")
    a64 = np.ones((n, 12), np.float64)
    _reject(_rewrite(ok, tmp_path / "f64.zip", members={"features/000.npy": _npy(a64)},
                     manifest=lambda m: _set_layer(m, 0, _npy(a64))), board_data, "float64 but the manifest declares float32")
    _reject(_rewrite(ok, tmp_path / "decl64.zip", members={"features/000.npy": _npy(a64)},
                     manifest=lambda m: _set_layer(m, 0, _npy(a64), dtype="float64")), board_data, "declared dtype 'float64'")
    _reject(ok, board_data, "larger than the per-layer limit", limits=Limits(max_layer_bytes=n * 8 * 4))
    _reject(_rewrite(ok, tmp_path / "hash.zip", manifest=lambda m: _set_layer(m, 1, b"other")), board_data, "sha256")


def test_pickles_rejected(tmp_path, board_ids, board_data):
    ok = _valid(tmp_path, board_ids)
    blob = pickle.dumps({"a": 1}, protocol=4)
    _reject(_rewrite(ok, tmp_path / "pkl.zip", members={"extra.pkl": blob}), board_data, "looks like a pickle")
    _reject(_rewrite(ok, tmp_path / "magic.zip", members={"features/000.npy": blob},
                     manifest=lambda m: _set_layer(m, 0, blob)), board_data, "pickle magic")
    obj = np.empty((board_ids.size, 12), dtype=object)
    obj[:] = 1.0
    data_obj = _npy(obj, allow_pickle=True)
    _reject(_rewrite(ok, tmp_path / "obj.zip", members={"features/000.npy": data_obj},
                     manifest=lambda m: _set_layer(m, 0, data_obj)), board_data, "object arrays")
    _reject(_rewrite(ok, tmp_path / "unlisted.zip", members={"notes/readme.txt": b"hi"}), board_data, "not listed in the manifest")


@pytest.mark.parametrize("name", ["../evil.npy", "/abs/evil.npy", "features/../../x.npy", "C:/x.npy", "a\\b.npy"])
def test_member_paths_rejected(tmp_path, board_ids, board_data, name):
    p = _rewrite(_valid(tmp_path, board_ids), tmp_path / "path.zip", raw_names={name: b"x"})
    _reject(p, board_data, "absolute|'\\.\\.'|non-portable")


def test_zip_bombs(tmp_path, board_ids, board_data):
    ok = _valid(tmp_path, board_ids)
    # declared total over the limit
    _reject(ok, board_data, "declares more than", limits=Limits(max_unpacked=1000))
    # absurd compression ratio (10 MiB of zeros)
    _reject(_rewrite(ok, tmp_path / "ratio.zip", members={"features/999.npy": b"\0" * (10 << 20)}), board_data, "compression ratio")
    # a header that lies: the member inflates beyond its declared size
    big = _rewrite(ok, tmp_path / "lie.zip", members={"features/998.npy": b"\1" * 200_000})
    raw = bytearray(big.read_bytes())
    for sig, off in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        pos = 0
        while (pos := raw.find(sig, pos)) >= 0:
            size = struct.unpack_from("<I", raw, pos + off)[0]
            if size == 200_000:
                struct.pack_into("<I", raw, pos + off, 1000)
            pos += 4
    big.write_bytes(bytes(raw))
    _reject(big, board_data, "corrupt|inflates|not listed|header says")


def test_unknown_benchmark_and_upload_limit(tmp_path, board_ids, board_data):
    p = write_bundle(tmp_path / "u.zip", _feats(board_ids.size), board_ids, ["nsd.subj01.EBA.encodign"], {"model_name": "n"})
    _reject(p, board_data, "unknown benchmark 'nsd.subj01.EBA.encodign'.*did you mean nsd.subj01.EBA.encoding")
    ok = _valid(tmp_path, board_ids)
    _reject(ok, board_data, "over the upload limit", limits=Limits(max_upload=100))
    _reject(_rewrite(ok, tmp_path / "md.zip", manifest=lambda m: {**m, "metadata": {"model_name": "x", "url": "javascript:alert(1)"}}),
            board_data, "metadata.url must be an http:// or https:// URL")
    notzip = tmp_path / "nz.zip"
    notzip.write_bytes(b"hello")
    _reject(notzip, board_data, "not a zip file")


def test_write_bundle_refuses_bad_input(tmp_path, board_ids):
    from brainlid.errors import InputError

    with pytest.raises(InputError, match="NaN"):
        write_bundle(tmp_path / "x.zip", {"a": np.full((board_ids.size, 2), np.nan)}, board_ids, [BENCH], {"model_name": "m"})
    with pytest.raises(BundleError, match="model_name is required"):
        write_bundle(tmp_path / "x.zip", _feats(board_ids.size), board_ids, [BENCH], {})
    assert not (tmp_path / "x.zip").exists()


def test_cli_prepare_and_check(tmp_path, leaderboard_nsd, board_ids, monkeypatch, tiny_net_py):
    """submit prepare extracts real features of a torch model for the published ids; submit check scores them."""
    from brainlid.cli import main

    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    out = tmp_path / "sub.zip"
    rc = main(["submit", "prepare", "--model", f"module:{tiny_net_py}:Net@random", "--benchmark", BENCH, "--layers", "conv,fc",
               "--name", "TinyNet", "--parameters", "1234", "--data-root", str(leaderboard_nsd), "--out", str(out)])
    assert rc == 0 and out.exists()
    b = validate_bundle(out)
    np.testing.assert_array_equal(b.stimulus_ids, board_ids)
    assert list(b.features) == ["conv", "fc"] and b.features["conv"].shape == (board_ids.size, 8)
    assert b.metadata == {"model_name": "TinyNet", "parameters": 1234}
    from brainlid.features import extract
    from brainlid.scoring import load_benchmark_data

    stim, _ = load_benchmark_data(BENCH, leaderboard_nsd)
    ref = extract(f"module:{tiny_net_py}:Net@random", stim.subset(ids=board_ids), layers=["fc"], cache=False, progress=False)
    order = np.argsort(np.asarray(ref.stimulus_ids))
    np.testing.assert_allclose(b.features["fc"], np.asarray(ref["fc"])[order], rtol=1e-6, atol=1e-6)

    import click.testing
    from brainlid.cli import cli

    res = click.testing.CliRunner().invoke(cli, ["submit", "check", str(out), "--data-root", str(leaderboard_nsd), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["status"] == "scored" and rep["fixture"] == [] and {r["benchmark"] for r in rep["scores"]} == {BENCH}
    bad = write_bundle(tmp_path / "bad.zip", _feats(board_ids.size), board_ids[::-1], [BENCH], {"model_name": "n"})
    res = click.testing.CliRunner().invoke(cli, ["submit", "check", str(bad), "--data-root", str(leaderboard_nsd)])
    assert res.exit_code == 1 and "rejected: stimulus ids are in the wrong order" in res.output


def test_check_falls_back_to_fixture(tmp_path, monkeypatch):
    """Without the dataset, submit check runs on fixture data and says so."""
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINLID_DATA", str(tmp_path / "nodata"))
    d = BenchmarkData(None, fixture_fallback=True)
    fids = d.ids(BENCH)
    p = write_bundle(tmp_path / "f.zip", _feats(fids.size), fids, [BENCH], {"model_name": "n"})
    rep = check_bundle(p, data=d)
    assert rep.status == "scored" and rep.fixture == [BENCH]
    # the service (no fixture fallback): a benchmark whose data are absent is rejected at validation, never scored,
    # and the reason does not show where the server looked for the data
    for score in (False, True):
        rep = check_bundle(p, data=BenchmarkData(None), score=score)
        assert rep.status == "rejected" and "not installed on this machine" in rep.reason and rep.scores.empty
        assert str(tmp_path) not in rep.reason and "nodata" not in rep.reason
