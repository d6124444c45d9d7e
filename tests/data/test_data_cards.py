"""Dataset cards: parsing, path templates, root resolution, error texts, packaging into wheels."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from brainlid.data import cards
from brainlid.data.cards import DatasetCard, Loaded, get_card, list_cards, probe
from brainlid.errors import DatasetNotFoundError, InputError

OURS = ("nsd", "algonauts2023")


@pytest.mark.parametrize("name", OURS)
def test_our_cards_are_complete(name):
    card = get_card(name)
    assert card.name == name and card.path.name == f"{name}.toml"
    assert "@article" in card.citation and card.terms.strip() and card.obtain.strip() and card.homepage.startswith("http")
    mod = card.module()
    assert callable(mod.load) and callable(mod.check) and callable(mod.summarize)
    # every file key the fetcher plans exists as a template
    keys = list(card.fetch.get("common", [])) + list(card.fetch.get("optional", []))
    for space_keys in card.fetch.get("per_space", {}).values():
        keys += space_keys
    assert keys and set(keys) <= set(card.files)
    assert card.subjects["ids"] == list(range(1, 9))
    text = card.info_text()
    assert "Terms of use" in text and card.citation.strip().splitlines()[0] in text


def test_list_and_unknown():
    names = [c.name for c in list_cards()]
    assert set(OURS) <= set(names) and names == sorted(names)
    with pytest.raises(InputError, match=r"unknown dataset 'nope'; available: .*algonauts2023.*nsd"):
        get_card("nope")


def test_relpath_templates():
    card = get_card("nsd")
    assert card.relpath("betas_hdf5", subject=3, space="func1mm", session=7) == \
        "nsddata_betas/ppdata/subj03/func1mm/betas_fithrf_GLMdenoise_RR/betas_session07.hdf5"  # beta from [fetch.defaults]
    assert card.relpath("roi_fsavg", hemi="rh", roi="floc-faces") == "nsddata/freesurfer/fsaverage/label/rh.floc-faces.mgz"
    with pytest.raises(InputError, match="needs 'session'"):
        card.relpath("betas_hdf5", subject=1, space="func1mm")
    with pytest.raises(InputError, match="no file template"):
        card.relpath("nope")


def test_root_resolution_and_not_found(tmp_path, monkeypatch):
    card = get_card("nsd")
    monkeypatch.setenv("BRAINLID_DATA", str(tmp_path))
    assert card.root(must_exist=False) == tmp_path / "nsd"
    with pytest.raises(DatasetNotFoundError, match=r"does not exist: .*nsd.*brainlid datasets info nsd"):
        card.root()
    (tmp_path / "nsd").mkdir()
    assert card.root() == tmp_path / "nsd"
    assert card.root(tmp_path / "elsewhere", must_exist=False) == tmp_path / "elsewhere"
    err = card.not_found(tmp_path / "x.hdf5", "session 02 file", subject=2, space="fsaverage")
    msg = str(err)
    assert "x.hdf5" in msg and "'nsd'" in msg and "brainlid datasets fetch nsd --root PATH --subject 2 --space fsaverage --accept-terms" in msg
    # no public URL: no fetch hint
    assert "fetch" not in str(get_card("algonauts2023").not_found("f.npy"))


def test_probe_and_loaded(tmp_path):
    p = tmp_path / "f.txt"
    assert probe(p)[0] == "missing"
    p.write_text("hello")
    assert probe(p) == ("present", "5 bytes")
    assert probe(p, lambda q: 1 / 0)[0] == "unreadable"
    assert probe(p, lambda q: "ok") == ("present", "ok")
    res = Loaded("S", "B", {"x": 1})
    a, b = res
    assert (a, b) == ("S", "B") and res[1] == "B" and len(res) == 2 and res.extra["x"] == 1


def test_bad_card_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    with pytest.raises(Exception, match="lacks"):
        DatasetCard.from_file(bad)
    bad.write_text("name = = ")
    with pytest.raises(Exception, match="cannot read dataset card"):
        DatasetCard.from_file(bad)


def test_wheel_ships_the_cards(tmp_path):
    """The cards live in datasets/ (repository top level); brainlid/datasets links there and the wheel holds copies."""
    repo = Path(cards.__file__).resolve().parents[2]
    if not (repo / "pyproject.toml").exists():
        pytest.skip("not a source checkout")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (repo / name).exists():
            shutil.copy(repo / name, src / name)
    shutil.copytree(repo / "datasets", src / "datasets")
    shutil.copytree(repo / "brainlid", src / "brainlid", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "w")],
                         cwd=src, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = (tmp_path / "w").glob("*.whl")
    names = zipfile.ZipFile(whl).namelist()
    for name in OURS:
        assert f"brainlid/datasets/{name}.toml" in names
