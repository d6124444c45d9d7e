"""Scoring: benchmark definitions, the model × layer × benchmark grid, tidy tables, the results store.

* :mod:`.benchmarks` — versioned definitions (``dataset.subject.roi.metric``), the registry,
  user benchmarks from any ``BrainData``;
* :mod:`.plan` — the grid (models, layers, baselines, where geometry is measured) both runners walk;
* :mod:`.cell` — pure per-cell scoring, validation-split layer selection, geometry rows,
  model–model rows;
* :mod:`.serial` — :func:`score` (the Python API of ``brainlid score``); :mod:`.distributed` the same
  grid on a Dask cluster;
* :mod:`.baselines` — raw pixels, random weights, stimulus-shuffled features;
* :mod:`.tables` — the scores / geometry schemas and Parquet/CSV writers;
* :mod:`.store` — the SQLite results store (one transaction per cell, schema migrations).
"""

from .benchmarks import (
    Benchmark,
    UnknownBenchmarkError,
    benchmark_from_braindata,
    get_benchmark,
    list_benchmarks,
    load_benchmark_data,
    register_benchmark,
)
from .cell import score_features, score_layer, select_best_layer
from .serial import ScoreResult, score
from .store import DuplicateCellError, ResultsStore
from .tables import GEOMETRY_COLUMNS, SCORE_COLUMNS, geometry_frame, read_table, score_frame, write_table

__all__ = [
    "Benchmark", "UnknownBenchmarkError", "benchmark_from_braindata", "get_benchmark", "list_benchmarks",
    "load_benchmark_data", "register_benchmark", "score", "score_features", "score_layer", "select_best_layer",
    "ScoreResult", "ResultsStore", "DuplicateCellError", "SCORE_COLUMNS", "GEOMETRY_COLUMNS", "score_frame",
    "geometry_frame", "read_table", "write_table",
]
