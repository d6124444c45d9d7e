"""scikit-dimension-style estimators over the geometry functions: :class:`MLE`, :class:`MOM`,
:class:`MADA`, :class:`TwoNN`.

Their interface is scikit-dimension's: ``fit(X)`` sets ``dimension_`` (and ``dimension_pw_``),
``fit_pw(X, n_neighbors=...)`` sets ``dimension_pw_``. They implement scikit-learn's parameter
protocol themselves (``get_params`` / ``set_params``, so ``sklearn.base.clone`` and grid
searches work) without importing scikit-learn (~1 s) at load time. Every estimate comes from
:func:`brainlid.geometry.neighbours` and the pointwise functions of
:mod:`brainlid.geometry.local`, so an estimator and the plain functions of
:mod:`brainlid.geometry.dimension` (:func:`~brainlid.geometry.lid`, ...) give the same numbers.

The plain functions lived here before: ``brainlid.geometry.estimators.lid`` (and ``lid_pointwise``,
``lid_sweep``, ``global_dimension``, ``summarize``, ``neighbours``, ``Neighbours``) still work,
with a DeprecationWarning naming :mod:`brainlid.geometry.dimension`.
"""

from __future__ import annotations

import inspect

import numpy as np

from .._deprecate import forward
from .._docs import DOCS, fill_doc
from ..errors import InputError
from . import dimension as _dim
from . import global_ as _global
from . import local as _local
from ._validate import check_choice, check_k, check_points
from .local import DEFAULT_K

__all__ = ["MLE", "MOM", "MADA", "TwoNN"]

__getattr__ = forward(__name__, {name: "brainlid.geometry.dimension" for name in _dim.__all__})

DOCS.setdefault("n_neighbors", f"""n_neighbors : int, default {DEFAULT_K}
        Neighbourhood size k (:data:`brainlid.geometry.DEFAULT_K`), checked by
        :func:`brainlid.geometry.check_k`; ``fit(X, n_neighbors=...)`` overrides it for one call.""")
DOCS.setdefault("estimator_common", """aggregate : {"mean", "median", "harmonic"}
        How the pointwise estimates are combined (:data:`brainlid.geometry.AGGREGATES`).
    memory_budget : int or str or None
        Bytes the kNN may use for its temporary blocks (default ``BRAINLID_MEMORY_BUDGET`` or 512 MB).""")


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

    def _fit_pw(self, X, n_neighbors) -> tuple[_dim.Neighbours, np.ndarray]:
        """kNN of the distinct rows and their pointwise estimates at the checked ``n_neighbors``."""
        Xf = check_points(X, "X", min_rows=2, dtype="exact")
        k = check_k(self.n_neighbors if n_neighbors is None else n_neighbors, Xf.shape[0])
        nb = _dim.neighbours(Xf, max(k, 2), memory_budget=self.memory_budget)
        self.n_neighbors_ = k
        return nb, _dim.pointwise_at(nb, self._estimator, k, self._norm())

    def fit(self, X, y=None, n_neighbors: int | None = None):
        """Estimate pointwise dimensions at ``n_neighbors`` and aggregate them.

        Sets ``dimension_`` (float, aggregated over distinct points with ``self.aggregate``),
        ``dimension_pw_`` ((n,) float64) and ``n_neighbors_``. Returns self.
        """
        check_choice(self.aggregate, _local.AGGREGATES, "aggregate")
        nb, pw = self._fit_pw(X, n_neighbors)
        self.dimension_ = _local.aggregate(pw, self.aggregate)
        self.dimension_pw_ = nb.expand(pw)
        return self

    def fit_pw(self, X, y=None, n_neighbors: int | None = None):
        """Pointwise dimensions only: sets ``dimension_pw_`` ((n,) float64) and ``n_neighbors_``."""
        nb, pw = self._fit_pw(X, n_neighbors)
        self.dimension_pw_ = nb.expand(pw)
        return self

    def fit_predict(self, X, y=None, n_neighbors: int | None = None) -> float:
        """``fit(X).dimension_``."""
        return self.fit(X, n_neighbors=n_neighbors).dimension_


@fill_doc
class MLE(_LocalEstimator):
    """Levina–Bickel maximum-likelihood LID (see :func:`brainlid.geometry.local.mle_pointwise`).

    Parameters
    ----------
    %(n_neighbors)s
    norm : {"k-1", "k-2", "k"}
        Normalisation of the numerator (:data:`brainlid.geometry.NORMS`); with
        ``aggregate="harmonic"``, "k-1" is MacKay–Ghahramani's estimate.
    %(estimator_common)s
    """

    _estimator = "mle"

    def __init__(self, n_neighbors: int = DEFAULT_K, norm: str = "k-1", aggregate: str = "mean", memory_budget=None):
        self.n_neighbors = n_neighbors
        self.norm = norm
        self.aggregate = aggregate
        self.memory_budget = memory_budget

    def _norm(self) -> str:
        return check_choice(self.norm, _local.NORMS, "normalisation")


@fill_doc
class MOM(_LocalEstimator):
    """Method-of-moments LID (Amsaleg et al. 2015; :func:`brainlid.geometry.local.mom_pointwise`).

    Parameters
    ----------
    %(n_neighbors)s
    %(estimator_common)s
    """

    _estimator = "mom"

    def __init__(self, n_neighbors: int = DEFAULT_K, aggregate: str = "mean", memory_budget=None):
        self.n_neighbors = n_neighbors
        self.aggregate = aggregate
        self.memory_budget = memory_budget


@fill_doc
class MADA(_LocalEstimator):
    """MADA (Farahmand et al. 2007; :func:`brainlid.geometry.local.mada_pointwise`).

    Parameters
    ----------
    %(n_neighbors)s
    %(estimator_common)s
    """

    _estimator = "mada"

    def __init__(self, n_neighbors: int = DEFAULT_K, aggregate: str = "mean", memory_budget=None):
        self.n_neighbors = n_neighbors
        self.aggregate = aggregate
        self.memory_budget = memory_budget


@fill_doc
class TwoNN(_LocalEstimator):
    """TwoNN (Facco et al. 2017): global ``fit``, local ``fit_pw`` **[ours]**.

    Parameters
    ----------
    method : {"linear", "mle"}
        Global estimate: line through the origin after discarding ``discard_fraction`` of
        the largest ratios, or (N − 1)/Σ log μ.
    discard_fraction : float, default 0.1
    %(n_neighbors)s
        The local variant (:meth:`fit_pw`) uses it and ``aggregate``; the global ``fit`` neither.
    %(estimator_common)s
    """

    _estimator = "twonn"

    def __init__(self, method: str = "linear", discard_fraction: float = 0.1, n_neighbors: int = DEFAULT_K,
                 aggregate: str = "mean", memory_budget=None):
        self.method = method
        self.discard_fraction = discard_fraction
        self.n_neighbors = n_neighbors
        self.aggregate = aggregate
        self.memory_budget = memory_budget

    def fit(self, X, y=None, n_neighbors: int | None = None):
        """Global TwoNN: sets ``dimension_`` (float). Returns self."""
        nb = _dim.neighbours(X, 2, memory_budget=self.memory_budget)
        self.dimension_ = _global.twonn_from_distances(nb.dists[:, 0], nb.dists[:, 1], self.method,
                                                       self.discard_fraction)
        return self
