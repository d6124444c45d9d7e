"""The command line's root: --help, --version, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import brainlid
from brainlid.cli import cli, main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"brainlid {brainlid._version.__version__}"


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.commands:
        assert name in out


def test_every_command_has_help():
    """`--help` works on every command and sub-command, and says something."""

    def walk(group, path):
        for name, cmd in group.commands.items():
            yield path + [name], cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, path + [name])

    for path, cmd in walk(cli, []):
        res = subprocess.run([sys.executable, "-m", "brainlid", *path, "--help"], capture_output=True, text=True)
        assert res.returncode == 0, (path, res.stderr)
        assert "Usage:" in res.stdout and len(res.stdout.splitlines()) > 3, path


def test_each_command_module_holds_its_command():
    """One public module per command group; its command runs on its own (CliRunner), the root adds them all."""
    import importlib

    from click.testing import CliRunner

    from brainlid.cli import COMMANDS

    names = {"lid": "geometry", "align": "align", "datasets": "datasets", "extract": "features", "layers": "features",
             "cache": "features", "score": "score", "benchmarks": "benchmarks", "analyze": "analyze",
             "compare": "compare", "submit": "submit", "leaderboard": "leaderboard", "demo": "demo"}
    assert sorted(c.name for c in COMMANDS) == sorted(cli.commands) == sorted(names)
    for name, module in names.items():
        cmd = getattr(importlib.import_module(f"brainlid.cli.{module}"), name)
        assert cli.commands[name] is cmd
        res = CliRunner().invoke(cmd, ["--help"])
        assert res.exit_code == 0 and res.output.startswith(f"Usage: {name} "), (name, res.output)


def test_defaults_and_choices_come_from_the_library():
    """`lid`'s K, estimators, aggregates, norms and `serve`'s upload limits are the library's, shown in --help."""
    from click.testing import CliRunner

    from brainlid import geometry
    from brainlid.cli.analyze import analyze
    from brainlid.cli.geometry import lid
    from brainlid.cli.leaderboard import serve
    from brainlid.leaderboard.uploads import UploadPolicy

    params = lid.make_context("lid", ["x.npy"]).params
    assert params["k"] == geometry.DEFAULT_K and analyze.make_context("analyze", []).params["k"] == geometry.DEFAULT_K
    choices = {p.name: tuple(p.type.choices) for p in lid.params if p.name in ("estimator", "aggregate", "norm")}
    assert choices == {"estimator": tuple(geometry.ESTIMATORS), "aggregate": tuple(geometry.AGGREGATES),
                       "norm": tuple(geometry.NORMS)}
    policy, params = UploadPolicy(), serve.make_context("serve", []).params
    assert (params["max_pending_uploads"], params["validation_slots"], params["body_timeout"], params["min_upload_kib"]) == (
        policy.max_pending, policy.validation_slots, policy.body_timeout, policy.min_upload_rate / 1024)
    text = " ".join(CliRunner().invoke(serve, ["--help"], terminal_width=200).output.split())
    assert "--body-timeout FLOAT RANGE Seconds" in text and f"[default: {policy.body_timeout}; x>=1]" in text
    text = " ".join(CliRunner().invoke(lid, ["--help"], terminal_width=200).output.split())
    assert f"[default: {geometry.DEFAULT_K}]" in text and "[" + "|".join(geometry.ESTIMATORS) + "]" in text


def test_unknown_command_exits_nonzero():
    res = subprocess.run([sys.executable, "-m", "brainlid", "no-such-command"], capture_output=True, text=True)
    assert res.returncode != 0
    assert "No such command" in res.stderr


# ---- paths are checked before any work ------------------------------------------------------------

import numpy as np  # noqa: E402
import pytest  # noqa: E402

NET = "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(48, 2)\n\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n"


@pytest.fixture
def no_work(tmp_path, monkeypatch):
    """A model file and stimuli; extraction, scoring and the demo fail the test if they start."""
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    (tmp_path / "net.py").write_text(NET)
    np.save(tmp_path / "stim.npy", np.zeros((4, 4, 4, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("my notes, not a results store\n" * 5)

    def started(*a, **k):
        raise AssertionError("work started before the paths were checked")

    import brainlid.demo
    import brainlid.features
    import brainlid.scoring

    # (the score command calls brainlid.scoring.score, the name patched here)
    for mod, name in ((brainlid.features, "extract"), (brainlid.scoring, "score"), (brainlid.demo, "run_demo")):
        monkeypatch.setattr(mod, name, started)
    return tmp_path


def _error(capsys, args):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return code, err


@pytest.mark.parametrize("option, make, expected", [
    ("--store", lambda t: t / "sub", "--store {t}/sub is a folder, not a file; give a file path such as {t}/sub/results.sqlite"),
    ("--store", lambda t: t / "notes.txt", "--store {t}/notes.txt is not an SQLite results store; choose another path"),
    ("--store", lambda t: t / "notes.txt" / "r.sqlite", "--store {t}/notes.txt/r.sqlite: {t}/notes.txt is a file, not a folder"),
    ("--out", lambda t: t / "notes.txt", "--out {t}/notes.txt is a file, not a folder"),
])
def test_score_checks_output_paths_first(no_work, capsys, option, make, expected):
    t = no_work
    (t / "sub").mkdir(exist_ok=True)
    before = (t / "notes.txt").read_bytes()
    code, err = _error(capsys, ["score", "--model", f"module:{t / 'net.py'}:Net@random", "--benchmark", "nsd.subj01.EBA.encoding",
                                option, str(make(t))])
    assert code == 1 and err == "brainlid: error: " + expected.format(t=t)
    assert (t / "notes.txt").read_bytes() == before  # SQLite would have taken over the text file


def test_extract_and_demo_check_output_paths_first(no_work, capsys):
    t = no_work
    code, err = _error(capsys, ["extract", "-m", f"module:{t / 'net.py'}:Net@random", "-s", str(t / "stim.npy"), "-l", "fc",
                                "--out", str(t / "notes.txt" / "feats")])
    assert code == 1 and err == f"brainlid: error: --out {t}/notes.txt/feats: {t}/notes.txt is a file, not a folder"
    code, err = _error(capsys, ["demo", "--out", str(t / "notes.txt")])
    assert code == 1 and err == f"brainlid: error: --out {t}/notes.txt is a file, not a folder"


def test_paths_say_what_they_are(no_work, capsys):
    """A data root that is a file is not 'a root folder that does not exist'; a model 'file' that is a folder is not 'not found'."""
    t = no_work
    (t / "models").mkdir()
    code, err = _error(capsys, ["layers", f"module:{t / 'models'}:Net"])
    assert code == 1 and f"model file {t}/models is a folder, not a Python file" in err
    from brainlid.data.cards import get_card
    from brainlid.errors import DatasetNotFoundError, InputError

    card = get_card("nsd")
    with pytest.raises(InputError, match=r"root .*notes\.txt is a file, not a folder \(passed as root=\)"):
        card.root(t / "notes.txt")
    with pytest.raises(InputError, match=r"root .*notes\.txt/nsd lies under .*notes\.txt, which is a file"):
        card.root(t / "notes.txt" / "nsd")
    with pytest.raises(DatasetNotFoundError, match="root folder does not exist"):
        card.root(t / "nowhere")


def test_licence_metadata_is_an_spdx_string():
    """A TOML-table licence and a licence classifier made every build print ~9 setuptools warning blocks
    (`pip wheel --no-deps .`: 135 lines before, 15 after); the SPDX form needs setuptools >= 77."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(brainlid.__file__).resolve().parent.parent
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["license"] == "BSD-3-Clause"
    assert all((root / f).is_file() for f in project["license-files"])
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    setuptools_req = next(r for r in meta["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=\s*(\d+)", setuptools_req).group(1)) >= 77
