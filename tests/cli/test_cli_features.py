"""`brainlid extract`, `brainlid layers`, `brainlid cache list/clear` end to end."""

import json
import textwrap

import numpy as np
import pytest
import torch

from brainlid.cli import main
from brainlid.features import Features, extract

NET_SRC = textwrap.dedent(
    """
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)

        def forward(self, x):
            return self.conv2(self.conv(x).relu())
    """
)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    (tmp_path / "net.py").write_text(NET_SRC)
    imgs = np.random.default_rng(0).integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "stim.npy", imgs)
    return tmp_path, f"module:{tmp_path / 'net.py'}:Net@random", imgs


def test_extract_writes_readable_files(env, capsys):
    tmp, spec, imgs = env
    out = tmp / "out"
    code = main(["extract", "--model", spec, "--stimuli", str(tmp / "stim.npy"), "--layers", "conv,conv2", "--pooling", "conv=max", "--pooling", "avg", "--out", str(out), "-b", "4", "-q"])
    assert code == 0, capsys.readouterr().err
    assert "wrote 2 layer(s)" in capsys.readouterr().out
    ref = extract(spec, imgs, ["conv", "conv2"], pooling={"conv": "max", "conv2": "avg"}, batch_size=4, cache=False, progress=False)
    for layer in ("conv", "conv2"):
        np.testing.assert_array_equal(np.load(out / f"{layer}.npy", allow_pickle=False), ref[layer])
    np.testing.assert_array_equal(np.load(out / "stimulus_ids.npy", allow_pickle=False), np.arange(9))
    man = json.loads((out / "manifest.json").read_text())
    assert man["provenance"]["pooling"] == {"conv": "max", "conv2": "avg"}
    assert Features.load(out)["conv2"].shape == (9, 6)
    try:
        from brainlid.io import read_features
    except ImportError:  # pragma: no cover - the reader lands separately
        return
    X, _ = read_features(out / "conv2.npy")
    np.testing.assert_array_equal(X, ref["conv2"])

    # the cache was used: the second run is a hit and cache list shows both entries
    assert main(["cache", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert sorted(e["layer"] for e in entries) == ["conv", "conv2"] and all(e["complete"] and e["n"] == 9 for e in entries)
    assert main(["cache", "list"]) == 0
    assert "conv2" in capsys.readouterr().out
    assert main(["cache", "clear", "--older-than", "30d"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert main(["cache", "clear", "--model", "net.py"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out


def test_extract_srp_no_cache_and_progress(env, capsys):
    tmp, spec, _ = env
    assert main(["extract", "-m", spec, "-s", str(tmp / "stim.npy"), "-l", "conv2", "-p", "none", "--reduce", "srp:5", "--no-cache", "-o", str(tmp / "o")]) == 0
    err = capsys.readouterr().err
    assert "on disk" in err and "memory" in err  # the estimate printed before the run
    assert np.load(tmp / "o" / "conv2.npy").shape == (9, 5)
    assert not (tmp / "home" / "cache" / "features").exists() or not any((tmp / "home" / "cache" / "features").iterdir())


def test_layers_command(env, capsys):
    tmp, spec, _ = env
    assert main(["layers", spec, "--input-size", "3,16,16", "--json"]) == 0
    info = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert info["conv"]["output_shape"] == [1, 4, 16, 16] and info["conv2"]["output_shape"] == [1, 6, 8, 8]
    assert main(["layers", spec, "--input-size", "3,16,16"]) == 0
    assert "conv2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["extract", "-m", "SPEC", "-s", "STIM", "-l", "conv3"], "unknown layer 'conv3'; did you mean conv"),
        (["extract", "-m", "SPEC", "-s", "STIM", "-l", "conv", "--max-disk", "10B", "-q"], "budget"),
        (["extract", "-m", "SPEC", "-s", "STIM", "-l", "conv", "-p", "median"], "unknown pooling"),
        (["extract", "-m", "nope:thing", "-s", "STIM", "-l", "conv"], "unknown model source"),
        (["extract", "-m", "SPEC", "-s", "/no/such/dir", "-l", "conv"], "not found"),
        (["layers", "SPEC", "--input-size", "3,2"], "C,H,W"),
        (["layers", "SPEC", "--input-size", "1,8,8"], "forward pass failed"),
        (["cache", "clear", "--older-than", "soon"], "30d"),
    ],
)
def test_errors_are_one_line(env, capsys, args, message):
    tmp, spec, _ = env
    args = [a.replace("SPEC", spec).replace("STIM", str(tmp / "stim.npy")) for a in args]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("brainlid: error:") and message in err and len(err.splitlines()) == 1, err


def test_cli_extract_matches_torch(env):
    tmp, spec, imgs = env
    assert main(["extract", "-m", spec, "-s", str(tmp / "stim.npy"), "-l", "conv", "-p", "adaptive:2", "-o", str(tmp / "o"), "-q"]) == 0
    from brainlid.features import load_model

    net = load_model(spec).module
    x = torch.from_numpy(imgs.transpose(0, 3, 1, 2) / 255.0).float()
    with torch.no_grad():
        exp = torch.nn.functional.adaptive_avg_pool2d(net.conv(x), 2).reshape(9, -1).numpy()
    np.testing.assert_allclose(np.load(tmp / "o" / "conv.npy"), exp, rtol=1e-5, atol=1e-6)


def test_extract_pca_fit_ids(env, capsys):
    tmp, spec, imgs = env
    (tmp / "train.txt").write_text("0\n1\n2\n3\n4\n5\n")
    assert main(["extract", "-m", spec, "-s", str(tmp / "stim.npy"), "-l", "conv", "-p", "none", "--reduce", "pca:3", "--fit-ids", str(tmp / "train.txt"), "-o", str(tmp / "o"), "-q"]) == 0
    from brainlid.features import Reduction

    ref = extract(spec, imgs, ["conv"], pooling="none", reduce=Reduction("pca", 3, fit_ids=list(range(6))), cache=False, progress=False)
    np.testing.assert_allclose(np.load(tmp / "o" / "conv.npy"), ref["conv"], rtol=1e-4, atol=1e-5)
    man = json.loads((tmp / "o" / "manifest.json").read_text())
    assert man["provenance"]["reduction"]["fit_name"] == "train.txt"
    assert main(["extract", "-m", spec, "-s", str(tmp / "stim.npy"), "-l", "conv", "--fit-ids", str(tmp / "train.txt")]) == 1
    assert "needs --reduce pca" in capsys.readouterr().err


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty (0 bytes), not a NumPy .npy file"),
    (b"img001.png\nimg002.png\n", "is not a NumPy .npy file (it holds text)"),
])
def test_extract_bad_stimulus_npy_gives_one_line(env, capsys, content, expected):
    """An empty .npy used to end in click's bare `Aborted.` (exit 130); a text one in numpy's advice to unpickle."""
    tmp, spec, _ = env
    (tmp / "bad.npy").write_bytes(content)
    code = main(["extract", "-m", spec, "-s", str(tmp / "bad.npy"), "-l", "conv", "-q", "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith(f"brainlid: error: {tmp / 'bad.npy'}: {expected}")
    assert "unsafe" not in err and "Aborted" not in err


def test_eof_anywhere_is_an_error_not_an_abort(env, capsys, monkeypatch):
    """click turns every EOFError into Abort (exit 130, `Aborted.`); brainlid reports it as an error."""
    import brainlid.features as features

    def broken(*a, **k):
        raise EOFError("No data left in file")

    monkeypatch.setattr(features, "extract", broken)
    tmp, spec, _ = env
    code = main(["extract", "-m", spec, "-s", str(tmp / "stim.npy"), "-l", "conv", "-q"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "brainlid: error: unexpected end of input (No data left in file)"


# ---- torchvision that matches the installed torch -------------------------------------------------

def test_torchvision_pairs_follow_pytorchs_rule():
    """Every known pair has torchvision minor = torch minor + 15 (PyTorch's scheme since 2.0); the
    pair for this project's CPU torch was read from torchvision 0.28.0's own metadata (torch==2.13.0)."""
    from brainlid.features.adapters import TORCHVISION_FOR_TORCH, matching_torchvision, torch_install_command

    for t, tv in TORCHVISION_FOR_TORCH.items():
        assert int(tv.split(".")[1]) == int(t.split(".")[1]) + 15, (t, tv)
    assert matching_torchvision("2.13.0+cpu") == "0.28.0"
    assert matching_torchvision("2.11.0") == "0.26.*" and matching_torchvision("1.13.1") is None
    assert torch_install_command("2.13.0+cpu") == (
        "pip install 'torch==2.13.0' 'torchvision==0.28.0' --index-url https://download.pytorch.org/whl/cpu")
    assert torch_install_command("2.4.1+cu121").endswith("'torchvision==0.19.1' --index-url https://download.pytorch.org/whl/cu121")
    assert torch_install_command("2.9.1") == "pip install 'torch==2.9.1' 'torchvision==0.24.1'"  # a PyPI build: PyPI


@pytest.fixture
def fake_libs(tmp_path, monkeypatch):
    """Control which of torchvision / timm import, and how they fail; torch reports 2.13.0+cpu."""
    import sys

    import importlib

    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    libs = ("torchvision", "timm", "open_clip")
    saved = {name: sys.modules.pop(name) for name in libs if name in sys.modules}
    monkeypatch.syspath_prepend(str(tmp_path / "libs"))

    def make(name, body):
        d = tmp_path / "libs" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "__init__.py").write_text(body)

    def absent(name):
        sys.modules[name] = None  # import raises ModuleNotFoundError

    yield make, absent
    for name in libs:  # the fakes must not outlive the test (other tests skip when the real ones are missing)
        sys.modules.pop(name, None)
    sys.modules.update(saved)
    importlib.invalidate_caches()


def _one_line_error(capsys, args):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    return err


CPU_PAIR = "pip install 'torch==2.13.0' 'torchvision==0.28.0' --index-url https://download.pytorch.org/whl/cpu"


def test_missing_torchvision_gets_the_matching_install_command(fake_libs, capsys):
    make, absent = fake_libs
    absent("torchvision")
    err = _one_line_error(capsys, ["layers", "torchvision:resnet18"])
    assert "torchvision is not installed" in err and err.endswith(CPU_PAIR)
    assert "brainlid[models]" not in err  # that alone resolves the newest torchvision, pinned to a newer torch


def test_torchvision_built_for_another_torch_is_named(fake_libs, capsys):
    make, absent = fake_libs
    make("torchvision", "raise RuntimeError('operator torchvision::nms does not exist')\n")
    err = _one_line_error(capsys, ["layers", "torchvision:resnet18"])
    assert "built for another torch (RuntimeError: operator torchvision::nms does not exist)" in err
    assert err.endswith(CPU_PAIR)
    absent("timm")  # timm missing too: first the pair, then the extra
    err = _one_line_error(capsys, ["layers", "timm:resnet18"])
    assert err.startswith("brainlid: error: timm models need torchvision") and err.endswith(CPU_PAIR + ", then: pip install 'brainlid[models]'")


def test_working_torchvision_keeps_the_usual_extra_hint(fake_libs, capsys):
    make, absent = fake_libs
    make("torchvision", "")
    absent("timm")
    err = _one_line_error(capsys, ["layers", "timm:resnet18"])
    assert "pip install 'brainlid[models]'" in err and "download.pytorch.org" not in err


def test_extraction_bar_only_on_a_terminal(env, capsys, monkeypatch):
    """CI logs (not a terminal, or CI=true) get the one-line estimate but no bar; BRAINLID_PROGRESS=1 forces it."""
    tmp, spec, _ = env
    args = ["extract", "-m", spec, "-s", str(tmp / "stim.npy"), "-l", "conv", "--no-cache"]
    monkeypatch.delenv("BRAINLID_PROGRESS", raising=False)
    monkeypatch.setenv("CI", "true")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "on disk" in err and len(err.splitlines()) == 1  # the estimate only
    monkeypatch.setenv("BRAINLID_PROGRESS", "1")
    assert main(args) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "on disk" in lines[0] and lines[1].startswith("module:")  # the estimate, then the bar
