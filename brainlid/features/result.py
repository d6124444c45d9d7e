"""The :class:`Features` type: layer name → ``(n_stimuli, n_features)`` array, rows keyed by stimulus id."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_text
from ..data.ids import as_ids, match_ids
from ..errors import DatasetNotFoundError, FileFormatError, InputError
from ..io import load_npy
from .layers import resolve_layer_names

__all__ = ["Features"]


class Features(Mapping):
    """Layer name → ``(n_stimuli, n_features)`` array, rows in the order of :attr:`stimulus_ids`.

    Arrays read from the cache are read-only memory maps. :attr:`provenance` records model id,
    weights digest, preprocessing, pooling and reduction per layer, cache keys and the brainlid
    version.
    """

    def __init__(self, arrays: dict, stimulus_ids, provenance: dict | None = None):
        self._arrays = dict(arrays)
        self.stimulus_ids = as_ids(stimulus_ids, "feature stimulus ids")
        self.provenance = provenance or {}
        for name, a in self._arrays.items():
            if a.shape[0] != self.stimulus_ids.size:
                raise InputError(f"layer {name!r} has {a.shape[0]} rows for {self.stimulus_ids.size} stimulus ids")

    def __getitem__(self, layer):
        return self._arrays[layer]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    @property
    def layers(self) -> list[str]:
        """The layer names, in stored order."""
        return list(self._arrays)

    def __repr__(self):
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self._arrays.items())
        return f"Features(n={self.stimulus_ids.size}, {shapes})"

    def save(self, out_dir) -> Path:
        """Write ``<layer>.npy`` per layer, ``stimulus_ids.npy`` and ``manifest.json`` to ``out_dir`` (atomically per file)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, arr in self._arrays.items():
            fname = _safe_filename(name) + ".npy"
            with atomic_path(out / fname) as tmp:
                np.save(tmp, np.ascontiguousarray(arr), allow_pickle=False)
            files[name] = fname
        with atomic_path(out / "stimulus_ids.npy") as tmp:
            np.save(tmp, self.stimulus_ids, allow_pickle=False)
        man = {"format": "brainlid-features-v1", "layers": files, "stimulus_ids": "stimulus_ids.npy", "n_stimuli": int(self.stimulus_ids.size),
               "shapes": {k: list(v.shape) for k, v in self._arrays.items()}, "provenance": self.provenance}
        atomic_write_text(out / "manifest.json", json.dumps(man, indent=1, default=str))
        return out

    @classmethod
    def load(cls, folder, mmap: bool = True) -> "Features":
        """Read a folder written by :meth:`save` (arrays memory-mapped when ``mmap``)."""
        folder = Path(folder)
        try:
            man = json.loads((folder / "manifest.json").read_text())
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(f"no manifest.json in {folder}; not a brainlid features folder") from exc
        except ValueError as exc:
            raise FileFormatError(f"unreadable manifest in {folder}: {exc}") from exc
        ids = load_npy(folder / man["stimulus_ids"])
        arrays = {k: load_npy(folder / f, mmap_mode="r" if mmap else None) for k, f in man["layers"].items()}
        return cls(arrays, ids, man.get("provenance", {}))

    def for_stimuli(self, ids, layers=None, *, what: str = "the stimulus set", note=None) -> "Features":
        """These features' rows for the stimuli ``ids``, in that order (precomputed features as a model).

        Parameters
        ----------
        ids : array-like (n,)
            The stimulus ids wanted (e.g. a benchmark's stimulus set).
        layers : None, str or sequence of str
            Layers to keep (names, globs, ``re:``), in the order given (:func:`resolve_layer_names`);
            None: all, in stored order.
        what : str
            Names the wanted set in messages.
        note : callable or None
            Called with one sentence when the features have ids beyond ``ids`` (they are ignored).

        Raises
        ------
        InputError
            Ids of another kind (strings vs integers) or missing ids (the message names a few).
        """
        want = as_ids(ids, f"{what} ids")
        have = self.stimulus_ids
        if (want.dtype.kind == "U") != (have.dtype.kind == "U"):
            kinds = {True: "strings", False: "integers"}
            raise InputError(f"the features' stimulus ids are {kinds[have.dtype.kind == 'U']} but {what}'s are "
                             f"{kinds[want.dtype.kind == 'U']} (e.g. {want[0]!r}); save the ids {what} uses")
        found, rows = match_ids(want, have, min_overlap=0, names=(what, "the features"))
        if found.size < want.size:
            missing = np.delete(want, found)
            raise InputError(f"the features lack {missing.size} of the {want.size} stimulus ids of {what}, e.g. "
                             f"{missing[:5].tolist()}; compute features for every stimulus of the set "
                             "(`brainlid benchmarks stimuli` exports it)")
        if have.size > want.size and note is not None:
            note(f"{have.size - want.size} stimulus id(s) of the features are not in {what} and are ignored")
        names = self.layers if layers is None else resolve_layer_names(self.layers, layers, given_order=True,
                                                                         what="the features", unit="layer")
        keys = (self.provenance.get("cache_keys") or {})
        prov = {**self.provenance, "cache_keys": {k: keys.get(k) for k in names}}
        return Features({k: self._arrays[k][rows] for k in names}, want, prov)


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "output"

