"""The plain-function face of the geometry engine: point cloud → local and global dimension.

:func:`neighbours` (one exact kNN of the distinct points, shared by every estimator and K),
:func:`lid` (one number), :func:`lid_pointwise` (one number per point), :func:`lid_sweep`
(tidy table over estimators × K from one kNN), :func:`global_dimension` (PR, PCA
dimensions, TwoNN, MLE at K = N − 1) and :func:`summarize` (all of it from one kNN). The
scikit-dimension-style classes over these functions are in :mod:`brainlid.geometry.estimators`.

Duplicates: exact duplicate rows are removed before estimating (with a
:class:`~brainlid.geometry.DuplicatePointsWarning` giving the count): LID is a property of
the distribution of distances to *other* points, and a zero distance would make the MLE
infinite. Pointwise results are returned for every input row (copies share their
original's value); aggregates are over the distinct points. All-identical (constant)
data raise :class:`~brainlid.errors.InputError`. Near-duplicates (a nearest neighbour
closer than 1e-6 of the data's RMS radius, see :mod:`brainlid.geometry.knn`) are kept,
with a warning: they dominate the estimate at those points.

Precision: LID is invariant to translation and rescaling of the data, and so are these
functions: float64 input is kept in float64 (distances re-computed from the caller's
rows), and the float32 candidate search works on centred, power-of-two-rescaled copies,
so X, X + 1e4, X·1e20 and X·1e-20 give the same dimension.

Imports: pandas is imported only by :func:`lid_sweep` and :func:`summarize` (``as_frame=True``),
which build a DataFrame, so ``brainlid lid`` starts quickly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._docs import fill_doc
from ..errors import InputError
from . import global_ as _global
from . import local as _local
from ._validate import (
    check_choice,
    check_k,
    check_points,
    parse_memory_budget,
    unique_rows,
    warn_duplicates,
    warn_near_duplicates,
)
from .knn import KNN, knn
from .local import DEFAULT_K

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Neighbours",
    "neighbours",
    "lid",
    "lid_pointwise",
    "lid_sweep",
    "global_dimension",
    "summarize",
]


@dataclass
class Neighbours:
    """One exact kNN of the distinct points of X, shared by every estimator and K.

    Attributes
    ----------
    X : (n_distinct, d) float32, or float64 for float64 input — the distinct rows (all rows if
        there are no duplicates).
    dists : (n_distinct, K) float64 — sorted Euclidean distances, self excluded, all > 0.
    indices : (n_distinct, K) int32 — rows of ``X``.
    inverse : (n,) int64 or None — row i of the input is ``X[inverse[i]]``; None without duplicates.
    n : int — rows of the input. dim : int — features.
    """

    X: np.ndarray
    dists: np.ndarray
    indices: np.ndarray
    inverse: np.ndarray | None
    n: int
    dim: int

    @property
    def n_distinct(self) -> int:
        """Number of distinct points (rows of ``X``)."""
        return self.X.shape[0]

    @property
    def k_max(self) -> int:
        """Largest neighbourhood size available (columns of ``dists``)."""
        return self.dists.shape[1]

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Map per-distinct-point values to the input rows."""
        return values if self.inverse is None else values[self.inverse]


@fill_doc
def neighbours(X, k: int, *, memory_budget=None, strict: bool = True, clip_k: bool = False) -> Neighbours:
    """Validate X, remove duplicate rows (warning) and compute the exact kNN at ``k``.

    Parameters
    ----------
    %(X)s
    k : int
        Largest neighbourhood size needed.
    %(memory_budget)s
    strict : bool
        If True, a ``k`` capped by the memory budget raises InputError; else the smaller
        kNN is returned (with knn's warning).
    clip_k : bool
        If True, a ``k`` larger than (number of distinct points − 1) is lowered to it instead
        of raising (used by sweeps, which then drop the larger K with a warning).
    """
    Xf = check_points(X, "X", min_rows=2, dtype="exact")
    n, dim = Xf.shape
    k = check_k(k, n)
    nn: KNN = knn(Xf, k, memory_budget=memory_budget, warn_on_duplicates=False)
    inverse = None
    if nn.n_duplicates:
        first, inverse, counts = unique_rows(Xf)
        n_u = first.size
        if n_u < 2:
            raise InputError(f"all {n} points of X are identical (constant data); the dimension is undefined")
        k = min(k, n_u - 1) if clip_k and n_u >= 3 else _check_k_distinct(k, n_u, n)
        warn_duplicates(
            int(nn.n_duplicates), n,
            f"{n - n_u} duplicate rows are removed and the dimension is estimated on the {n_u} distinct points",
            stacklevel=4,
        )
        Xf = Xf[first]
        nn = knn(Xf, k, memory_budget=memory_budget, warn_on_duplicates=False)
    if nn.n_near_duplicates:
        warn_near_duplicates(nn.n_near_duplicates, Xf.shape[0], nn.near_duplicate_threshold, stacklevel=4)
    if strict:
        _check_budget(k, nn.indices.shape[1], memory_budget)
    return Neighbours(Xf, nn.distances, nn.indices, inverse, n, dim)


def _check_k_distinct(k: int, n_distinct: int, n: int) -> int:
    """``k`` against the distinct points once duplicates are known (the entry check saw all n rows)."""
    return check_k(k, n_distinct, what=f"distinct points (X has {n} rows)")


def _check_budget(k: int, k_max: int, memory_budget) -> None:
    if k_max < k:
        raise InputError(
            f"k={k} does not fit in the memory budget ({parse_memory_budget(memory_budget) / 1e6:.0f} MB); "
            f"raise memory_budget or BRAINLID_MEMORY_BUDGET"
        )


def check_options(estimators=(), aggregate: str | None = None, norm: str | None = None) -> None:
    """Check estimator, aggregate and normalisation names against their registries.

    Parameters
    ----------
    estimators : str or iterable of str
        Keys of :data:`brainlid.geometry.ESTIMATORS`.
    aggregate : str or None
        A key of :data:`brainlid.geometry.AGGREGATES` (None: not checked).
    norm : str or None
        A key of :data:`brainlid.geometry.NORMS` (None: not checked).

    Raises
    ------
    InputError
        ``"unknown estimator 'x'; choose one of mle, mom, mada, twonn"`` (and alike).
    """
    for est in (estimators,) if isinstance(estimators, str) else estimators:
        check_choice(est, _local.ESTIMATORS, "estimator")
    if aggregate is not None:
        check_choice(aggregate, _local.AGGREGATES, "aggregate")
    if norm is not None:
        check_choice(norm, _local.NORMS, "normalisation")


def pointwise_at(nb: Neighbours, estimator: str, k: int, norm: str = "k-1") -> np.ndarray:
    """Pointwise estimates ``(n_distinct,) float64`` of ``estimator`` at ``k`` from one :class:`Neighbours`."""
    return _local.pointwise(estimator, nb.dists, k, indices=nb.indices, norm=norm)


@fill_doc
def lid(X, k: int = DEFAULT_K, estimator: str = "mle", aggregate: str = "mean", *, norm: str = "k-1",
        memory_budget=None) -> float:
    """Local intrinsic dimension of a point cloud: pointwise estimates at k, aggregated.

    Parameters
    ----------
    %(X)s
    k : int
        Neighbourhood size (default :data:`~brainlid.geometry.DEFAULT_K` = 20),
        2 <= k <= n_distinct − 1 (k >= 3 for ``norm="k-2"``), checked by :func:`~brainlid.geometry.check_k`.
    estimator : {"mle", "mom", "mada", "twonn"}
        See :mod:`brainlid.geometry.local`.
    aggregate : {"mean", "median", "harmonic"}
        "harmonic" with "mle" is MacKay–Ghahramani's estimate.
    norm : {"k-1", "k-2", "k"}
        MLE normalisation (ignored by the other estimators).
    %(memory_budget)s

    Returns
    -------
    float
    """
    check_options(estimator, aggregate, norm)
    nb = neighbours(X, max(k, 2) if estimator == "twonn" else k, memory_budget=memory_budget)
    return _local.aggregate(pointwise_at(nb, estimator, k, norm), aggregate)


@fill_doc
def lid_pointwise(X, k: int = DEFAULT_K, estimator: str = "mle", *, norm: str = "k-1", memory_budget=None) -> np.ndarray:
    """Pointwise local intrinsic dimension, one value per row of X.

    Parameters are those of :func:`lid`. Returns ndarray of shape (n,), float64
    (duplicate rows share their original's value).
    """
    check_options(estimator, norm=norm)
    nb = neighbours(X, max(k, 2) if estimator == "twonn" else k, memory_budget=memory_budget)
    return nb.expand(pointwise_at(nb, estimator, k, norm))


def _sweep_rows(nb: Neighbours, ks, estimators, aggregate, norm) -> list[dict]:
    rows = []
    for est in estimators:
        for k in ks:
            if k < _local.min_k(est, norm) or k > nb.k_max:
                continue
            value = _local.aggregate(pointwise_at(nb, est, k, norm), aggregate)
            rows.append({"estimator": est, "K": int(k), "value": value, "aggregate": aggregate,
                         "norm": norm if est == "mle" else None, "n": nb.n, "n_distinct": nb.n_distinct,
                         "dim": nb.dim})
    return rows


def _resolve_ks(ks, n_points: int) -> list[int]:
    if ks is None:
        out = _local.default_ks(n_points)
        if not out:
            raise InputError(
                f"X has {n_points} points: none of the default K values ({', '.join(map(str, _local.DEFAULT_KS))}) "
                f"is <= {n_points - 1}; pass ks=[...] explicitly"
            )
        return out
    if isinstance(ks, (int, np.integer)):
        ks = [ks]
    return sorted({check_k(k, n_points, name="K") for k in ks})


@fill_doc
def lid_sweep(X, ks=None, estimators=("mle",), aggregate: str = "mean", *, norm: str = "k-1",
              memory_budget=None) -> pd.DataFrame:
    """LID over a sweep of neighbourhood sizes and estimators, from a single kNN.

    Parameters
    ----------
    %(X)s
    ks : iterable of int or None
        Neighbourhood sizes; default :data:`~brainlid.geometry.DEFAULT_KS`
        ({5, 10, 20, 50, 100, 200, 500, 1000}) ∩ [2, n_distinct − 1].
        K values too small for an estimator (e.g. K = 2 with ``norm="k-2"``) are skipped.
    estimators : iterable of {"mle", "mom", "mada", "twonn"}
    aggregate, norm : see :func:`lid`.
    %(memory_budget)s

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per (estimator, K): columns ``estimator, K, value, aggregate, norm,
        n, n_distinct, dim``.
    """
    import pandas as pd  # heavy: pandas (``brainlid lid`` starts without it)

    if isinstance(estimators, str):
        estimators = (estimators,)
    check_options(estimators, aggregate, norm)
    Xf = check_points(X, "X", min_rows=2, dtype="exact")
    ks_ = _resolve_ks(ks, Xf.shape[0])
    nb = neighbours(Xf, max(max(ks_), 2), memory_budget=memory_budget, strict=False, clip_k=True)
    dropped = [k for k in ks_ if k > nb.k_max]
    if dropped and ks is not None:
        warnings.warn(
            f"K = {', '.join(map(str, dropped))} dropped from the sweep: X has {nb.n_distinct} distinct points"
            + (" and the memory budget allows K <= " + str(nb.k_max) if nb.k_max < nb.n_distinct - 1 else ""),
            UserWarning, stacklevel=2,
        )
    ks_ = [k for k in ks_ if k <= nb.k_max]
    return pd.DataFrame(_sweep_rows(nb, ks_, estimators, aggregate, norm),
                        columns=["estimator", "K", "value", "aggregate", "norm", "n", "n_distinct", "dim"])


def _global_from(nb: Neighbours, memory_budget, twonn_discard: float, full_mle: bool | None) -> dict:
    lam = _global.covariance_eigenvalues(nb.X)
    pca = _global.pca_dimensions(lam)
    r1, r2 = nb.dists[:, 0], nb.dists[:, 1]
    out = {
        "n": nb.n,
        "n_distinct": nb.n_distinct,
        "dim": nb.dim,
        "participation_ratio": _global.participation_ratio(lam),
        "pca90": pca[0.90],
        "pca95": pca[0.95],
        "pca99": pca[0.99],  # keys and order: brainlid.geometry.GLOBAL_MEASURES
        "twonn": _global.twonn_from_distances(r1, r2, "linear", twonn_discard),
        "twonn_mle": _global.twonn_from_distances(r1, r2, "mle"),
        "mle_full": None,
    }
    m = nb.n_distinct
    feasible = m >= 3 and m * (m - 1) * 12 <= parse_memory_budget(memory_budget)
    if full_mle is None:
        full_mle = feasible
    if full_mle:
        if not feasible:
            raise InputError(
                f"the MLE at K = N - 1 needs a {m}x{m - 1} neighbour table, more than the memory budget; "
                f"raise memory_budget or pass full_mle=False"
            )
        if nb.k_max >= m - 1:
            d = nb.dists
        else:
            d = knn(nb.X, m - 1, memory_budget=memory_budget, warn_on_duplicates=False).distances
        out["mle_full"] = float(np.mean(_local.mle_pointwise(d, m - 1)))
    return out


@fill_doc
def global_dimension(X, *, memory_budget=None, twonn_discard: float = 0.1, full_mle: bool | None = None) -> dict:
    """Global dimension measures of a point cloud (METHODS.md §4).

    Parameters
    ----------
    %(X)s
    %(memory_budget)s
    twonn_discard : float
        Fraction of the largest TwoNN ratios discarded by the linear fit (Facco et al.: 0.1).
    full_mle : bool or None
        Compute the Levina–Bickel MLE at K = N − 1 (mean over points). None: only when the
        N × (N − 1) neighbour table fits in the memory budget.

    Returns
    -------
    dict
        ``n``, ``n_distinct``, ``dim``, ``participation_ratio``, ``pca90``, ``pca95``, ``pca99``
        (ints), ``twonn`` (linear fit), ``twonn_mle`` ((N − 1)/Σ log μ), ``mle_full`` (float or None).
    """
    nb = neighbours(X, 2, memory_budget=memory_budget)
    return _global_from(nb, memory_budget, twonn_discard, full_mle)


@fill_doc
def summarize(X, k: int = DEFAULT_K, estimator: str = "mle", aggregate: str = "mean", *, norm: str = "k-1",
              ks=None, sweep_estimators=None, memory_budget=None, full_mle: bool | None = False,
              as_frame: bool = True) -> dict:
    """Everything the ``brainlid lid`` command prints, from one kNN at the largest K.

    Parameters
    ----------
    %(X)s
    k, estimator, aggregate, norm : see :func:`lid`.
    ks : iterable of int or None
        K-sweep (default: the standard sweep, plus ``k``).
    sweep_estimators : iterable of str or None
        Estimators of the sweep (default: ``(estimator,)``).
    %(memory_budget)s
    full_mle : bool or None
        See :func:`global_dimension` (default False: skip the K = N − 1 MLE).
    as_frame : bool
        ``sweep_table`` as a pandas DataFrame (default) or as a list of row dicts (no pandas
        import, ~0.2–0.9 s: the ``brainlid lid`` command uses this).

    Returns
    -------
    dict
        ``n``, ``n_distinct``, ``dim``, ``estimator``, ``aggregate``, ``norm``, ``k``, ``lid``,
        ``sweep`` (``{K: value}`` for ``estimator``), ``sweep_table`` (DataFrame of
        :func:`lid_sweep`'s form, or its rows) and ``global`` (:func:`global_dimension`'s dict).
    """
    ests = tuple(sweep_estimators) if sweep_estimators else (estimator,)
    check_options((estimator, *ests), aggregate, norm)
    Xf = check_points(X, "X", min_rows=2, dtype="exact")
    k = check_k(k, Xf.shape[0])
    ks_ = _resolve_ks(ks, Xf.shape[0]) if ks is not None else _local.default_ks(Xf.shape[0])
    ks_ = sorted(set(ks_) | {k})
    nb = neighbours(Xf, max(max(ks_), 2), memory_budget=memory_budget, strict=False, clip_k=True)
    _check_k_distinct(k, nb.n_distinct, nb.n)
    _check_budget(k, nb.k_max, memory_budget)
    ks_ = [kk for kk in ks_ if kk <= nb.k_max]
    value = _local.aggregate(pointwise_at(nb, estimator, k, norm), aggregate)
    rows = _sweep_rows(nb, ks_, ests, aggregate, norm)
    sweep = {int(r["K"]): float(r["value"]) for r in rows if r["estimator"] == estimator}
    if as_frame:
        import pandas as pd  # heavy: pandas (``brainlid lid`` asks for rows instead)

        table = pd.DataFrame(rows)
    else:
        table = rows
    return {
        "n": nb.n,
        "n_distinct": nb.n_distinct,
        "dim": nb.dim,
        "estimator": estimator,
        "aggregate": aggregate,
        "norm": norm,
        "k": k,
        "lid": value,
        "sweep": sweep,
        "sweep_table": table,
        "global": _global_from(nb, memory_budget, 0.1, full_mle),
    }
