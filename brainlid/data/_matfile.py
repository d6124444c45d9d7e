"""MATLAB ``.mat`` files: version detection, reading (v4/v5/v7 and v7.3) and a v7.3 writer.

MATLAB writes two unrelated formats under one suffix:

* **v5 / v7** (``save -v7``, the default before R2006b and for files < 2 GB): a 128-byte
  text header ``"MATLAB 5.0 MAT-file ..."`` whose bytes 124-127 hold the version
  ``0x0100`` and the endian indicator ``"IM"``/``"MI"``, then tagged data elements.
  Read with :func:`scipy.io.loadmat`.
* **v7.3** (``save -v7.3``): an HDF5 file with a 512-byte *userblock* whose first 128
  bytes are the same kind of text header (``"MATLAB 7.3 MAT-file ... HDF5 schema 1.00 ."``,
  version ``0x0200``); the HDF5 superblock follows at byte 512. Every variable is an HDF5
  dataset or group with a ``MATLAB_class`` attribute (``double``, ``single``, ``uint8``,
  ``char``, ``logical``, ``cell``, ``struct``, ...). MATLAB is column-major, so **h5py sees
  every array with its axes reversed** (a MATLAB 15x92x92 array is h5py (92, 92, 15)).
  Read with h5py.

:func:`loadmat` detects the version from the bytes and dispatches, so a v7.3 file handed
to the v5 path (or the reverse) is read correctly; :func:`read_v5` and :func:`read_v73`
do the same when handed the other kind, and a file that is neither is named as such.

Both readers return the same representation (that of ``scipy.io.loadmat(...,
simplify_cells=True)``): numeric arrays in MATLAB's axis order with singleton axes
squeezed (a 1x1 value becomes a scalar), ``char`` as ``str``, ``logical`` as
``bool``, structs as ``dict`` (struct arrays as object arrays of dicts), cells as object
arrays.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np
from scipy.io import loadmat as _sp_loadmat, savemat, whosmat
from scipy.io.matlab import mat_struct, matfile_version

from .._atomic import atomic_path
from ..errors import DatasetNotFoundError, FileFormatError, InputError

__all__ = ["mat_version", "loadmat", "read_v5", "read_v73", "write_v73", "write_v5", "HDF5_SIGNATURE"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_USERBLOCK = 512


def _check_path(path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"MATLAB file not found: {path}")
    return path


def mat_version(path: str | os.PathLike) -> str:
    """The format of a ``.mat`` file, from its bytes.

    Returns
    -------
    ``"7.3"`` (HDF5 with a MATLAB userblock), ``"hdf5"`` (a plain HDF5 file, e.g. written by
    h5py or hdf5storage without the MATLAB header; read like v7.3), ``"5"`` (v5/v6/v7) or
    ``"4"`` (the headerless Level 4 format, recognised by scipy).

    Raises
    ------
    FileFormatError
        Empty, truncated, or not a MATLAB/HDF5 file (the message says what the first bytes are).
    """
    path = _check_path(path)
    with open(path, "rb") as fh:
        head = fh.read(_USERBLOCK + len(HDF5_SIGNATURE))
    if len(head) == 0:
        raise FileFormatError(f"{path} is empty, not a MATLAB file")
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    # HDF5 allows the superblock at 0, 512, 1024, ...; MATLAB uses 512
    hdf5_at_512 = head[_USERBLOCK:_USERBLOCK + 8] == HDF5_SIGNATURE
    if len(head) >= 128 and head[:6] == b"MATLAB":
        v = head[124:128]
        maj_ind = 1 if v[2:3] == b"I" else 0
        major = v[maj_ind]
        if major == 2 or hdf5_at_512:
            if not hdf5_at_512:
                raise FileFormatError(
                    f"{path} has a MATLAB 7.3 header but no HDF5 superblock at byte 512: truncated or corrupt"
                )
            return "7.3"
        if major == 1:
            return "5"
        raise FileFormatError(f"{path}: MATLAB header with an unknown version byte {major} (header {head[:40]!r})")
    if hdf5_at_512:
        return "hdf5"
    try:
        with open(path, "rb") as fh:
            major, _ = matfile_version(fh)
        if major == 0:
            return "4"
    except Exception:  # noqa: BLE001 - any failure means "not a MAT file"
        pass
    raise FileFormatError(f"{path} is not a MATLAB .mat file (v5 or v7.3/HDF5); it starts with {head[:24]!r}")


def loadmat(path: str | os.PathLike, variables: Iterable[str] | None = None) -> dict[str, Any]:
    """Read a ``.mat`` file of any version into a dict ``{name: value}``.

    Parameters
    ----------
    path : path-like
    variables : iterable of str or None
        Only these variables (all when None). A requested variable that is absent raises
        :class:`FileFormatError` listing the variables the file has.

    Returns
    -------
    dict
        See the module docstring for the value types; shapes in MATLAB order.
    """
    version = mat_version(path)
    if version in ("7.3", "hdf5"):
        return _read_hdf5(Path(path), variables)
    return _read_scipy(Path(path), variables)


def read_v5(path: str | os.PathLike, variables: Iterable[str] | None = None) -> dict[str, Any]:
    """Read a v4/v5/v7 file with scipy; a v7.3 (HDF5) file is detected and read with h5py instead."""
    return loadmat(path, variables)


def read_v73(path: str | os.PathLike, variables: Iterable[str] | None = None) -> dict[str, Any]:
    """Read a v7.3 (HDF5) file with h5py; a v5 file is detected and read with scipy instead."""
    return loadmat(path, variables)


# --------------------------------------------------------------------------- v5 (scipy)
def _read_scipy(path: Path, variables) -> dict[str, Any]:
    names = None if variables is None else list(variables)
    try:
        out = _sp_loadmat(path, variable_names=names, simplify_cells=True)
    except NotImplementedError as exc:  # scipy's message for v7.3 files
        raise FileFormatError(f"{path}: scipy cannot read it ({exc})") from exc
    except (ValueError, TypeError, OSError) as exc:
        raise FileFormatError(f"cannot read {path} as a MATLAB v5 file: {exc}") from exc
    out = {k: _simplify(v) for k, v in out.items() if not k.startswith("__")}
    if names is not None and any(n not in out for n in names):
        _require(path, {name: None for name, _, _ in whosmat(path)}, names)
    return out


def _simplify(v):
    """Turn the ``mat_struct`` objects scipy leaves inside multi-dimensional struct arrays into dicts."""
    if isinstance(v, mat_struct):
        return {k: _simplify(getattr(v, k)) for k in v._fieldnames}
    if isinstance(v, dict):
        return {k: _simplify(x) for k, x in v.items()}
    if isinstance(v, np.ndarray) and v.dtype == object:
        out = np.empty(v.shape, dtype=object)
        for idx in np.ndindex(v.shape):
            out[idx] = _simplify(v[idx])
        return out
    return v


def _require(path: Path, out: dict, names) -> None:
    if names is None:
        return
    missing = [n for n in names if n not in out]
    if missing:
        raise FileFormatError(f"{path} has no variable(s) {', '.join(missing)} (has: {', '.join(sorted(out)) or 'none'})")


# --------------------------------------------------------------------------- v7.3 (h5py)
def _attr_str(obj, name: str) -> str | None:
    v = obj.attrs.get(name)
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("ascii", "replace")
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "S":
            return b"".join(v.ravel().tolist()).decode("ascii", "replace")
        return str(v)
    return str(v)


def _squeeze(a: np.ndarray):
    """Drop singleton axes; a 1 x 1 value becomes a numpy scalar (as scipy's ``simplify_cells`` gives)."""
    a = np.squeeze(a)
    return a[()] if a.ndim == 0 else a


def _char(data: np.ndarray):
    """MATLAB char (uint16 code units, h5py axes reversed) -> str or list of str."""
    m = np.asarray(data).T  # back to MATLAB order: rows x chars
    if m.ndim == 1:
        m = m[None]
    if m.ndim > 2:
        m = m.reshape(m.shape[0], -1)
    rows = ["".join(chr(int(c)) for c in row) for row in m]
    return rows[0] if len(rows) == 1 else rows


def _dataset_value(f, ds):
    cls = _attr_str(ds, "MATLAB_class")
    if ds.attrs.get("MATLAB_empty", 0):
        dims = np.asarray(ds[()]).ravel().astype(int)
        if cls == "char":
            return ""
        if cls == "cell":
            return np.empty(tuple(dims), dtype=object)
        return np.empty(tuple(dims), dtype=np.float64 if cls in (None, "double") else _NUMERIC.get(cls, np.float64))
    if ds.dtype == h5py.ref_dtype or ds.dtype.kind == "O":
        refs = ds[()]
        vals = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            vals[idx] = _node_value(f, f[refs[idx]])
        vals = vals.T
        return vals.reshape(()) if vals.size == 1 and cls != "cell" else _squeeze_obj(vals)
    if ds.attrs.get("MATLAB_sparse") is not None:
        raise FileFormatError(f"{ds.file.filename}:{ds.name} is a MATLAB sparse matrix, which brainlid does not read")
    data = ds[()]
    if ds.dtype.names and set(ds.dtype.names) >= {"real", "imag"}:
        data = data["real"] + 1j * data["imag"]
    if cls == "char":
        return _char(data)
    data = np.asarray(data).T  # reverse the axes: MATLAB order
    if cls == "logical":
        data = data.astype(bool)
    return _squeeze(data)


def _squeeze_obj(a: np.ndarray):
    out = np.squeeze(a)
    if out.ndim == 0:
        arr = np.empty(1, dtype=object)
        arr[0] = out.item()
        return arr
    return out


_NUMERIC = {"double": np.float64, "single": np.float32, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
            "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
            "logical": np.bool_}


def _field_names(group) -> list[str]:
    raw = group.attrs.get("MATLAB_fields")
    if raw is None:
        return [k for k in group.keys()]
    names = []
    for v in np.asarray(raw, dtype=object).ravel():
        arr = np.asarray(v)
        names.append(b"".join(arr.ravel().tolist()).decode("ascii") if arr.dtype.kind == "S" else str(v))
    return [n for n in names if n in group] + [k for k in group.keys() if k not in names]


def _group_value(f, group):
    """A MATLAB struct: a scalar struct -> dict; a struct array (fields hold references) -> array of dicts."""
    names = _field_names(group)
    fields = {n: group[n] for n in names}
    ref_shapes = {n: d.shape for n, d in fields.items()
                  if isinstance(d, h5py.Dataset) and d.dtype == h5py.ref_dtype and _attr_str(d, "MATLAB_class") is None}
    if ref_shapes and len(ref_shapes) == len(fields) and len(set(ref_shapes.values())) == 1:
        shape = next(iter(ref_shapes.values()))
        if int(np.prod(shape)) > 1:
            out = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                out[idx] = {n: _node_value(f, f[fields[n][idx]]) for n in names}
            return _squeeze_obj(out.T)
    return {n: _node_value(f, d) for n, d in fields.items()}


def _node_value(f, node):
    if isinstance(node, h5py.Group):
        return _group_value(f, node)
    return _dataset_value(f, node)


def _read_hdf5(path: Path, variables) -> dict[str, Any]:
    names = None if variables is None else list(variables)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"cannot open {path} as a MATLAB v7.3 (HDF5) file: {exc}") from exc
    with f:
        keys = [k for k in f.keys() if not k.startswith("#")]
        if names is not None:
            _require(path, {k: None for k in keys}, names)
            keys = names
        try:
            return {k: _node_value(f, f[k]) for k in keys}
        except FileFormatError:
            raise
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise FileFormatError(f"cannot decode {path} as MATLAB v7.3 data: {exc}") from exc


# --------------------------------------------------------------------------- writers
def _header_text(version: str) -> bytes:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%a %b %d %H:%M:%S %Y")
    text = f"MATLAB {version} MAT-file, Platform: GLNXA64, Created on: {now} HDF5 schema 1.00 ."
    return text.encode("ascii").ljust(116, b" ")


def _matlab_class(a: np.ndarray) -> str:
    if a.dtype == np.bool_:
        return "logical"
    for name, dt in _NUMERIC.items():
        if name != "logical" and a.dtype == dt:
            return name
    raise InputError(f"cannot write dtype {a.dtype} to a MATLAB v7.3 file")


def _write_value(f, parent, name: str, value, refs_group) -> None:
    """Write one MATLAB value under ``parent[name]`` (axes reversed, MATLAB_class attributes)."""
    if isinstance(value, dict):
        g = parent.create_group(name)
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        for k, v in value.items():
            _write_value(f, g, k, v, refs_group)
        g.attrs.create("MATLAB_fields", [np.frombuffer(k.encode("ascii"), dtype="S1") for k in value],
                       dtype=h5py.vlen_dtype(np.dtype("S1")))
        return
    if isinstance(value, str):
        codes = np.array([ord(c) for c in value], dtype=np.uint16).reshape(1, -1)  # MATLAB 1 x n
        ds = parent.create_dataset(name, data=codes.T)
        ds.attrs["MATLAB_class"] = np.bytes_("char")
        ds.attrs["MATLAB_int_decode"] = np.int32(2)
        return
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        cells = np.empty(len(value), dtype=object) if isinstance(value, (list, tuple)) else value
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                cells[i] = v
        cells = cells.reshape(1, -1) if cells.ndim == 1 else cells  # MATLAB 1 x n cell
        refs = np.empty(cells.T.shape, dtype=h5py.ref_dtype)
        for idx in np.ndindex(cells.T.shape):
            key = f"c{len(refs_group)}"
            _write_value(f, refs_group, key, cells.T[idx], refs_group)
            refs[idx] = refs_group[key].ref
        ds = parent.create_dataset(name, data=refs, dtype=h5py.ref_dtype)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
        return
    a = np.asarray(value)
    if a.ndim < 2:
        a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(1, 1)
    cls = _matlab_class(a)
    data = a.T.astype(np.uint8) if cls == "logical" else a.T  # MATLAB is column-major: h5py sees axes reversed
    ds = parent.create_dataset(name, data=np.ascontiguousarray(data))
    ds.attrs["MATLAB_class"] = np.bytes_(cls)
    if cls == "logical":
        ds.attrs["MATLAB_int_decode"] = np.int32(1)


def write_v73(path: str | os.PathLike, variables: dict[str, Any]) -> Path:
    """Write variables to a MATLAB v7.3 file the way MATLAB does (atomically).

    An HDF5 file with a 512-byte userblock that starts with MATLAB's 128-byte text
    header (version ``0x0200``, endian ``"IM"``), so :func:`scipy.io.matlab.matfile_version`
    reports (2, 0) and ``scipy.io.loadmat`` refuses it as v7.3, exactly as with
    MATLAB's own files. Values: numeric/bool arrays (given in MATLAB axis order, written
    reversed), ``str`` (``char``), ``dict`` (scalar struct), ``list`` (1 x n cell). Cell
    contents go to the ``#refs#`` group, as MATLAB does.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=_USERBLOCK, libver="earliest") as f:
            refs = None
            for name, value in variables.items():
                if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object) \
                        or isinstance(value, dict):
                    if refs is None:
                        refs = f.create_group("#refs#")
                _write_value(f, f, name, value, refs)
        header = _header_text("7.3") + b"\x00" * 8 + b"\x00\x02" + b"IM"
        with open(tmp, "r+b") as fh:
            fh.write(header)
            fh.write(b"\x00" * (_USERBLOCK - len(header)))
    return path


def write_v5(path: str | os.PathLike, variables: dict[str, Any]) -> Path:
    """Write variables to a MATLAB v5 file with :func:`scipy.io.savemat` (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            savemat(fh, variables, do_compression=True)
    return path
