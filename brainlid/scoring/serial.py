"""The serial runner: :func:`score`, the Python API behind ``brainlid score``.

It walks the grid of :func:`brainlid.scoring.plan.plan_grid` one benchmark at a time — loads the data,
extracts (cached) features per group, calls the pure cell functions of :mod:`brainlid.scoring.cell`
(:func:`~brainlid.scoring.cell.score_features`, :func:`~brainlid.scoring.cell.model_model_rows`) — and
writes the tables (:func:`brainlid.scoring.tables.finish_tables`). With ``client=`` the same grid runs
on a Dask cluster (:func:`brainlid.scoring.distributed.score_distributed`).
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..data.provenance import data_source_of
from ..errors import InputError
from ..features import extract as default_extract
from . import baselines as bl
from .benchmarks import Benchmark
from .cell import KEEP_ARRAYS, id_positions, model_model_rows, score_features
from .plan import plan_grid
from .store import ResultsStore
from .tables import ScoreResult, finish_tables, score_frame

__all__ = ["score", "ScoreResult"]


def _features_as_layers(feats) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str]]:
    """A :class:`brainlid.features.Features` → (layer → float32 array, stimulus ids, layer → cache key)."""
    names = list(getattr(feats, "layers", None) or list(feats.keys()))
    arrays = {str(k): np.asarray(feats[k], dtype=np.float32) for k in names}
    ids = np.asarray(feats.stimulus_ids)
    prov = getattr(feats, "provenance", {}) or {}
    keys = prov.get("cache_keys") or {}
    return arrays, ids, {k: str(keys.get(k) or "") for k in arrays}


def score(
    model,
    benchmarks: str | Benchmark | Iterable[str | Benchmark],
    *,
    layers: Sequence[str] | None = None,
    data_root=None,
    out: str | os.PathLike | None = None,
    store: str | os.PathLike | bool | None = True,
    baselines: bool | Sequence[str] = True,
    pooling: str = "avg",
    batch_size: int = 64,
    if_exists: str = "skip",
    extract_kwargs: Mapping | None = None,
    extract_fn=None,
    mm_metrics: Sequence[str] = ("mutual_knn", "ridge_r2"),
    return_result: bool = False,
    client=None,
    keep_arrays: str = "selected",
    **distributed_options,
):
    """Score a model (and its baselines) on benchmarks: the Python API of ``brainlid score``.

    Parameters
    ----------
    model : str or torch.nn.Module, a sequence of them, or a mapping name → spec
        Model spec(s) (see :func:`brainlid.features.models.load_model`); a mapping gives the
        names used in the tables (else the model id, :func:`brainlid.scoring.plan.model_name`).
        With several models the model–model alignment on each benchmark's LID stimulus set is
        scored too.
    benchmarks : id, Benchmark or a sequence of them
    layers : sequence of str, mapping name → sequence, or None
        Layers to extract: names, globs or ``re:`` regexes, resolved in depth order (default:
        :func:`~brainlid.scoring.plan.default_layers`, the model's top-level child modules with
        module lists expanded); one selection given for several models is shared, each model
        taking the selectors that match it; a mapping is keyed like ``model`` (its keys, spec
        strings or class names).
    data_root : path or None
        Dataset root (default from the dataset card / ``$BRAINLID_DATA``).
    out : path or None
        Folder for ``scores.parquet/.csv`` and ``geometry.parquet/.csv``.
    store : path, True (the default store), False/None (no store)
    baselines : bool or sequence of {"pixels", "random", "shuffled"}
        Baselines scored beside each model: raw pixels, the same architecture with random weights
        (when the spec allows it), and stimulus-shuffled features (the zero control).
    if_exists : {"skip", "replace", "error"}
        What to do when the store already has a cell.
    extract_fn : callable or None
        ``extract_fn(model, stimuli, layers=, pooling=, batch_size=) -> Features``; default
        :func:`brainlid.features.extract` (the cached extraction path).
    client : Dask client or cluster, optional
        Run the same grid on a Dask cluster (:func:`brainlid.scoring.distributed.score_distributed`,
        which receives ``**distributed_options`` such as ``voxel_batch``); serial when None.
    keep_arrays : {"selected", "all", "none"}
        With a store: keep the test split's held-out predictions (encoding) or model RDM (RSA) of the
        selected layer (default), of every layer, or none, beside the observed responses / brain RDMs
        (once per benchmark version) — what ``brainlid compare`` resamples
        (:meth:`~brainlid.scoring.store.ResultsStore.add_arrays`). Predictions are float32
        ``n_test × n_units`` per kept layer (e.g. 1,000 NSD test images × 5,000 voxels: 20 MB).

    The grid — names, layers, baselines, where geometry and the model–model task are measured —
    is :func:`brainlid.scoring.plan.plan_grid`'s, shared with the Dask runner.

    Returns
    -------
    DataFrame of score rows (or a :class:`ScoreResult` with ``return_result=True``).
    """
    if keep_arrays not in KEEP_ARRAYS:
        raise InputError(f"keep_arrays must be one of {KEEP_ARRAYS}, got {keep_arrays!r}")
    if client is not None:
        if extract_fn is not None:
            raise InputError("extract_fn cannot be used with client=: workers extract through the feature cache")
        from .distributed import score_distributed  # optional: dask

        return score_distributed(
            client, model, benchmarks, layers=layers, data_root=data_root, out=out, store=store, baselines=baselines,
            pooling=pooling, batch_size=batch_size, if_exists=if_exists, extract_kwargs=extract_kwargs,
            mm_metrics=mm_metrics, return_result=return_result, keep_arrays=keep_arrays, **distributed_options,
        )
    if distributed_options:
        raise InputError(f"option(s) {sorted(distributed_options)} need client= (a Dask client or cluster)")
    extract_fn = default_extract if extract_fn is None else extract_fn
    ekw = {"pooling": pooling, "batch_size": batch_size, **dict(extract_kwargs or {})}
    plan = plan_grid(model, benchmarks, layers=layers, baselines=baselines, data_root=data_root,
                     allow_download=ekw.get("allow_download"))
    st = ResultsStore(None if store is True else store) if store else None
    all_scores, all_geom = [], []
    for bp in plan:  # one benchmark's data at a time
        bench, sub, brain = bp.bench, bp.stimuli, bp.brain
        lid_feats: dict[str, np.ndarray] = {}  # model → last layer on the LID stimuli (model–model task)
        own = None  # the last extracted model's (arrays, ids): its shuffled baseline reads them
        for g in bp.groups:
            if g.source == "pixels":
                arrays, ids, keys = {"pixels": bl.pixel_features(sub)}, np.asarray(sub.ids), {}
            elif g.source == "shuffled":
                arrays, ids = own
                last = g.layers[-1]
                arrays, keys = bl.shuffle_features({last: arrays[last]}, seed=bench.params["seed"]), {}
            else:  # "cache" (the model) or "random" (its random-weights twin): extracted through the cache
                arrays, ids, keys = _features_as_layers(extract_fn(g.spec, sub, layers=list(g.extract_layers), **ekw))
                if g.source == "cache":
                    own = (arrays, ids)
                    lid_feats[g.model] = arrays[list(arrays)[-1]][id_positions(ids, bp.lid_ids, "LID")]
            kept = {} if st is not None and keep_arrays != "none" else None
            s, gm = score_features(arrays, ids, bench, brain, model=g.model, feature_cache_key=keys, geometry=g.geometry,
                                   keep=kept, keep_layers=keep_arrays)
            if kept:  # each group's arrays as soon as they exist (references without rows are never read)
                st.add_arrays(kept, data_source=data_source_of(brain), replace=if_exists == "replace")
            all_scores.append(s)
            all_geom.append(gm)
        if bp.model_model:
            all_scores.append(score_frame(model_model_rows(lid_feats, stimulus_set=bench.lid_stimulus_set,
                                                           layers=bp.mm_layers, metrics=mm_metrics,
                                                           data_source=data_source_of(brain))))
    scores, geom, paths = finish_tables(all_scores, all_geom, out=out, store=st, if_exists=if_exists)
    if return_result:
        return ScoreResult(scores, geom, paths, st)
    return scores
