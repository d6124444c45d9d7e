"""All layers of one model on one benchmark: :func:`score_features`.

Scores every layer (:func:`~brainlid.scoring.cell.responses.score_layer`, or the split-half selection of
RDM benchmarks, :func:`~brainlid.scoring.cell.rdms.score_rdm_features`), measures each layer's
geometry on the benchmark's LID stimuli and marks the best layer on ``val``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ...data.provenance import data_source_of
from ...errors import InputError
from ..benchmarks import Benchmark, get_benchmark, load_benchmark_data
from ..tables import geometry_frame, score_frame
from .geometry import geometry_rows
from .rdms import score_rdm_features
from .responses import lid_positions, make_splits, score_layer
from .selection import prune_kept, select_best_layer

__all__ = ["score_features"]


def score_features(
    features: Mapping[str, np.ndarray],
    feature_ids,
    bench: Benchmark | str,
    brain=None,
    *,
    model: str = "model",
    root=None,
    feature_cache_key: str | Mapping[str, str] = "",
    geometry: bool = True,
    keep: dict | None = None,
    keep_layers: str = "selected",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every layer of one model's features on one benchmark; pick the best layer on val.

    Parameters
    ----------
    features : mapping layer → array (n_stimuli, n_features)
        In the order the layers were requested (that order is ``layer_index``).
    feature_ids : array-like (n_stimuli,)
    bench : Benchmark or id
    brain : BrainData or None
        The benchmark's data (loaded with :func:`load_benchmark_data` when None).
    feature_cache_key : str or mapping layer → str
    keep : dict or None
        Collector of the test split's comparison arrays (:func:`score_layer`'s ``keep``).
    keep_layers : {"selected", "all"}
        Keep the arrays of the selected layer only (default: at most two layers' predictions are
        held while the layers are scored) or of every layer.

    Returns
    -------
    (scores, geometry) : DataFrames in the tidy schemas.
    """
    bench = get_benchmark(bench)
    if bench.kind == "rdms":  # published brain RDMs: split-half selection (brainlid.scoring.cell.rdms)
        return score_rdm_features(features, feature_ids, bench, brain, model=model, root=root,
                                  feature_cache_key=feature_cache_key, geometry=geometry, keep=keep,
                                  keep_layers=keep_layers)
    if brain is None:
        _, brain = load_benchmark_data(bench, root)
    if not features:
        raise InputError("no layers to score")
    splits = make_splits(brain, bench)
    keys = feature_cache_key if isinstance(feature_cache_key, Mapping) else {l: feature_cache_key for l in features}
    fids = np.asarray(feature_ids)
    rows: list[dict] = []
    grows: list[dict] = []
    pos = lid_positions(fids, bench, brain) if geometry else None
    for li, (layer, X) in enumerate(features.items()):
        X = np.asarray(X, dtype=np.float32)
        rows += score_layer(X, fids, brain, bench, model=model, layer=layer, layer_index=li, splits=splits,
                            feature_cache_key=keys.get(layer, ""), keep=keep)
        if keep and keep_layers == "selected":  # the best layer so far (select_best_layer's criterion)
            prune_kept(keep, select_best_layer(score_frame(rows)), model, bench.id)
        if geometry:
            grows += geometry_rows(X[pos], model=model, layer=layer, layer_index=li, stimulus_set=bench.lid_stimulus_set,
                                   ks=bench.params["lid_ks"], estimators=bench.params["lid_estimators"],
                                   benchmark_version=bench.version, feature_cache_key=keys.get(layer, ""),
                                   data_source=data_source_of(brain))
    scores = select_best_layer(score_frame(rows))
    return scores, geometry_frame(grows)

