"""NSD beta file readers: volume HDF5 / NIfTI and surface HDF5 / MGH session files, only the requested units.

HDF5 reads are slices along the file's chunking (one voxel's time series per chunk); NIfTI/MGH
files are streamed in blocks of volumes; the output is allocated once in float32. MATLAB-written
HDF5 appears reversed: ``/betas`` is ``(T, Z, Y, X)`` for volumes and ``(T, V)`` on the native
surface; units are given in NIfTI voxel order ``(i, j, k)``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from ...errors import FileFormatError
from .._mat import index_runs
from .design import VOLUME_SPACES

__all__ = ["SCALE", "read_volume_betas_hdf5", "read_volume_betas_nifti", "read_surface_betas_hdf5", "read_surface_betas_mgh"]


SCALE = 300.0


_BLOCK_BYTES = 64 << 20  # streamed NIfTI / MGH reads: at most this many bytes of raw volumes at once


def _open_h5(path: Path):
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"cannot open NSD betas file {path} (truncated or not HDF5?): {exc}") from exc
    if "betas" not in f:
        keys = ", ".join(list(f.keys())[:10])
        f.close()
        raise FileFormatError(f"{path} has no /betas dataset (has: {keys})")
    return f


def read_volume_betas_hdf5(path, ijk: np.ndarray, *, scale: float = 1.0 / SCALE, max_gap: int = 2) -> np.ndarray:
    """Read selected voxels of one NSD volume session file (HDF5, MATLAB axis order).

    Parameters
    ----------
    path : path-like
        ``betas_sessionNN.hdf5`` (or the legacy v7.3 ``.mat``) with ``/betas`` of shape
        ``(T, Z, Y, X)`` int16, chunked ``(T, 1, 1, 1)``.
    ijk : int array (n_voxels, 3)
        Voxel indices in NIfTI order ``(i, j, k)`` = ``(x, y, z)``.
    scale : float
        Multiplier applied after casting (``1/300`` turns the stored int16 into PSC).
    max_gap : int
        Voxels of one (z, y) row closer than this along x are read with one slice.

    Returns
    -------
    ndarray (T, n_voxels) float32
        Column ``u`` is voxel ``ijk[u]``. Memory: the output plus one row slice.
    """
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    with _open_h5(Path(path)) as f:
        ds = f["betas"]
        if ds.ndim != 4:
            raise FileFormatError(f"{path}: /betas has shape {ds.shape}, expected (trials, Z, Y, X)")
        n_t, nz, ny, nx = ds.shape
        _check_grid(ijk, (nx, ny, nz), path)
        _check_storage(ds, path)
        out = np.empty((n_t, ijk.shape[0]), dtype=np.float32)
        i, j, k = ijk[:, 0], ijk[:, 1], ijk[:, 2]
        order = np.lexsort((i, j, k))  # rows (k, j), x ascending within a row
        key = k[order] * ny + j[order]
        row_starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        row_ends = np.r_[row_starts[1:], order.size]
        try:
            for ra, rb in zip(row_starts, row_ends):
                cols = order[ra:rb]
                xs = i[cols]
                kk, jj = int(k[cols[0]]), int(j[cols[0]])
                for a, b, lo, hi in index_runs(xs, max_gap):
                    block = ds[:, kk, jj, lo:hi]
                    out[:, cols[a:b]] = block[:, xs[a:b] - lo]
        except OSError as exc:
            raise FileFormatError(f"cannot read {path} (truncated?): {exc}") from exc
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def _check_grid(ijk: np.ndarray, grid: tuple, path) -> None:
    if ijk.size and (ijk.min() < 0 or np.any(ijk.max(axis=0) >= np.asarray(grid))):
        raise FileFormatError(f"{path}: grid {grid} (X, Y, Z) does not contain the requested voxels (ROI from another space?)")


def _check_storage(ds, path) -> None:
    """Detect truncated HDF5 files: allocated chunks that lie beyond the end of the file."""
    try:
        size = Path(path).stat().st_size
        offset = ds.id.get_offset()  # contiguous datasets
        if offset is not None and offset + ds.id.get_storage_size() > size:
            raise FileFormatError(f"{path} is truncated ({size} bytes; /betas needs {offset + ds.id.get_storage_size()})")
        if ds.chunks is not None:
            n = ds.id.get_num_chunks()
            if n:
                last = ds.id.get_chunk_info(n - 1)
                if last.byte_offset + last.size > size:
                    raise FileFormatError(f"{path} is truncated ({size} bytes; chunk data extend to {last.byte_offset + last.size})")
    except (AttributeError, RuntimeError):  # pragma: no cover - old h5py without chunk queries
        pass


def read_volume_betas_nifti(path, ijk: np.ndarray, *, scale: float = 1.0 / SCALE) -> np.ndarray:
    """Read selected voxels of one NSD volume session file in NIfTI form ``(X, Y, Z, T)`` int16.

    Volumes are streamed in blocks of at most 64 MB (a gzipped file is decompressed once,
    front to back); returns ``(T, n_voxels)`` float32 (× ``scale``).
    """
    path = Path(path)
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    try:
        img = nib.load(str(path), keep_file_open=True)
        shape = img.shape
        if len(shape) != 4:
            raise FileFormatError(f"{path}: expected a 4-D (X, Y, Z, trials) image, got shape {shape}")
        _check_grid(ijk, shape[:3], path)
        nx, ny, nz, n_t = shape
        flat = ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])  # Fortran order of (X, Y, Z)
        per_vol = nx * ny * nz * img.get_data_dtype().itemsize
        step = max(1, _BLOCK_BYTES // max(per_vol, 1))
        out = np.empty((n_t, ijk.shape[0]), dtype=np.float32)
        for t0 in range(0, n_t, step):
            t1 = min(n_t, t0 + step)
            vols = np.asanyarray(img.dataobj[..., t0:t1])
            out[t0:t1] = vols.reshape(-1, t1 - t0, order="F")[flat].T
    except FileFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - gzip/zlib/nibabel errors on truncated files
        raise FileFormatError(f"cannot read {path} (truncated or not NIfTI?): {exc}") from exc
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def read_surface_betas_hdf5(path, vertices: np.ndarray, *, scale: float = 1.0 / SCALE, max_gap: int = 4) -> np.ndarray:
    """Read selected vertices of one native-surface session file: ``/betas`` ``(T, V)`` int16 → ``(T, n)`` float32."""
    vertices = np.asarray(vertices, dtype=np.int64)
    with _open_h5(Path(path)) as f:
        ds = f["betas"]
        if ds.ndim != 2:
            raise FileFormatError(f"{path}: /betas has shape {ds.shape}, expected (trials, vertices)")
        if vertices.size and (vertices.min() < 0 or vertices.max() >= ds.shape[1]):
            raise FileFormatError(f"{path}: {ds.shape[1]} vertices do not contain the requested ones (labels of another subject?)")
        _check_storage(ds, path)
        order = np.argsort(vertices, kind="stable")
        vs = vertices[order]
        out = np.empty((ds.shape[0], vertices.size), dtype=np.float32)
        try:
            for a, b, lo, hi in index_runs(vs, max_gap):
                out[:, order[a:b]] = ds[:, lo:hi][:, vs[a:b] - lo]
        except OSError as exc:
            raise FileFormatError(f"cannot read {path} (truncated?): {exc}") from exc
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def read_surface_betas_mgh(path, vertices: np.ndarray) -> np.ndarray:
    """Read selected vertices of one fsaverage session file (MGH ``(V, 1, 1, T)`` float32 PSC) → ``(T, n)`` float32.

    Not scaled (fsaverage betas are stored in PSC); NaN is passed through.
    """
    path = Path(path)
    vertices = np.asarray(vertices, dtype=np.int64)
    try:
        img = nib.load(str(path))
        shape = img.shape
        if len(shape) != 4 or shape[1:3] != (1, 1):
            raise FileFormatError(f"{path}: expected an MGH of shape (V, 1, 1, trials), got {shape}")
        n_v, n_t = shape[0], shape[3]
        if vertices.size and (vertices.min() < 0 or vertices.max() >= n_v):
            raise FileFormatError(f"{path}: {n_v} vertices do not contain the requested ones")
        expected = 284 + n_v * n_t * img.get_data_dtype().itemsize
        if not str(path).endswith(".mgz") and path.stat().st_size < expected:
            raise FileFormatError(f"{path} is truncated ({path.stat().st_size} bytes, expected at least {expected})")
        step = max(1, _BLOCK_BYTES // max(n_v * 4, 1))
        out = np.empty((n_t, vertices.size), dtype=np.float32)
        for t0 in range(0, n_t, step):
            t1 = min(n_t, t0 + step)
            frames = np.asanyarray(img.dataobj[:, 0, 0, t0:t1])
            out[t0:t1] = frames[vertices].T
    except FileFormatError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"cannot read {path} (truncated or not MGH?): {exc}") from exc
    return out


def _n_trials(path: Path) -> int:
    """Trials in one session file, from its header only."""
    suffix = path.name
    if suffix.endswith((".hdf5", ".mat")):
        with _open_h5(path) as f:
            return int(f["betas"].shape[0])
    try:
        return int(nib.load(str(path)).shape[-1])
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"cannot read the header of {path}: {exc}") from exc


def _read_session(space: str, fs: dict[str, Path], unit_index: dict) -> np.ndarray:
    parts = []
    for hemi, path in fs.items():
        idx = unit_index[hemi]
        if space in VOLUME_SPACES:
            reader = read_volume_betas_hdf5 if path.suffix in (".hdf5", ".mat") else read_volume_betas_nifti
            parts.append(reader(path, idx))
        elif space == "nativesurface":
            parts.append(read_surface_betas_hdf5(path, idx))
        else:
            parts.append(read_surface_betas_mgh(path, idx))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _grid_shape(path: Path) -> tuple[int, int, int]:
    if path.suffix in (".hdf5", ".mat"):
        with _open_h5(path) as f:
            return tuple(int(s) for s in f["betas"].shape[1:][::-1])
    return tuple(int(s) for s in nib.load(str(path)).shape[:3])


def _surface_size(path: Path) -> int:
    if path.suffix == ".hdf5":
        with _open_h5(path) as f:
            return int(f["betas"].shape[1])
    return int(nib.load(str(path)).shape[0])
