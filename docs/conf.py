"""Sphinx configuration of brainlid's documentation site.

Built offline with ``make docs`` into ``docs/_build/html``. The tutorials are the jupytext scripts
in ``tutorials/`` (one source): ``docs/tutorials/NN_*.py`` are symbolic links to them, read by
myst-nb through jupytext and executed at build time (on synthetic data unless ``BRAINLID_DATA``
points at real copies). The API reference is generated from the numpydoc docstrings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
TUTORIALS = REPO / "tutorials"

# the tutorial kernels: ``import _common`` from tutorials/, quiet progress bars, figures in the build tree
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TUTORIALS), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("CI", "true")
os.environ.setdefault("BRAINLID_TUTORIAL_OUT", str(DOCS / "_build" / "tutorial_figures"))
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(REPO))

import brainlid  # noqa: E402



def _write_registries() -> None:
    """docs/_generated/registries.md from the geometry registries: the same keys the CLI's choices read."""
    from brainlid import geometry

    def first_line(f):
        return (f.__doc__ or "").strip().splitlines()[0] if f.__doc__ else ""

    lines = [f"Default neighbourhood size: **K = {geometry.DEFAULT_K}**; default K-sweep: "
             f"{', '.join(map(str, geometry.DEFAULT_KS))} (the values below N − 1).", "",
             "| `estimator=` | per point |", "|---|---|"]
    lines += [f"| `{k}` | {first_line(f)} |" for k, f in geometry.ESTIMATORS.items()]
    lines += ["", f"`aggregate=`: {', '.join(f'`{k}`' for k in geometry.AGGREGATES)}. "
              f"`norm=` (the MLE's numerator): {', '.join(f'`{k}`' for k in geometry.NORMS)}. "
              f"Global measures (`global_dimension`): {', '.join(f'`{k}`' for k in geometry.GLOBAL_MEASURES)}.", ""]
    out = DOCS / "_generated" / "registries.md"
    out.parent.mkdir(exist_ok=True)
    text = "\n".join(lines)
    if not out.exists() or out.read_text() != text:  # (an unchanged file does not trigger a rebuild)
        out.write_text(text)


_write_registries()

project = "brainlid"
author = "the brainlid developers"
copyright = "2026, the brainlid developers"
version = release = brainlid.__version__

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".py": "myst-nb"}
exclude_patterns = ["_build", "_generated", "conf.py", "**/__pycache__", "tutorials/_common.py", "tutorials/*.png", "README.md"]
root_doc = "index"

# tutorials: jupytext percent scripts, executed; a failing cell fails the build
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = os.environ.get("BRAINLID_DOCS_EXECUTE", "force")
# tutorial 7 needs the small real datasets (BRAINLID_REALDATA, else ../shared/realdata beside the repository);
# without them its page shows the code unexecuted rather than failing the build
_REALDATA = Path(os.environ.get("BRAINLID_REALDATA") or REPO.parent / "shared" / "realdata")
if (_REALDATA / "k92").is_dir() and (_REALDATA / "cifar_resnets").is_dir():
    os.environ["BRAINLID_REALDATA"] = str(_REALDATA)
    nb_execution_excludepatterns: list[str] = []
else:
    nb_execution_excludepatterns = ["tutorials/07_real_brains.py"]
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference from numpydoc docstrings
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

intersphinx_mapping: dict = {}  # offline: no inventories fetched

html_theme = "furo"
html_title = f"brainlid {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
