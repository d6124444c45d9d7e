"""An encoding cell cut into unit (voxel) batches and joined again: the Dask runner's large ROIs.

:func:`unit_scores_batch` scores units ``[start, stop)`` of one layer on one encoding benchmark (the same
fit as :func:`~brainlid.scoring.cell.responses.score_layer`, restricted to those units);
:func:`batched_encoding_rows` joins the batches into the rows ``score_layer`` gives for the whole ROI
(per-unit scores concatenated, the stimulus-bootstrap sums added: the draws depend on the seed and the
number of evaluated stimuli only).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..._docs import fill_doc
from ...alignment.encoding import fit_encoding_params, warn_alpha_edges
from ..benchmarks import Benchmark
from .responses import _aligned, _fit_eval_positions, encoding_rows

__all__ = ["unit_scores_batch", "batched_encoding_rows"]


@fill_doc
def unit_scores_batch(X, ids, brain, bench: Benchmark, splits: Mapping[str, np.ndarray], units) -> dict:
    """Per-unit scores of units ``[start, stop)`` of an encoding cell, for the val and test splits.

    What :func:`~brainlid.scoring.cell.responses.score_layer` computes for the whole ROI, restricted to
    ``brain.responses[:, start:stop]``: split → ``{"r", "r2", "at_edge", "unbracketed", "n_alphas", "boot",
    "n_eval"}`` (:class:`~brainlid.alignment.encoding.EncodeResult` fields; ``boot`` holds the batch's
    per-resample sums of the stimulus bootstrap — the draws depend on the seed and the number of evaluated
    stimuli only, so the sums of all batches add up). Join the batches with :func:`batched_encoding_rows`.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features)
    ids : array-like of shape (n_stimuli,)
        Stimulus ids of the rows of ``X``.
    %(brain)s
    bench : Benchmark
    %(splits)s
    units : (int, int)
        The batch's unit range ``[start, stop)``.
    """
    Xa, Ya, aid = _aligned(np.asarray(X, dtype=np.float32), ids, brain)
    a, b = units
    Ya = Ya[:, a:b]
    res = {}
    for split in ("val", "test"):
        fi, ei = _fit_eval_positions(aid, splits, split)
        fit = fit_encoding_params(Xa[fi], Ya[fi], Xa[ei], Ya[ei], bench.params)
        res[split] = {"r": fit.r, "r2": fit.r2, "at_edge": fit.at_edge, "unbracketed": fit.unbracketed,
                      "n_alphas": fit.n_alphas, "boot": fit.boot, "n_eval": int(ei.size)}
    return res


def batched_encoding_rows(bench: Benchmark, brain, base: dict, parts: Sequence[dict]) -> list[dict]:
    """Score rows of an encoding cell scored in unit batches.

    Parameters
    ----------
    bench : Benchmark
    brain : BrainData
        The benchmark's data (noise ceiling and times of the whole ROI).
    base : dict
        The cell's provenance columns (:func:`~brainlid.scoring.cell.responses.base_row`).
    parts : sequence of dict
        The batches' :func:`unit_scores_batch` results, sorted by the batch's first unit.

    Returns
    -------
    list of dict
        The rows :func:`~brainlid.scoring.cell.responses.score_layer` gives for the whole ROI (per-unit
        scores concatenated, bootstrap sums added).
    """
    rows: list[dict] = []
    for split in ("val", "test"):
        got = [p[split] for p in parts]
        r = np.concatenate([g["r"] for g in got], axis=0)
        r2 = np.concatenate([g["r2"] for g in got], axis=0)
        at_edge = np.concatenate([g["at_edge"] for g in got], axis=0)
        boot = None if any(g["boot"] is None for g in got) else {k: sum(g["boot"][k] for g in got) for k in got[0]["boot"]}
        rows += encoding_rows(r, r2, brain.noise_ceiling, brain.times, bench.params,
                              {**base, "split": split, "ceiling_method": bench.ceiling}, got[0]["n_eval"],
                              at_edge=at_edge, n_alphas=got[0]["n_alphas"], boot=boot)
        if split == "test":
            warn_alpha_edges(np.concatenate([g["unbracketed"] for g in got], axis=0),
                             f"{base.get('model')} {base.get('layer')} on {bench.id}", stacklevel=3)
    return rows
