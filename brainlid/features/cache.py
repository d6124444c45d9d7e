"""A content-addressed, crash-safe, resumable feature cache.

Key
    :func:`cache_key` hashes a canonical JSON of everything that changes a layer's features:
    model id, weights digest, code digest, preprocessing, layer name, pooling, reduction,
    compute and storage dtype, the stimulus set's content digest and a digest of its ids in
    order, and the brainlid version. Any change is a miss; two stimulus sets whose ids are both
    ``0 … N-1`` never share features because their image content differs. Batch size and
    device are not part of the key: batched kernels may round differently for another batch
    size (differences in the last bits, ~1e-7 relative), which the cache deliberately ignores;
    with the same batch size a resumed run is bit-identical to an uninterrupted one.

Layout (one entry per layer and key, under ``$BRAINLID_HOME/cache/features``)::

    <root>/<key[:2]>/<key>/
        meta.json       key components (written when the entry is created)
        data.npy        (n_stimuli, n_features) float32/float16, preallocated, written through a memmap
        done.bits       committed rows (packed bitmap), replaced atomically after each batch
        manifest.json   written last, atomically: shape, dtype, SHA-256 of data.npy, provenance
        lock            fcntl lock file (one writer at a time)

Crash safety
    Batches are committed by (1) writing their rows into the memmap, (2) ``msync`` of the memmap,
    (3) atomically replacing ``done.bits`` (temp file + fsync + rename). A ``kill -9`` at any
    point leaves either the old or the new bitmap, and every row marked done is on disk, so a
    rerun recomputes only rows not marked done. The extractor commits after a batch whenever
    the time since the last commit exceeds 50× the measured cost of a commit (so commits cost
    at most ~2 % of the run; on a fast disk that is every batch), and always when the run ends
    or fails with an exception; a ``kill -9`` loses at most the batches since the last commit. An entry is complete only when
    ``manifest.json`` exists; it is written after the data are flushed and hashed.
    Two processes computing the same key serialise on ``fcntl.flock``: the second waits, then
    finds the entry complete (or resumes it if the first died). Reads are memory-mapped
    (``np.load(mmap_mode="r", allow_pickle=False)``) after the SHA-256 is checked; a mismatch
    raises :class:`CorruptEntryError` and the extractor recomputes the entry with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_bytes, atomic_write_text
from ..config import cache_dir
from ..data.ids import ids_digest  # the one hash of a stimulus-id sequence, re-exported here
from ..errors import BrainlidError, InputError

__all__ = ["FeatureCache", "CacheEntry", "CorruptEntryError", "DiskBudgetError", "cache_key", "ids_digest", "parse_age", "parse_size", "fmt_size", "ensure_disk_budget", "EntryInfo"]

_BITS_MAGIC = b"BLDONE1\0"
_HASH_CHUNK = 1 << 22


class CorruptEntryError(BrainlidError):
    """A cache entry's data do not match the checksum in its manifest (or its files are unreadable)."""


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(components: dict) -> str:
    """SHA-256 hex digest of the canonical JSON of ``components`` (sorted keys)."""
    return hashlib.sha256(b"brainlid-features-key-v1\0" + _canonical(components).encode()).hexdigest()


def file_sha256(path) -> str:
    """SHA-256 hex digest of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_age(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text).lower())
    if not m:
        raise InputError(f"age must look like 30d, 12h, 90m, 45s or 2w; got {text!r}")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


@contextlib.contextmanager
def _flock(path: Path, blocking: bool = True):
    """Exclusive ``fcntl.flock`` on ``path`` (created if missing); yields True, or False if not blocking and busy.

    Retries when the lock file was replaced or removed while waiting (e.g. by ``cache clear``).
    """
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                yield False
                return
            raise
        try:
            st = os.fstat(fd)
            try:
                cur = os.stat(path)
                same = (cur.st_ino, cur.st_dev) == (st.st_ino, st.st_dev)
            except FileNotFoundError:
                same = False
            if not same:
                continue  # finally below closes fd; try again on the new file
            yield True
            return
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class CacheEntry:
    """One layer's features under one key: a resumable preallocated array plus a manifest."""

    def __init__(self, root: Path, key: str):
        self.key = key
        self.path = Path(root) / key[:2] / key
        self.data_path = self.path / "data.npy"
        self.bits_path = self.path / "done.bits"
        self.manifest_path = self.path / "manifest.json"
        self.meta_path = self.path / "meta.json"
        self.lock_path = self.path / "lock"
        self._mm = None
        self._done: np.ndarray | None = None

    # reading -------------------------------------------------------------------------------
    def is_complete(self) -> bool:
        """Whether the entry is complete: its ``manifest.json`` exists (written last)."""
        return self.manifest_path.is_file()

    def manifest(self) -> dict:
        """The entry's ``manifest.json`` (shape, dtype, SHA-256, provenance); unreadable → :class:`CorruptEntryError`."""
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise CorruptEntryError(f"cache entry {self.key[:12]}: unreadable manifest ({exc})") from exc

    def load(self, verify: bool = True) -> np.ndarray:
        """The stored array, memory-mapped read-only; ``verify`` checks the SHA-256 first."""
        man = self.manifest()
        try:
            if verify and file_sha256(self.data_path) != man.get("sha256"):
                raise CorruptEntryError(f"cache entry {self.key[:12]} ({man.get('layer')}): checksum mismatch")
            arr = np.load(self.data_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CorruptEntryError(f"cache entry {self.key[:12]}: cannot read data ({exc})") from exc
        if list(arr.shape) != list(man.get("shape", [])) or str(arr.dtype) != man.get("dtype"):
            raise CorruptEntryError(f"cache entry {self.key[:12]}: data shape/dtype {arr.shape}/{arr.dtype} differ from the manifest")
        return arr

    # writing (call under lock()) --------------------------------------------------------------
    def lock(self, blocking: bool = True):
        """A context manager holding the entry's ``fcntl`` lock (one writer at a time)."""
        return _flock(self.lock_path, blocking)

    def discard(self) -> None:
        """Remove data, bitmap and manifest (keeps the lock file so waiting writers stay valid)."""
        self.close()
        for p in (self.manifest_path, self.bits_path, self.data_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def open_write(self, shape: tuple[int, int], dtype: str, meta: dict) -> np.ndarray:
        """Open (or create) the preallocated array; returns the boolean mask of committed rows."""
        self.path.mkdir(parents=True, exist_ok=True)
        dtype = np.dtype(dtype)
        mm = None
        if self.data_path.is_file():
            try:
                mm = np.load(self.data_path, mmap_mode="r+", allow_pickle=False)
                if mm.shape != tuple(shape) or mm.dtype != dtype:
                    mm = None
            except (OSError, ValueError):
                mm = None
        done = self._read_bits(shape[0]) if mm is not None else None
        if mm is None:
            with contextlib.suppress(FileNotFoundError):
                self.bits_path.unlink()
            with atomic_path(self.data_path) as tmp:
                np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape)).flush()
            mm = np.load(self.data_path, mmap_mode="r+", allow_pickle=False)
            done = np.zeros(shape[0], dtype=bool)
            atomic_write_text(self.meta_path, json.dumps(meta, indent=1, sort_keys=True, default=str))
        elif done is None:
            done = np.zeros(shape[0], dtype=bool)
        if not self.meta_path.is_file():  # a crash between creating data.npy and meta.json
            atomic_write_text(self.meta_path, json.dumps(meta, indent=1, sort_keys=True, default=str))
        self._mm, self._done = mm, done
        return done.copy()

    def _read_bits(self, n: int) -> np.ndarray | None:
        try:
            raw = self.bits_path.read_bytes()
        except FileNotFoundError:
            return np.zeros(n, dtype=bool)
        if not raw.startswith(_BITS_MAGIC) or len(raw) < len(_BITS_MAGIC) + 8:
            return None
        m = int(np.frombuffer(raw[len(_BITS_MAGIC) : len(_BITS_MAGIC) + 8], dtype="<u8")[0])
        bits = np.frombuffer(raw[len(_BITS_MAGIC) + 8 :], dtype=np.uint8)
        if m != n or bits.size != (n + 7) // 8:
            return None
        return np.unpackbits(bits, count=n).astype(bool)

    def write_rows(self, start: int, X: np.ndarray) -> None:
        """Write ``X (n_rows, n_features)`` into the open data memmap from row ``start`` (not yet marked done)."""
        self._mm[start : start + X.shape[0]] = X

    def mark(self, start: int, stop: int) -> None:
        """Note rows ``start:stop`` as written (in memory only; :meth:`persist` makes it durable)."""
        self._done[start:stop] = True

    def persist(self) -> None:
        """Make every marked row durable: msync the data, then replace the bitmap atomically."""
        self._mm.flush()
        n = self._done.size
        atomic_write_bytes(self.bits_path, _BITS_MAGIC + np.uint64(n).astype("<u8").tobytes() + np.packbits(self._done).tobytes())

    def commit(self, start: int, stop: int) -> None:
        """:meth:`mark` rows ``start:stop`` and :meth:`persist`."""
        self.mark(start, stop)
        self.persist()

    def finalize(self, manifest: dict) -> None:
        """All rows done: hash the data and write the manifest (the entry becomes complete)."""
        if self._done is None or not self._done.all():
            raise BrainlidError(f"cache entry {self.key[:12]} is not fully computed")
        self._mm.flush()
        shape, dtype = list(self._mm.shape), str(self._mm.dtype)
        self.close()
        with open(self.data_path, "rb+") as fh:
            os.fsync(fh.fileno())
        man = dict(manifest)
        man.update(key=self.key, shape=shape, dtype=dtype, sha256=file_sha256(self.data_path), created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), bytes=self.data_path.stat().st_size)
        atomic_write_text(self.manifest_path, json.dumps(man, indent=1, sort_keys=True, default=str))
        with contextlib.suppress(FileNotFoundError):
            self.bits_path.unlink()

    def write_complete(self, X: np.ndarray, manifest: dict, meta: dict) -> None:
        """Store a whole array at once (derived entries, e.g. PCA-reduced features)."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.meta_path, json.dumps(meta, indent=1, sort_keys=True, default=str))
        with atomic_path(self.data_path) as tmp:
            np.save(tmp, np.ascontiguousarray(X), allow_pickle=False)
        self._mm = np.load(self.data_path, mmap_mode="r", allow_pickle=False)
        self._done = np.ones(X.shape[0], dtype=bool)
        self.finalize(manifest)

    def close(self) -> None:
        """Release the data memmap opened for writing."""
        if self._mm is not None:
            del self._mm
        self._mm = None


@dataclass
class EntryInfo:
    """One cache entry as listed by :meth:`FeatureCache.entries`: key, folder, model, layer, shape, dtype, bytes, dates."""

    key: str
    path: Path
    model: str
    layer: str
    n: int
    n_features: int
    dtype: str
    size: int
    created: str
    complete: bool
    mtime: float


class FeatureCache:
    """The feature cache under ``root`` (default ``$BRAINLID_HOME/cache/features``)."""

    def __init__(self, root=None):
        self.root = Path(root).expanduser() if root is not None else cache_dir("features")
        self.root.mkdir(parents=True, exist_ok=True)

    def entry(self, key: str) -> CacheEntry:
        """The :class:`CacheEntry` of a 64-hex-digit ``key`` (it need not exist yet)."""
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise InputError(f"not a cache key: {key!r}")
        return CacheEntry(self.root, key)

    def _entry_dirs(self):
        for sub in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if sub.is_dir() and len(sub.name) == 2:
                for d in sorted(sub.iterdir()):
                    if d.is_dir() and re.fullmatch(r"[0-9a-f]{64}", d.name):
                        yield d

    def entries(self) -> list[EntryInfo]:
        """Every entry (complete or partial) with model, layer, shape, size and date."""
        out = []
        for d in self._entry_dirs():
            e = CacheEntry(self.root, d.name)
            info = {}
            for p in (e.manifest_path, e.meta_path):
                with contextlib.suppress(OSError, ValueError):
                    info = json.loads(p.read_text())
                    break
            size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            mtime = max((f.stat().st_mtime for f in d.iterdir() if f.is_file()), default=d.stat().st_mtime)
            shape = info.get("shape") or [info.get("n", 0), info.get("n_features", 0)]
            out.append(EntryInfo(
                key=d.name, path=d, model=str(info.get("model_id", "?")), layer=str(info.get("layer", "?")),
                n=int(shape[0] or 0), n_features=int(shape[1] or 0), dtype=str(info.get("dtype", info.get("storage_dtype", "?"))),
                size=size, created=str(info.get("created") or _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).isoformat(timespec="seconds")),
                complete=e.is_complete(), mtime=mtime,
            ))
        return out

    def clear(self, older_than: float | str | None = None, model: str | None = None, now: float | None = None) -> list[EntryInfo]:
        """Delete entries (all, or those older than ``older_than`` and/or whose model id contains ``model``).

        Entries being written by another process (locked) are skipped. Returns the removed entries.
        """
        age = parse_age(older_than) if isinstance(older_than, str) else older_than
        now = time.time() if now is None else now
        removed = []
        for info in self.entries():
            if age is not None and now - info.mtime < age:
                continue
            if model is not None and model not in info.model:
                continue
            e = CacheEntry(self.root, info.key)
            with e.lock(blocking=False) as got:
                if not got:
                    continue
                tomb = info.path.with_name(f".del-{info.key}-{os.getpid()}")
                os.replace(info.path, tomb)  # atomic disappearance, then delete
                shutil.rmtree(tomb, ignore_errors=True)
                removed.append(info)
        for sub in list(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                with contextlib.suppress(OSError):
                    sub.rmdir()
        return removed


def parse_size(text) -> int:
    """``"10GB"``, ``"500MiB"``, ``"2G"``, ``123`` → bytes."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", str(text).lower())
    if not m:
        raise InputError(f"size must look like 500MB, 10GB or a number of bytes; got {text!r}")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * mult)


def fmt_size(n: float) -> str:
    """A byte count for people: ``512`` → ``"512 B"``, ``3_500_000`` → ``"3.3 MiB"`` (binary units, up to TiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class DiskBudgetError(InputError):
    """The features would take more disk space than the budget allows."""


def ensure_disk_budget(needed: int, folder: Path, max_disk=None, margin: int = 1 << 30) -> int:
    """Raise :class:`DiskBudgetError` when ``needed`` bytes exceed the budget.

    The budget is ``max_disk`` (bytes or ``"10GB"``) when given, else the free space of
    ``folder`` minus ``margin`` (1 GiB). Returns the budget in bytes.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    budget = parse_size(max_disk) if max_disk is not None else max(0, free - margin)
    if needed > budget:
        how = f"--max-disk / max_disk={fmt_size(budget)}" if max_disk is not None else f"free space on {probe} ({fmt_size(free)}) minus a {fmt_size(margin)} margin"
        raise DiskBudgetError(
            f"the features need about {fmt_size(needed)} on disk but the budget is {fmt_size(budget)} ({how}); "
            "reduce them (pooling, reduce='srp:K'), free space, or raise the budget"
        )
    return budget

