"""The package's public faces and its moved names.

* every name a face exports (``brainlid``, ``brainlid.data``, ``features``, ``geometry``, ``alignment``,
  ``scoring``) resolves and is documented, and importing a face stays light (no torch, pandas or
  scikit-learn for ``import brainlid``);
* the import paths users' scripts used before the restructuring keep working: the same object, with a
  ``DeprecationWarning`` naming the new path where the name moved, silently where it is re-exported;
* nothing in the package, the README, the docs or the tutorials still uses a deprecated path.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from support import REPO

FACES = ["brainlid", "brainlid.data", "brainlid.features", "brainlid.geometry", "brainlid.alignment",
         "brainlid.scoring", "brainlid.comparison", "brainlid.plotting"]


@pytest.mark.parametrize("face", FACES)
def test_face_names_resolve_and_are_documented(face):
    mod = importlib.import_module(face)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # a face never hands out a deprecated object
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj):
                assert (obj.__doc__ or "").strip(), f"{face}.{name} has no docstring"


# functions named like their module since the first release (``import brainlid.geometry.knn as m`` still
# gives the module; ``brainlid.geometry.knn`` is the function)
SHADOWS = {"brainlid.geometry.knn", "brainlid.features.extract"}


@pytest.mark.parametrize("face", FACES)
def test_no_face_name_shadows_a_submodule(face):
    """``from brainlid.alignment import similarity`` must give the module, not a function of that name."""
    import types

    mod = importlib.import_module(face)
    here = Path(mod.__file__).parent
    subs = {p.stem for p in here.glob("*.py")} | {p.name for p in here.iterdir() if (p / "__init__.py").is_file()}
    bad = {n for n in set(mod.__all__) & subs if not isinstance(getattr(mod, n), types.ModuleType)}
    assert not bad - {s.rpartition(".")[2] for s in SHADOWS if s.startswith(face + ".")}, bad


def test_import_brainlid_is_light():
    code = ("import sys, brainlid, brainlid.alignment, brainlid.data; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pandas', 'sklearn', 'scipy', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# old path -> (new home, whether it warns): the paths the README, tutorials and users' scripts used
OLD_PATHS = {
    "brainlid.alignment.ceiling.split_half_reliability": ("brainlid.data.reliability", False),
    "brainlid.alignment.ceiling.nc_from_ncsnr": ("brainlid.data.reliability", False),
    "brainlid.alignment.rsa.rdm": ("brainlid.alignment.rsa", False),
    "brainlid.alignment.rsa.square_rdm": ("brainlid.data.condensed", False),
    "brainlid.alignment.brain_rdms.score_brain_rdms": ("brainlid.alignment.brain_rdms", False),
    "brainlid.scoring.score_features": ("brainlid.scoring.cell", False),
    "brainlid.scoring.score": ("brainlid.scoring.serial", False),
    "brainlid.scoring.runner.score": ("brainlid.scoring.serial", True),
    "brainlid.scoring.runner.score_features": ("brainlid.scoring.cell", True),
    "brainlid.scoring.runner.select_best_layer": ("brainlid.scoring.cell", True),
    "brainlid.scoring.rdm_benchmarks.rdm_bootstrap_ci": ("brainlid.alignment.rsa_bootstrap", True),
    "brainlid.scoring.rdm_benchmarks.score_rdm_features": ("brainlid.scoring.cell", True),
    "brainlid.features.extract.Features": ("brainlid.features", True),
    "brainlid.features.cache.ids_digest": ("brainlid.data.ids", False),
    "brainlid.geometry.estimators.lid": ("brainlid.geometry.dimension", True),
    "brainlid.data.nsd.load": ("brainlid.data.nsd", False),
    "brainlid.scoring.distributed.connect": ("brainlid.scoring.distributed", False),
}


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_import_paths_keep_working(old):
    module, _, name = old.rpartition(".")
    new_module, warns = OLD_PATHS[old]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = getattr(importlib.import_module(module), name)
    moved = [w for w in caught if issubclass(w.category, DeprecationWarning) and old in str(w.message)]
    assert obj is getattr(importlib.import_module(new_module), name)
    if warns:
        assert moved and new_module in str(moved[0].message), old
    else:
        assert not moved, old


ON_PURPOSE = "deprecated path on purpose"  # a test of a deprecation says so on the line


def _forwarders():
    """(old module, moved name) of every forwarding module in the package."""
    out = []
    for path in sorted((REPO / "brainlid").rglob("*.py")):
        if "forward(__name__" not in path.read_text() or path.name == "_deprecate.py":
            continue
        mod = ".".join(path.relative_to(REPO).with_suffix("").parts)
        m = importlib.import_module(mod)
        ga = getattr(m, "_moved", m.__getattr__)  # (a module may wrap the forwarder in its own __getattr__)
        out += [(mod, name) for name in ga.moved]
    return out


def test_nothing_of_ours_uses_a_deprecated_path():
    fwd = _forwarders()
    assert len(fwd) > 20
    texts = {p: p.read_text() for p in [REPO / "README.md", *REPO.glob("docs/**/*.md"), *REPO.glob("tutorials/*.py"),
                                        *REPO.glob("brainlid/**/*.py"), *REPO.glob("benchmarks/*.py"), *REPO.glob("tests/**/*.py")]
             if p.name != "test_package_face.py"}
    bad = []
    for mod in sorted({m for m, _ in fwd}):  # the old module itself imported (``from brainlid.scoring import runner``)
        parent, _, short = mod.rpartition(".")
        if short in getattr(importlib.import_module(parent), "__all__", ()):
            continue  # the face's own object of that name (``brainlid.features.extract`` is the function)
        own = [n for n, v in vars(importlib.import_module(mod)).items()
               if not n.startswith("_") and getattr(v, "__module__", None) == mod]
        if own:
            continue  # the module still holds code of its own; only its moved names are deprecated
        pat = re.compile(rf"from {re.escape(parent)} import [^\n]*\b{short}\b|import {re.escape(mod)}\b")
        for path, text in texts.items():
            for m in pat.finditer(text):
                line = text[: m.start()].count("\n") + 1
                if ON_PURPOSE not in text.splitlines()[line - 1]:
                    bad.append(f"{path.relative_to(REPO)}:{line}: {m.group(0)}")
    for mod, name in fwd:
        short = mod.rpartition(".")[2]
        pats = [re.compile(rf"from {re.escape(mod)} import [^\n]*\b{name}\b"), re.compile(rf"\b{re.escape(mod)}\.{name}\b"),
                re.compile(rf"from \.+{short} import [^\n]*\b{name}\b")]
        for path, text in texts.items():
            if path.name == "_deprecate.py" or Path(path).with_suffix("").name == short and "forward(__name__" in text:
                continue
            for pat in pats:
                for m in pat.finditer(text):
                    line = text[: m.start()].count("\n") + 1
                    if "→" in text.splitlines()[line - 1] or ON_PURPOSE in text.splitlines()[line - 1]:
                        continue
                    bad.append(f"{path.relative_to(REPO)}:{line}: {m.group(0)}")
    assert not bad, "\n".join(bad)
