"""Precomputed features from any framework (JAX, TensorFlow, ONNX, …): read them as brainlid :class:`Features`.

:func:`read_feature_layers` is the one reader behind ``brainlid score --features`` and
``brainlid submit prepare --features``. It accepts

* the folder ``brainlid extract --out`` writes (``manifest.json``, ``<layer>.npy``,
  ``stimulus_ids.npy``; :meth:`Features.load`);
* a ``.npz``, ``.h5``/``.hdf5`` or ``.safetensors`` file with one array per layer, shape
  ``(n_stimuli, n_features)``, plus a ``stimulus_ids`` array of the same length (required;
  integers, or strings in ``.npz``/HDF5 — safetensors holds numbers only).

Layers keep the file's order (the last one is what the shuffled control and the model–model
comparison use): ``.npz`` and the extract folder keep the order they were written in, HDF5
only when written with ``track_order=True`` (else alphabetical), ``.safetensors`` sorts
names alphabetically — give ``layers`` (``--layers``) to choose and order them. Arrays come
back float32; NaN/inf, other shapes, non-numeric data and duplicated ids are one-line errors.
Nothing is unpickled (``np.load(..., allow_pickle=False)``, h5py, ``safetensors.numpy``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..data.ids import as_ids
from ..errors import FileFormatError, InputError
from ..io import NAMED_ARRAY_SUFFIXES, read_named_arrays
from .layers import resolve_layer_names
from .result import Features

__all__ = ["read_feature_layers", "load_features", "IDS_KEY"]

IDS_KEY = "stimulus_ids"


def _as_layer(path, name: str, a: np.ndarray, n: int) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iufb":
        raise FileFormatError(f"{path}: layer {name!r} is not numeric (dtype {a.dtype})")
    if a.ndim != 2:
        raise FileFormatError(f"{path}: layer {name!r} has shape {a.shape}; a layer is (n_stimuli, n_features) — pool or "
                              f"flatten it first (e.g. x.reshape(len(x), -1))")
    if a.shape[0] != n or a.shape[1] == 0:
        raise FileFormatError(f"{path}: layer {name!r} has shape {a.shape} for {n} stimulus ids")
    x = np.ascontiguousarray(a, dtype=np.float32)
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise InputError(f"{path}: layer {name!r} has {bad} NaN/inf value(s) (after conversion to float32); "
                         "features must be finite")
    return x


def read_feature_layers(path: str | os.PathLike, layers=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Read precomputed features: ``(layer → (n_stimuli, n_features) float32, stimulus ids)``.

    Parameters
    ----------
    path : path
        A ``brainlid extract --out`` folder, or a ``.npz`` / ``.h5`` / ``.hdf5`` / ``.safetensors``
        file (module docstring).
    layers : None, str or sequence of str
        Layers to read, in this order (names, globs, ``re:``); None: every array but the ids, in
        the file's order.

    Returns
    -------
    layers : dict str → ndarray (n_stimuli, n_features) float32
    ids : ndarray (n_stimuli,) int64 or str
    """
    arrays, ids, _ = _read_layers(Path(path), layers)
    return arrays, ids


def _read_layers(path: Path, layers) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """:func:`read_feature_layers` plus the provenance of an extract folder (``{}`` for a file)."""
    prov: dict = {}
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        feats = Features.load(path, mmap=True)
        arrays, ids, prov = dict(feats.items()), feats.stimulus_ids, dict(feats.provenance)
    else:
        if path.suffix.lower() not in NAMED_ARRAY_SUFFIXES:
            raise FileFormatError(f"{path}: precomputed features are a `brainlid extract --out` folder or a "
                                  f"{', '.join(NAMED_ARRAY_SUFFIXES)} file with one array per layer and a "
                                  f"{IDS_KEY!r} array")
        arrays = read_named_arrays(path)
        if IDS_KEY not in arrays:
            hint = " (safetensors holds numbers only: integer ids)" if path.suffix.lower() == ".safetensors" else ""
            raise FileFormatError(f"{path}: no {IDS_KEY!r} array; save the stimulus id of every row under that key"
                                  f"{hint} (found: {', '.join(list(arrays)[:6]) or 'nothing'})")
        ids = arrays.pop(IDS_KEY)
    try:
        ids = as_ids(ids, f"{path}: {IDS_KEY}")
    except InputError as exc:
        raise FileFormatError(str(exc)) from None
    if not arrays:
        raise FileFormatError(f"{path}: no layer arrays beside {IDS_KEY!r}")
    names = list(arrays) if layers is None else resolve_layer_names(list(arrays), layers, given_order=True,
                                                                      what=f"{path.name}", unit="layer")
    return {k: _as_layer(path, k, arrays[k], ids.size) for k in names}, ids, prov


def load_features(path: str | os.PathLike, layers=None, model_id: str | None = None) -> Features:
    """:func:`read_feature_layers` as :class:`Features`, ready to stand for a model.

    ``provenance["cache_keys"]`` identifies each layer: the extraction's cache key for a
    ``brainlid extract`` folder, else ``sha256:`` of the float32 rows and the ids (the
    ``feature_cache_key`` of the score rows); ``provenance["source"]`` is the path.
    """
    path = Path(path)
    arrays, ids, prov = _read_layers(path, layers)
    keys = dict(prov.get("cache_keys") or {})
    id_bytes = "\x1f".join(map(str, ids.tolist())).encode()
    for name, x in arrays.items():
        if not keys.get(name):
            keys[name] = "sha256:" + hashlib.sha256(x.tobytes() + b"\x1e" + id_bytes).hexdigest()
    prov.update({"cache_keys": {k: keys[k] for k in arrays}, "source": str(path)})
    if model_id is not None:
        prov["model_id"] = model_id
    return Features(arrays, ids, prov)
