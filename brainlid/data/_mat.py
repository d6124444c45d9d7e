"""Readers for the small auxiliary formats neuroimaging datasets use (NSD and its derivatives).

* :func:`read_ctab` — FreeSurfer colour-table text (``<code> <name> [r g b a]`` per line),
  whitespace-tolerant (NSD's ``.mgz.ctab`` files have trailing tabs and spaces).
* :func:`read_expdesign` — NSD's ``nsd_expdesign.mat`` (MATLAB v5) through :func:`scipy.io.loadmat`,
  returning the 1-based index arrays flattened to int64.
* :func:`read_mgh_vector` — a FreeSurfer MGH/MGZ surface map ``(n_vertices, 1, 1)`` as a vector.
* :func:`index_runs` — split sorted indices into contiguous runs (for chunk-aligned HDF5 reads).

All raise :class:`~brainlid.errors.FileFormatError` naming the file when it cannot be read.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.io import loadmat

from ..errors import FileFormatError

__all__ = ["read_ctab", "read_expdesign", "read_mgh_vector", "index_runs"]


def read_ctab(path: str | Path) -> dict[int, str]:
    """Label code → name from a FreeSurfer colour table (``0 Unknown`` included).

    Each non-empty line is split on any whitespace; the first field is the integer code, the
    second the name (extra fields such as RGBA colours and trailing tabs are ignored). Lines
    starting with ``#`` are comments.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FileFormatError(f"cannot read colour table {path}: {exc}") from exc
    out: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            code = int(fields[0])
        except ValueError as exc:
            raise FileFormatError(f"{path}:{lineno}: expected '<code> <name>', got {line.strip()!r}") from exc
        if len(fields) < 2:
            raise FileFormatError(f"{path}:{lineno}: label {code} has no name")
        if code in out and out[code] != fields[1]:
            raise FileFormatError(f"{path}:{lineno}: label code {code} defined twice ({out[code]!r}, {fields[1]!r})")
        out[code] = fields[1]
    if not out:
        raise FileFormatError(f"colour table {path} has no labels")
    return out


def read_expdesign(path: str | Path) -> dict[str, np.ndarray]:
    """NSD's experimental design, 1-based as stored.

    Returns
    -------
    dict with
        ``masterordering`` : (n_trials,) int64, 1-based index into the subject's 10k images, chronological;
        ``subjectim`` : (8, n_images) int64, 1-based 73k ids of each subject's images (shared first);
        ``sharedix`` : (n_shared,) int64, 1-based 73k ids of the shared images.
    """
    path = Path(path)
    try:
        raw = loadmat(path, variable_names=["masterordering", "subjectim", "sharedix"])
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise FileFormatError(f"cannot read {path} as a MATLAB v5 file: {exc}") from exc
    missing = [k for k in ("masterordering", "subjectim", "sharedix") if k not in raw]
    if missing:
        raise FileFormatError(f"{path} lacks the variable(s) {', '.join(missing)} (is it nsd_expdesign.mat?)")
    out = {}
    for key in ("masterordering", "sharedix"):
        out[key] = _as_index(raw[key].ravel(), path, key)
    si = np.asarray(raw["subjectim"])
    if si.ndim != 2:
        raise FileFormatError(f"{path}: subjectim has shape {si.shape}, expected (8, n_images)")
    out["subjectim"] = _as_index(si, path, "subjectim")
    if out["masterordering"].max() > si.shape[1]:
        raise FileFormatError(f"{path}: masterordering refers to image {out['masterordering'].max()} but subjectim has {si.shape[1]} columns")
    return out


def _as_index(a: np.ndarray, path: Path, key: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or a.min() < 1:
        raise FileFormatError(f"{path}: {key} must hold 1-based whole numbers")
    return a.astype(np.int64)


def read_mgh_vector(path: str | Path, dtype=np.float32) -> np.ndarray:
    """A FreeSurfer ``.mgh`` / ``.mgz`` surface map of shape ``(n_vertices, 1, 1)`` as ``(n_vertices,)``."""
    path = Path(path)
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on bad files
        raise FileFormatError(f"cannot read MGH file {path}: {exc}") from exc
    if data.ndim > 1 and any(s != 1 for s in data.shape[1:]):
        raise FileFormatError(f"{path}: expected a surface map (n_vertices, 1, 1), got shape {data.shape}")
    return data.reshape(-1).astype(dtype, copy=False)


def index_runs(idx: np.ndarray, max_gap: int = 1) -> list[tuple[int, int, int, int]]:
    """Split sorted indices into runs for slice reads.

    Consecutive indices whose gap is at most ``max_gap`` share a run (so a few unneeded elements
    may be read to save a call). Returns ``(a, b, lo, hi)`` tuples: ``idx[a:b]`` lies in the
    half-open range ``[lo, hi)``.
    """
    idx = np.asarray(idx)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks, idx.size]
    return [(int(a), int(b), int(idx[a]), int(idx[b - 1]) + 1) for a, b in zip(starts, ends)]
