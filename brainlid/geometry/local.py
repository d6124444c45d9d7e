"""Local intrinsic dimension estimators: pure functions of a kNN distance matrix.

Every function takes ``dists``, an (n, K_max) array of each point's distances to its
K_max nearest neighbours (self excluded, sorted increasingly, as :func:`~brainlid.geometry.knn`
returns them) and a neighbourhood size ``k <= K_max``; only the first ``k`` columns
are used, so one kNN at the largest K serves every estimator and every K of a sweep.
``r_1 <= ... <= r_k`` below are one point's first k distances. All sums are float64.

Estimators (pointwise)
----------------------
``mle`` — Levina & Bickel (2004), with normalisation ``norm``:
    ``"k-1"`` (L&B):  m̂ = (k−1) / S,   ``"k-2"`` (unbiased): m̂ = (k−2) / S,
    ``"k"`` (Hill / Amsaleg 2015): m̂ = k / Σ_{j=1}^{k} log(r_k/r_j) = k / S,
    with S = Σ_{j=1}^{k−1} log(r_k / r_j) (the j = k term is 0).
``mom`` — method of moments (Amsaleg et al. 2015): m̂ = μ_k / (r_k − μ_k), μ_k = (1/k) Σ_j r_j.
``mada`` — Farahmand, Szepesvári & Audibert (2007): m̂ = log 2 / log(r_k / r_⌊k/2⌋).
``twonn`` — local TwoNN **[ours]**: with μ_y = r_2(y)/r_1(y) the TwoNN ratio of every point y
    (from the same kNN), the Pareto MLE over the point's neighbourhood
    V_k(x) = {x} ∪ {its k nearest neighbours} (k+1 points):
    m̂(x) = k / Σ_{y ∈ V_k(x)} log μ_y   — the global MLE form (N−1)/Σ log μ of Facco et al.
    (2017) / Denti et al. (2022) restricted to V_k(x). Needs the kNN indices.

Registries
----------
:data:`ESTIMATORS` (name → pointwise function), :data:`NORMS` (MLE normalisation → the offset
o of its numerator c = k − o), :data:`AGGREGATES` (name → function of the pointwise values) sit at the
end of this module, beside the functions they name; their keys are the vocabulary of the whole
package (the ``brainlid lid`` options, the score tables' ``estimator`` column, the docs).
:data:`DEFAULT_K` is the one default neighbourhood size and :data:`DEFAULT_KS` the one default
K-sweep. The module imports only numpy, so the command line can read them without start-up cost.

Aggregation over points (``aggregate``)
---------------------------------------
``"mean"`` (the paper's), ``"median"``, ``"harmonic"``: n / Σ_x 1/m̂(x). For ``mle`` the
harmonic mean is MacKay & Ghahramani's (2005) estimate (k−1) / mean_x S(x)
(scikit-dimension's ``comb="mle"``).

Zero distances (duplicates)
---------------------------
The high-level functions (:func:`brainlid.geometry.lid` …) remove duplicate rows before
estimating, so these functions normally never see zeros. If ``dists`` does contain
zeros, each row's zero distances are skipped: the estimate at k uses the point's first
k *positive* distances (so the row needs k + #zeros columns), and a row without enough
positive distances raises :class:`~brainlid.errors.InputError`. A point whose k distances
are all equal (e.g. on a lattice) has no defined estimate and raises InputError too —
never inf or NaN.

References
----------
Levina & Bickel (2004) NIPS 17; MacKay & Ghahramani (2005) comment on L&B; Amsaleg et al.
(2015) KDD "Estimating local intrinsic dimensionality"; Farahmand et al. (2007) ICML;
Facco et al. (2017) Sci. Rep. 7:12140; Denti et al. (2022) Sci. Rep. 12:2022.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._validate import check_choice, check_k, format_indices

__all__ = [
    "ESTIMATORS",
    "NORMS",
    "AGGREGATES",
    "DEFAULT_K",
    "DEFAULT_KS",
    "mle_pointwise",
    "mom_pointwise",
    "mada_pointwise",
    "twonn_pointwise",
    "pointwise",
    "aggregate",
    "default_ks",
    "min_k",
]

#: The default neighbourhood size of every LID function, estimator and command.
DEFAULT_K = 20
#: The default K-sweep (capped at n − 1 by :func:`default_ks`).
DEFAULT_KS = (5, 10, 20, 50, 100, 200, 500, 1000)
#: MLE normalisation → offset o of the numerator c = k − o (registry: the keys are the choices)
NORMS = {"k-1": 1, "k-2": 2, "k": 0}


def default_ks(n_points: int) -> list[int]:
    """The default K-sweep: {5, 10, 20, 50, 100, 200, 500, 1000} ∩ [2, n_points − 1]."""
    return [k for k in DEFAULT_KS if 2 <= k <= n_points - 1]


def min_k(estimator: str, norm: str = "k-1") -> int:
    """Smallest neighbourhood size for which ``estimator`` is defined (k − o >= 1 for the MLE)."""
    if estimator == "mle":
        return max(2, NORMS[norm] + 1)
    if estimator == "twonn":
        return 1
    return 2


def _check_estimator(estimator: str) -> str:
    return check_choice(estimator, ESTIMATORS, "estimator")


def _check_norm(norm: str) -> str:
    return check_choice(norm, NORMS, "normalisation")


def _validate_dists(dists) -> np.ndarray:
    d = np.asarray(dists, dtype=np.float64)
    if d.ndim != 2:
        raise InputError(f"dists must be a 2-D (n_points, n_neighbors) array, got shape {d.shape}")
    if d.shape[0] == 0 or d.shape[1] == 0:
        raise InputError(f"dists is empty (shape {d.shape})")
    if not np.isfinite(d).all():
        bad = np.flatnonzero(~np.isfinite(d).all(axis=1))
        raise InputError(f"dists has non-finite values in {bad.size} row(s) (rows {format_indices(bad)})")
    if (d < 0).any():
        raise InputError("dists has negative values; pass Euclidean distances")
    if d.shape[1] > 1 and (np.diff(d, axis=1) < 0).any():
        bad = np.flatnonzero((np.diff(d, axis=1) < 0).any(axis=1))
        raise InputError(f"dists must be sorted increasingly along each row; rows {format_indices(bad)} are not")
    return d


def _resolve_k(d: np.ndarray, k: int | None, kmin: int) -> int:
    kmax = d.shape[1]
    return check_k(kmax if k is None else k, kmax, min_k=kmin, exclude_self=False,
                   what="neighbour distances per point")


def positive_neighbors(dists, k: int, indices=None):
    """The first ``k`` positive distances of each row (zero distances skipped), and their indices.

    Parameters
    ----------
    dists : (n, K_max) float64, sorted rows.
    k : int
    indices : (n, K_max) int or None

    Returns
    -------
    (n, k) float64 distances and (n, k) indices (or None).
    """
    zeros = np.count_nonzero(dists == 0.0, axis=1)
    if not zeros.any():
        return dists[:, :k], (None if indices is None else np.asarray(indices)[:, :k])
    short = np.flatnonzero(zeros + k > dists.shape[1])
    if short.size:
        raise InputError(
            f"{short.size} point(s) (rows {format_indices(short)}) have fewer than k={k} neighbours at "
            f"positive distance (duplicates); remove duplicate points (brainlid.geometry.lid does) or "
            f"compute more neighbours"
        )
    cols = zeros[:, None] + np.arange(k)[None, :]
    out = np.take_along_axis(dists, cols, axis=1)
    idx = None if indices is None else np.take_along_axis(np.asarray(indices), cols, axis=1)
    return out, idx


def _undefined(mask: np.ndarray, k: int, what: str):
    bad = np.flatnonzero(mask)
    raise InputError(
        f"the local dimension is undefined for {bad.size} point(s) (rows {format_indices(bad)}): {what} "
        f"at k={k}; use a larger k"
    )


def mle_pointwise(dists, k: int | None = None, norm: str = "k-1") -> np.ndarray:
    """Levina–Bickel MLE per point, m̂ = c / Σ_{j<k} log(r_k / r_j), c = k−1, k−2 or k (``norm``).

    Parameters
    ----------
    dists : array of shape (n, K_max)
        Sorted kNN distances (self excluded).
    k : int or None
        Neighbourhood size (default K_max).
    norm : {"k-1", "k-2", "k"}

    Returns
    -------
    ndarray of shape (n,), float64
    """
    _check_norm(norm)
    d = _validate_dists(dists)
    k = _resolve_k(d, k, min_k("mle", norm))
    r, _ = positive_neighbors(d, k)
    logs = np.log(r)
    S = (logs[:, -1:] - logs[:, :-1]).sum(axis=1)  # Σ_{j<k} log(r_k/r_j)
    if (S <= 0).any():
        _undefined(S <= 0, k, "all k neighbour distances are equal")
    return (k - NORMS[norm]) / S


def mom_pointwise(dists, k: int | None = None) -> np.ndarray:
    """Method-of-moments LID per point, m̂ = μ_k / (r_k − μ_k), μ_k = mean of the k distances.

    Returns ndarray (n,) float64. See :func:`mle_pointwise` for ``dists`` and ``k``.
    """
    d = _validate_dists(dists)
    k = _resolve_k(d, k, min_k("mom"))
    r, _ = positive_neighbors(d, k)
    mu = r.mean(axis=1)
    den = r[:, -1] - mu
    if (den <= 0).any():
        _undefined(den <= 0, k, "all k neighbour distances are equal")
    return mu / den


def mada_pointwise(dists, k: int | None = None) -> np.ndarray:
    """MADA per point, m̂ = log 2 / log(r_k / r_⌊k/2⌋) (Farahmand et al. 2007; default k = 20 upstream).

    Returns ndarray (n,) float64. See :func:`mle_pointwise` for ``dists`` and ``k``.
    """
    d = _validate_dists(dists)
    k = _resolve_k(d, k, min_k("mada"))
    r, _ = positive_neighbors(d, k)
    ratio = np.log(r[:, k - 1] / r[:, k // 2 - 1])
    if (ratio <= 0).any():
        _undefined(ratio <= 0, k, "r_k equals r_⌊k/2⌋")
    return np.log(2.0) / ratio


def twonn_pointwise(dists, indices, k: int | None = None) -> np.ndarray:
    """Local TwoNN **[ours]**: m̂(x) = k / Σ_{y ∈ {x} ∪ kNN(x)} log(r_2(y)/r_1(y)).

    Parameters
    ----------
    dists : (n, K_max) sorted kNN distances, K_max >= 2 (r_1, r_2 of every point).
    indices : (n, K_max) int
        The kNN indices (rows of the same point set), as returned by :func:`~brainlid.geometry.knn`.
    k : int or None
        Neighbourhood size (default K_max); the neighbourhood has k + 1 points.

    Returns
    -------
    ndarray of shape (n,), float64
    """
    d = _validate_dists(dists)
    idx = np.asarray(indices)
    if idx.shape != d.shape:
        raise InputError(f"indices must have the shape of dists {d.shape}, got {idx.shape}")
    if d.shape[1] < 2:
        raise InputError("local TwoNN needs at least 2 neighbour distances per point (r_1 and r_2)")
    k = _resolve_k(d, k, min_k("twonn"))
    n = d.shape[0]
    if idx.min() < 0 or idx.max() >= n:
        raise InputError("indices must index the rows of dists (the same point set)")
    r12, _ = positive_neighbors(d, 2)
    logmu = np.log(r12[:, 1] / r12[:, 0])
    _, nb = positive_neighbors(d, k, idx)
    S = logmu + logmu[nb].sum(axis=1)
    if (S <= 0).any():
        _undefined(S <= 0, k, "every point of the neighbourhood has r_2 = r_1")
    return k / S


def pointwise(estimator: str, dists, k: int | None = None, *, indices=None, norm: str = "k-1") -> np.ndarray:
    """Dispatch to the pointwise estimator named ``estimator`` (a key of :data:`ESTIMATORS`).

    ``indices`` (the kNN indices) is needed by ``"twonn"`` only, ``norm`` is used by ``"mle"`` only.
    Returns ndarray (n,) float64.
    """
    fn = ESTIMATORS[_check_estimator(estimator)]
    if estimator == "mle":
        return fn(dists, k, norm)
    if estimator == "twonn":
        if indices is None:
            raise InputError("the local TwoNN estimator needs the kNN indices (indices=...)")
        return fn(dists, indices, k)
    return fn(dists, k)


def aggregate(values, how: str = "mean") -> float:
    """Combine pointwise estimates: ``"mean"``, ``"median"`` or ``"harmonic"`` (n / Σ 1/m̂).

    Parameters
    ----------
    values : array-like of shape (n,)
        Pointwise estimates.
    how : str
        A key of :data:`AGGREGATES`.

    Returns
    -------
    float
    """
    check_choice(how, AGGREGATES, "aggregate")
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise InputError("no pointwise estimates to aggregate")
    return AGGREGATES[how](v)


def _mean(v: np.ndarray) -> float:
    return float(v.mean())


def _median(v: np.ndarray) -> float:
    return float(np.median(v))


def _harmonic_mean(v: np.ndarray) -> float:
    return float(v.size / np.sum(1.0 / v))


# ----------------------------------------------------------------------------- registries
#: name → pointwise function (signatures as above: twonn also takes the kNN indices, mle a norm)
ESTIMATORS = {
    "mle": mle_pointwise,
    "mom": mom_pointwise,
    "mada": mada_pointwise,
    "twonn": twonn_pointwise,
}
#: name → function of the (n,) float64 pointwise values
AGGREGATES = {
    "mean": _mean,
    "median": _median,
    "harmonic": _harmonic_mean,
}
