"""Stimulus sets: ids, metadata, a content digest, and lazy image access.

A :class:`StimulusSet` never holds all images in memory: it holds a *reader*
that fetches images by position on demand (a numpy array, image files, or a
slice of an HDF5 dataset such as NSD's ``imgBrick``). Its :attr:`~StimulusSet.digest`
identifies the content (the ids in order *and* the images' bytes, or an identity
the dataset provides), so two stimulus sets that share id numbers never collide
in a feature cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetNotFoundError, FileFormatError, InputError
from .ids import as_ids, ids_bytes, positions_of

__all__ = ["ImageReader", "ArrayReader", "FileReader", "HDF5Reader", "StimulusSet", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_DIGEST_VERSION = b"brainlid-stimuli-v1"


class ImageReader:
    """Reads images by position. Subclasses implement :meth:`read`, :meth:`__len__` and :meth:`identity`.

    ``read(i)`` returns one image as a numpy array, ``(H, W)`` or ``(H, W, C)``,
    uint8 for image files (RGB order) or the stored dtype for arrays.
    """

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, i: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """Read several images (subclasses may batch the I/O)."""
        return [self.read(int(i)) for i in positions]

    def identity(self) -> bytes:  # pragma: no cover - abstract
        """Bytes that identify the content this reader serves (hashed into the stimulus set's digest)."""
        raise NotImplementedError

    def subset(self, positions: np.ndarray) -> "ImageReader":
        """A reader over the given positions only."""
        return _SubsetReader(self, np.asarray(positions, dtype=np.int64))

    def describe(self) -> str:
        return type(self).__name__


class _SubsetReader(ImageReader):
    def __init__(self, parent: ImageReader, positions: np.ndarray):
        self.parent, self.positions = parent, positions

    def __len__(self):
        return int(self.positions.size)

    def read(self, i):
        return self.parent.read(int(self.positions[i]))

    def read_many(self, positions):
        return self.parent.read_many(self.positions[np.asarray(positions, dtype=np.int64)])

    def identity(self):
        return b"subset:" + hashlib.sha256(self.parent.identity() + self.positions.tobytes()).digest()

    def subset(self, positions):
        return _SubsetReader(self.parent, self.positions[np.asarray(positions, dtype=np.int64)])

    def describe(self):
        return f"{self.parent.describe()}[{self.positions.size} selected]"


class ArrayReader(ImageReader):
    """Images held in an array of shape ``(n, H, W)`` or ``(n, H, W, C)`` (any numeric dtype)."""

    def __init__(self, images: np.ndarray):
        images = np.asarray(images)
        if images.ndim not in (3, 4):
            raise InputError(f"images must have shape (n, H, W) or (n, H, W, C), got {images.shape}")
        if images.dtype.kind not in "uif" or images.dtype.kind == "b":
            raise InputError(f"images must be numeric, got dtype {images.dtype}")
        self.images = images
        self._identity: bytes | None = None

    def __len__(self):
        return int(self.images.shape[0])

    def read(self, i):
        return self.images[i]

    def read_many(self, positions):
        return list(self.images[np.asarray(positions, dtype=np.int64)])

    def identity(self):
        if self._identity is None:
            h = hashlib.sha256(f"array:{self.images.dtype.str}:{self.images.shape}".encode())
            h.update(np.ascontiguousarray(self.images).data)
            self._identity = h.digest()
        return self._identity


class FileReader(ImageReader):
    """Images stored as files (PNG, JPEG, ...), decoded with Pillow to RGB uint8 ``(H, W, 3)``."""

    def __init__(self, paths: Sequence[str | os.PathLike], mode: str = "RGB"):
        self.paths = [Path(p) for p in paths]
        self.mode = mode
        self._identity: bytes | None = None

    def __len__(self):
        return len(self.paths)

    def read(self, i):
        path = self.paths[i]
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert(self.mode))
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(f"image file not found: {path}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise FileFormatError(f"cannot read image {path}: {exc}") from exc

    def identity(self):
        """SHA-256 over every file's bytes (computed once; streaming, not loading all files)."""
        if self._identity is None:
            h = hashlib.sha256(f"files:{self.mode}:{len(self.paths)}".encode())
            for p in self.paths:
                try:
                    with open(p, "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            h.update(chunk)
                except FileNotFoundError as exc:
                    raise DatasetNotFoundError(f"image file not found: {p}") from exc
                h.update(b"\0")
            self._identity = h.digest()
        return self._identity

    def describe(self):
        return f"FileReader({len(self.paths)} files under {os.path.commonpath([str(p) for p in self.paths]) if self.paths else '-'})"


class HDF5Reader(ImageReader):
    """Images as rows of an HDF5 dataset, e.g. NSD's ``imgBrick`` ``(73000, 425, 425, 3)`` uint8.

    Only the requested rows are read (h5py selection), never the whole dataset.

    Parameters
    ----------
    path : path-like
        The HDF5 file.
    key : str
        Dataset name inside the file (e.g. ``"imgBrick"``).
    rows : array-like of int or None
        Row of the dataset for each position (default: all rows in order).
    identity : str or None
        A dataset-provided identity (e.g. ``"nsd:nsd_stimuli.hdf5:imgBrick"``) used instead of hashing
        the selected rows' bytes. Hashing is exact but reads every selected image once.
    """

    def __init__(self, path, key: str, rows=None, identity: str | None = None):
        self.path, self.key = Path(path), key
        if not self.path.exists():
            raise DatasetNotFoundError(f"HDF5 image file not found: {self.path}")
        try:
            with h5py.File(self.path, "r") as f:
                if key not in f:
                    raise FileFormatError(f"{self.path} has no dataset {key!r} (has: {', '.join(list(f.keys())[:10])})")
                self.shape = f[key].shape
        except OSError as exc:
            raise FileFormatError(f"cannot open HDF5 file {self.path}: {exc}") from exc
        n = self.shape[0]
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= n):
            raise InputError(f"rows out of range for {self.path}:{key} with {n} rows")
        self._given_identity = identity
        self._identity: bytes | None = None
        self._file = None

    def __getstate__(self):  # h5py handles do not pickle (DataLoader workers)
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def _dataset(self):
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file[self.key]

    def __len__(self):
        return int(self.rows.size)

    def read(self, i):
        return self._dataset()[int(self.rows[i])]

    def read_many(self, positions):
        rows = self.rows[np.asarray(positions, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")
        uniq, inverse = np.unique(rows[order], return_inverse=True)
        block = self._dataset()[uniq]  # h5py needs increasing indices
        out = [None] * rows.size
        for j, pos in enumerate(order):
            out[pos] = block[inverse[j]]
        return out

    def identity(self):
        if self._identity is None:
            if self._given_identity is not None:
                h = hashlib.sha256(f"hdf5-identity:{self._given_identity}:{self.shape}".encode())
                h.update(self.rows.tobytes())
            else:
                h = hashlib.sha256(f"hdf5:{self.key}:{self.shape}".encode())
                for start in range(0, self.rows.size, 256):
                    for img in self.read_many(np.arange(start, min(start + 256, self.rows.size))):
                        h.update(np.ascontiguousarray(img).data)
            self._identity = h.digest()
        return self._identity

    def subset(self, positions):
        return HDF5Reader(self.path, self.key, self.rows[np.asarray(positions, dtype=np.int64)], self._given_identity)

    def describe(self):
        return f"HDF5Reader({self.path.name}:{self.key}, {self.rows.size} rows)"


@dataclass
class StimulusSet:
    """An ordered set of stimuli: ids, metadata, and lazy image access.

    Attributes
    ----------
    ids : ndarray of shape (n_stimuli,)
        Unique stimulus ids (int64 or str), the key every join uses.
    metadata : pandas.DataFrame
        One row per stimulus, in the order of ``ids`` (e.g. category, split, file name).
    reader : ImageReader or None
        Serves image ``i`` (position, not id) on demand; ``None`` for a set without images.
    name : str
        A short name for messages and provenance (e.g. ``"nsd-subj01-shared1000"``).
    """

    ids: np.ndarray
    metadata: pd.DataFrame = field(default=None)
    reader: ImageReader | None = None
    name: str = "stimuli"

    def __post_init__(self):
        self.ids = as_ids(self.ids)
        if self.metadata is None:
            self.metadata = pd.DataFrame(index=pd.RangeIndex(self.ids.size))
        if not isinstance(self.metadata, pd.DataFrame):
            raise InputError("metadata must be a pandas DataFrame")
        if len(self.metadata) != self.ids.size:
            raise InputError(f"metadata has {len(self.metadata)} rows for {self.ids.size} stimulus ids")
        self.metadata = self.metadata.reset_index(drop=True)
        if self.reader is not None and len(self.reader) != self.ids.size:
            raise InputError(f"the image reader serves {len(self.reader)} images for {self.ids.size} stimulus ids")
        self._digest: str | None = None

    # construction -------------------------------------------------------------------------------
    @classmethod
    def from_array(cls, images, ids=None, metadata=None, name: str = "array") -> "StimulusSet":
        """Stimuli from an in-memory array ``(n, H, W[, C])``; ids default to ``0 … n-1``."""
        reader = ArrayReader(images)
        ids = np.arange(len(reader)) if ids is None else ids
        return cls(ids=ids, metadata=metadata, reader=reader, name=name)

    @classmethod
    def from_files(cls, paths, ids=None, metadata=None, name: str = "files") -> "StimulusSet":
        """Stimuli from image files; ids default to the file stems."""
        paths = [Path(p) for p in paths]
        ids = [p.stem for p in paths] if ids is None else ids
        return cls(ids=ids, metadata=metadata, reader=FileReader(paths), name=name)

    @classmethod
    def from_folder(cls, folder, pattern: str = "**/*", name: str | None = None) -> "StimulusSet":
        """Every image file below ``folder`` (sorted by relative path); ids are the file stems.

        Metadata gets ``path`` (relative) and ``folder`` (the immediate parent folder, e.g. a THINGS concept).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetNotFoundError(f"image folder not found: {folder}")
        paths = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise DatasetNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
        meta = pd.DataFrame({"path": [str(p.relative_to(folder)) for p in paths], "folder": [p.parent.name for p in paths]})
        return cls.from_files(paths, metadata=meta, name=name or folder.name)

    @classmethod
    def from_hdf5(cls, path, key: str, rows=None, ids=None, metadata=None, identity: str | None = None, name: str = "hdf5") -> "StimulusSet":
        """Stimuli as rows of an HDF5 dataset; ids default to the row numbers."""
        reader = HDF5Reader(path, key, rows=rows, identity=identity)
        ids = reader.rows if ids is None else ids
        return cls(ids=ids, metadata=metadata, reader=reader, name=name)

    # access -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def has_images(self) -> bool:
        return self.reader is not None

    def _need_reader(self) -> ImageReader:
        if self.reader is None:
            raise InputError(f"stimulus set {self.name!r} has no images (reader is None)")
        return self.reader

    def image(self, i: int) -> np.ndarray:
        """Image at position ``i``."""
        return self._need_reader().read(int(i))

    def images(self, positions: Sequence[int] | None = None) -> list[np.ndarray]:
        """Images at the given positions (default all: mind the memory)."""
        positions = np.arange(len(self)) if positions is None else positions
        return self._need_reader().read_many(positions)

    def positions_of(self, ids) -> np.ndarray:
        """Positions of ``ids`` in this set (error naming any id not found)."""
        return positions_of(self.ids, as_ids(ids, "requested ids"), where=f"stimulus set {self.name!r}",
                            names=(self.name, "requested"))

    def subset(self, ids=None, positions=None, name: str | None = None) -> "StimulusSet":
        """A new set restricted to ``ids`` (in that order) or to ``positions``."""
        if (ids is None) == (positions is None):
            raise InputError("pass exactly one of ids= or positions=")
        pos = self.positions_of(ids) if ids is not None else np.asarray(positions, dtype=np.int64)
        reader = self.reader.subset(pos) if self.reader is not None else None
        return StimulusSet(self.ids[pos], self.metadata.iloc[pos].reset_index(drop=True), reader, name or self.name)

    # identity -----------------------------------------------------------------------------------
    @property
    def digest(self) -> str:
        """SHA-256 hex digest of the ids in order (:func:`~brainlid.data.ids.ids_bytes`) and of the reader's content identity."""
        if self._digest is None:
            h = hashlib.sha256(_DIGEST_VERSION)
            h.update(ids_bytes(self.ids))
            h.update(b"\x1e")
            h.update(self.reader.identity() if self.reader is not None else b"no-images")
            self._digest = h.hexdigest()
        return self._digest

    def __repr__(self) -> str:
        src = self.reader.describe() if self.reader is not None else "no images"
        return f"StimulusSet({self.name!r}, n={len(self)}, {src})"
