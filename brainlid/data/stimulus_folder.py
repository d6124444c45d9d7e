"""A stimulus set as a plain folder any framework can read: ``stimulus_ids.npy`` and one PNG per stimulus.

The layout ``brainlid benchmarks stimuli`` writes (so features can be computed with JAX,
TensorFlow, ONNX or on another machine, then scored with ``brainlid score --features``)::

    stimulus_ids.npy     (n,) int64 or unicode ids, np.load(..., allow_pickle=False)
    00000.png            the stimulus at position 0 (ids[0]), native resolution, lossless
    00001.png            position 1, …

File names are the positions, zero-padded to 5 digits (more when ``n > 100000``). PNG keeps
``uint8`` grey / RGB / RGBA and 16-bit grey images exactly; other dtypes are refused rather than
rounded. Every file is written atomically, and ``stimulus_ids.npy`` last: a folder without it
is an unfinished export. :func:`read_stimulus_folder` reads the folder back as a
:class:`~brainlid.data.stimuli.StimulusSet` with the same ids (``brainlid extract --stimuli DIR``).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from .._atomic import atomic_path, atomic_write_bytes
from .._progress import Stage
from ..errors import DatasetNotFoundError, InputError
from ..io import load_npy
from .stimuli import StimulusSet

__all__ = ["IDS_FILE", "png_name", "check_export_target", "write_stimulus_folder", "read_stimulus_folder", "is_stimulus_folder"]

IDS_FILE = "stimulus_ids.npy"
_PNG = re.compile(r"^\d{5,}\.png$")


def png_name(position: int, n: int) -> str:
    """File name of the stimulus at ``position`` of ``n``: ``00000.png`` (at least 5 digits)."""
    return f"{position:0{max(5, len(str(max(n - 1, 0))))}d}.png"


def _png_bytes(image, position: int) -> bytes:
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    exact = (a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4)))) or (
        a.dtype == np.uint16 and a.ndim == 2)
    if not exact:
        raise InputError(f"the image at position {position} is {a.dtype} of shape {a.shape}; PNG holds uint8 grey/RGB/"
                         "RGBA and 16-bit grey images exactly, so it is not exported")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG")
    return buf.getvalue()


def check_export_target(out: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise :class:`InputError` unless ``out`` is a new or empty folder (or ``overwrite``); call it before any work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder to export the stimuli to")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} is not empty; give --overwrite to replace an earlier export there")


def write_stimulus_folder(stimuli: StimulusSet, out: str | os.PathLike, *, overwrite: bool = False,
                          progress: bool | None = None, chunk: int = 64) -> Path:
    """Write ``stimuli`` (in their order) as ``out/stimulus_ids.npy`` and ``out/00000.png`` ….

    Parameters
    ----------
    stimuli : StimulusSet
        With images; its order is the files' order.
    out : path
        A new or empty folder; a non-empty one only with ``overwrite``.
    overwrite : bool
        Replace an earlier export in ``out``: its ``stimulus_ids.npy`` is removed first and PNGs
        named by a position past the new set are deleted; other files are left alone.
    progress : bool or None
        A progress bar on stderr (None: :func:`brainlid._progress.progress_wanted`).
    chunk : int
        Images read at a time.

    Returns
    -------
    Path — ``out``.
    """
    out = Path(out)
    check_export_target(out, overwrite)
    if not stimuli.has_images:
        raise InputError(f"stimulus set {stimuli.name!r} has no images to export")
    n = len(stimuli)
    if out.is_dir() and any(out.iterdir()):
        (out / IDS_FILE).unlink(missing_ok=True)  # the folder is "unfinished" until the new ids are written
        keep = {png_name(i, n) for i in range(n)}
        for f in out.iterdir():
            if _PNG.match(f.name) and f.name not in keep:
                f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    with Stage(f"exporting {n} images", total=n, enabled=progress) as stage:
        for start in range(0, n, chunk):
            pos = np.arange(start, min(n, start + chunk))
            for p, image in zip(pos, stimuli.images(pos)):
                atomic_write_bytes(out / png_name(int(p), n), _png_bytes(image, int(p)))
            stage.advance(pos.size)
    with atomic_path(out / IDS_FILE) as tmp:
        np.save(tmp, np.asarray(stimuli.ids), allow_pickle=False)
    return out


def is_stimulus_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an export of :func:`write_stimulus_folder` (``stimulus_ids.npy`` and a first PNG)."""
    folder = Path(folder)
    return (folder / IDS_FILE).is_file() and any((folder / f"{'0' * w}.png").is_file() for w in (5, 6, 7, 8))


def read_stimulus_folder(folder: str | os.PathLike, name: str | None = None) -> StimulusSet:
    """The stimulus set of a folder written by :func:`write_stimulus_folder`, with its ids.

    Raises
    ------
    DatasetNotFoundError
        No ``stimulus_ids.npy``, or a PNG of the listed positions is missing.
    """
    folder = Path(folder)
    if not (folder / IDS_FILE).is_file():
        raise DatasetNotFoundError(f"no {IDS_FILE} in {folder}: not a finished `brainlid benchmarks stimuli` export")
    ids = load_npy(folder / IDS_FILE)
    paths = [folder / png_name(i, ids.size) for i in range(ids.size)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(f"{folder} lists {ids.size} stimuli but {len(missing)} image(s) are missing, "
                                   f"e.g. {', '.join(missing[:3])}")
    return StimulusSet.from_files(paths, ids=ids, name=name or folder.name)
