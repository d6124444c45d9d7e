"""Every tutorial runs: each ``tutorials/NN_*.py`` is executed in a subprocess on fixture/demo data.

The subprocesses share the test session's trained demo zoo (``BRAINLID_HOME`` points at the
session home of :func:`conftest.demo_home`), write their figures to a temporary folder
(``BRAINLID_TUTORIAL_OUT``) and never see a real dataset copy (``BRAINLID_DATA`` is removed), so
they run on synthetic data. Besides "exits 0", the tests check what each tutorial claims to
show: the figures it writes, the printed note saying which data it used, and the self-checks the
tutorials print (a quantity computed by brainlid and the same quantity written out by hand must
agree). Every tutorial must also convert to a notebook with jupytext, and the README and
``tutorials/README.md`` must link every tutorial.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

TUTORIALS = sorted(p for p in (REPO / "tutorials").glob("[0-9][0-9]_*.py"))
TIMEOUT = 900  # seconds: a hang guard only (the machine's speed swings); each is < 1 min of CPU normally

# What each of the tutorials owned here must write (tutorials 06/07 belong to other owners: rc 0 suffices).
FIGURES = {
    "01_quick_start.py": ["quick_start_scores.png"],
    "02_local_vs_global_id.py": ["k_sweep.png"],
    "03_reproduce_lid_result.py": ["r_vs_k.png", "lid_vs_brain.png", "analysis/report.html"],
    "04_time_resolved_eeg.py": ["eeg_encoding_vs_time.png", "eeg_time_resolved.png"],
    "05_leaderboard.py": ["leaderboard_scores.png"],
}


def test_tutorials_are_found():
    names = [p.name for p in TUTORIALS]
    assert names[:4] == ["01_quick_start.py", "02_local_vs_global_id.py", "03_reproduce_lid_result.py",
                         "04_time_resolved_eeg.py"], names
    assert len(names) >= 5


def _run(path: Path, home: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("BRAINLID_DATA", "BRAINLID_TUTORIAL_MODEL",
                                                            "BRAINLID_TUTORIAL_MODELS", "BRAINLID_TUTORIAL_GENERALIZATION")}
    env.update(BRAINLID_HOME=str(home), BRAINLID_TUTORIAL_OUT=str(out), MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, str(path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, cpu


def _number(pattern: str, text: str) -> list[float]:
    m = re.search(pattern, text)
    assert m, f"the tutorial did not print a line matching {pattern!r}"
    return [float(g) for g in m.groups()]


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, demo_home, tmp_path):
    home, _, _ = demo_home
    out = tmp_path / "out"
    proc, cpu = _run(path, home, out)
    print(f"{path.name}: {cpu:.1f} s CPU")  # shown with -s / -rA; not asserted (shared machines)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "Traceback" not in proc.stderr
    # output a person reads: warnings as one line (no source path), no object reprs, no raw signal exit codes
    assert not re.search(r"\.py:\d+: \w*Warning", proc.stdout + proc.stderr), path.name
    assert not re.search(r"^(\w+RunInfo\(|health: \{|.*exit code -15)", proc.stdout, re.M), path.name
    text = proc.stdout
    if path.name not in FIGURES:
        return
    # the printed note says the data are synthetic (BRAINLID_DATA was removed)
    assert re.search(r"^DATA: (SYNTHETIC|synthetic)", text, re.M), text[:2000]
    for rel in FIGURES[path.name]:
        f = out / rel
        assert f.is_file() and f.stat().st_size > 2000, f"{path.name} did not write {rel}"
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # tutorial-specific self-checks printed by the tutorials
    if path.name == "01_quick_start.py":
        r2, lo, hi = _number(r"my_model: layer \S+, test R² ([-\d.]+) \[([-\d.]+), ([-\d.]+)\]", text)
        # a basic stimulus-bootstrap interval need not contain the value, only lie near it
        assert lo < hi and abs(r2 - (lo + hi) / 2) <= hi - lo
        assert (out / "scores" / "scores.parquet").is_file() and (out / "results.sqlite").is_file()
    if path.name == "02_local_vs_global_id.py":
        ours, brute = _number(r"brainlid lid\(\):\s+([\d.]+)\s+float64 brute force:\s+([\d.]+)", text.replace("\n", " "))
        assert ours == pytest.approx(brute, abs=0.011)
        assert "DuplicatePointsWarning" in text or "duplicate rows are removed" in text
    if path.name == "03_reproduce_lid_result.py":
        by_hand, ours = _number(r"partial r by hand ([-+\d.]+), brainlid ([-+\d.]+)", text)
        assert by_hand == pytest.approx(ours, abs=1e-4)
        assert "SYNTHETIC" in text
    if path.name == "04_time_resolved_eeg.py":
        (err,) = _number(r"max \|by hand − benchmark\| over time = ([\d.eE+-]+)", text)
        assert err < 1e-6
    if path.name == "05_leaderboard.py":
        assert "board and local check agree: True" in text  # the service scores exactly like check_bundle
        assert re.search(r"wrong-order bundle: rejected — .*order", text)
        assert re.search(r"bad token: rejected", text)
        assert re.search(r"service stopped", text)
        assert (out / "site" / "index.html").is_file()


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_converts_to_a_notebook(path, tmp_path):
    """jupytext percent format: markdown and code cells, and a header jupytext recognises."""
    nb_path = tmp_path / (path.stem + ".ipynb")
    proc = subprocess.run([sys.executable, "-m", "jupytext", "--to", "notebook", "--output", str(nb_path), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    nb = json.loads(nb_path.read_text())
    kinds = [c["cell_type"] for c in nb["cells"]]
    assert kinds.count("markdown") >= 3 and kinds.count("code") >= 3, kinds
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "".join(first_md["source"]).lstrip().startswith("# "), "the first markdown cell must be the title"
    # no percent-cell markers left inside cells (a malformed header would leave them as text)
    assert not any("# %%" in "".join(c["source"]) for c in nb["cells"])


def test_readmes_and_site_link_every_tutorial():
    """The README's tutorials section, tutorials/README.md and the site's gallery list every tutorial; the
    site reads each one through a symbolic link to tutorials/ (one source, no copy that can drift)."""
    readme = (REPO / "README.md").read_text()
    m = re.search(r"^## Tutorials\n(.*?)(?=^## )", readme, re.S | re.M)
    assert m, "README.md has no tutorials section"
    section = m.group(1)
    index = (REPO / "tutorials" / "README.md").read_text()
    gallery = (REPO / "docs" / "tutorials" / "index.md").read_text()
    for p in TUTORIALS:
        assert f"(tutorials/{p.name})" in section, f"README tutorials section does not link {p.name}"
        assert p.name in index, f"tutorials/README.md does not list {p.name}"
        assert f"\n{p.stem}\n" in gallery, f"docs/tutorials/index.md does not list {p.stem}"
        link = REPO / "docs" / "tutorials" / p.name
        assert link.is_symlink() and link.resolve() == p.resolve(), f"{link} must be a symbolic link to {p}"
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        assert (REPO / img).is_file(), f"README links a missing figure {img}"


def test_common_data_choice(tmp_path, monkeypatch, capsys):
    """``_common.dataset_root``: the real copy when $BRAINLID_DATA/<folder> exists, else None with a SYNTHETIC note."""
    monkeypatch.syspath_prepend(str(REPO / "tutorials"))
    import _common

    monkeypatch.delenv("BRAINLID_DATA", raising=False)
    assert _common.dataset_root("nsd", "a fixture") is None
    assert "DATA: SYNTHETIC — a fixture" in capsys.readouterr().out
    monkeypatch.setenv("BRAINLID_DATA", str(tmp_path))
    assert _common.dataset_root("nsd", "a fixture") is None  # folder missing: still synthetic, and says why
    assert str(tmp_path / "nsd") in capsys.readouterr().out
    (tmp_path / "nsd").mkdir()
    assert _common.dataset_root("nsd", "a fixture") == tmp_path / "nsd"
    assert capsys.readouterr().out.startswith("DATA: real nsd copy")
    monkeypatch.setenv("BRAINLID_TUTORIAL_OUT", str(tmp_path / "figs"))
    assert _common.output_dir("x") == tmp_path / "figs" and (tmp_path / "figs").is_dir()


@pytest.mark.slow
def test_quick_start_real_data_branch(demo_home, tmp_path):
    """The same tutorial on a "real" copy: $BRAINLID_DATA/nsd (here the synthetic copy, linked), any model spec."""
    home, zoo, root = demo_home
    data = tmp_path / "data"
    data.mkdir()
    (data / "nsd").symlink_to(root, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAINLID_TUTORIAL")}
    env.update(BRAINLID_HOME=str(home), BRAINLID_TUTORIAL_OUT=str(tmp_path / "out"), BRAINLID_DATA=str(data),
               BRAINLID_TUTORIAL_MODEL=zoo.set_index("model").loc["mlp_w64_d2", "spec"],
               BRAINLID_TUTORIAL_LAYERS="hidden.0,embed", MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(REPO / "tutorials" / "01_quick_start.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"DATA: real nsd copy at {data / 'nsd'}" in proc.stdout
    assert "SYNTHETIC" not in proc.stdout
    assert "layers: hidden.0, embed" in proc.stdout
    assert (tmp_path / "out" / "quick_start_scores.png").is_file()


def test_tutorial_warnings_are_one_line(tmp_path):
    """_common prints a warning as `warning (Category): message`, not Python's `path:line: UserWarning` pair of lines."""
    code = "import warnings, _common\nwarnings.warn('features are constant', UserWarning)\nprint('done')\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO / "tutorials", capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO / "tutorials")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["warning (UserWarning): features are constant", "done"]
    assert proc.stderr == ""
