"""Read feature matrices from files: ``read_features(path, key=None) -> (X, ids)``.

:func:`read_named_arrays` reads every array of a ``.npz`` / HDF5 / ``.safetensors`` file instead (one
per layer: :func:`brainlid.features.files.read_feature_layers`).

Supported formats (by suffix):

============================  ===============================================================
``.npy``                      one 2-D array (``allow_pickle=False``)
``.npz``                      ``key`` names the array; with one non-id array it is used; an
                              ``ids`` or ``stimulus_ids`` array, if present, gives the ids
``.h5`` / ``.hdf5``           ``key`` names the dataset (default: the only 2-D dataset);
                              an ``ids``/``stimulus_ids`` dataset gives the ids
``.parquet`` / ``.csv``       the numeric columns are the features; a ``stimulus_id`` column
                              (or ``ids``/``stimulus_ids``), if present, gives the ids
``.pt`` / ``.pth``            ``torch.load(weights_only=True)``: a tensor, or a dict of tensors
                              (``key`` picks one; one tensor is used; ``ids``/``stimulus_ids``
                              as ids, a tensor or a list)
``.safetensors``              ``key`` names the tensor (default: the only non-id tensor);
                              ``ids``/``stimulus_ids`` integer tensor as ids
============================  ===============================================================

The features come back as a C-contiguous float32 array of shape (n_stimuli, n_features)
(float64 data stay float64 with ``keep_float64=True``; heavy readers — h5py, pandas, torch,
safetensors — are imported only for their own formats, so reading a ``.npy`` loads none of them);
ids as a 1-D numpy array (strings or integers) or None. A missing file raises
:class:`FileNotFoundError`; any other problem (unknown suffix, corrupt file, missing key,
wrong shape, non-numeric data, id count mismatch) raises :class:`~brainlid.errors.FileFormatError`
naming the file and the problem. Nothing is unpickled.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from .errors import FileFormatError

__all__ = ["read_features", "read_named_arrays", "load_npy", "torch_load_tensors", "FEATURE_SUFFIXES",
           "NAMED_ARRAY_SUFFIXES", "ID_KEYS"]

FEATURE_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5", ".parquet", ".csv", ".pt", ".pth", ".safetensors")
ID_KEYS = ("stimulus_ids", "ids", "stimulus_id")


def _fail(path: Path, problem: str):
    raise FileFormatError(f"{path}: {problem}")


def _pick(path: Path, arrays: dict, key: str | None, what: str):
    """Choose the feature array among named arrays (ids keys excluded unless asked for)."""
    if key is not None:
        if key not in arrays:
            _fail(path, f"no {what} named {key!r}; available: {', '.join(sorted(arrays)) or 'none'}")
        return arrays[key]
    candidates = {k: v for k, v in arrays.items() if k not in ID_KEYS}
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if not candidates:
        _fail(path, f"contains no feature {what}")
    _fail(path, f"contains several {what}s ({', '.join(sorted(candidates))}); choose one with key=... (--key)")


def _ids_from(arrays: dict):
    for k in ID_KEYS:
        if k in arrays:
            return arrays[k]
    return None


def _finish(path: Path, X, ids, keep_float64: bool = False):
    try:
        X = np.asarray(X)
    except Exception as exc:  # pragma: no cover - defensive
        _fail(path, f"features could not be converted to an array ({exc})")
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        _fail(path, f"features must be numeric, got dtype {X.dtype}")
    if np.issubdtype(X.dtype, np.complexfloating):
        _fail(path, f"features must be real, got dtype {X.dtype}")
    if X.ndim != 2:
        _fail(path, f"features must be a 2-D (n_stimuli, n_features) array, got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        _fail(path, f"features are empty (shape {X.shape})")
    X = np.ascontiguousarray(X, dtype=np.float64 if keep_float64 and X.dtype == np.float64 else np.float32)
    if ids is not None:
        ids = np.asarray(ids)
        if ids.dtype.kind == "S":
            ids = ids.astype(str)
        if ids.ndim != 1:
            _fail(path, f"ids must be 1-D, got shape {ids.shape}")
        if ids.shape[0] != X.shape[0]:
            _fail(path, f"{ids.shape[0]} ids for {X.shape[0]} feature rows")
    return X, ids


def _existing_file(path) -> Path:
    """``path`` as a Path; FileNotFoundError when it does not exist, FileFormatError when it is a folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a folder, not a features file")
    return path


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip


def _sniff(path: Path, magics: tuple[bytes, ...], what: str, hint: str) -> None:
    """Fail unless the file starts with one of ``magics``: say it is empty, text or other data."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except IsADirectoryError:
        _fail(path, f"is a folder, not a {what}")
    if not head:
        _fail(path, f"is empty (0 bytes), not a {what}")
    if not any(head.startswith(m) for m in magics):
        kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "other data"
        _fail(path, f"is not a {what} (it holds {kind}); {hint}")


def load_npy(path: str | os.PathLike, mmap_mode: str | None = None) -> np.ndarray:
    """Read a plain (non-object) ``.npy`` array, or raise :class:`FileFormatError` saying what the file is.

    The header is checked before any data are read: an empty file, a file that is not in the
    NumPy ``.npy`` format (e.g. text saved under that name), an array of Python objects (which
    NumPy could only read by unpickling, i.e. running code from the file) and a truncated file
    each get their own one-line message. Nothing is ever unpickled.

    Parameters
    ----------
    path : path-like
        The ``.npy`` file.
    mmap_mode : {None, "r", "r+", "c"}
        Passed to :func:`numpy.load` (memory-map instead of reading into memory).

    Returns
    -------
    ndarray
        The array, any shape and numeric/string/bool dtype.
    """
    path = Path(path)
    _sniff(path, (_NPY_MAGIC,), "NumPy .npy file", "save arrays with numpy.save")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _shape, _fortran, dtype = reader(fh)
    except (ValueError, EOFError) as exc:  # numpy's header parser: bad version, garbled dict, short header
        _fail(path, f"has a damaged .npy header ({_first_line(exc)})")
    if dtype.hasobject:
        _fail(path, f"holds pickled Python objects (dtype {dtype}), which brainlid never reads (unpickling could run code "
                    "from the file); save a numeric array")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:  # data shorter than the header promises
        _fail(path, f"is truncated or damaged ({_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_npy(path: Path, key):
    """A plain array; stimulus ids come from a sibling ``stimulus_ids.npy`` when there is one
    (the layout ``brainlid extract --out`` writes: ``<layer>.npy`` beside ``stimulus_ids.npy``)."""
    X = load_npy(path)
    sibling = path.with_name("stimulus_ids.npy")
    ids = None
    if sibling.exists() and sibling.resolve() != path.resolve():
        ids = load_npy(sibling)
    return X, ids


def _npz_arrays(path: Path) -> dict:
    _sniff(path, _ZIP_MAGICS, "NumPy .npz archive", "save arrays with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except ValueError as exc:
        _fail(path, f"not a plain .npz archive of numeric arrays ({exc})")


def _read_npz(path: Path, key):
    arrays = _npz_arrays(path)
    return _pick(path, arrays, key, "array"), _ids_from(arrays)


def _read_h5(path: Path, key):
    import h5py  # heavy: h5py, only for .h5/.hdf5 files (the CLI start-up reads .npy with numpy alone)

    with h5py.File(path, "r") as f:
        datasets: dict[str, object] = {}
        f.visititems(lambda name, obj: datasets.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
        if key is not None:
            if key not in datasets:
                _fail(path, f"no dataset named {key!r}; available: {', '.join(sorted(datasets)) or 'none'}")
            X = datasets[key][()]
        else:
            two_d = {k: v for k, v in datasets.items() if v.ndim == 2 and k not in ID_KEYS}
            if len(two_d) != 1:
                if not two_d:
                    _fail(path, "contains no 2-D dataset")
                _fail(path, f"contains several 2-D datasets ({', '.join(sorted(two_d))}); choose one with key=... (--key)")
            X = next(iter(two_d.values()))[()]
        ids = None
        for k in ID_KEYS:
            if k in datasets:
                ids = datasets[k][()]
                if ids.dtype.kind == "O":
                    ids = _h5_string(ids)
                break
    return X, ids


def _read_table(path: Path, key):
    import pandas as pd  # heavy: pandas, only for .csv/.parquet files (CLI start-up)

    if key is not None:
        _fail(path, f"key={key!r} does not apply to {path.suffix} files (all numeric columns are the features)")
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path)
    else:
        df = pd.read_parquet(path)
    ids = None
    for col in ("stimulus_id", *ID_KEYS):
        if col in df.columns:
            ids = df[col].to_numpy()
            df = df.drop(columns=[col])
            break
    numeric = df.select_dtypes(include=["number", "bool"])
    dropped = [c for c in df.columns if c not in numeric.columns]
    if numeric.shape[1] == 0:
        _fail(path, "has no numeric feature columns")
    if dropped:
        _fail(path, f"non-numeric columns {', '.join(map(str, dropped[:5]))}; only a 'stimulus_id' column may be non-numeric")
    if ids is not None and ids.dtype == object:
        ids = ids.astype(str)
    return numeric.to_numpy(), ids


def _tensor_to_numpy(path: Path, t, what: str):
    import torch  # heavy: torch, only for .pt/.pth files (CLI start-up)

    if isinstance(t, torch.Tensor):
        return t.detach().cpu().float().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
    if isinstance(t, (list, tuple)):
        return np.asarray(t)
    if isinstance(t, np.ndarray):
        return t
    _fail(path, f"{what} is a {type(t).__name__}, not a tensor")


def torch_load_tensors(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line :class:`FileFormatError` messages.

    Only tensors, containers and plain Python values are read (never arbitrary pickled objects).
    A file that is empty, text, or holds other objects gets a message saying so; torch's own text
    for the last case, which advises loading the file unsafely, is never shown.

    Parameters
    ----------
    path : path-like
        A ``.pt``/``.pth`` file (zip or legacy pickle format).

    Returns
    -------
    object
        What the file holds: a tensor, or containers (dict, list, tuple) of tensors and plain values.

    Raises
    ------
    FileFormatError
        The file is empty, not a PyTorch file, or holds objects other than tensors.
    """
    import torch  # heavy: torch, only for .pt/.pth files (CLI start-up)

    path = Path(path)
    _sniff(path, (*_ZIP_MAGICS, b"\x80"), "PyTorch file", "save tensors with torch.save")  # zip, or a legacy pickle
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        _fail(path, "holds Python objects other than tensors, which brainlid never unpickles; save a tensor or a dict of tensors")
    except (RuntimeError, EOFError) as exc:
        _fail(path, f"not a readable tensor file ({_first_line(exc)})")


def _read_pt(path: Path, key):
    import torch  # heavy: torch, only for .pt/.pth files (CLI start-up)

    obj = torch_load_tensors(path)
    if isinstance(obj, torch.Tensor):
        if key is not None:
            _fail(path, f"holds a single tensor, but key={key!r} was given")
        return _tensor_to_numpy(path, obj, "the object"), None
    if isinstance(obj, dict):
        arrays = {str(k): v for k, v in obj.items()}
        X = _pick(path, arrays, key, "tensor")
        ids = _ids_from(arrays)
        return _tensor_to_numpy(path, X, "the features"), (None if ids is None else _tensor_to_numpy(path, ids, "ids"))
    _fail(path, f"holds a {type(obj).__name__}; expected a tensor or a dict of tensors")


def _safetensors_arrays(path: Path) -> dict:
    from safetensors import SafetensorError  # optional at start-up: only for .safetensors files
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        _fail(path, f"not a readable safetensors file ({exc})")


def _read_safetensors(path: Path, key):
    arrays = _safetensors_arrays(path)
    return _pick(path, arrays, key, "tensor"), _ids_from(arrays)


def _h5_string(values: np.ndarray) -> np.ndarray:
    """HDF5 strings (bytes, or objects from variable-length strings) as a unicode array."""
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()]).reshape(values.shape)


def _h5_arrays(path: Path) -> dict:
    import h5py  # heavy: h5py, only for .h5/.hdf5 files (CLI start-up)

    out: dict[str, np.ndarray] = {}

    def walk(group, prefix):  # group.keys() keeps creation order when the file tracks it (track_order=True)
        for name in group.keys():
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, f"{prefix}{name}/")
            elif isinstance(obj, h5py.Dataset):
                a = obj[()]
                out[f"{prefix}{name}"] = _h5_string(a) if a.dtype.kind in "OS" else a

    with h5py.File(path, "r") as f:
        walk(f, "")
    return out


_ARRAY_READERS = {".npz": _npz_arrays, ".h5": _h5_arrays, ".hdf5": _h5_arrays, ".safetensors": _safetensors_arrays}
NAMED_ARRAY_SUFFIXES = tuple(_ARRAY_READERS)  #: files :func:`read_named_arrays` reads


def read_named_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every named array of a ``.npz``, ``.h5``/``.hdf5`` or ``.safetensors`` file, in the file's order.

    ``.npz``: the order the arrays were saved in (``allow_pickle=False``: object arrays are refused);
    HDF5: every dataset, nested ones named by their path (``"block1/conv"``), in creation order when
    the file tracks it (``h5py.File(..., track_order=True)``), else alphabetical; strings come back
    as a unicode array; ``.safetensors``: alphabetical (the format sorts its tensors).

    Parameters
    ----------
    path : path-like
        The file; its suffix says the format (:data:`NAMED_ARRAY_SUFFIXES`).

    Returns
    -------
    dict
        name → array as stored (no dtype conversion).

    Raises
    ------
    FileNotFoundError, FileFormatError
        As :func:`read_features` (one line naming the file and the problem).
    """
    path = _existing_file(path)
    reader = _ARRAY_READERS.get(path.suffix.lower())
    if reader is None:
        raise FileFormatError(f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; use one of "
                              f"{', '.join(NAMED_ARRAY_SUFFIXES)}")
    try:
        return reader(path)
    except (FileFormatError, MemoryError):
        raise
    except Exception as exc:  # corrupt or truncated files raise many different library errors
        raise FileFormatError(f"{path}: could not be read as {path.suffix} ({type(exc).__name__}: {_first_line(exc)})") from exc


_READERS = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".h5": _read_h5,
    ".hdf5": _read_h5,
    ".parquet": _read_table,
    ".csv": _read_table,
    ".pt": _read_pt,
    ".pth": _read_pt,
    ".safetensors": _read_safetensors,
}


def read_features(path: str | os.PathLike, key: str | None = None, *,
                  keep_float64: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a feature matrix (and stimulus ids, if the file has them).

    Parameters
    ----------
    path : path-like
        A ``.npy``, ``.npz``, ``.h5``/``.hdf5``, ``.parquet``, ``.csv``, ``.pt``/``.pth`` or
        ``.safetensors`` file (see the module docstring for each layout).
    key : str or None
        Name of the array/dataset/tensor holding the features, where the file holds several.
    keep_float64 : bool
        Return float64 features as float64 (``brainlid lid``: dimension estimates keep float64
        input exact); any other dtype, and float64 by default, becomes float32.

    Returns
    -------
    X : ndarray of shape (n_stimuli, n_features), float32 (float64 with ``keep_float64`` and float64 data)
    ids : ndarray of shape (n_stimuli,) or None

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FileFormatError
        Anything else wrong with the file, with the file name and the problem in the message.
    """
    path = _existing_file(path)
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise FileFormatError(
            f"{path}: unknown features file type {suffix or '(no suffix)'!r}; use one of {', '.join(FEATURE_SUFFIXES)}"
        )
    try:
        X, ids = reader(path, key)
    except FileFormatError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # corrupt or truncated files raise many different library errors
        raise FileFormatError(f"{path}: could not be read as {suffix} ({type(exc).__name__}: {_first_line(exc)})") from exc
    return _finish(path, X, ids, keep_float64)
