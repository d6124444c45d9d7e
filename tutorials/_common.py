"""Helpers shared by the tutorials: where figures go, which data a tutorial runs on, the demo zoo.

Not part of the brainlid package: the tutorials import it as ``import _common`` (the script's own
folder is on ``sys.path`` when run as ``python tutorials/NN_name.py``, and a notebook opened from
``tutorials/`` runs there too).

* :func:`output_dir` — ``$BRAINLID_TUTORIAL_OUT`` (created) or a fresh temporary folder; printed.
* :func:`dataset_root` — a local copy of a real dataset when ``$BRAINLID_DATA/<folder>`` exists,
  else ``None`` (the tutorial then writes fixture data); prints which one is used.
* Warnings print as one line, ``warning (Category): message``, not Python's default with the
  source file path and line of code.
* :func:`demo_zoo`, :func:`synthetic_nsd` — the demo's trained model zoo and its synthetic
  NSD-format subjects under ``$BRAINLID_HOME`` (trained / written once, then reused; the test
  suite points ``BRAINLID_HOME`` at its session home so every tutorial shares one trained zoo).
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are saved to files; no display needed


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one readable line beside the tutorial's output: its kind and message, no source path."""
    print(f"warning ({category.__name__}): {message}", file=sys.stdout if file is None else file, flush=True)


warnings.showwarning = _show_warning

__all__ = ["output_dir", "dataset_root", "demo_zoo", "synthetic_nsd", "save"]


def output_dir(tutorial: str) -> Path:
    """The folder figures are written to: ``$BRAINLID_TUTORIAL_OUT`` or a new temporary folder."""
    env = os.environ.get("BRAINLID_TUTORIAL_OUT")
    out = Path(env).expanduser() if env else Path(tempfile.mkdtemp(prefix=f"brainlid-{tutorial}-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"figures -> {out}")
    return out


def dataset_root(folder: str, what: str) -> Path | None:
    """``$BRAINLID_DATA/<folder>`` when ``BRAINLID_DATA`` is set and that folder exists, else ``None``.

    Prints one line saying whether the tutorial runs on the real dataset or on synthetic
    fixture data (``what`` names the fixture, e.g. "a synthetic NSD-format copy").
    """
    env = os.environ.get("BRAINLID_DATA")
    if env and (Path(env).expanduser() / folder).is_dir():
        root = Path(env).expanduser() / folder
        print(f"DATA: real {folder} copy at {root} (BRAINLID_DATA)")
        return root
    reason = "BRAINLID_DATA is not set" if not env else f"{Path(env).expanduser() / folder} does not exist"
    print(f"DATA: SYNTHETIC — {what} written by brainlid's fixture writer ({reason}). "
          "The numbers below exercise the method; they are not findings about brains.")
    return None


def demo_zoo():
    """The demo's 12 trained digit networks (trained on first use, cached under ``$BRAINLID_HOME``).

    Returns the zoo table: ``model, spec, params, train_n, val_acc, test_acc, weights``.
    """
    from brainlid.config import brainlid_home
    from brainlid.demo import train_zoo

    return train_zoo(brainlid_home(), log=lambda *a: None)


def synthetic_nsd() -> Path:
    """The demo's two synthetic NSD-format subjects (digits as images), written once under ``$BRAINLID_HOME``."""
    from brainlid.config import brainlid_home
    from brainlid.demo import write_synthetic_nsd

    return write_synthetic_nsd(brainlid_home() / "demo" / "nsd-synthetic")


def save(fig, out: Path, name: str) -> Path:
    """Save ``fig`` as ``out/name`` (PNG, 110 dpi), show it when run as a notebook, close it, print and return the path."""
    import matplotlib.pyplot as plt

    path = Path(out) / name
    fig.savefig(path, dpi=110)
    if "ipykernel" in sys.modules:  # run as a notebook (the documentation site): show the saved PNG inline too
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    plt.close(fig)
    print("wrote", path)
    return path
