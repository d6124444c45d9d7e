"""The memory model of the Dask runner: how many bytes a cell needs, and voxel batches that fit a worker.

:func:`estimate_cell_memory` (encoding and RSA cells), :func:`estimate_benchmark_cell_memory` (the same with a
benchmark's parameters, also used by the leaderboard worker), :func:`estimate_rdm_group_memory` (RDM-benchmark
group tasks) and :func:`plan_voxel_batches`, which splits an encoding cell that does not fit into batches of
units, or raises :class:`CellMemoryError` with the numbers and what to change.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from ...alignment.uncertainty import BOOT_BLOCK_BUDGET
from ...errors import InputError
from ...features import fmt_size
from ..benchmarks import REPS_META_KEY
from ..cell import make_splits

__all__ = ["MEMORY_FRACTION", "CellMemoryError", "parse_memory", "estimate_cell_memory", "cell_sizes",
           "estimate_benchmark_cell_memory", "estimate_rdm_group_memory", "plan_voxel_batches"]


#: Fraction of a worker's memory limit a task may plan to use (Dask pauses a worker at 80 %).
MEMORY_FRACTION = 0.6


class CellMemoryError(InputError):
    """A cell (or one voxel batch of it) needs more memory than a worker has."""


def parse_memory(text) -> int:
    """``"4GB"``, ``"4GiB"``, ``"500MB"``, ``4e9`` → bytes (decimal and binary units)."""
    if text is None:
        return 0
    if isinstance(text, (int, float, np.integer, np.floating)):
        return int(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", str(text).lower())
    if not m:
        raise InputError(f"memory must look like 4GB, 4GiB or 500MB, got {text!r}")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** " kmgt".index(m.group(2) or " "))


def _fmt(n: int) -> str:
    return fmt_size(n) if n else "unlimited"


def estimate_cell_memory(n_fit: int, n_eval: int, n_features: int, n_units: int, *, pca: int | None, n_folds: int,
                         n_alphas: int, n_all: int | None = None, metric: str = "encoding",
                         n_boot: int = 0, n_times: int = 1, n_reps: int = 1) -> tuple[int, int]:
    """Estimated peak bytes of one cell as ``(fixed, per_unit)``: total ≈ fixed + per_unit · units.

    Encoding (the ridge of :func:`brainlid.alignment._ridge.ridge_cv_fit_predict` after PCA to
    ``q = min(pca, n_features)`` components; ``m = min(q, n_fit)`` the size of the Gram (primal,
    q ≤ n) or kernel (dual) it diagonalises):

    * fixed — the features ``4·n_all·d`` (float32), their PCA projection ``4·(n_fit+n_eval)·q``
      and ``K + 1`` float64 decompositions (matrix + eigenvectors) ``16·(K+1)·m²``;
    * per unit (and time point) — Y and predictions in float32 ``4·(n_fit + 2·n_eval)``, the
      float64 copies of :func:`~brainlid.alignment.encoding.unit_scores` ``32·n_eval``, the
      per-fold projected targets ``16·K·m`` and the per-α errors ``8·n_alphas``;
    * the stimulus bootstrap of the ROI mean (``n_boot`` resamples; fixed): the counts
      ``8·n_boot·n_eval`` and one block of units, ``8·(7·n_boot + 4·n_eval)`` per unit up to the
      block budget of :func:`~brainlid.alignment.uncertainty.bootstrap_unit_sums`.

    RSA (``n_times`` brain RDMs, one per time point; ``P = n_eval(n_eval−1)/2`` pairs); the
    phases run one after the other, so the sum is an upper bound:

    * fixed — the features ``4·n_all·d``; the model RDM's float64 work
      (:func:`brainlid.alignment.rsa.rdm`): one column chunk ``min(8·n_eval·d, 32 MiB)`` and two
      row blocks of the n×n product ``2·min(8·n_eval², 64 MiB)``; the condensed RDMs
      ``4·(1 + n_times)·P``; with ``n_boot >= 10`` the variance-corrected stimulus bootstrap
      (:func:`~brainlid.alignment.rsa_bootstrap.rdm_bootstrap_ci`: float64 RDM stack, tie groups and
      weighted ranks, then :func:`~brainlid.alignment.rsa_bootstrap.second_order_excess`'s
      standardised ranks and influence blocks) ``14·8·(1 + n_times)·P`` (measured 13–16× with
      tracemalloc at 200–500 stimuli and 1–60 time points) plus the counts ``8·n_boot·n_eval``;
      with ``n_reps > 1`` the split-half ceiling's half RDMs and ranks ``8·8·(1 + n_times)·P``;
    * per unit (and time point) — the responses ``4·n_eval`` and, with ``n_reps > 1``, the
      ceiling's float64 copy of the repetitions ``8·n_eval·n_reps``.

    A safety factor of 1.5 is applied to both parts.
    """
    n_all = n_all if n_all is not None else n_fit + n_eval
    if metric != "encoding":
        pairs = n_eval * (n_eval - 1) // 2
        rdm_work = min(8 * n_eval * n_features, 2**25) + 2 * min(8 * n_eval * n_eval, 2**26)
        fixed = 4 * n_all * n_features + rdm_work + 4 * (1 + n_times) * pairs
        per_unit = 4 * n_eval
        if n_boot >= 10:
            fixed += 14 * 8 * (1 + n_times) * pairs + 8 * n_boot * n_eval
        if n_reps > 1:
            fixed += 8 * 8 * (1 + n_times) * pairs
            per_unit += 8 * n_eval * n_reps
        return int(1.5 * fixed), int(1.5 * per_unit)
    q = n_features if pca is None else min(int(pca), n_features)
    m = min(q, n_fit)
    fixed = 4 * n_all * n_features + 4 * (n_fit + n_eval) * q + 16 * (n_folds + 1) * m * m
    per_unit = 4 * (n_fit + 2 * n_eval) + 32 * n_eval + 16 * n_folds * m + 8 * n_alphas
    if n_boot:
        fixed += 8 * n_boot * n_eval + min(BOOT_BLOCK_BUDGET, 8 * (7 * n_boot + 4 * n_eval) * n_units)
    return int(1.5 * fixed), int(1.5 * per_unit)


def cell_sizes(brain, bench) -> dict[str, int]:
    """Sizes of the cells of a response benchmark, for :func:`estimate_benchmark_cell_memory`.

    ``n_fit``/``n_eval`` (train/test stimuli), ``n_units`` (units × time points), ``n_times``
    (1 without a time axis) and ``n_reps`` (repetitions of the responses an RSA ceiling splits,
    1 when none are kept).
    """
    splits = make_splits(brain, bench)
    reps = (brain.meta or {}).get(REPS_META_KEY)
    return {"n_fit": int(splits["train"].size), "n_eval": int(splits["test"].size),
            "n_units": int(np.prod(brain.responses.shape[1:])), "n_times": 1 if brain.times is None else len(brain.times),
            "n_reps": 1 if reps is None else int(reps.responses.shape[1])}


def estimate_benchmark_cell_memory(bench, sizes: Mapping[str, int], n_features: int, *,
                                   n_all: int | None = None) -> tuple[int, int]:
    """:func:`estimate_cell_memory` of one layer on a response benchmark, with the benchmark's parameters.

    ``sizes`` from :func:`cell_sizes`; PCA components, CV folds and α grid from ``bench.params``, and
    the bootstrap resamples of its metric (``n_boot`` for encoding, ``rsa_n_boot`` for RSA). Used by
    the Dask runner and the leaderboard worker.
    """
    p = bench.params
    return estimate_cell_memory(sizes["n_fit"], sizes["n_eval"], n_features, sizes["n_units"], pca=p.get("pca"),
                                n_folds=p.get("cv", 5), n_alphas=len(p.get("alphas", ())), n_all=n_all,
                                metric=bench.metric,
                                n_boot=int(p.get("n_boot" if bench.metric == "encoding" else "rsa_n_boot", 0)),
                                n_times=sizes.get("n_times", 1), n_reps=sizes.get("n_reps", 1))


def estimate_rdm_group_memory(n_stimuli: int, n_features: Sequence[int], n_subjects: int) -> int:
    """Estimated peak bytes of one RDM-benchmark group task (all layers of a model scored together).

    The layers' features ``4·n·Σd`` (float32) and, for the stimulus bootstrap, the stacked
    condensed RDMs of the layers, the subjects and the group mean with their sort orders and
    ranks, ``4 · 8 · P · (L + S + 1)`` with ``P = n(n−1)/2`` pairs; a safety factor of 1.5.
    """
    n = int(n_stimuli)
    pairs = n * (n - 1) // 2
    return int(1.5 * (4 * n * int(sum(n_features)) + 32 * pairs * (len(n_features) + int(n_subjects) + 1)))


def plan_voxel_batches(n_units: int, fixed: int, per_unit: int, memory_limit: int, *, voxel_batch: int | None = None,
                       what: str = "cell") -> list[tuple[int, int]]:
    """Split ``n_units`` into ``[start, stop)`` batches that fit ``MEMORY_FRACTION × memory_limit``.

    ``voxel_batch`` forces a batch size (it must fit). ``memory_limit = 0`` (unknown) gives one
    batch unless ``voxel_batch`` is set. Raises :class:`CellMemoryError` naming the estimate, the
    budget and the remedy (a smaller ``--voxel-batch``, PCA, or more memory per worker).
    """
    budget = int(MEMORY_FRACTION * memory_limit)
    if voxel_batch is not None:
        size = int(voxel_batch)
        if size < 1:
            raise InputError(f"voxel batch must be >= 1, got {voxel_batch}")
        if budget and fixed + per_unit * min(size, n_units) > budget:
            raise CellMemoryError(
                f"{what}: a batch of {size} units needs about {_fmt(fixed + per_unit * min(size, n_units))}, more than "
                f"{MEMORY_FRACTION:.0%} of the worker memory ({_fmt(budget)}); use a smaller --voxel-batch "
                f"(≤ {max(0, (budget - fixed) // per_unit)}), fewer PCA components, or more --memory-per-worker")
    elif not budget or fixed + per_unit * n_units <= budget:
        size = n_units
    else:
        room = budget - fixed
        if room < per_unit:
            raise CellMemoryError(
                f"{what}: the features and ridge decompositions alone need about {_fmt(fixed)}, more than "
                f"{MEMORY_FRACTION:.0%} of the worker memory ({_fmt(budget)}); reduce the features (benchmark PCA "
                f"components, extraction reduce='pca:K' or 'srp:K'), or give the workers more --memory-per-worker")
        size = max(1, room // per_unit)
    size = max(1, min(size, n_units))
    return [(a, min(a + size, n_units)) for a in range(0, n_units, size)]
