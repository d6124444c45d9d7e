"""Where brainlid reads datasets and writes caches.

Datasets (read-only copies a user owns) and brainlid's own state (caches, the
results store) never share a folder:

* a dataset lives in ``root`` when one is passed, else ``$BRAINLID_DATA/<folder>``
  (``BRAINLID_DATA`` is the parent of all datasets; ``<folder>`` comes from the
  dataset card), else ``~/brainlid_data/<folder>`` (nilearn's habit);
* caches and the results store live under ``$BRAINLID_HOME`` (default ``~/.brainlid``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "data_parent", "brainlid_home", "cache_dir", "results_store_path"]


def data_parent() -> Path:
    """The folder that holds every dataset: ``$BRAINLID_DATA`` or ``~/brainlid_data``."""
    env = os.environ.get("BRAINLID_DATA")
    return Path(env).expanduser() if env else Path.home() / "brainlid_data"


def data_root(folder: str, root: str | os.PathLike | None = None) -> Path:
    """Resolve one dataset's root folder.

    Parameters
    ----------
    folder : str
        The dataset's folder name under the data parent (from its dataset card), e.g. ``"nsd"``.
    root : path-like or None
        An explicit root, used as is when given.

    Returns
    -------
    Path
        ``root`` if given, else ``$BRAINLID_DATA/<folder>``, else ``~/brainlid_data/<folder>``.
        The folder is not required to exist; loaders check what they need and say what is missing.
    """
    if root is not None:
        return Path(root).expanduser()
    return data_parent() / folder


def brainlid_home() -> Path:
    """brainlid's own state folder: ``$BRAINLID_HOME`` or ``~/.brainlid``."""
    env = os.environ.get("BRAINLID_HOME")
    return Path(env).expanduser() if env else Path.home() / ".brainlid"


def cache_dir(kind: str) -> Path:
    """A cache folder under :func:`brainlid_home`, e.g. ``cache_dir("features")``; created on demand."""
    path = brainlid_home() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_store_path() -> Path:
    """The default SQLite results store, ``$BRAINLID_HOME/results.sqlite``."""
    home = brainlid_home()
    home.mkdir(parents=True, exist_ok=True)
    return home / "results.sqlite"
