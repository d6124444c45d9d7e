"""Deprecated: the scoring runner was split in two.

The pure per-cell functions are in :mod:`brainlid.scoring.cell` (splits, one layer's rows, geometry and
model–model rows, best-layer choice, :func:`~brainlid.scoring.cell.score_features`); the serial driver
:func:`~brainlid.scoring.serial.score` is in :mod:`brainlid.scoring.serial`; the encoding fit is
:func:`brainlid.alignment.encoding.fit_encoding`. The old names keep working here with a
``DeprecationWarning`` naming the new place.
"""

from .._deprecate import forward

_CELL = "brainlid.scoring.cell"
_ENC = "brainlid.alignment.encoding"

__getattr__ = forward(__name__, {
    **{name: _CELL for name in (
        "make_splits", "score_layer", "select_best_layer", "geometry_rows", "model_model_rows", "score_features",
        "encoding_rows", "unit_scores_for_layer", "rsa_split_half_ceiling", "keep_arrays", "prune_kept",
        "KEEP_ARRAYS", "RSA_CEILING_METHOD",
    )},
    "score": "brainlid.scoring.serial",
    "ScoreResult": "brainlid.scoring.serial",
    "_features_as_layers": "brainlid.scoring.serial",
    "default_layers": "brainlid.scoring.plan",
    "_lid_ids": "brainlid.scoring.plan:lid_ids",
    "unit_scores": _ENC,
    "EncodeResult": _ENC,
    "ALPHA_EDGE_WARN": _ENC,
    "_encode": f"{_ENC}:fit_encoding_params",
    "_pca": f"{_ENC}:train_pca",
    "_warn_alpha_edges": f"{_ENC}:warn_alpha_edges",
    "_positions": f"{_CELL}:id_positions",
    "_aligned": "brainlid.scoring.cell.responses",
    "_rsa_rows": "brainlid.scoring.cell.responses",
    "_encoding_rows": "brainlid.scoring.cell.responses",
})
