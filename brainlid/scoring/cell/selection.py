"""Layer selection and the arrays a cell keeps for paired comparisons.

* :func:`select_best_layer` — picks the layer per (model, benchmark) from ``val`` rows only and marks it;
* :func:`keep_arrays` / :func:`prune_kept` — the test split's comparison arrays (held-out predictions,
  model RDMs, observed responses) collected while the layers are scored, pruned to the selected layer;
* :data:`KEEP_ARRAYS` — the choices of ``keep_arrays=`` of the runners.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ...errors import InputError
from ..benchmarks import Benchmark
from ..tables import score_frame

__all__ = ["select_best_layer", "keep_arrays", "prune_kept", "KEEP_ARRAYS"]

KEEP_ARRAYS = ("selected", "all", "none")  #: ``keep_arrays=`` of :func:`brainlid.scoring.serial.score`


def keep_arrays(keep: dict, arrays: Mapping[str, np.ndarray], model: str, layer: str, bench: Benchmark,
                split: str) -> None:
    """Add ``arrays`` (name → array) to a ``keep`` collector under ``(model, layer, benchmark, version, split,
    name)``; a benchmark's own arrays (``model = layer = ""``) are added once (the first kept wins).

    ``keep`` is what :meth:`brainlid.scoring.store.ResultsStore.add_arrays` stores; the arrays are kept by
    reference (no copy)."""
    for name, a in arrays.items():
        keep.setdefault((model, layer, bench.id, int(bench.version), split, name), a)


def prune_kept(keep: dict | None, scores: pd.DataFrame, model: str, bench_id: str) -> None:
    """Drop from ``keep`` the arrays of ``model``'s layers on ``bench_id`` that are not the selected layer of
    ``scores`` (rows with ``selected`` set by :func:`select_best_layer`): only the selected layer's
    predictions stay in memory and reach the store."""
    if not keep:
        return
    sel = set(scores.loc[scores["selected"].astype(bool), "layer"].astype(str))
    for k in [k for k in keep if k[0] == model and k[0] != "" and k[2] == bench_id and k[1] not in sel]:
        del keep[k]


def select_best_layer(rows: pd.DataFrame | list[dict], metric: str | None = None) -> pd.DataFrame:
    """Mark the best layer per (model, benchmark) using the ``val`` rows only.

    The criterion is the mean over time (if any) of the ``val`` value of ``metric`` (default:
    ``encoding_r2`` for encoding benchmarks, the RSA metric otherwise). The ``test`` rows play no
    part in the choice.

    Parameters
    ----------
    rows : DataFrame or list of dict
        Score rows of one or more (model, benchmark) pairs, ``val`` rows included
        (:data:`brainlid.scoring.tables.SCORE_COLUMNS`).
    metric : str or None
        The selection metric (default as above).

    Returns
    -------
    DataFrame
        A copy of the table with ``selected`` True on every row (val and test) of each chosen layer.

    Raises
    ------
    InputError
        A (model, benchmark) without ``val`` rows of the metric.
    """
    df = score_frame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    df["selected"] = False
    for (_model, _bench), part in df.groupby(["model", "benchmark"], sort=False):
        val = part[part["split"] == "val"]
        if val.empty:
            raise InputError(f"no validation rows for {_model} on {_bench}: cannot select a layer without the test split")
        m = metric or ("encoding_r2" if (val["metric"] == "encoding_r2").any() else val["metric"].iloc[0])
        val = val[val["metric"] == m]
        if val.empty:
            raise InputError(f"no validation rows with metric {m!r} for {_model} on {_bench}")
        best = val.groupby("layer", sort=False)["value"].mean().idxmax()
        df.loc[part.index[part["layer"] == best], "selected"] = True
    return df
