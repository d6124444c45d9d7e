"""The tidy result tables: column schemas, validation and Parquet/CSV writers.

Two long tables, one row per measurement (DESIGN.md, "Conventions"):

**scores** — one row per (model, layer, benchmark, subject, roi, metric, split[, time]):

=====================  ======================================================================
column                 meaning
=====================  ======================================================================
model                  model spec or name (baselines: ``baseline:pixels``, ``<spec>@random``,
                       ``<spec>#shuffled``)
layer                  layer name as extracted
layer_index            position of the layer in the requested order (0 = first)
benchmark              benchmark id, e.g. ``nsd.subj01.EBA.encoding``
dataset, subject, roi  from the benchmark (model–model rows: ``models``, ``""``, the other model)
metric                 ``encoding_r2``, ``encoding_r``, ``rsa_spearman``, ``mutual_knn``, ``ridge_r2``, ...
split                  ``test`` (the reported score) or ``val`` (used only to pick the best layer)
time                   seconds for time-resolved data, NaN otherwise
value                  the raw score (ROI mean over units for encoding)
ci_low, ci_high        95 % bootstrap interval of ``value`` (how the interval was made:
                       ``ci_method``; NaN when not computed)
ci_method              how ``ci_low``/``ci_high`` were computed: ``stimulus-bootstrap`` (encoding:
                       percentile interval of the ROI-mean score over resamples of the evaluated
                       stimuli, the model refitted once); ``""`` when unknown (tables written before
                       the column existed)
ceiling                noise ceiling in the same units as ``value`` (NaN if none): encoding, the
                       mean NC over the kept units (mean √NC for r); single-subject RSA, the split-half reliability
                       of the subject's RDM (Spearman–Brown; NaN when the data have no
                       repetitions); RDM benchmarks, the leave-one-subject-out upper bound
ceiling_lower          lower noise-ceiling bound: the leave-one-subject-out lower bound of the
                       RDM benchmarks; NaN elsewhere
normalised             ceiling-normalised value (METHODS §6; NaN if no ceiling). Encoding: a ratio
                       of ROI means over the units kept by the ceiling floor (NC > floor, ``n_units``
                       of them): mean R² ÷ mean NC (``encoding_r2``), mean r ÷ mean √NC
                       (``encoding_r``), so the true model scores 1; it equals ``value / ceiling``
                       when no unit falls below the floor (``value`` averages all units)
normalised_unit_mean   encoding: the mean over kept units of the per-unit ratios R²/NC (r/√NC), the
                       pre-issue-14 ``normalised`` (less stable: units near the floor dominate); NaN
                       elsewhere
alpha_edge_fraction    encoding: fraction of units (of this row's time point) whose ridge α, chosen
                       by inner CV, sits at either end of the α grid (a large value means the grid
                       does not bracket the optimum; a RuntimeWarning is raised above 0.5); NaN
                       elsewhere
ceiling_method         kind of ``ceiling``: the benchmark's ceiling kind for encoding (``ncsnr``,
                       ``split-half``, ``data``, ``none``); ``""`` when unknown
n_units                units averaged (after the ceiling floor for ``normalised``)
n_stimuli              test stimuli scored
selected               True on the rows of the layer chosen on the validation split
brainlid_version       package version that produced the row
benchmark_version      version of the benchmark definition
feature_cache_key      content key of the features in the feature cache ("" if not cached)
=====================  ======================================================================

**geometry** — one row per (model, layer, stimulus_set, estimator, K): ``model, layer,
layer_index, stimulus_set, n, estimator, K, value`` plus the provenance columns. Local
estimators (``mle``, ``mom``, ...) have a K; global measures (``participation_ratio``,
``pca90``, ``pca95``, ``pca99``, ``twonn``) have ``K = NaN``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import InputError

__all__ = [
    "SCORE_COLUMNS",
    "GEOMETRY_COLUMNS",
    "PROVENANCE_COLUMNS",
    "score_frame",
    "geometry_frame",
    "write_table",
    "read_table",
]

PROVENANCE_COLUMNS = {"brainlid_version": "string", "benchmark_version": "Int64", "feature_cache_key": "string"}

SCORE_COLUMNS: dict[str, str] = {
    "model": "string",
    "layer": "string",
    "layer_index": "Int64",
    "benchmark": "string",
    "dataset": "string",
    "subject": "string",
    "roi": "string",
    "metric": "string",
    "split": "string",
    "time": "float64",
    "value": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "ceiling": "float64",
    "ceiling_lower": "float64",
    "normalised": "float64",
    "normalised_unit_mean": "float64",
    "alpha_edge_fraction": "float64",
    "ci_method": "string",
    "ceiling_method": "string",
    "n_units": "Int64",
    "n_stimuli": "Int64",
    "selected": "boolean",
    **PROVENANCE_COLUMNS,
}

GEOMETRY_COLUMNS: dict[str, str] = {
    "model": "string",
    "layer": "string",
    "layer_index": "Int64",
    "stimulus_set": "string",
    "n": "Int64",
    "estimator": "string",
    "K": "float64",
    "value": "float64",
    **PROVENANCE_COLUMNS,
}

_DEFAULTS = {"string": "", "float64": np.nan, "Int64": pd.NA, "boolean": False}
_REQUIRED = {
    "scores": ("model", "layer", "benchmark", "metric", "value"),
    "geometry": ("model", "layer", "stimulus_set", "estimator", "value"),
}


def _frame(rows, columns: dict[str, str], kind: str) -> pd.DataFrame:
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if len(df) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    missing = [c for c in _REQUIRED[kind] if c not in df.columns]
    if missing:
        raise InputError(f"{kind} rows lack required column(s) {missing}")
    extra = [c for c in df.columns if c not in columns]
    if extra:
        raise InputError(f"{kind} rows have unknown column(s) {extra}; known: {list(columns)}")
    for c, t in columns.items():
        if c not in df.columns:
            df[c] = _DEFAULTS[t]
    df = df[list(columns)]
    for c, t in columns.items():
        if t == "boolean":
            df[c] = df[c].astype(object).where(df[c].notna(), False).astype(bool)
        df[c] = df[c].astype(t)
        if t == "string":  # CSV reads "" back as missing
            df[c] = df[c].fillna("")
    return df.reset_index(drop=True)


def score_frame(rows) -> pd.DataFrame:
    """Rows (dicts or a DataFrame) → a scores table with every column, in order, typed.

    Unknown columns are an error (so a typo never silently creates a new column); missing
    optional columns get their default (NaN, ``""``, ``<NA>``, False).
    """
    return _frame(rows, SCORE_COLUMNS, "scores")


def geometry_frame(rows) -> pd.DataFrame:
    """Rows → a geometry table (see :func:`score_frame`)."""
    return _frame(rows, GEOMETRY_COLUMNS, "geometry")


def write_table(df: pd.DataFrame, stem: str | os.PathLike, formats=("parquet", "csv")) -> list[Path]:
    """Write a table as ``<stem>.parquet`` and/or ``<stem>.csv``, each atomically.

    Returns the paths written.
    """
    stem = Path(stem)
    out = []
    for fmt in formats:
        path = stem.with_name(stem.name + "." + fmt)
        with atomic_path(path) as tmp:
            if fmt == "parquet":
                df.to_parquet(tmp, index=False)
            elif fmt == "csv":
                df.to_csv(tmp, index=False)
            else:
                raise InputError(f"unknown table format {fmt!r}; choose parquet or csv")
        out.append(path)
    return out


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a scores or geometry table from ``.parquet`` or ``.csv`` (typed like the writers)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    elif path.suffix == ".csv":
        df = pd.read_csv(path, keep_default_na=True)
    else:
        raise InputError(f"cannot read {path}: expected a .parquet or .csv table")
    if "benchmark" in df.columns and "metric" in df.columns:
        return score_frame(df)
    if "estimator" in df.columns:
        return geometry_frame(df)
    raise InputError(f"{path} is neither a scores table (benchmark, metric, value) nor a geometry table (estimator, K, value)")
