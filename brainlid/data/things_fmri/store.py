"""The pandas HDF store of THINGS-fMRI responses (``sub-XX_ResponseData.h5``), read with h5py.

The fixed-format store keeps its arrays as ``ResponseData/block{i}_values`` (stored transposed,
``(n_voxels, n_items)``) with the column labels pickled in ``block{i}_items``; the labels are
unpickled with a restricted unpickler (:class:`_LabelUnpickler`: numpy array globals only) and
only the rows of the selected voxels are read, in batches of bounded size.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ...errors import FileFormatError, InputError
from .layout import _need

__all__ = ["KEY", "response_table_info", "read_response_rows"]


KEY = "ResponseData"


class _LabelUnpickler(pickle.Unpickler):
    """Unpickles pandas' pickled column labels (a numpy object array) and nothing else.

    Only the numpy globals needed to rebuild an ndarray are allowed (Python docs, "Restricting
    Globals"); any other global in the stream raises, so no code from the file can run.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in column labels")


def _read_labels(ds, path: Path) -> np.ndarray | None:
    """Column labels of one block: plain arrays are read directly; pickled object arrays are
    decoded with :class:`_LabelUnpickler`; ``None`` when they cannot be decoded."""
    try:
        raw = ds[()]
    except (OSError, TypeError):
        return None
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "iuf":
        return raw.ravel()
    if isinstance(raw, np.ndarray) and raw.dtype.kind == "S":
        return np.asarray([b.decode("utf-8") for b in raw.ravel()], dtype=object)
    try:
        buf = bytes(np.asarray(raw[0], dtype=np.uint8)) if raw.dtype == object else None
        if buf is None:
            return None
        labels = _LabelUnpickler(io.BytesIO(buf)).load()  # trusted: the store's own pickled column labels; the unpickler admits only numpy's ndarray globals
        return np.asarray(labels, dtype=object).ravel()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, AttributeError, ImportError):
        return None


class _Table:
    """Where the trial columns and voxel ids of a ``ResponseData`` store live."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise FileFormatError(f"cannot open {path} as HDF5: {exc}") from exc
        try:
            self._parse()
        except BaseException:
            self.file.close()
            raise

    def _parse(self):
        f, path = self.file, self.path
        if KEY not in f:
            raise FileFormatError(f"{path} has no key {KEY!r} (keys: {', '.join(f.keys())})")
        g = f[KEY]
        if "table" in g:
            raise FileFormatError(f"{path}: {KEY} is stored in pandas 'table' format; the THINGS release uses the fixed format")
        if "nblocks" not in g.attrs or "axis1" not in g:
            raise FileFormatError(f"{path}: {KEY} is not a pandas fixed-format DataFrame (no nblocks/axis1)")
        self.n_rows = int(g["axis1"].shape[0])
        trial_blocks, self.voxel_id_block = [], None
        for i in range(int(g.attrs["nblocks"])):
            vals = g[f"block{i}_values"]
            transposed = bool(vals.attrs.get("transposed", 1))
            n_items = vals.shape[1] if transposed else vals.shape[0]
            labels = _read_labels(g[f"block{i}_items"], path) if f"block{i}_items" in g else None
            if labels is not None and len(labels) == 1 and str(labels[0]) == "voxel_id":
                self.voxel_id_block = (vals, transposed)
                continue
            if vals.dtype.kind != "f":
                continue
            if labels is None:
                labels = np.full(n_items, None, dtype=object)
            trial_blocks.append((vals, transposed, labels))
        if not trial_blocks:
            raise FileFormatError(f"{path}: no float block of trial columns in {KEY}")
        if len(trial_blocks) > 1 and any(any(lab is None for lab in b[2]) for b in trial_blocks):
            raise FileFormatError(f"{path}: trial columns are split over several blocks and their labels cannot be read")
        # map trial number -> (block, column)
        self.blocks = []
        labels_all = []
        for b, (vals, transposed, labels) in enumerate(trial_blocks):
            self.blocks.append((vals, transposed))
            labels_all.extend((b, j, lab) for j, lab in enumerate(labels))
        self.n_trials = len(labels_all)
        known = [lab for _, _, lab in labels_all if lab is not None]
        if known:
            try:
                nums = np.asarray([int(lab) for lab in known])
            except (TypeError, ValueError) as exc:
                raise FileFormatError(f"{path}: trial column labels are not integers (e.g. {known[:3]})") from exc
            if len(known) != self.n_trials or np.unique(nums).size != nums.size or nums.min() != 0 or nums.max() != self.n_trials - 1:
                raise FileFormatError(f"{path}: trial columns are not labelled 0..{self.n_trials - 1}")
            order = np.argsort(nums)
        else:
            order = np.arange(self.n_trials)
        self.trial_block = np.asarray([labels_all[k][0] for k in order], dtype=np.int64)
        self.trial_col = np.asarray([labels_all[k][1] for k in order], dtype=np.int64)
        for vals, transposed in self.blocks:
            n = vals.shape[0] if transposed else vals.shape[1]
            if n != self.n_rows:
                raise FileFormatError(f"{path}: a block has {n} rows but axis1 has {self.n_rows}")

    def close(self):
        self.file.close()

    def voxel_ids(self, rows: np.ndarray) -> np.ndarray | None:
        if self.voxel_id_block is None:
            return None
        vals, transposed = self.voxel_id_block
        col = vals[:, 0] if transposed else vals[0, :]
        return np.asarray(col)[rows]

    def iter_rows(self, rows: np.ndarray, chunk_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions in rows, block (b, n_trials) float64)`` for sorted unique ``rows``."""
        if rows.size == 0:
            return
        per_row = 8 * self.n_trials
        step = int(max(1, chunk_bytes // per_row))
        single = len(self.blocks) == 1 and self.blocks[0][1] and np.array_equal(self.trial_col, np.arange(self.n_trials))
        for s0 in range(0, rows.size, step):
            r = rows[s0 : s0 + step]
            pos = np.arange(s0, s0 + r.size)
            if single:
                ds = self.blocks[0][0]
                lo, hi = int(r[0]), int(r[-1]) + 1
                if hi - lo <= 2 * r.size:  # nearly contiguous: one hyperslab, then pick
                    block = ds[lo:hi]
                    block = block[r - lo] if hi - lo != r.size else block
                else:
                    block = ds[r]  # h5py point selection on the row axis (increasing indices)
                yield pos, np.asarray(block, dtype=np.float64)
            else:
                block = np.empty((r.size, self.n_trials), dtype=np.float64)
                for b, (ds, transposed) in enumerate(self.blocks):
                    cols = np.nonzero(self.trial_block == b)[0]
                    part = ds[r] if transposed else ds[:, r].T
                    block[:, cols] = np.asarray(part)[:, self.trial_col[cols]]
                yield pos, block


def response_table_info(path) -> dict:
    """Shape facts of a ``ResponseData.h5`` store without reading its values: ``n_voxels``, ``n_trials``, ``dtype``."""
    t = _Table(_need(Path(path), "response table"))
    try:
        return {"n_voxels": t.n_rows, "n_trials": t.n_trials, "dtype": str(t.blocks[0][0].dtype)}
    finally:
        t.close()


def read_response_rows(path, rows=None, trials=None, chunk_bytes: int = 64_000_000) -> np.ndarray:
    """Selected voxels (rows) × trials of a THINGS-fMRI ``ResponseData.h5``, as float32.

    Parameters
    ----------
    path : path-like
        ``sub-XX_ResponseData.h5``.
    rows : array-like of int or bool mask or None
        Voxel rows to read (default all: mind the memory).
    trials : array-like of int or None
        Trial columns to keep (default all).
    chunk_bytes : int
        Largest float64 read buffer (it is also kept below an eighth of the output's size).

    Returns
    -------
    ndarray of shape (n_rows, n_trials) float32, rows in the order given.
    """
    t = _Table(_need(Path(path), "response table"))
    try:
        rows_arr = _as_rows(rows, t.n_rows)
        trials_arr = np.arange(t.n_trials) if trials is None else np.asarray(trials, dtype=np.int64)
        if trials_arr.size and (trials_arr.min() < 0 or trials_arr.max() >= t.n_trials):
            raise InputError(f"trial indices out of range for {t.n_trials} trials")
        uniq, inverse = np.unique(rows_arr, return_inverse=True)
        out = np.empty((uniq.size, trials_arr.size), dtype=np.float32)
        for pos, block in t.iter_rows(uniq, _buffer_bytes(chunk_bytes, out.nbytes, t.n_trials)):
            out[pos] = block[:, trials_arr]
        return out if np.array_equal(uniq, rows_arr) else out[inverse]
    finally:
        t.close()


def _buffer_bytes(chunk_bytes: int, out_bytes: int, n_trials: int) -> int:
    """Read-buffer size: at most ``chunk_bytes`` and an eighth of the output, at least one row.

    A batch holds at most about three buffers at once (a near-contiguous slice read of up to
    twice the rows, the picked rows, and the averaged or reordered result), so the temporaries
    stay under half the output's size."""
    return int(max(8 * n_trials, min(chunk_bytes, out_bytes // 8)))


def _as_rows(rows, n: int) -> np.ndarray:
    if rows is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InputError(f"row mask has shape {arr.shape}, expected ({n},)")
        return np.nonzero(arr)[0]
    arr = arr.astype(np.int64).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise InputError(f"voxel rows out of range for {n} voxels")
    return arr
