"""Output paths checked before any work starts (a folder where a file is expected, a file where a folder is).

Commands call these on their ``--out``/``--store``-like options first, so a wrong path fails in a
second with one line naming the option and what the path is, not after minutes of extraction.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, option: str) -> None:
    """The missing ``path`` could be created: its nearest existing ancestor is a writable folder."""
    anc = _nearest_existing(path.parent if path.parent != path else path)
    if not anc.is_dir():
        raise InputError(f"{option} {path}: {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create it, the folder {anc} is not writable")


def check_output_dir(path: str | os.PathLike | None, option: str) -> None:
    """Fail unless ``path`` is a folder or could be created as one (None: nothing to check).

    Raises
    ------
    InputError
        ``path`` is a file, lies under a file, or under a folder that is not writable.
    """
    if path is None:
        return
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{option} {path} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option} {path}: the folder is not writable")
        return
    _check_creatable(path, option)


def check_output_file(path: str | os.PathLike | None, option: str, example: str, magic: bytes = b"", kind: str = "") -> None:
    """Fail unless ``path`` is a file or could be created as one (None: nothing to check).

    ``example`` is a file name suggested when ``path`` is a folder (e.g. ``"results.sqlite"``);
    an existing non-empty file must start with ``magic`` (when given), else it is not a ``kind``
    and is left alone (SQLite, for one, would silently take over a small text file).

    Raises
    ------
    InputError
        ``path`` is a folder, another kind of file, lies under a file, or under a folder that is
        not writable.
    """
    if path is None:
        return
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder, not a file; give a file path such as {path / example}")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise InputError(f"{option} {path}: the file is not writable")
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
        if magic and head and head != magic:
            raise InputError(f"{option} {path} is not {kind or 'the expected kind of file'}; choose another path")
        return
    _check_creatable(path, option)
