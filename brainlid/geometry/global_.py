"""Global dimension measures: participation ratio, PCA dimensions, global TwoNN, MLE at K = N − 1.

These are the "global" counterparts the paper contrasts with local LID (METHODS.md §4).

* :func:`covariance_eigenvalues` — eigenvalues λ of the sample covariance (divisor n − 1),
  descending, float64. From the d×d covariance (float32 products of centred row chunks
  accumulated in float64, never an n×n matrix) when n >= d, from the n×n Gram matrix of the centred data when n < d
  (same non-zero eigenvalues).
* :func:`participation_ratio` — PR = (Σλ)² / Σλ² (Gao et al. 2017; Elmoznino & Bonner 2024).
* :func:`pca_dimensions` — smallest m with Σ_{i<=m} λ_i / Σλ >= t, for t = 0.90, 0.95, 0.99
  (a relative tolerance of 1e-9 absorbs rounding at exact thresholds).
* :data:`GLOBAL_MEASURES` — the names of the measures :func:`brainlid.geometry.global_dimension`
  returns (participation ratio, PCA dimensions at 90/95/99 %, TwoNN linear fit and MLE, MLE at K = N − 1).
* :func:`twonn_from_distances` — TwoNN (Facco et al. 2017) from r_1, r_2: μ = r_2/r_1;
  ``"linear"``: sort μ, keep the smallest ⌊N(1 − discard)⌋ (discard = 0.1), fit
  −log(1 − i/N) = d·log μ_(i) by least squares through the origin,
  d̂ = Σ x y / Σ x² (scikit-dimension's ``TwoNN()``); ``"mle"``: d̂ = (N − 1) / Σ log μ_i
  (Denti et al. 2022; scikit-dimension's ``TwoNN(method="mle", discard_fraction=0)``).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._kernels import abs_max, centre_f32, power_of_two_scale
from ._validate import check_points

__all__ = [
    "GLOBAL_MEASURES",
    "PCA_THRESHOLDS",
    "covariance_eigenvalues",
    "participation_ratio",
    "pca_dimensions",
    "twonn_from_distances",
]

PCA_THRESHOLDS = (0.90, 0.95, 0.99)
#: The global measures :func:`brainlid.geometry.global_dimension` returns (and the score tables' global
#: ``estimator`` values, with ``K = NaN``), in order; ``mle_full`` is None when it is skipped
GLOBAL_MEASURES = ("participation_ratio", "pca90", "pca95", "pca99", "twonn", "twonn_mle", "mle_full")


def covariance_eigenvalues(X, chunk_rows: int = 1024) -> np.ndarray:
    """Eigenvalues of the sample covariance of X (divisor n − 1), descending, float64, >= 0.

    Parameters
    ----------
    X : array-like of shape (n, d), n >= 2
    chunk_rows : int
        Rows per chunk when accumulating the d×d covariance.

    Returns
    -------
    ndarray of shape (min(n, d),)
        Covariance eigenvalues (tiny negative rounding clipped to 0).

    Raises
    ------
    InputError
        Fewer than two rows, or all rows identical (zero variance).
    """
    Xf = check_points(X, "X", min_rows=2, dtype="exact")
    n, d = Xf.shape
    mean = Xf.mean(axis=0, dtype=np.float64)
    # centred in the input's precision and rescaled by a power of two (exact) to unit magnitude,
    # so data at 1e20 or 1e-20 neither overflow nor underflow; λ is scaled back at the end
    scale = power_of_two_scale(abs_max(Xf, mean))
    if n >= d:
        # rounded once to float32 (kernel), float32 GEMM per chunk of rows, accumulated in
        # float64: relative error ~ sqrt(chunk_rows)·2⁻²⁴ per entry
        C = np.zeros((d, d), dtype=np.float64)
        for s in range(0, n, chunk_rows):
            block, _ = centre_f32(Xf[s:s + chunk_rows], mean, scale)
            C += (block.T @ block).astype(np.float64)
    else:
        Xc = (Xf.astype(np.float64) - mean) * scale
        C = Xc @ Xc.T
    C /= n - 1
    lam = np.linalg.eigvalsh(C)[::-1] / (scale * scale)
    lam = np.clip(lam, 0.0, None)
    if lam.sum() <= 0:
        raise InputError("X has zero variance (all rows identical); its dimension is undefined")
    return lam


def participation_ratio(eigenvalues) -> float:
    """PR = (Σλ)² / Σλ² of covariance eigenvalues λ (a value between 1 and their count)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    s2 = float(np.sum(lam * lam))
    if s2 <= 0:
        raise InputError("all eigenvalues are zero; the participation ratio is undefined")
    return float(np.sum(lam) ** 2 / s2)


def pca_dimensions(eigenvalues, thresholds=PCA_THRESHOLDS) -> dict[float, int]:
    """Number of principal components reaching each fraction of the total variance.

    Returns ``{t: m}`` with m the smallest count such that Σ_{i<=m} λ_i / Σλ >= t (λ sorted
    descending; relative tolerance 1e-9).
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    total = lam.sum()
    if total <= 0:
        raise InputError("all eigenvalues are zero; PCA dimensions are undefined")
    frac = np.cumsum(lam) / total
    out = {}
    for t in thresholds:
        if not 0 < t <= 1:
            raise InputError(f"variance thresholds must be in (0, 1], got {t}")
        out[t] = int(min(lam.size, np.searchsorted(frac, t * (1 - 1e-9), side="left") + 1))
    return out


def twonn_from_distances(r1, r2, method: str = "linear", discard_fraction: float = 0.1) -> float:
    """Global TwoNN dimension from first and second nearest-neighbour distances.

    Parameters
    ----------
    r1, r2 : arrays of shape (n,)
        Distances to the first and second nearest neighbours (positive: remove duplicates first).
    method : {"linear", "mle"}
        ``"linear"``: Facco et al.'s line through the origin after discarding the largest
        ``discard_fraction`` of μ. ``"mle"``: (N − 1) / Σ log μ over all points
        (``discard_fraction`` ignored).
    discard_fraction : float in [0, 1)

    Returns
    -------
    float
    """
    r1 = np.asarray(r1, dtype=np.float64)
    r2 = np.asarray(r2, dtype=np.float64)
    if r1.shape != r2.shape or r1.ndim != 1:
        raise InputError("r1 and r2 must be 1-D arrays of the same length")
    if (r1 <= 0).any():
        raise InputError(f"{int((r1 <= 0).sum())} point(s) have r_1 = 0 (duplicates); remove duplicates first")
    if (r2 < r1).any():
        raise InputError("r2 must be >= r1 for every point")
    logmu = np.log(r2 / r1)
    N = logmu.size
    if method == "mle":
        s = logmu.sum()
        if N < 2 or s <= 0:
            raise InputError("TwoNN is undefined: every point has r_2 = r_1")
        return float((N - 1) / s)
    if method != "linear":
        raise InputError(f"unknown TwoNN method {method!r}; choose 'linear' or 'mle'")
    if not 0 <= discard_fraction < 1:
        raise InputError(f"discard_fraction must be in [0, 1), got {discard_fraction}")
    # the largest ratio has F_emp = 1 and y = inf: it is never kept (matters only for discard_fraction ~ 0)
    n_keep = min(int(N * (1 - discard_fraction)), N - 1)
    if n_keep < 2:
        raise InputError(f"TwoNN needs at least 2 ratios after discarding, got {n_keep}")
    x = np.sort(logmu)[:n_keep]
    y = -np.log(1 - np.arange(1, n_keep + 1) / N)
    sxx = float(x @ x)
    if sxx <= 0:
        raise InputError("TwoNN is undefined: every kept point has r_2 = r_1")
    return float((x @ y) / sxx)
