"""Reading a bundle's zip archive in bounded memory: the checks below the manifest.

One topic: what :func:`brainlid.leaderboard.bundle.validate_bundle` needs to read an untrusted
zip without extracting it — member names (:func:`check_member_name`), the archive's declared
sizes (:class:`open_zip`), members streamed in chunks of :data:`CHUNK` bytes with their actual
sizes, SHA-256 and pickle magic checked as they arrive (:class:`MemberStream`), and one layer
array read from its ``.npy`` or safetensors header and data (:func:`read_layer`: dtype, shape,
NaN/inf, constant rows), kept or not. :class:`BundleError` and :class:`Limits` are defined here
and exported by :mod:`brainlid.leaderboard.bundle`.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .schema import visible

__all__ = ["BundleError", "Limits", "ALLOWED_DTYPES", "CHUNK", "check_member_name", "open_zip", "MemberStream",
           "read_member", "read_layer"]

#: Array dtypes a layer may have.
ALLOWED_DTYPES = ("float32", "float16")
#: Member suffixes of pickles and checkpoints, never accepted.
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




def check_member_name(name: str) -> None:
    """Refuse (:class:`BundleError`) a member name that is absolute, non-portable, has ``.``/``..`` parts,
    characters outside ``[A-Za-z0-9_-./]`` or a pickle/checkpoint suffix."""
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        raise BundleError(f"archive member {name!r} has an absolute or non-portable path")
    parts = name.split("/")  # PurePosixPath would drop '.' components before they are seen
    if any(p in ("..", ".") for p in parts) or "//" in name:
        raise BundleError(f"archive member {name!r} has a '..' (or '.') path component")
    if not _SAFE_NAME.match(name):
        raise BundleError(f"archive member {name!r} has characters outside [A-Za-z0-9_-./]")
    if name.lower().endswith(_PICKLE_SUFFIXES):
        raise BundleError(f"archive member {name!r} looks like a pickle/checkpoint; bundles hold .npy or .safetensors arrays only")


class MemberStream:
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
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            raise BundleError(f"archive member {info.filename!r} is corrupt or unsupported: {exc}") from None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (never unbounded), every check applied to them; ``b""`` at the end."""
        if size is None or size < 0:  # never unbounded: at most what the header declares, plus one byte to catch a liar
            size = max(self.info.file_size - self.n, 0) + 1
        try:
            chunk = self.fh.read(size)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
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
        """Close the member's stream."""
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: Limits) -> bytes:
    """A small member's whole content (the manifest), read through :class:`MemberStream`."""
    with MemberStream(zf, info, budget, limits) as s:
        chunks = []
        while chunk := s.read(CHUNK):
            chunks.append(chunk)
        s.finish()
    return b"".join(chunks)


#: Bytes read from an archive member at a time: the validation's working memory per member.
CHUNK = 1 << 20
#: safetensors dtype codes → NumPy dtype names (anything else is reported by its code).
_SAFETENSORS_DTYPES = {"F16": "float16", "F32": "float32", "F64": "float64", "BF16": "bfloat16", "I8": "int8",
                       "I16": "int16", "I32": "int32", "I64": "int64", "U8": "uint8", "BOOL": "bool"}


def _parse_npy(stream: MemberStream, name: str) -> tuple[tuple, bool, str]:
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


def _parse_safetensors(stream: MemberStream, name: str) -> tuple[tuple, bool, str]:
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


def read_layer(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: Limits, *, name: str,
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
    with MemberStream(zf, info, budget, limits) as s:
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
        while chunk := s.read(CHUNK):
            values.feed(chunk)
        digest = s.finish()
    if sha256 != digest:
        raise BundleError(f"layer {name!r}: sha256 of {fname!r} does not match the manifest (corrupt upload?)")
    values.check(name)
    if out is None:
        return None
    return out.reshape(shape, order="F" if fortran else "C")


class open_zip:
    """``with open_zip(path, limits) as (zf, infos)``: the archive with every member name and size checked
    (portable names, no duplicates, no encryption, declared unpacked size and compression ratio within
    ``limits``); ``infos`` maps member name → ``ZipInfo`` (directories left out)."""

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
            check_member_name(info.filename)
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


def _constant_layer_error(name: str, n_rows: int, all_zero: bool, first_value: float) -> BundleError:
    """A layer whose rows are all the same vector (e.g. all zeros) says nothing about the stimuli.

    Scoring it would only fail later with a message about "identical points"; :class:`_Values`
    detects it while streaming.
    """
    what = "all values are 0" if all_zero else f"first value {first_value:g}"
    return BundleError(f"layer {visible(name)!r} is constant: all {n_rows} rows are the same vector ({what}); such "
                       "features carry no information about the stimuli (their encoding r and LID are undefined)")
