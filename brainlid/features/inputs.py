"""Stimuli for extraction: any source as a :class:`~brainlid.data.stimuli.StimulusSet`, read in preprocessed batches."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.stimuli import StimulusSet
from ..data.stimulus_folder import is_stimulus_folder, read_stimulus_folder
from ..errors import BrainlidError, DatasetNotFoundError, FileFormatError, InputError
from ..io import load_npy
from .preprocess import Preprocess

__all__ = ["as_stimulus_set"]


def as_stimulus_set(source) -> StimulusSet:
    """A :class:`StimulusSet` from a stimulus set, an image folder, ``file.h5:key``, a ``.npy`` file or an array.

    Arrays are ``(n, H, W)`` or ``(n, H, W, C)``; ``.npy`` files are memory-mapped with
    ``allow_pickle=False``; ids default to ``0 … n-1`` (file stems for folders). A folder written by
    ``brainlid benchmarks stimuli`` (``stimulus_ids.npy`` beside ``00000.png`` …) keeps the
    benchmark's ids (:func:`brainlid.data.stimulus_folder.read_stimulus_folder`).
    """
    if isinstance(source, StimulusSet):
        if not source.has_images:
            raise InputError(f"stimulus set {source.name!r} has no images to extract features from")
        return source
    if isinstance(source, np.ndarray):
        return StimulusSet.from_array(source)
    if isinstance(source, (str, Path)):
        text = str(source)
        m = re.fullmatch(r"(.+\.(?:h5|hdf5|hdf)):([^:]+)", text)
        if m:
            return StimulusSet.from_hdf5(m.group(1), m.group(2), name=Path(m.group(1)).stem)
        p = Path(text).expanduser()
        if p.is_dir():
            return read_stimulus_folder(p) if is_stimulus_folder(p) else StimulusSet.from_folder(p)
        if p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
            import h5py  # optional: h5py, only for an HDF5 path

            if not p.is_file():
                raise DatasetNotFoundError(f"HDF5 file not found: {p}")
            with h5py.File(p, "r") as f:
                keys = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
            raise InputError(f"name the image dataset inside {p}: use {p}:KEY with KEY one of {', '.join(keys) or '(none)'}")
        if p.suffix.lower() == ".npy":
            if not p.is_file():
                raise DatasetNotFoundError(f"stimulus array not found: {p}")
            return StimulusSet.from_array(load_npy(p, mmap_mode="r"), name=p.stem)
        if not p.exists():
            raise DatasetNotFoundError(f"stimulus source not found: {p}")
        raise InputError(f"cannot read stimuli from {p}: give an image folder, FILE.h5:KEY or a .npy array")
    raise InputError(f"stimuli must be a StimulusSet, an image folder, 'file.h5:key', a .npy path or an array; got {type(source).__name__}")


class _BatchDataset:
    """Item ``b`` = the preprocessed images of batch ``b`` stacked to ``(B, C, H, W)`` float32.

    Picklable (for DataLoader workers) as long as the reader is. Read errors are returned as a
    :class:`_Failure` and re-raised in the main process with their original message.
    """

    def __init__(self, reader, preprocess: Preprocess, n: int, batch_size: int):
        self.reader, self.preprocess, self.n, self.batch_size = reader, preprocess, n, batch_size

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, b):
        import torch  # heavy: torch

        start, stop = b * self.batch_size, min(self.n, (b + 1) * self.batch_size)
        try:
            imgs = self.reader.read_many(np.arange(start, stop))
            xs = [self.preprocess(im) for im in imgs]
            shapes = {tuple(x.shape) for x in xs}
            if len(shapes) > 1:
                raise InputError(f"images {start}..{stop - 1} have different sizes after preprocessing {sorted(shapes)[:3]}; declare resize/crop in the preprocessing")
            return b, torch.stack(xs)
        except Exception as exc:  # carried to the main process whole
            return b, _Failure(type(exc), str(exc), start, stop)


@dataclass
class _Failure:
    exc_type: type
    message: str
    start: int
    stop: int

    def raise_(self):
        if issubclass(self.exc_type, BrainlidError):
            raise self.exc_type(self.message)
        raise FileFormatError(f"reading/preprocessing stimuli {self.start}..{self.stop - 1} failed: {self.exc_type.__name__}: {self.message}")

