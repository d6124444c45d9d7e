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

The reading of the archive itself (member names, sizes counted while streaming, array headers
and data) is :mod:`brainlid.leaderboard.archive`; this module holds the manifest and the bundle.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from safetensors.numpy import save as save_safetensors

from .._atomic import atomic_path
from .._version import __version__
from ..data.ids import as_ids
from ..errors import InputError
from ..features.cache import file_sha256
from ..scoring import get_benchmark
from .archive import (ALLOWED_DTYPES, BundleError, Limits, check_member_name, open_zip, read_layer,
                      read_member)
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
        """The metadata's ``model_name`` (``""`` when absent)."""
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
            fname, data = f"features/{i:03d}.safetensors", save_safetensors({"features": X})
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


def _load_manifest_bytes(zf: zipfile.ZipFile, infos: dict, budget, limits: Limits) -> dict:
    if "manifest.json" not in infos:
        raise BundleError("the bundle has no manifest.json at its top level")
    info = infos["manifest.json"]
    if info.file_size > limits.max_manifest:
        raise BundleError(f"manifest.json is larger than {limits.max_manifest} bytes")
    raw = read_member(zf, info, budget, limits)
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
    with open_zip(path, limits) as (zf, infos):
        return _load_manifest_bytes(zf, infos, [0], limits)


def validate_bundle(
    path: str | os.PathLike,
    *,
    limits: Limits | None = None,
    known_benchmark: Callable[[str], object] | None = None,
    published_ids: Callable[[str], np.ndarray | None] | None = None,
    load: bool = True,
    sha256: str | None = None,
) -> Bundle:
    """Validate a bundle file and return its arrays; raise :class:`BundleError` with the reason.

    Each array member is streamed in chunks of :data:`CHUNK` bytes straight from the zip
    (header, then data: SHA-256, size, dtype, shape, NaN/inf, constancy), so validating without
    ``load`` takes a few MiB whatever the bundle's size; with ``load`` each layer is allocated
    once at its final size and filled from the stream.

    Parameters
    ----------
    path : path to the zip
    limits : :class:`Limits`
    known_benchmark : callable id → anything, raising on an unknown id
        Default :func:`brainlid.scoring.get_benchmark`.
    published_ids : callable id → ndarray or None
        The benchmark's published stimulus ids in the required order (None: not checked, e.g.
        the dataset is absent). The bundle's ids must equal them element by element.
    load : bool
        Return the arrays in ``Bundle.features`` (the worker, ``submit check``); False checks
        them without keeping them (the upload handler): ``features`` is then empty and
        ``Bundle.layers`` still gives each layer's shape and dtype.
    sha256 : str or None
        The SHA-256 (hex) of the whole file when the caller has it (the upload handler hashes
        the body as it streams it to disk; the worker has the digest recorded then); None: the
        file is hashed here. ``Bundle.sha256`` is this digest.
    """
    limits = limits or Limits()
    known_benchmark = known_benchmark or get_benchmark
    path = Path(path)
    digest = sha256 or file_sha256(path)
    budget = [0]
    with open_zip(path, limits) as (zf, infos):
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
            check_member_name(fname)
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
            X = read_layer(zf, infos[fname], budget, limits, name=name, shape=shape, dtype=dtype,
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
                  metadata=md, sha256=digest, layers=layers)


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
