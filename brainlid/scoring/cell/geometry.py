"""Geometry and model–model rows of a layer: the measurements beside the brain scores.

* :func:`geometry_rows` — LID K-sweep and global measures of one layer on a benchmark's LID stimulus set;
* :func:`model_model_rows` — model–model alignment of every pair of models on a shared stimulus set.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from ... import geometry
from ..._version import __version__
from ...alignment import similarity as sim
from ...errors import InputError
from ..plan import mm_benchmark_id, mm_benchmark_version

__all__ = ["geometry_rows", "model_model_rows"]


def geometry_rows(
    X, *, model: str, layer: str, layer_index: int = 0, stimulus_set: str, ks=None, estimators=("mle",),
    global_measures: bool = True, benchmark_version: int = 0, feature_cache_key: str = "", data_source: str = "unknown",
) -> list[dict]:
    """LID K-sweep (:func:`brainlid.geometry.lid_sweep`) and global measures
    (:func:`brainlid.geometry.global_dimension`) of one layer's features ``X (n, d)``.

    Ks larger than ``n − 1`` are dropped. Global measures get ``K = NaN``. ``data_source`` is the
    stimuli's (the benchmark data copy's, :func:`brainlid.data.provenance.data_source_of`).
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    ks = [k for k in (ks or geometry.DEFAULT_KS) if 2 <= k <= n - 1]
    base = {"model": model, "layer": layer, "layer_index": layer_index, "stimulus_set": stimulus_set, "n": n,
            "brainlid_version": __version__, "benchmark_version": benchmark_version,
            "feature_cache_key": feature_cache_key, "data_source": data_source}
    rows = []
    g = None
    if ks:
        if global_measures:  # one kNN serves the sweep and the global TwoNN
            summary = geometry.summarize(X, k=ks[0], estimator=estimators[0], ks=ks,
                                         sweep_estimators=tuple(estimators), full_mle=None)
            sweep, g = summary["sweep_table"], summary["global"]
        else:
            sweep = geometry.lid_sweep(X, ks=ks, estimators=tuple(estimators))
        for rec in sweep.itertuples(index=False):
            rows.append({**base, "estimator": str(rec.estimator), "K": float(rec.K), "value": float(rec.value)})
    if global_measures:
        g = geometry.global_dimension(X) if g is None else g
        for name, value in g.items():
            if name in ("n", "n_distinct", "dim") or not isinstance(value, (int, float, np.number)):
                continue
            rows.append({**base, "estimator": str(name), "K": np.nan, "value": float(value)})
    return rows


def model_model_rows(
    features: Mapping[str, np.ndarray], *, stimulus_set: str, metrics=("mutual_knn", "ridge_r2"), k: int = 10,
    layers: Mapping[str, str] | None = None, n_components: int | None = 300, seed: int = 0,
    data_source: str = "unknown",
) -> list[dict]:
    """Model–model alignment of every pair of models on one stimulus set.

    ``features`` maps model name → ``(n_stimuli, n_features)`` (same stimuli, same order).
    Each unordered pair is scored once and written twice (A's row with ``roi = B`` and B's row
    with ``roi = A``) so per-model means are plain group-bys. Metrics: ``mutual_knn``
    (Huh et al. 2024, k neighbours), ``ridge_r2`` (Yu et al. 2026: CV ridge R² averaged over
    both directions, PCA ``n_components``), ``cka`` (linear). Rows have ``dataset = "models"``,
    ``benchmark = "models.<stimulus_set>.<metric>"`` and the stimuli's ``data_source``.
    """
    names = list(features)
    rows = []
    fn = {
        "mutual_knn": lambda a, b: sim.mutual_knn(a, b, k=min(k, a.shape[0] - 1)),
        "ridge_r2": lambda a, b: sim.ridge_r2(a, b, n_components=min(n_components or 10**9, a.shape[0] // 2, a.shape[1], b.shape[1]), seed=seed),
        "cka": lambda a, b: sim.cka(a, b),
    }
    for m in metrics:
        if m not in fn:
            raise InputError(f"unknown model–model metric {m!r}; choose from {', '.join(fn)}")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            A, B = features[a], features[b]
            if A.shape[0] != B.shape[0]:
                raise InputError(f"models {a} and {b} have features for different numbers of stimuli")
            for m in metrics:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*dropped .* constant across stimuli", category=UserWarning)
                    v = float(fn[m](A, B))
                for x, y in ((a, b), (b, a)):
                    rows.append({
                        "model": x, "layer": (layers or {}).get(x, ""), "benchmark": mm_benchmark_id(stimulus_set, m),
                        "dataset": "models", "subject": "", "roi": y, "metric": m, "split": "test", "time": np.nan,
                        "value": v, "n_stimuli": int(A.shape[0]), "brainlid_version": __version__,
                        "benchmark_version": mm_benchmark_version(m),
                        "data_source": data_source,
                    })
    return rows
