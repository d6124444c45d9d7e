"""Scoring features computed outside brainlid: export a benchmark's stimuli, read .npz/.h5/.safetensors, score, submit.

The honest check is an independent path to the same science: features of a small torch model
extracted from the *exported PNGs* by ``brainlid extract --out``, saved by hand in each format,
must score exactly like ``brainlid score --model`` of the same model on the same benchmark (which
reads the images from the dataset's own files).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainlid.cli import main
from brainlid.features import Features
from support import REALDATA

ENC = "nsd.subj01.EBA.encoding"
RSA = "nsd.subj01.EBA.rsa"
KEYS = ["model", "layer", "benchmark", "subject", "roi", "metric", "split", "time"]
NUMS = ["value", "ci_low", "ci_high", "ceiling", "normalised", "n_stimuli"]


def _err(capsys, rc, *needles):
    """A one-line ``brainlid: error:`` on stderr with exit code 1."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("brainlid: error:"), err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, leaderboard_nsd, tiny_net_py):
    """Exported stimuli, the model's features extracted from them, and the reference `score --model` tables."""
    import os

    tmp = tmp_path_factory.mktemp("anyframework")
    old = os.environ.get("BRAINLID_HOME")
    os.environ["BRAINLID_HOME"] = str(tmp / "home")
    try:
        import importlib.util

        import torch

        mod_spec = importlib.util.spec_from_file_location("anyframework_net", tiny_net_py)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        net = mod.Net()
        with torch.no_grad():  # trained-looking weights, unlike the seeded init of the @random twin
            for prm in net.parameters():
                prm.mul_(1.5).add_(0.05)
        torch.save(net.state_dict(), tmp / "w.pt")
        spec = f"module:{tiny_net_py}:Net@{tmp / 'w.pt'}"
        stim = tmp / "stimuli"
        assert main(["benchmarks", "stimuli", ENC, "--data-root", str(leaderboard_nsd), "--out", str(stim)]) == 0
        feats = tmp / "feats"
        assert main(["extract", "--model", spec, "--stimuli", str(stim), "--layers", "conv,fc", "--out", str(feats),
                     "--no-cache", "-q"]) == 0
        ref = tmp / "ref"
        assert main(["score", "--model", spec, "--benchmark", ENC, "--benchmark", RSA, "--layers", "conv,fc",
                     "--data-root", str(leaderboard_nsd), "--out", str(ref), "--no-store"]) == 0
    finally:
        if old is None:
            os.environ.pop("BRAINLID_HOME", None)
        else:
            os.environ["BRAINLID_HOME"] = old
    scores = pd.read_parquet(ref / "scores.parquet")
    name = next(m for m in scores["model"] if m.startswith("module:") and not m.endswith(("#shuffled", "@random")))
    return {"root": leaderboard_nsd, "stim": stim, "feats": feats, "spec": spec, "name": name, "tmp": tmp,
            "scores": scores, "geometry": pd.read_parquet(ref / "geometry.parquet")}


def test_export_matches_the_loader_pixel_for_pixel(setup, board_data, board_ids, capsys):
    stim = setup["stim"]
    ids = np.load(stim / "stimulus_ids.npy", allow_pickle=False)
    np.testing.assert_array_equal(ids, board_ids)  # exactly the published set, in its order
    assert ids.dtype == np.int64
    loader, _ = board_data.load(ENC)
    images = loader.images(loader.positions_of(ids))
    pngs = sorted(p.name for p in stim.glob("*.png"))
    assert pngs == [f"{i:05d}.png" for i in range(ids.size)]
    for i, im in enumerate(images):
        png = np.asarray(Image.open(stim / f"{i:05d}.png"))
        assert png.dtype == im.dtype and png.shape == im.shape
        np.testing.assert_array_equal(png, im)
    # a non-empty folder is refused before any work; --overwrite replaces the export
    capsys.readouterr()
    _err(capsys, main(["benchmarks", "stimuli", ENC, "--data-root", str(setup["root"]), "--out", str(stim)]), "not empty",
         "--overwrite")
    (stim / "99999.png").write_bytes(b"stale")
    assert main(["benchmarks", "stimuli", ENC, "--data-root", str(setup["root"]), "--out", str(stim), "--overwrite"]) == 0
    assert not (stim / "99999.png").exists() and len(list(stim.glob("*.png"))) == ids.size


def test_export_rdm_benchmark_with_string_ids(tmp_path):
    from brainlid.data.fixtures import write_algonauts2019
    from brainlid.scoring.plan import benchmark_inputs

    root = write_algonauts2019(tmp_path / "a19", n_subjects=2)
    bench = "algonauts2019.92.IT.rsa"
    assert main(["benchmarks", "stimuli", bench, "--data-root", str(root), "--out", str(tmp_path / "x")]) == 0
    ids = np.load(tmp_path / "x" / "stimulus_ids.npy", allow_pickle=False)
    sub, brain = benchmark_inputs(bench, root)
    np.testing.assert_array_equal(ids, np.sort(np.intersect1d(sub.ids, brain.stimulus_ids)))
    assert ids.dtype.kind == "U" and ids.size == 92
    for i, im in zip(range(0, 92, 13), sub.images(sub.positions_of(ids[::13]))):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x" / f"{i:05d}.png")), im)


def _write_formats(setup) -> dict:
    """The extracted arrays saved as another framework would: .npz (rows shuffled), .h5 (3 extra ids), .safetensors."""
    import safetensors.numpy as stn

    f = Features.load(setup["feats"], mmap=False)
    ids, layers = np.asarray(f.stimulus_ids), {k: np.asarray(f[k]) for k in f.layers}
    assert list(layers) == ["conv", "fc"] and ids.dtype == np.int64
    out = {"dir": setup["feats"]}
    perm = np.random.default_rng(1).permutation(ids.size)
    np.savez(setup["tmp"] / "f.npz", **{k: v[perm] for k, v in layers.items()}, stimulus_ids=ids[perm])
    out["npz"] = setup["tmp"] / "f.npz"
    with h5py.File(setup["tmp"] / "f.h5", "w", track_order=True) as h:  # layer order kept: creation order
        extra = np.random.default_rng(2)
        for k, v in layers.items():
            h[k] = np.concatenate([v, extra.standard_normal((3, v.shape[1])).astype(np.float32)])
        h["stimulus_ids"] = np.concatenate([ids, [10**9, 10**9 + 1, 10**9 + 2]])
    out["h5"] = setup["tmp"] / "f.h5"
    stn.save_file({**layers, "stimulus_ids": ids}, str(setup["tmp"] / "f.safetensors"))
    out["safetensors"] = setup["tmp"] / "f.safetensors"
    return out


def _same_rows(got: pd.DataFrame, ref: pd.DataFrame, model_name: str, name: str, keys):
    """``got`` (features named ``name``) equals ``ref`` (the spec's rows), baselines included, no @random."""
    ref = ref[~ref["model"].str.endswith("@random")].copy()
    ref["model"] = ref["model"].str.replace(model_name, name, regex=False)
    assert set(got["model"]) == set(ref["model"]) == {name, f"{name}#shuffled", "baseline:pixels"}
    got = got.sort_values(keys).reset_index(drop=True)
    ref = ref.sort_values(keys).reset_index(drop=True)
    assert len(got) == len(ref)
    pd.testing.assert_frame_equal(got[keys].astype(str), ref[keys].astype(str))
    return got, ref


@pytest.mark.parametrize("fmt", ["dir", "npz", "h5", "safetensors"])
def test_score_features_equals_score_model(setup, fmt, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    path = _write_formats(setup)[fmt]
    store = tmp_path / "r.sqlite"
    capsys.readouterr()
    assert main(["score", "--features", str(path), "--name", "tiny", "--benchmark", ENC, "--benchmark", RSA,
                 "--data-root", str(setup["root"]), "--out", str(tmp_path / "o"), "--store", str(store)]) == 0
    err = capsys.readouterr().err
    assert "no @random" in err
    if fmt == "h5":
        assert "3 stimulus id(s) of the features are not in" in err  # extra ids ignored, with a note
    got, ref = _same_rows(pd.read_parquet(tmp_path / "o" / "scores.parquet"), setup["scores"], setup["name"], "tiny", KEYS)
    for c in NUMS + ["layer_index", "alpha_edge_fraction", "normalised_unit_mean"]:
        np.testing.assert_allclose(got[c].to_numpy(float), ref[c].to_numpy(float), rtol=2e-5, atol=1e-6, err_msg=c)
    assert got["selected"].tolist() == ref["selected"].tolist()
    # the store holds the same rows under the given name; the cache key identifies the features
    from brainlid.scoring.store import ResultsStore

    stored = ResultsStore(store).scores()
    assert set(stored["model"]) == {"tiny", "tiny#shuffled", "baseline:pixels"} and len(stored) == len(got)
    mine = got[got["model"] == "tiny"]
    assert (mine["feature_cache_key"].str.len() > 0).all()
    # geometry: the same LID and global measures of each layer
    gg, gr = pd.read_parquet(tmp_path / "o" / "geometry.parquet"), setup["geometry"]
    gr = gr[~gr["model"].str.endswith("@random")].assign(model=lambda d: d["model"].str.replace(setup["name"], "tiny"))
    gk = ["model", "layer", "stimulus_set", "estimator", "K"]
    gg, gr = gg.sort_values(gk).reset_index(drop=True), gr.sort_values(gk).reset_index(drop=True)
    pd.testing.assert_frame_equal(gg[gk].astype(str), gr[gk].astype(str))
    np.testing.assert_allclose(gg["value"].to_numpy(float), gr["value"].to_numpy(float), rtol=2e-5, atol=1e-6)


def test_layers_choose_and_order(setup, tmp_path, monkeypatch):
    """--layers picks arrays in the order given: layer_index follows it and the shuffled control takes the last."""
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    path = _write_formats(setup)["safetensors"]
    assert main(["score", "--features", str(path), "--name", "tiny", "--benchmark", ENC, "--layers", "fc,conv",
                 "--data-root", str(setup["root"]), "--out", str(tmp_path / "o"), "--no-store"]) == 0
    s = pd.read_parquet(tmp_path / "o" / "scores.parquet")
    idx = s[s["model"] == "tiny"].groupby("layer")["layer_index"].first().to_dict()
    assert idx == {"fc": 0, "conv": 1}
    assert set(s.loc[s["model"] == "tiny#shuffled", "layer"]) == {"conv"}


def test_bad_features_are_one_line_errors(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    f = Features.load(setup["feats"], mmap=False)
    ids, fc = np.asarray(f.stimulus_ids), np.asarray(f["fc"])
    base = ["--benchmark", ENC, "--data-root", str(setup["root"]), "--no-store"]

    def run(path, *extra):
        capsys.readouterr()
        return main(["score", "--features", str(path), "--name", "x", *base, *extra])

    np.savez(tmp_path / "noids.npz", fc=fc)
    _err(capsys, run(tmp_path / "noids.npz"), "no 'stimulus_ids' array")
    bad = fc.copy()
    bad[3, 2] = np.nan
    np.savez(tmp_path / "nan.npz", fc=bad, stimulus_ids=ids)
    _err(capsys, run(tmp_path / "nan.npz"), "'fc'", "NaN")
    np.savez(tmp_path / "few.npz", fc=fc[5:], stimulus_ids=ids[5:])  # five of the benchmark's stimuli missing
    _err(capsys, run(tmp_path / "few.npz"), "lack 5 of the 40 stimulus ids", str(ids[0]))
    np.savez(tmp_path / "str.npz", fc=fc, stimulus_ids=ids.astype(str))
    _err(capsys, run(tmp_path / "str.npz"), "strings", "integers")
    np.savez(tmp_path / "3d.npz", fc=fc[:, :, None], stimulus_ids=ids)
    _err(capsys, run(tmp_path / "3d.npz"), "(n_stimuli, n_features)")
    _err(capsys, run(tmp_path / "noids.npz", "--model", setup["spec"]), "not both")
    capsys.readouterr()
    _err(capsys, main(["score", *base]), "--model SPEC or --features")
    capsys.readouterr()
    _err(capsys, main(["score", "--features", str(tmp_path / "few.npz"), *base]), "--name")


def test_submit_prepare_features(setup, tmp_path, monkeypatch, capsys):
    """A bundle from .npz features passes `submit check` and scores exactly like the model's own bundle."""
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    from brainlid.leaderboard.bundle import validate_bundle
    from brainlid.leaderboard.scoring import BenchmarkData, check_bundle

    npz = _write_formats(setup)["npz"]
    common = ["--benchmark", ENC, "--data-root", str(setup["root"]), "--layers", "conv,fc"]
    assert main(["submit", "prepare", "--features", str(npz), "--name", "TinyJax", *common, "--out", str(tmp_path / "f.zip")]) == 0
    assert main(["submit", "prepare", "--model", setup["spec"], "--name", "TinyNet", *common, "--out", str(tmp_path / "m.zip")]) == 0
    capsys.readouterr()
    assert main(["submit", "check", str(tmp_path / "f.zip"), "--data-root", str(setup["root"]), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["status"] == "scored" and rep["fixture"] == []
    assert validate_bundle(tmp_path / "f.zip").metadata["model_name"] == "TinyJax"
    data = BenchmarkData(setup["root"])
    a, b = check_bundle(tmp_path / "f.zip", data=data), check_bundle(tmp_path / "m.zip", data=data)
    keys = ["layer", "benchmark", "metric", "split"]
    sa, sb = (r.scores.sort_values(keys).reset_index(drop=True) for r in (a, b))
    pd.testing.assert_frame_equal(sa[keys], sb[keys])
    np.testing.assert_allclose(sa["value"].to_numpy(float), sb["value"].to_numpy(float), rtol=2e-5, atol=1e-6)
    assert sa["selected"].tolist() == sb["selected"].tolist()
    # neither or both sources: one line
    capsys.readouterr()
    _err(capsys, main(["submit", "prepare", *common, "--out", str(tmp_path / "z.zip")]), "--model SPEC or --features")


def test_python_api_takes_features_as_a_model(setup):
    """brainlid.score({name: Features}, ...) with the default extraction step (a lookup by id) gives the CLI's rows."""
    from brainlid.features import load_features
    from brainlid.scoring.serial import score

    feats = load_features(_write_formats(setup)["npz"])
    got = score({"tiny": feats}, ENC, data_root=setup["root"], store=False, baselines=("shuffled",))
    ref = setup["scores"]
    ref = ref[(ref["benchmark"] == ENC) & ref["model"].isin([setup["name"], setup["name"] + "#shuffled"])].copy()
    ref["model"] = ref["model"].str.replace(setup["name"], "tiny", regex=False)
    got, ref = (d.sort_values(KEYS).reset_index(drop=True) for d in (got, ref))
    pd.testing.assert_frame_equal(got[KEYS].astype(str), ref[KEYS].astype(str))
    np.testing.assert_allclose(got["value"].to_numpy(float), ref["value"].to_numpy(float), rtol=2e-5, atol=1e-6)


def test_reader_string_ids_nested_layers_and_messages(tmp_path):
    """read_feature_layers against values written by h5py/numpy/safetensors directly (what another framework saves)."""
    import safetensors.numpy as stn

    from brainlid.errors import FileFormatError
    from brainlid.features import read_feature_layers

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.integers(0, 9, (4, 2))
    with h5py.File(tmp_path / "s.h5", "w", track_order=True) as h:
        h.create_group("block2", track_order=True)["conv"] = a  # float64 → float32, nested name kept
        h["head"] = b  # integers → float32
        h.create_dataset("stimulus_ids", data=["img_c", "img_a", "img_b", "img_d"], dtype=h5py.string_dtype())
    layers, ids = read_feature_layers(tmp_path / "s.h5")
    assert list(layers) == ["block2/conv", "head"] and ids.tolist() == ["img_c", "img_a", "img_b", "img_d"]
    np.testing.assert_array_equal(layers["block2/conv"], a.astype(np.float32))
    np.testing.assert_array_equal(layers["head"], b.astype(np.float32))
    assert all(v.dtype == np.float32 for v in layers.values())
    with h5py.File(tmp_path / "bytes.h5", "w") as h:  # fixed-length byte strings, as many tools write them
        h["x"], h["stimulus_ids"] = a, np.array([b"p", b"q", b"r", b"s"])
    assert read_feature_layers(tmp_path / "bytes.h5")[1].tolist() == ["p", "q", "r", "s"]
    stn.save_file({"x": a.astype(np.float32)}, str(tmp_path / "noids.safetensors"))
    with pytest.raises(FileFormatError, match="no 'stimulus_ids' array.*integer ids"):
        read_feature_layers(tmp_path / "noids.safetensors")
    np.savez(tmp_path / "dup.npz", x=a, stimulus_ids=np.array([1, 2, 2, 3]))
    with pytest.raises(FileFormatError, match="duplicated"):
        read_feature_layers(tmp_path / "dup.npz")
    np.savez(tmp_path / "short.npz", x=a, stimulus_ids=np.arange(3))
    with pytest.raises(FileFormatError, match=r"shape \(4, 3\) for 3 stimulus ids"):
        read_feature_layers(tmp_path / "short.npz")
    (tmp_path / "f.pt").write_bytes(b"x")  # a torch file is not a precomputed-features file
    with pytest.raises(FileFormatError, match="extract --out"):
        read_feature_layers(tmp_path / "f.pt")


def test_rdm_benchmark_round_trip_on_real_k92(setup, tmp_path, monkeypatch):
    """Real data: the 92 images exported as PNGs, features extracted from them, scored with --features on the
    human-IT RDM benchmark → the same rows as --model reading the images from the .mat file."""
    k92 = REALDATA / "k92"
    if not k92.is_dir():
        pytest.skip(f"real k92 data not found at {k92} (../shared/realdata)")
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    bench = "k92.human.IT.rsa"
    assert main(["benchmarks", "stimuli", bench, "--data-root", str(k92), "--out", str(tmp_path / "stim")]) == 0
    assert main(["extract", "--model", setup["spec"], "--stimuli", str(tmp_path / "stim"), "--layers", "conv,fc",
                 "--out", str(tmp_path / "f"), "--no-cache", "-q"]) == 0
    common = ["--benchmark", bench, "--data-root", str(k92), "--no-store", "--no-baselines"]
    assert main(["score", "--model", setup["spec"], "--layers", "conv,fc", *common, "--out", str(tmp_path / "ref")]) == 0
    assert main(["score", "--features", str(tmp_path / "f"), "--name", "tiny", *common, "--out", str(tmp_path / "got")]) == 0
    ref, got = (pd.read_parquet(tmp_path / d / "scores.parquet") for d in ("ref", "got"))
    ref = ref.assign(model=ref["model"].str.replace(setup["name"], "tiny", regex=False))
    keys = KEYS[:-1]
    assert {"all", "test"} <= set(got["split"]) and len(got) == len(ref) > 0
    got, ref = (d.sort_values(keys).reset_index(drop=True) for d in (got, ref))
    pd.testing.assert_frame_equal(got[keys].astype(str), ref[keys].astype(str))
    for c in ("value", "ceiling", "normalised", "ci_low", "ci_high"):
        np.testing.assert_allclose(got[c].to_numpy(float), ref[c].to_numpy(float), rtol=2e-5, atol=1e-6, err_msg=c)
