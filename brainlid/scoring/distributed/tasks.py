"""The Dask runner's worker tasks: extract a model's layers, score a cell, an RDM group or the model–model task.

Tasks carry only ids, cache keys and paths (a :class:`_Cell`); each reads the benchmark's responses on the
worker (cached per worker process, :func:`_bench_inputs`) and the layer's features from the shared feature
cache by key (a read-only memory map, :func:`_read_features`), limits its threads first
(:func:`~.cluster._worker_threads`) and returns rows, never arrays it was given.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import numpy as np

from ...data.ids import ids_digest
from ...data.provenance import data_source_of
from ...errors import BrainlidError, InputError
from ...features import FeatureCache, extract
from .. import baselines as bl
from ..cell import (base_row, batched_encoding_rows, geometry_rows, lid_positions, make_splits, model_model_rows,
                    score_layer, score_rdm_features, unit_scores_batch)
from ..benchmarks import UnknownBenchmarkError, get_benchmark
from ..plan import benchmark_inputs
from .cluster import _worker_threads


@functools.lru_cache(maxsize=4)
def _bench_inputs(bench_id: str, data_root: str | None):
    """(stimuli restricted to the responses' ids, BrainData) of a benchmark, as the serial runner builds them
    (:func:`brainlid.scoring.plan.benchmark_inputs`), cached per worker process."""
    try:
        return benchmark_inputs(bench_id, data_root)
    except UnknownBenchmarkError as exc:
        raise InputError(f"benchmark {bench_id!r} is not registered in the Dask worker process {os.getpid()}: workers "
                         "know the built-in benchmarks and those registered by modules they import (dask worker "
                         "--preload); score a benchmark registered only in this session serially") from exc


_VERIFIED: set = set()


def _read_features(cache_root: str, key: str) -> np.ndarray:
    """A layer's features from the shared cache, memory-mapped; SHA-256 checked once per worker process."""
    entry = FeatureCache(cache_root).entry(key)
    if not entry.is_complete():
        raise BrainlidError(f"feature cache entry {key[:12]} is missing under {cache_root} on this worker: the cache "
                            "must be on a file system shared by the client and every worker")
    arr = entry.load(verify=key not in _VERIFIED)
    _VERIFIED.add(key)
    return arr


def _extract_task(spec: str, bench_id: str, data_root, layers, ekw: dict, cache_root: str, threads: int) -> dict:
    """Extract (or find in the cache) a model's layers for a benchmark's stimuli; return keys, not arrays."""
    _worker_threads(threads)
    t0 = time.perf_counter()
    sub, _ = _bench_inputs(bench_id, data_root)
    feats = extract(spec, sub, layers=layers, cache=cache_root, progress=False, **ekw)
    keys = feats.provenance.get("cache_keys") or {}
    out = [(str(k), str(keys.get(k) or ""), tuple(int(s) for s in np.shape(feats[k]))) for k in feats.layers]
    if any(not key for _, key, _ in out):
        raise BrainlidError(f"extraction of {spec} returned layers without cache keys")
    return {"layers": out, "ids_digest": ids_digest(feats.stimulus_ids), "seconds": time.perf_counter() - t0,
            "pid": os.getpid()}


@dataclass(frozen=True)
class _Cell:
    """What a cell task needs (small: ids, keys and paths only)."""

    bench: str
    data_root: str | None
    model: str
    layer: str
    layer_index: int
    source: str  # "cache" | "pixels" | "shuffled"
    key: str  # feature cache key ("" for pixels)
    row_key: str  # the rows' feature_cache_key
    ids_digest: str
    cache_root: str
    geometry: bool = False
    units: tuple[int, int] | None = None  # a voxel batch [start, stop) or the whole cell
    shuffle_seed: int = 0
    keep: bool = False  # return the test split's comparison arrays (brainlid compare; whole cells only)

    @property
    def store_key(self) -> tuple:
        return (self.model, self.layer, self.bench)


def _check_ids(bench_id: str, ids, digests) -> None:
    """Refuse to score when the benchmark's stimulus ids on this worker are not those the client planned with."""
    if any(d != ids_digest(ids) for d in digests):
        raise BrainlidError(f"benchmark {bench_id}: the stimulus ids on this worker differ from the client's "
                            "(different data root or dataset version on the workers?)")


def _cell_features(cell: _Cell):
    """(X, feature ids, BrainData) of a cell, read on the worker."""
    sub, brain = _bench_inputs(cell.bench, cell.data_root)
    if cell.source == "pixels":
        return bl.pixel_features(sub), np.asarray(sub.ids), brain
    _check_ids(cell.bench, sub.ids, [cell.ids_digest])
    X = _read_features(cell.cache_root, cell.key)
    if cell.source == "shuffled":
        X = bl.shuffle_features({cell.layer: np.asarray(X)}, seed=cell.shuffle_seed)[cell.layer]
    return X, np.asarray(sub.ids), brain


def _cell_task(cell: _Cell, threads: int) -> dict:
    """Score one cell (or one voxel batch of it) on a worker; returns rows or per-unit scores."""
    _worker_threads(threads)
    t0 = time.perf_counter()
    X, ids, brain = _cell_features(cell)
    bench = get_benchmark(cell.bench)
    splits = make_splits(brain, bench)
    out: dict = {"cell": cell, "pid": os.getpid()}
    if cell.units is None:
        keep = {} if cell.keep else None
        out["rows"] = score_layer(X, ids, brain, bench, model=cell.model, layer=cell.layer,
                                  layer_index=cell.layer_index, splits=splits, feature_cache_key=cell.row_key, keep=keep)
        if keep:
            out["arrays"] = keep
    else:
        out["unit_scores"] = unit_scores_batch(X, ids, brain, bench, splits, cell.units)
    if cell.geometry:
        pos = lid_positions(ids, bench, brain)
        out["geometry"] = geometry_rows(
            np.asarray(X, dtype=np.float32)[pos], model=cell.model, layer=cell.layer, layer_index=cell.layer_index,
            stimulus_set=bench.lid_stimulus_set, ks=bench.params["lid_ks"], estimators=bench.params["lid_estimators"],
            benchmark_version=bench.version, feature_cache_key=cell.row_key, data_source=data_source_of(brain))
    out["seconds"] = time.perf_counter() - t0
    return out


def _join_unit_batches(cell: _Cell, parts: list[dict]) -> list[dict]:
    """Rows of a voxel-batched encoding cell from its batches' per-unit scores (on the client,
    :func:`brainlid.scoring.cell.batched_encoding_rows`)."""
    bench = get_benchmark(cell.bench)
    _, brain = _bench_inputs(cell.bench, cell.data_root)
    base = base_row(bench, brain, model=cell.model, layer=cell.layer, layer_index=cell.layer_index,
                    feature_cache_key=cell.row_key)
    parts = sorted(parts, key=lambda p: p["cell"].units[0])
    return batched_encoding_rows(bench, brain, base, [p["unit_scores"] for p in parts])


def _rdm_group_task(cells: tuple, threads: int) -> dict:
    """Score every layer of one (model, RDM benchmark) group on a worker
    (:func:`brainlid.scoring.cell.score_rdm_features`, as the serial runner): score rows
    of all layers (the split-half layer selection needs them together) and, when asked, their
    geometry rows."""
    _worker_threads(threads)
    t0 = time.perf_counter()
    feats: dict = {}
    for c in cells:
        X, ids, brain = _cell_features(c)
        feats[c.layer] = X
    c = cells[0]
    keep = {} if c.keep else None
    scores, geom = score_rdm_features(feats, ids, c.bench, brain, model=c.model, geometry=c.geometry,
                                      feature_cache_key={x.layer: x.row_key for x in cells}, keep=keep)
    return {"cell": cells, "pid": os.getpid(), "rows": scores.to_dict("records"), "geometry": geom.to_dict("records"),
            "seconds": time.perf_counter() - t0, "arrays": keep}


def _model_model_task(bench_id: str, data_root, keys: dict, ids_digests: dict, cache_root: str, metrics, threads: int):
    """Model–model rows of the named models' last layers on a benchmark's LID stimuli."""
    _worker_threads(threads)
    bench = get_benchmark(bench_id)
    sub, brain = _bench_inputs(bench_id, data_root)
    ids = np.asarray(sub.ids)
    _check_ids(bench_id, ids, ids_digests.values())
    pos = lid_positions(ids, bench, brain)
    feats = {name: np.asarray(_read_features(cache_root, key), dtype=np.float32)[pos] for name, (layer, key) in keys.items()}
    return model_model_rows(feats, stimulus_set=bench.lid_stimulus_set, metrics=tuple(metrics),
                            layers={n: layer for n, (layer, _) in keys.items()}, data_source=data_source_of(brain))
