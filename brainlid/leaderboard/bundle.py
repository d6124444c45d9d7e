"""Submission bundles: write them, and validate them exactly as the service does.

A **bundle** is a zip file holding one model's features for a benchmark's published stimulus
set, never code and never scores::

    manifest.json            format, benchmark id(s), stimulus ids (in order), layers, metadata
    features/000.npy         layer 0: (n_stimuli, n_features) float32, rows in manifest order
    features/001.safetensors layer 1 (either format; one tensor named "features")
    ...

``manifest.json``::

    {"format": "brainlid-submission", "format_version": 1, "brainlid_version": "...",
     "benchmarks": ["nsd.subj01.EBA.encoding", ...], "stimulus_ids": [...],
     "layers": [{"name": "layer4", "file": "features/000.npy", "shape": [n, d],
                 "dtype": "float32", "sha256": "..."}],
     "metadata": {"model_name": "...", "parameters": 11689512, "training_data": "...",
                  "url": "https://...", "description": "..."}}

:func:`validate_bundle` is the one validation path (``brainlid submit check``, the upload
handler and the worker all call it). It reads the archive without ever extracting it to disk
and rejects, with a :class:`BundleError` naming the reason:

* archive members with absolute paths, ``..`` components, backslashes or drive letters; any
  member not listed in the manifest; duplicated names;
* a zip whose declared unpacked size exceeds the limit, a member whose compression ratio is
  absurd, or a member that inflates beyond its declared size (sizes are counted while
  streaming, so a lying header cannot inflate the reader's memory);
* anything that could be a pickle: ``.pkl``/``.pickle``/``.joblib`` members, pickle magic
  (``0x80 0x02..0x05``) at the start of a member, ``.npy`` files of dtype ``object``
  (read with ``allow_pickle=False``);
* SHA-256 mismatches, shapes that disagree with the manifest or with the number of stimulus
  ids, NaN/inf, a dtype other than the declared one (e.g. float64 where float32 was
  declared), a dtype outside float32/float16, layers or bundles too large;
* unknown benchmarks, and stimulus ids that differ from the benchmark's published ids or
  come in another order (when the published ids are known).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .._atomic import atomic_path
from .._version import __version__
from ..errors import InputError
from .schema import (MAX_NAME, METADATA_FIELDS, SchemaError, check_ids_kind, check_metadata, check_stimulus_ids,
                     check_text, loads_json, visible)

__all__ = [
    "BundleError",
    "Limits",
    "Bundle",
    "FORMAT",
    "FORMAT_VERSION",
    "ALLOWED_DTYPES",
    "METADATA_FIELDS",
    "write_bundle",
    "validate_bundle",
    "read_manifest",
]

FORMAT = "brainlid-submission"
FORMAT_VERSION = 1
ALLOWED_DTYPES = ("float32", "float16")
#: Metadata a submitter may give (all optional except ``model_name``); free text is length-limited.
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".npz")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-./]+$")


class BundleError(InputError):
    """A bundle the service would reject; the message is the reason shown to the submitter."""


@dataclass(frozen=True)
class Limits:
    """Size limits of one bundle (bytes unless stated).

    Attributes
    ----------
    max_upload : int
        Compressed size of the uploaded zip.
    max_unpacked : int
        Sum of the members' unpacked sizes (declared and actual).
    max_layer_bytes : int
        Unpacked size of one layer array.
    max_layers : int
        Number of layers.
    max_ratio : float
        Largest compression ratio of a member (zip-bomb guard; float arrays rarely exceed 20).
    max_manifest : int
        Size of ``manifest.json``.
    """

    max_upload: int = 2 << 30
    max_unpacked: int = 8 << 30
    max_layer_bytes: int = 2 << 30
    max_layers: int = 64
    max_ratio: float = 200.0
    max_manifest: int = 64 << 20


@dataclass
class Bundle:
    """A validated bundle: its manifest, the layer arrays and their declared metadata.

    Attributes
    ----------
    manifest : dict
    benchmarks : list of str
    stimulus_ids : ndarray (n_stimuli,) int64 or str
    features : dict layer → ndarray (n_stimuli, n_features) float32/float16, in manifest order
        (empty when validated with ``load=False``)
    metadata : dict
    sha256 : str
        Hash of the whole zip file.
    layers : dict layer → ((n_stimuli, n_features), dtype name), in manifest order
    """

    manifest: dict
    benchmarks: list[str]
    stimulus_ids: np.ndarray
    features: dict[str, np.ndarray] = field(repr=False)
    metadata: dict
    sha256: str = ""
    layers: dict[str, tuple[tuple[int, int], str]] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return str(self.metadata.get("model_name", ""))


# --------------------------------------------------------------------------- writing
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _clean_metadata(metadata: Mapping | None) -> dict:
    """Metadata checked by the one schema (:func:`brainlid.leaderboard.schema.check_metadata`)."""
    try:
        return check_metadata(metadata)
    except SchemaError as exc:
        raise BundleError(str(exc)) from None


def _ids_json(ids) -> list:
    from ..data.ids import as_ids

    arr = as_ids(ids)
    return [int(v) for v in arr] if arr.dtype.kind == "i" else [str(v) for v in arr]


def write_bundle(
    path: str | os.PathLike,
    features: Mapping[str, np.ndarray],
    stimulus_ids,
    benchmarks: str | Sequence[str],
    metadata: Mapping,
    *,
    fmt: str = "npy",
    dtype: str = "float32",
) -> Path:
    """Write a submission bundle (atomically) and return its path.

    Parameters
    ----------
    features : mapping layer → array (n_stimuli, n_features)
        Layers in depth order; cast to ``dtype``.
    stimulus_ids : array-like (n_stimuli,)
        Row order of every layer (use the benchmark's published order, see
        :func:`brainlid.leaderboard.scoring.published_stimulus_ids`).
    benchmarks : id or list of ids
    metadata : mapping
        :data:`METADATA_FIELDS`; ``model_name`` required.
    fmt : {"npy", "safetensors"}
    dtype : {"float32", "float16"}
    """
    if fmt not in ("npy", "safetensors"):
        raise InputError(f"bundle array format must be 'npy' or 'safetensors', got {fmt!r}")
    if dtype not in ALLOWED_DTYPES:
        raise InputError(f"bundle dtype must be one of {ALLOWED_DTYPES}, got {dtype!r}")
    if not features:
        raise InputError("a bundle needs at least one layer")
    ids = _ids_json(stimulus_ids)
    benches = [benchmarks] if isinstance(benchmarks, str) else list(benchmarks)
    if not benches:
        raise InputError("a bundle needs at least one benchmark id")
    layers = []
    members: dict[str, bytes] = {}
    for i, (name, X) in enumerate(features.items()):
        try:
            check_text(str(name), f"layer name {visible(str(name))!r}", max_len=MAX_NAME)
        except SchemaError as exc:
            raise BundleError(str(exc)) from None
        X = np.ascontiguousarray(np.asarray(X), dtype=dtype)
        if X.ndim != 2 or X.shape[0] != len(ids):
            raise InputError(f"layer {name!r}: features must be (n_stimuli={len(ids)}, n_features), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InputError(f"layer {name!r}: features contain NaN/inf")
        if fmt == "npy":
            fname, data = f"features/{i:03d}.npy", _npy_bytes(X)
        else:
            from safetensors.numpy import save

            fname, data = f"features/{i:03d}.safetensors", save({"features": X})
        members[fname] = data
        layers.append({"name": str(name), "file": fname, "shape": list(X.shape), "dtype": dtype, "sha256": _sha256(data)})
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "brainlid_version": __version__,
        "benchmarks": benches, "stimulus_ids": ids, "layers": layers, "metadata": _clean_metadata(metadata),
    }
    path = Path(path)
    with atomic_path(path, suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=1))
            for fname, data in members.items():
                zf.writestr(fname, data)
    return path


# --------------------------------------------------------------------------- validation
def _check_member_name(name: str) -> None:
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        raise BundleError(f"archive member {name!r} has an absolute or non-portable path")
    parts = name.split("/")  # PurePosixPath would drop '.' components before they are seen
    if any(p in ("..", ".") for p in parts) or "//" in name:
        raise BundleError(f"archive member {name!r} has a '..' (or '.') path component")
    if not _SAFE_NAME.match(name):
        raise BundleError(f"archive member {name!r} has characters outside [A-Za-z0-9_-./]")
    if name.lower().endswith(_PICKLE_SUFFIXES):
        raise BundleError(f"archive member {name!r} looks like a pickle/checkpoint; bundles hold .npy or .safetensors arrays only")


class _MemberStream:
    """One archive member as a read-only stream that never holds more than the caller asks for.

    Every read counts the actual bytes against the member's declared size and the bundle's
    unpacked budget (a lying header cannot inflate anything), feeds the member's SHA-256, and
    refuses pickle magic at the member's start. Errors of the zip layer become :class:`BundleError`.
    """

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: Limits):
        self.info, self.budget, self.limits = info, budget, limits
        self.n = 0
        self.sha = hashlib.sha256()
        self._head = b""
        try:
            self.fh = zf.open(info)
        except (zipfile.BadZipFile, _zlib_error(), EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            raise BundleError(f"archive member {info.filename!r} is corrupt or unsupported: {exc}") from None

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # never unbounded: at most what the header declares, plus one byte to catch a liar
            size = max(self.info.file_size - self.n, 0) + 1
        try:
            chunk = self.fh.read(size)
        except (zipfile.BadZipFile, _zlib_error(), EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            raise BundleError(f"archive member {self.info.filename!r} is corrupt or unsupported: {exc}") from None
        self.n += len(chunk)
        self.budget[0] += len(chunk)
        if self.n > self.info.file_size:
            raise BundleError(f"archive member {self.info.filename!r} inflates beyond its declared size (zip bomb?)")
        if self.budget[0] > self.limits.max_unpacked:
            raise BundleError(f"bundle unpacks to more than the limit of {self.limits.max_unpacked} bytes (zip bomb?)")
        if len(self._head) < 2 and chunk:
            self._head = (self._head + chunk)[:2]
            if len(self._head) == 2 and self._head[0] == 0x80 and 2 <= self._head[1] <= 5:
                raise BundleError(f"archive member {self.info.filename!r} is a pickle (pickle magic bytes); "
                                  "pickles are never accepted")
        self.sha.update(chunk)
        return chunk

    def finish(self) -> str:
        """Check that the member ended where its header says; return its SHA-256."""
        if self.n == self.info.file_size and self.read(1):
            pass  # read() raised already ("inflates beyond")
        if self.n != self.info.file_size:
            raise BundleError(f"archive member {self.info.filename!r} is {self.n} bytes, its header says {self.info.file_size}")
        return self.sha.hexdigest()

    def close(self) -> None:
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: Limits) -> bytes:
    """A small member's whole content (the manifest), read through :class:`_MemberStream`."""
    with _MemberStream(zf, info, budget, limits) as s:
        chunks = []
        while chunk := s.read(_CHUNK):
            chunks.append(chunk)
        s.finish()
    return b"".join(chunks)


def _zlib_error():
    import zlib

    return zlib.error


#: Bytes read from an archive member at a time: the validation's working memory per member.
_CHUNK = 1 << 20
#: safetensors dtype codes → NumPy dtype names (anything else is reported by its code).
_SAFETENSORS_DTYPES = {"F16": "float16", "F32": "float32", "F64": "float64", "BF16": "bfloat16", "I8": "int8",
                       "I16": "int16", "I32": "int32", "I64": "int64", "U8": "uint8", "BOOL": "bool"}


def _parse_npy(stream: _MemberStream, name: str) -> tuple[tuple, bool, str]:
    """Read a ``.npy`` header from the stream: ``(shape, fortran_order, dtype name)``; the data follow."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise BundleError(f"{name}: unsupported .npy version {version}")
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse error is a bad file
        raise BundleError(f"{name}: not a valid .npy file ({exc})") from None
    if dtype.hasobject:
        raise BundleError(f"{name}: object arrays hold pickles and are never accepted")
    return tuple(shape), bool(fortran), (dtype.name if dtype.isnative or dtype.itemsize == 1 else dtype.str)


def _parse_safetensors(stream: _MemberStream, name: str) -> tuple[tuple, bool, str]:
    """Read a safetensors header from the stream: ``(shape, False, dtype name)``; the data follow.

    One tensor named ``features`` whose data span the whole rest of the file.
    """
    head = stream.read(8)
    if len(head) < 8:
        raise BundleError(f"{name}: truncated safetensors file")
    (hlen,) = struct.unpack("<Q", head)
    if hlen > stream.info.file_size - 8 or hlen > (16 << 20):
        raise BundleError(f"{name}: safetensors header length {hlen} is invalid")
    raw = b""
    while len(raw) < hlen and (chunk := stream.read(hlen - len(raw))):
        raw += chunk
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{name}: safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise BundleError(f"{name}: safetensors header is not a JSON object")
    tensors = [k for k in header if k != "__metadata__"]
    if tensors != ["features"]:
        raise BundleError(f"{name}: a safetensors layer file must hold exactly one tensor named 'features', has {tensors[:5]}")
    t = header["features"]
    shape, offsets, code = (t.get("shape"), t.get("data_offsets"), t.get("dtype")) if isinstance(t, dict) else (None,) * 3
    if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
            and isinstance(offsets, list) and len(offsets) == 2 and isinstance(code, str)):
        raise BundleError(f"{name}: cannot read the safetensors file (malformed tensor entry)")
    dtype = _SAFETENSORS_DTYPES.get(code, code[:20])
    nbytes = int(np.prod(shape, dtype=object)) * (np.dtype(dtype).itemsize if dtype in ALLOWED_DTYPES else 1)
    if dtype in ALLOWED_DTYPES and offsets != [0, nbytes]:
        raise BundleError(f"{name}: cannot read the safetensors file (data offsets {offsets[:2]} do not match "
                          f"{shape} {dtype})")
    return tuple(shape), False, dtype


class _Values:
    """Checks of a layer's data fed in byte chunks, in bounded memory: NaN/inf count and constancy.

    With ``out`` (a flat array of the layer's size) the values are also copied into it (the
    worker's load); without, nothing of the data is kept. Constancy — every row the same
    vector — is decided without holding a row: in C order each row's bytes are hashed and
    compared with the first row's hash; in Fortran order each column must be one repeated value.
    """

    def __init__(self, shape: tuple[int, int], dtype: str, fortran: bool, out: np.ndarray | None = None):
        self.n_rows, self.n_cols = shape
        self.dtype = np.dtype(dtype)
        self.fortran, self.out = fortran, out
        self.k = 0  # values seen
        self.bad = 0
        self.carry = b""
        self.varies = self.n_rows <= 1
        self.row_bytes = self.n_cols * self.dtype.itemsize
        self._h, self._pos, self._first = hashlib.blake2b(digest_size=16), 0, None
        self._last = None
        self.first_value, self.row0_any = 0.0, False

    def feed(self, chunk: bytes) -> None:
        data = self.carry + chunk if self.carry else chunk
        usable = len(data) - len(data) % self.dtype.itemsize
        self.carry = data[usable:]
        if not usable:
            return
        v = np.frombuffer(data, self.dtype, count=usable // self.dtype.itemsize)
        if self.out is not None:
            self.out[self.k:self.k + v.size] = v
        self.bad += v.size - int(np.count_nonzero(np.isfinite(v)))
        if self.k == 0:
            self.first_value = float(v[0])
        row0 = v[(-self.k) % self.n_rows::self.n_rows] if self.fortran else v[:max(self.n_cols - self.k, 0)]
        self.row0_any = self.row0_any or bool(np.any(row0))
        if not self.varies:
            self._vary_f(v) if self.fortran else self._vary_c(memoryview(data)[:usable])
        self.k += v.size

    def _vary_c(self, mv: memoryview) -> None:
        off = 0
        while off < len(mv) and not self.varies:
            take = min(self.row_bytes - self._pos, len(mv) - off)
            self._h.update(mv[off:off + take])
            off += take
            self._pos += take
            if self._pos == self.row_bytes:
                d = self._h.digest()
                self._h, self._pos = hashlib.blake2b(digest_size=16), 0
                if self._first is None:
                    self._first = d
                elif d != self._first:
                    self.varies = True

    def _vary_f(self, v: np.ndarray) -> None:
        # each column is n_rows consecutive values: constant rows <=> every column repeats one value
        starts = (self.k + np.arange(1, v.size)) % self.n_rows == 0
        if np.any((v[1:] != v[:-1]) & ~starts) or (self._last is not None and self.k % self.n_rows and v[0] != self._last):
            self.varies = True
        self._last = v[-1]

    def check(self, name: str) -> None:
        if self.bad:
            raise BundleError(f"layer {name!r}: {self.bad} NaN/inf value(s)")
        if not self.varies:
            raise _constant_layer_error(name, self.n_rows, not self.row0_any, self.first_value)


def _read_layer(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: Limits, *, name: str,
                shape: list[int], dtype: str, sha256, load: bool) -> np.ndarray | None:
    """Stream one layer member: header, then its data in chunks (hash, size, dtype, shape, finiteness, constancy).

    Returns the array when ``load`` (allocated once at its final size), else None; peak extra
    memory without ``load`` is a few chunks, whatever the layer's size.
    """
    fname = info.filename
    if fname.endswith(".npy"):
        parse = _parse_npy
    elif fname.endswith(".safetensors"):
        parse = _parse_safetensors
    else:
        raise BundleError(f"layer {name!r}: file {fname!r} must be .npy or .safetensors")
    with _MemberStream(zf, info, budget, limits) as s:
        got_shape, fortran, got_dtype = parse(s, fname)
        if got_dtype != dtype:
            raise BundleError(f"layer {name!r}: array is {got_dtype} but the manifest declares {dtype}")
        if list(got_shape) != list(shape):
            raise BundleError(f"layer {name!r}: array shape {list(got_shape)} differs from the declared {list(shape)}")
        nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
        if info.file_size - s.n != nbytes:
            raise BundleError(f"{fname}: cannot read the array: it holds {info.file_size - s.n} data bytes, "
                              f"{shape} {dtype} needs {nbytes}")
        out = np.empty(shape[0] * shape[1], dtype) if load else None
        values = _Values((shape[0], shape[1]), dtype, fortran, out)
        while chunk := s.read(_CHUNK):
            values.feed(chunk)
        digest = s.finish()
    if sha256 != digest:
        raise BundleError(f"layer {name!r}: sha256 of {fname!r} does not match the manifest (corrupt upload?)")
    values.check(name)
    if out is None:
        return None
    return out.reshape(shape, order="F" if fortran else "C")


def _load_manifest_bytes(zf: zipfile.ZipFile, infos: dict, budget, limits: Limits) -> dict:
    if "manifest.json" not in infos:
        raise BundleError("the bundle has no manifest.json at its top level")
    info = infos["manifest.json"]
    if info.file_size > limits.max_manifest:
        raise BundleError(f"manifest.json is larger than {limits.max_manifest} bytes")
    raw = _read_member(zf, info, budget, limits)
    try:
        man = loads_json(raw, what="manifest.json")
    except SchemaError as exc:
        raise BundleError(str(exc)) from None
    if not isinstance(man, dict):
        raise BundleError("manifest.json must hold a JSON object")
    if man.get("format") != FORMAT:
        raise BundleError(f"manifest.json format must be {FORMAT!r}, got {man.get('format')!r}")
    if man.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"unsupported bundle format_version {man.get('format_version')!r} (this brainlid reads {FORMAT_VERSION})")
    for key, typ in (("benchmarks", list), ("stimulus_ids", list), ("layers", list), ("metadata", dict)):
        if not isinstance(man.get(key), typ):
            raise BundleError(f"manifest.json: {key!r} must be a JSON {typ.__name__}")
    if not man["benchmarks"] or not all(isinstance(b, str) for b in man["benchmarks"]):
        raise BundleError("manifest.json: 'benchmarks' must be a non-empty list of benchmark ids")
    if len(man["benchmarks"]) > limits.max_layers:
        raise BundleError(f"manifest.json: too many benchmarks ({len(man['benchmarks'])} > {limits.max_layers})")
    try:
        for i, b in enumerate(man["benchmarks"]):
            check_text(b, f"benchmarks[{i}]", max_len=MAX_NAME)
        for i, lay in enumerate(man["layers"]):
            if isinstance(lay, dict):
                check_text(lay.get("name"), f"layers[{i}].name", max_len=MAX_NAME)
    except SchemaError as exc:
        raise BundleError(f"manifest.json: {exc}") from None
    if not man["layers"]:
        raise BundleError("manifest.json: 'layers' is empty")
    if len(man["layers"]) > limits.max_layers:
        raise BundleError(f"too many layers ({len(man['layers'])} > {limits.max_layers})")
    return man


def read_manifest(path: str | os.PathLike, limits: Limits | None = None) -> dict:
    """Read and structurally check a bundle's ``manifest.json`` (no arrays are read)."""
    limits = limits or Limits()
    with _open_zip(path, limits) as (zf, infos):
        return _load_manifest_bytes(zf, infos, [0], limits)


class _open_zip:
    def __init__(self, path, limits: Limits):
        self.path, self.limits = Path(path), limits

    def __enter__(self):
        size = self.path.stat().st_size
        if size > self.limits.max_upload:
            raise BundleError(f"bundle is {size} bytes, over the upload limit of {self.limits.max_upload}")
        try:
            self.zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(f"not a zip file: {exc}") from None
        infos: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in self.zf.infolist():
            _check_member_name(info.filename)
            if info.is_dir():
                continue
            if info.filename in infos:
                raise BundleError(f"archive member {info.filename!r} appears twice")
            if info.flag_bits & 0x1:
                raise BundleError(f"archive member {info.filename!r} is encrypted")
            total += info.file_size
            if total > self.limits.max_unpacked:
                raise BundleError(f"bundle declares more than {self.limits.max_unpacked} unpacked bytes (zip bomb?)")
            if info.file_size > 1 << 16 and info.file_size > self.limits.max_ratio * max(info.compress_size, 1):
                raise BundleError(f"archive member {info.filename!r} has a compression ratio over {self.limits.max_ratio:g} (zip bomb?)")
            infos[info.filename] = info
        return self.zf, infos

    def __exit__(self, *exc):
        self.zf.close()
        return False


def validate_bundle(
    path: str | os.PathLike,
    *,
    limits: Limits | None = None,
    known_benchmark: Callable[[str], object] | None = None,
    published_ids: Callable[[str], np.ndarray | None] | None = None,
    load: bool = True,
) -> Bundle:
    """Validate a bundle file and return its arrays; raise :class:`BundleError` with the reason.

    Each array member is streamed in chunks of :data:`_CHUNK` bytes straight from the zip
    (header, then data: SHA-256, size, dtype, shape, NaN/inf, constancy), so validating without
    ``load`` takes a few MiB whatever the bundle's size; with ``load`` each layer is allocated
    once at its final size and filled from the stream.

    Parameters
    ----------
    path : path to the zip
    limits : :class:`Limits`
    known_benchmark : callable id → anything, raising on an unknown id
        Default :func:`brainlid.scoring.benchmarks.get_benchmark`.
    published_ids : callable id → ndarray or None
        The benchmark's published stimulus ids in the required order (None: not checked, e.g.
        the dataset is absent). The bundle's ids must equal them element by element.
    load : bool
        Return the arrays in ``Bundle.features`` (the worker, ``submit check``); False checks
        them without keeping them (the upload handler): ``features`` is then empty and
        ``Bundle.layers`` still gives each layer's shape and dtype.
    """
    limits = limits or Limits()
    if known_benchmark is None:
        from ..scoring.benchmarks import get_benchmark as known_benchmark
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    budget = [0]
    with _open_zip(path, limits) as (zf, infos):
        man = _load_manifest_bytes(zf, infos, budget, limits)
        md = _clean_metadata(man["metadata"])
        for b in man["benchmarks"]:
            try:
                known_benchmark(b)
            except InputError as exc:
                raise BundleError(str(exc)) from None
        if len(set(man["benchmarks"])) != len(man["benchmarks"]):
            raise BundleError("manifest.json: a benchmark is listed twice")
        try:
            ids = check_stimulus_ids(man["stimulus_ids"])
        except SchemaError as exc:
            raise BundleError(f"manifest.json: {exc}") from None
        listed = {"manifest.json"}
        features: dict[str, np.ndarray] = {}
        layers: dict[str, tuple[tuple[int, int], str]] = {}
        for i, lay in enumerate(man["layers"]):
            if not isinstance(lay, dict):
                raise BundleError(f"manifest.json: layers[{i}] must be an object")
            name, fname = lay.get("name"), lay.get("file")
            if not isinstance(name, str) or not name or len(name) > 200:
                raise BundleError(f"manifest.json: layers[{i}].name must be a non-empty string (≤ 200 characters)")
            if name in layers:
                raise BundleError(f"manifest.json: layer {name!r} is listed twice")
            if not isinstance(fname, str):
                raise BundleError(f"manifest.json: layers[{i}].file must be a string")
            _check_member_name(fname)
            if fname not in infos:
                raise BundleError(f"layer {name!r}: file {fname!r} is not in the archive")
            if fname in listed:
                raise BundleError(f"layer {name!r}: file {fname!r} is used twice")
            listed.add(fname)
            dtype = lay.get("dtype")
            if dtype not in ALLOWED_DTYPES:
                raise BundleError(f"layer {name!r}: declared dtype {dtype!r} is not one of {ALLOWED_DTYPES}")
            shape = lay.get("shape")
            if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) and s > 0 for s in shape)):
                raise BundleError(f"layer {name!r}: declared shape must be [n_stimuli, n_features], got {shape!r}")
            if shape[0] != ids.size:
                raise BundleError(f"layer {name!r}: declared {shape[0]} rows but the manifest lists {ids.size} stimulus ids")
            if shape[0] * shape[1] * np.dtype(dtype).itemsize > limits.max_layer_bytes:
                raise BundleError(f"layer {name!r}: {shape} {dtype} is larger than the per-layer limit of {limits.max_layer_bytes} bytes")
            if infos[fname].file_size > limits.max_layer_bytes + 4096:
                raise BundleError(f"layer {name!r}: file {fname!r} is larger than the per-layer limit")
            X = _read_layer(zf, infos[fname], budget, limits, name=name, shape=shape, dtype=dtype,
                            sha256=lay.get("sha256"), load=load)
            layers[name] = (tuple(shape), dtype)
            if load:
                features[name] = X
        extra = sorted(set(infos) - listed)
        if extra:
            raise BundleError(f"archive has member(s) not listed in the manifest: {extra[:5]}")
    if published_ids is not None:
        for b in man["benchmarks"]:
            want = published_ids(b)
            if want is None:
                continue
            _check_ids(ids, np.asarray(want), b)
    return Bundle(manifest=man, benchmarks=list(man["benchmarks"]), stimulus_ids=ids, features=features,
                  metadata=md, sha256=h.hexdigest(), layers=layers)


def _constant_layer_error(name: str, n_rows: int, all_zero: bool, first_value: float) -> BundleError:
    """A layer whose rows are all the same vector (e.g. all zeros) says nothing about the stimuli.

    Scoring it would only fail later with a message about "identical points"; :class:`_Values`
    detects it while streaming.
    """
    what = "all values are 0" if all_zero else f"first value {first_value:g}"
    return BundleError(f"layer {visible(name)!r} is constant: all {n_rows} rows are the same vector ({what}); such "
                       "features carry no information about the stimuli (their encoding r and LID are undefined)")


def _check_ids(got: np.ndarray, want: np.ndarray, bench: str) -> None:
    try:
        check_ids_kind(got, want, bench)
    except SchemaError as exc:
        raise BundleError(str(exc)) from None
    g = got.astype(str)
    w = want.astype(str)
    if g.size != w.size or set(g.tolist()) != set(w.tolist()):
        missing = np.setdiff1d(w, g)
        extra = np.setdiff1d(g, w)
        raise BundleError(
            f"stimulus ids differ from benchmark {bench}'s published stimulus set ({w.size} ids): "
            f"{missing.size} missing (e.g. {missing[:3].tolist()}), {extra.size} unexpected (e.g. {extra[:3].tolist()})"
        )
    if not np.array_equal(g, w):
        first = int(np.nonzero(g != w)[0][0])
        raise BundleError(
            f"stimulus ids are in the wrong order for benchmark {bench}: position {first} holds {str(g[first])!r}, "
            f"expected {str(w[first])!r} (use the published order)"
        )
