"""The tidy result tables: column schemas, validation and Parquet/CSV writers.

Two long tables, one row per measurement (DESIGN.md, "Conventions"):

**scores** — one row per (model, layer, benchmark, subject, roi, metric, split[, time]).

The definitions below are the reference (``docs/score_columns.md`` repeats them with the
formulas; a test keeps both in step with :data:`SCORE_COLUMNS`). Notation: for an ROI with
units u = 1 … U, v_u is a unit's held-out score (Pearson r or R² between predicted and measured
responses over the test stimuli), NC_u its noise ceiling as a fraction of explainable variance
(METHODS §6), c_u the ceiling in the units of v (NC_u for R², √NC_u for r), K the units with
NC_u above the floor (default 0.1).

=====================  ======================================================================
column                 meaning
=====================  ======================================================================
model                  model spec or name (baselines: ``baseline:pixels``, ``<spec>@random``,
                       ``<spec>#shuffled``)
layer                  layer name as extracted
layer_index            position of the layer in the requested order (0 = first)
benchmark              benchmark id, e.g. ``nsd.subj01.EBA.encoding``
dataset                dataset of the benchmark (model–model rows: ``models``)
subject                subject of the row: one subject id, ``mean`` for the group-mean RDM
                       rows of RDM benchmarks (``""`` on model–model rows)
roi                    region (model–model rows: the other model)
metric                 ``encoding_r2``, ``encoding_r``, ``rsa_spearman``, ``mutual_knn``,
                       ``ridge_r2``, ...
split                  which stimuli were scored: ``test`` (held out; the reported score),
                       ``val`` (part of train, used only to pick the best layer) or ``all``
                       (RDM benchmarks: every image, not held out)
time                   seconds for time-resolved data, NaN otherwise
value                  the raw score. Encoding: the ROI mean (1/U) Σ_u v_u over all units;
                       RSA: the correlation (Spearman by default) between the model RDM and
                       the brain RDM of the scored stimuli; model–model: the metric itself
ci_low, ci_high        95 % interval of ``value`` from a bootstrap over **stimuli** (the
                       unit that generalises); how, in ``ci_method``; NaN when not computed
ci_method              how ``ci_low``/``ci_high`` were computed: ``stimulus-bootstrap`` (encoding:
                       basic (reverse-percentile) interval, 2·value − the 97.5/2.5 % quantiles
                       of the ROI-mean score over resamples of the evaluated stimuli, the model
                       fitted once on the training stimuli); ``stimulus-bootstrap-corrected``
                       (RSA and RDM rows: percentile interval over stimulus resamples, both RDMs
                       recomputed, shrunk about ``value`` by √(V_c/V_boot) to remove the
                       variance the bootstrap double-counts, Schütt et al. 2023); ``""`` when
                       there is no interval or the table predates the column
ceiling                noise ceiling in the units of ``value`` (NaN if none). Encoding: the
                       ROI-mean ceiling over the kept units (1/|K|) Σ_{u∈K} c_u; single-subject
                       RSA: √r_sb, r_sb the split-half reliability of the subject's RDM over the
                       row's stimuli, Spearman–Brown stepped up to the repetitions scored; RDM
                       benchmarks, per-subject rows: √(upper · lower) of the leave-one-subject-
                       out bounds; group-mean rows (``subject = mean``): √r_sb of the split-half-
                       over-subjects reliability of the group RDM, stepped up to the whole group
ceiling_lower          the leave-one-subject-out lower bound on per-subject rows of RDM
                       benchmarks (the upper bound is ``ceiling² / ceiling_lower``); NaN elsewhere
ceiling_method         how ``ceiling`` was obtained: encoding, the benchmark's ceiling kind
                       (``ncsnr``, ``split-half``, ``data``, ``none``); single-subject RSA
                       ``rdm-split-half-disattenuated``; RDM benchmarks ``loso-geometric-mean``
                       (per subject) or ``group-split-half`` (group mean); ``""`` when there is
                       no ceiling or the table predates the column
normalised             ``value`` expressed as a fraction of what the data allow (METHODS §6):
                       a model equal to the true signal scores ≈ 1, pure noise ≈ 0. Encoding:
                       the ratio of means (1/|K|) Σ_{u∈K} v_u ÷ (1/|K|) Σ_{u∈K} c_u over the
                       kept units K (``n_units`` of them): mean R² ÷ mean NC (``encoding_r2``),
                       mean r ÷ mean √NC (``encoding_r``); it equals ``value / ceiling`` when no
                       unit falls below the floor (``value`` averages all units);
                       single-subject RSA: disattenuated at the half level, the mean over
                       random splits of the repetitions (and both halves) of r(model RDM, half
                       RDM) ÷ the mean over splits of √max(r(half-A RDM, half-B RDM), 0), NaN
                       where r_sb ≤ the floor; RDM benchmarks: ``value / ceiling``; NaN without
                       a ceiling
normalised_unit_mean   encoding only: the mean over kept units of the per-unit ratios
                       (1/|K|) Σ_{u∈K} v_u / c_u (R²/NC, r/√NC), the pre-issue-14 ``normalised``
                       (less stable: units near the floor dominate); NaN elsewhere
alpha_edge_fraction    encoding only: fraction of units (of this row's time point) whose ridge α,
                       chosen by inner CV, sits at either end of the α grid (relative to the
                       training features' spectrum, so scale-invariant). An end reached on a
                       plateau is benign (top: units the features cannot predict; bottom: ridge
                       ≈ least squares); a RuntimeWarning is raised when over half the units sit
                       at an end where the inner CV still improves (the grid does not bracket
                       the optimum); NaN elsewhere
n_units                encoding: the units kept by the ceiling floor (those ``normalised``
                       averages; all units without a ceiling); RSA: the units of the RDM; NA for
                       RDM rows
n_stimuli              stimuli scored on this row's split (test rows: the held-out stimuli)
selected               True on the rows of the layer chosen on the validation split
data_source            where the brain data came from: ``real`` (a dataset loader read a real
                       dataset copy), ``synthetic`` (the copy carries brainlid's fixture marker:
                       generated data, not brain measurements) or ``unknown`` (user-built data,
                       or a table written before this column existed)
brainlid_version       package version that produced the row
benchmark_version      version of the benchmark definition; rows of different versions are
                       not comparable (the store reads the newest version by default)
feature_cache_key      content key of the features in the feature cache ("" if not cached)
=====================  ======================================================================

**geometry** — one row per (model, layer, stimulus_set, estimator, K): ``model, layer,
layer_index, stimulus_set, n, estimator, K, value, data_source`` plus the provenance columns. Local
estimators (``mle``, ``mom``, ...) have a K; global measures (``participation_ratio``,
``pca90``, ``pca95``, ``pca99``, ``twonn``) have ``K = NaN``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..data.provenance import DATA_SOURCES
from ..errors import InputError

__all__ = [
    "SCORE_COLUMNS",
    "GEOMETRY_COLUMNS",
    "PROVENANCE_COLUMNS",
    "score_frame",
    "geometry_frame",
    "write_table",
    "finish_tables",
    "GEOMETRY_KEY",
    "ScoreResult",
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
    "data_source": "string",
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
    "data_source": "string",
    **PROVENANCE_COLUMNS,
}

_DEFAULTS = {"string": "", "float64": np.nan, "Int64": pd.NA, "boolean": False}
#: defaults of single columns that differ from their type's (tables written before the column existed)
_COLUMN_DEFAULTS = {"data_source": "unknown"}
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
            df[c] = _COLUMN_DEFAULTS.get(c, _DEFAULTS[t])
    df = df[list(columns)]
    for c, t in columns.items():
        if t == "boolean":
            df[c] = df[c].astype(object).where(df[c].notna(), False).astype(bool)
        df[c] = df[c].astype(t)
        if t == "string":  # CSV reads "" back as missing
            df[c] = df[c].fillna("")
    if "data_source" in columns:
        src = df["data_source"].where(df["data_source"] != "", "unknown")
        bad = sorted(set(src) - set(DATA_SOURCES))
        if bad:
            raise InputError(f"{kind} rows have data_source {bad}; allowed: {', '.join(DATA_SOURCES)}")
        df["data_source"] = src.astype("string")
    return df.reset_index(drop=True)


def score_frame(rows) -> pd.DataFrame:
    """Rows (dicts or a DataFrame) → a scores table with every column, in order, typed.

    Unknown columns are an error (so a typo never silently creates a new column); missing
    optional columns get their default (NaN, ``""``, ``<NA>``, False; ``data_source``:
    ``"unknown"``, also for empty values), so tables written before a column existed still read.
    A ``data_source`` outside ``real``/``synthetic``/``unknown`` is an error.
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


#: the key of a geometry row: a layer's measure on a stimulus set is the same whichever benchmark measured it
GEOMETRY_KEY = ["model", "layer", "stimulus_set", "estimator", "K"]


@dataclass
class ScoreResult:
    """What a runner produced with ``return_result=True`` (:func:`brainlid.scoring.serial.score`,
    :func:`brainlid.scoring.distributed.score_distributed`): the two tables, the files written and the
    results store (or None)."""

    scores: pd.DataFrame
    geometry: pd.DataFrame
    paths: list[Path]
    store: object | None = None


def finish_tables(scores_frames, geometry_frames, *, out=None, store=None, if_exists: str = "skip"):
    """The runners' table tail: concatenate, de-duplicate geometry, write, store.

    Parameters
    ----------
    scores_frames, geometry_frames : sequences of DataFrames
        Score and geometry tables of the cells (empty ones are skipped).
    out : path or None
        Folder for ``scores.parquet/.csv`` and ``geometry.parquet/.csv`` (:func:`write_table`).
    store : ResultsStore or None
        Receives both tables (:meth:`~brainlid.scoring.store.ResultsStore.add_frames`, ``if_exists``).
    if_exists : {"skip", "replace", "error"}

    Returns
    -------
    (scores, geometry, paths) : the two typed tables (geometry one row per :data:`GEOMETRY_KEY`,
    the first measured kept) and the files written.
    """
    scores_frames = [s for s in scores_frames if len(s)]
    geometry_frames = [g for g in geometry_frames if len(g)]
    scores = score_frame(pd.concat(scores_frames, ignore_index=True) if scores_frames else [])
    geom = geometry_frame(pd.concat(geometry_frames, ignore_index=True) if geometry_frames else [])
    geom = geom.drop_duplicates(subset=GEOMETRY_KEY).reset_index(drop=True)
    paths: list[Path] = []
    if out is not None:
        paths += write_table(scores, Path(out) / "scores")
        paths += write_table(geom, Path(out) / "geometry")
    if store is not None:
        store.add_frames(scores, geom, if_exists=if_exists)
    return scores, geom, paths
