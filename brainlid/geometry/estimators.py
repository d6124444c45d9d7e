"""The two faces of the geometry engine: plain functions and scikit-learn-style estimators.

Plain functions
    :func:`lid` (one number), :func:`lid_pointwise` (one number per point), :func:`lid_sweep`
    (tidy table over estimators × K from one kNN), :func:`global_dimension` (PR, PCA
    dimensions, TwoNN, MLE at K = N − 1) and :func:`summarize` (all of it from one kNN).
Estimators
    :class:`MLE`, :class:`MOM`, :class:`MADA`, :class:`TwoNN` with scikit-dimension's
    interface: ``fit(X)`` sets ``dimension_`` (and ``dimension_pw_``), ``fit_pw(X, n_neighbors=...)``
    sets ``dimension_pw_``.

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

Imports: neither pandas (only :func:`lid_sweep` / :func:`summarize` build a DataFrame)
nor scikit-learn (the estimators implement its parameter protocol themselves) is imported
at load time, so ``brainlid lid`` starts quickly.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._docs import fill_doc
from ..errors import InputError
from . import global_ as _global
from . import local as _local
from ._validate import (
    check_k,
    check_points,
    parse_memory_budget,
    unique_rows,
    warn_duplicates,
    warn_near_duplicates,
)
from .knn import KNN, knn

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "lid",
    "lid_pointwise",
    "lid_sweep",
    "global_dimension",
    "summarize",
    "neighbours",
    "Neighbours",
    "MLE",
    "MOM",
    "MADA",
    "TwoNN",
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
        return self.X.shape[0]

    @property
    def k_max(self) -> int:
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
        if k > n_u - 1 and clip_k and n_u >= 3:
            k = n_u - 1
        elif k > n_u - 1:
            raise InputError(
                f"X has {n} points but only {n_u} distinct ones; k={k} is too large: the largest valid k is {n_u - 1}"
            )
        warn_duplicates(
            int(nn.n_duplicates), n,
            f"{n - n_u} duplicate rows are removed and the dimension is estimated on the {n_u} distinct points",
            stacklevel=4,
        )
        Xf = Xf[first]
        nn = knn(Xf, k, memory_budget=memory_budget, warn_on_duplicates=False)
    if nn.n_near_duplicates:
        warn_near_duplicates(nn.n_near_duplicates, Xf.shape[0], nn.near_duplicate_threshold, stacklevel=4)
    if strict and nn.indices.shape[1] < k:
        raise InputError(
            f"k={k} does not fit in the memory budget ({parse_memory_budget(memory_budget) / 1e6:.0f} MB); "
            f"raise memory_budget or BRAINLID_MEMORY_BUDGET"
        )
    return Neighbours(Xf, nn.distances, nn.indices, inverse, n, dim)


def _pointwise(nb: Neighbours, estimator: str, k: int, norm: str) -> np.ndarray:
    return _local.pointwise(estimator, nb.dists, k, indices=nb.indices, norm=norm)


def _check_choice(value, options, what):
    if value not in options:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(options)}")


@fill_doc
def lid(X, k: int = 20, estimator: str = "mle", aggregate: str = "mean", *, norm: str = "k-1",
        memory_budget=None) -> float:
    """Local intrinsic dimension of a point cloud: pointwise estimates at k, aggregated.

    Parameters
    ----------
    %(X)s
    k : int
        Neighbourhood size (default 20), 2 <= k <= n_distinct − 1 (k >= 3 for ``norm="k-2"``).
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
    _check_choice(estimator, _local.ESTIMATORS, "estimator")
    _check_choice(aggregate, _local.AGGREGATES, "aggregate")
    _check_choice(norm, _local.NORMS, "normalisation")
    nb = neighbours(X, max(k, 2) if estimator == "twonn" else k, memory_budget=memory_budget)
    return _local.aggregate(_pointwise(nb, estimator, k, norm), aggregate)


@fill_doc
def lid_pointwise(X, k: int = 20, estimator: str = "mle", *, norm: str = "k-1", memory_budget=None) -> np.ndarray:
    """Pointwise local intrinsic dimension, one value per row of X.

    Parameters are those of :func:`lid`. Returns ndarray of shape (n,), float64
    (duplicate rows share their original's value).
    """
    _check_choice(estimator, _local.ESTIMATORS, "estimator")
    _check_choice(norm, _local.NORMS, "normalisation")
    nb = neighbours(X, max(k, 2) if estimator == "twonn" else k, memory_budget=memory_budget)
    return nb.expand(_pointwise(nb, estimator, k, norm))


def _sweep_rows(nb: Neighbours, ks, estimators, aggregate, norm) -> list[dict]:
    rows = []
    for est in estimators:
        for k in ks:
            if k < _local.min_k(est, norm) or k > nb.k_max:
                continue
            value = _local.aggregate(_pointwise(nb, est, k, norm), aggregate)
            rows.append({"estimator": est, "K": int(k), "value": value, "aggregate": aggregate,
                         "norm": norm if est == "mle" else None, "n": nb.n, "n_distinct": nb.n_distinct,
                         "dim": nb.dim})
    return rows


def _resolve_ks(ks, n_distinct: int) -> list[int]:
    if ks is None:
        out = _local.default_ks(n_distinct)
        if not out:
            raise InputError(
                f"X has {n_distinct} points: none of the default K values ({', '.join(map(str, _local.DEFAULT_KS))}) "
                f"is <= {n_distinct - 1}; pass ks=[...] explicitly"
            )
        return out
    if isinstance(ks, (int, np.integer)):
        ks = [ks]
    out = sorted({int(check_k(k, n_distinct, name="K", min_k=1, what="distinct points")) for k in ks})
    return out


@fill_doc
def lid_sweep(X, ks=None, estimators=("mle",), aggregate: str = "mean", *, norm: str = "k-1",
              memory_budget=None) -> pd.DataFrame:
    """LID over a sweep of neighbourhood sizes and estimators, from a single kNN.

    Parameters
    ----------
    %(X)s
    ks : iterable of int or None
        Neighbourhood sizes; default {5, 10, 20, 50, 100, 200, 500, 1000} ∩ [2, n_distinct − 1].
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
    if isinstance(estimators, str):
        estimators = (estimators,)
    import pandas as pd  # here, not at module level (see the module docstring)

    for est in estimators:
        _check_choice(est, _local.ESTIMATORS, "estimator")
    _check_choice(aggregate, _local.AGGREGATES, "aggregate")
    _check_choice(norm, _local.NORMS, "normalisation")
    Xf = check_points(X, "X", min_rows=2, dtype="exact")
    n_distinct = Xf.shape[0]
    ks_ = _resolve_ks(ks, n_distinct)
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
        "pca99": pca[0.99],
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
def summarize(X, k: int = 20, estimator: str = "mle", aggregate: str = "mean", *, norm: str = "k-1",
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
    _check_choice(estimator, _local.ESTIMATORS, "estimator")
    _check_choice(aggregate, _local.AGGREGATES, "aggregate")
    _check_choice(norm, _local.NORMS, "normalisation")
    Xf = check_points(X, "X", min_rows=2, dtype="exact")
    check_k(k, Xf.shape[0])
    ks_ = _resolve_ks(ks, Xf.shape[0]) if ks is not None else _local.default_ks(Xf.shape[0])
    ks_ = sorted(set(ks_) | {int(k)})
    nb = neighbours(Xf, max(max(ks_), 2), memory_budget=memory_budget, strict=False, clip_k=True)
    if k > nb.n_distinct - 1:
        raise InputError(
            f"X has {nb.n} points but only {nb.n_distinct} distinct ones; k={k} is too large: "
            f"the largest valid k is {nb.n_distinct - 1}"
        )
    if nb.k_max < k:
        raise InputError(f"k={k} does not fit in the memory budget; raise memory_budget or BRAINLID_MEMORY_BUDGET")
    ks_ = [kk for kk in ks_ if kk <= nb.k_max]
    value = _local.aggregate(_pointwise(nb, estimator, k, norm), aggregate)
    ests = tuple(sweep_estimators) if sweep_estimators else (estimator,)
    rows = _sweep_rows(nb, ks_, ests, aggregate, norm)
    sweep = {int(r["K"]): float(r["value"]) for r in rows if r["estimator"] == estimator}
    if as_frame:
        import pandas as pd  # here, not at module level (see the module docstring)

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
        "k": int(k),
        "lid": value,
        "sweep": sweep,
        "sweep_table": table,
        "global": _global_from(nb, memory_budget, 0.1, full_mle),
    }


# ----------------------------------------------------------------------------- estimators


class _Params:
    """scikit-learn's parameter protocol (``get_params``, ``set_params``, repr) without importing
    scikit-learn (~1 s): ``sklearn.base.clone`` and grid searches work on these estimators.
    Parameters are the arguments of ``__init__``, stored under their own names."""

    @classmethod
    def _param_defaults(cls) -> dict:
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def get_params(self, deep: bool = True) -> dict:
        """Parameter names mapped to their values (``deep`` is accepted for compatibility: no nesting)."""
        return {name: getattr(self, name) for name in sorted(self._param_defaults())}

    def set_params(self, **params):
        """Set parameters by name; unknown names raise InputError. Returns self."""
        valid = self._param_defaults()
        for name, value in params.items():
            if name not in valid:
                raise InputError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid parameters: {', '.join(sorted(valid))}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = self._param_defaults()
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if not (isinstance(value, type(defaults[name])) and value == defaults[name])]
        return f"{type(self).__name__}({', '.join(changed)})"


class _LocalEstimator(_Params):
    """scikit-dimension-style local estimator: ``fit`` → ``dimension_``, ``fit_pw`` → ``dimension_pw_``."""

    _estimator = "mle"

    def _norm(self) -> str:
        return "k-1"

    def _k(self, n_neighbors):
        return int(self.n_neighbors if n_neighbors is None else n_neighbors)

    def fit(self, X, y=None, n_neighbors: int | None = None):
        """Estimate pointwise dimensions at ``n_neighbors`` and aggregate them.

        Sets ``dimension_`` (float, aggregated over distinct points with ``self.aggregate``),
        ``dimension_pw_`` ((n,) float64) and ``n_neighbors_``. Returns self.
        """
        _check_choice(self.aggregate, _local.AGGREGATES, "aggregate")
        k = self._k(n_neighbors)
        nb = neighbours(X, max(k, 2), memory_budget=self.memory_budget)
        pw = _pointwise(nb, self._estimator, k, self._norm())
        self.dimension_ = _local.aggregate(pw, self.aggregate)
        self.dimension_pw_ = nb.expand(pw)
        self.n_neighbors_ = k
        return self

    def fit_pw(self, X, y=None, n_neighbors: int | None = None):
        """Pointwise dimensions only: sets ``dimension_pw_`` ((n,) float64) and ``n_neighbors_``."""
        k = self._k(n_neighbors)
        nb = neighbours(X, max(k, 2), memory_budget=self.memory_budget)
        self.dimension_pw_ = nb.expand(_pointwise(nb, self._estimator, k, self._norm()))
        self.n_neighbors_ = k
        return self

    def fit_predict(self, X, y=None, n_neighbors: int | None = None) -> float:
        """``fit(X).dimension_``."""
        return self.fit(X, n_neighbors=n_neighbors).dimension_


class MLE(_LocalEstimator):
    """Levina–Bickel maximum-likelihood LID (see :func:`brainlid.geometry.local.mle_pointwise`).

    Parameters
    ----------
    n_neighbors : int, default 20
    norm : {"k-1", "k-2", "k"}
    aggregate : {"mean", "median", "harmonic"} — "harmonic" is MacKay–Ghahramani.
    memory_budget : bytes or str or None
    """

    _estimator = "mle"

    def __init__(self, n_neighbors: int = 20, norm: str = "k-1", aggregate: str = "mean", memory_budget=None):
        self.n_neighbors = n_neighbors
        self.norm = norm
        self.aggregate = aggregate
        self.memory_budget = memory_budget

    def _norm(self) -> str:
        _check_choice(self.norm, _local.NORMS, "normalisation")
        return self.norm


class MOM(_LocalEstimator):
    """Method-of-moments LID (Amsaleg et al. 2015). Parameters as :class:`MLE` (no ``norm``)."""

    _estimator = "mom"

    def __init__(self, n_neighbors: int = 20, aggregate: str = "mean", memory_budget=None):
        self.n_neighbors = n_neighbors
        self.aggregate = aggregate
        self.memory_budget = memory_budget


class MADA(_LocalEstimator):
    """MADA (Farahmand et al. 2007). Parameters as :class:`MLE` (no ``norm``)."""

    _estimator = "mada"

    def __init__(self, n_neighbors: int = 20, aggregate: str = "mean", memory_budget=None):
        self.n_neighbors = n_neighbors
        self.aggregate = aggregate
        self.memory_budget = memory_budget


class TwoNN(_LocalEstimator):
    """TwoNN (Facco et al. 2017): global ``fit``, local ``fit_pw`` **[ours]**.

    Parameters
    ----------
    method : {"linear", "mle"}
        Global estimate: line through the origin after discarding ``discard_fraction`` of
        the largest ratios, or (N − 1)/Σ log μ.
    discard_fraction : float, default 0.1
    n_neighbors : int, default 20
        Neighbourhood size of the local variant (:meth:`fit_pw`).
    aggregate : str
        Unused by the global ``fit``; kept for a uniform interface.
    memory_budget : bytes or str or None
    """

    _estimator = "twonn"

    def __init__(self, method: str = "linear", discard_fraction: float = 0.1, n_neighbors: int = 20,
                 aggregate: str = "mean", memory_budget=None):
        self.method = method
        self.discard_fraction = discard_fraction
        self.n_neighbors = n_neighbors
        self.aggregate = aggregate
        self.memory_budget = memory_budget

    def fit(self, X, y=None, n_neighbors: int | None = None):
        """Global TwoNN: sets ``dimension_`` (float). Returns self."""
        nb = neighbours(X, 2, memory_budget=self.memory_budget)
        self.dimension_ = _global.twonn_from_distances(nb.dists[:, 0], nb.dists[:, 1], self.method,
                                                       self.discard_fraction)
        return self
