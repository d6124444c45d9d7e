"""Correlation across models with no family structure: r and its p-value, bootstrap interval, partial r, max-over-K.

Models are the sampling unit and are treated as exchangeable (every resample or permutation
shuffles single models); :mod:`.families` and :mod:`.scopes` add the family-aware versions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as _st

from .._docs import fill_doc
from ..errors import InputError

METHODS = ("pearson", "spearman")


def _check_method(method: str) -> str:
    m = str(method).lower()
    if m not in METHODS:
        raise InputError(f"unknown correlation method {method!r}; choose one of {', '.join(METHODS)}")
    return m


def _pair(x, y, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"x and y must have one value per model each; got {x.size} and {y.size}")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise InputError(f"{int(bad.sum())} model(s) have a non-finite value (positions {np.nonzero(bad)[0][:5].tolist()}); drop them first")
    if x.size < min_n:
        raise InputError(f"a correlation across models needs at least {min_n} models, got {x.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise InputError("one of the variables is constant across models: the correlation is undefined")
    return x, y


def _r_only(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    yc = y - y.mean()
    den = np.sqrt((xc @ xc) * (yc @ yc))
    return float(np.clip(xc @ yc / den, -1, 1)) if den > 0 else np.nan


def _rank(v: np.ndarray, axis: int = -1) -> np.ndarray:
    return _st.rankdata(v, axis=axis)


@fill_doc
def correlation(x, y, method: str = "pearson") -> tuple[float, float]:
    """Correlation across models with its two-sided p-value.

    Parameters
    ----------
    %(models_xy)s
    method : {"pearson", "spearman"}
        Pearson's r (p from the t distribution with n − 2 df, scipy ``pearsonr``) or Spearman's
        rho (Pearson's r of the ranks, average ranks for ties; p as scipy ``spearmanr``).

    Returns
    -------
    r, p : float
    """
    method = _check_method(method)
    x, y = _pair(x, y)
    if method == "pearson":
        res = _st.pearsonr(x, y)
    else:
        res = _st.spearmanr(x, y)
    return float(res[0]), float(res[1])


@fill_doc
def bootstrap_corr_ci(
    x, y, method: str = "pearson", n_boot: int = 2000, level: float = 0.95, seed: int | None = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the correlation, resampling models.

    Each replicate draws ``n_models`` (x, y) pairs with replacement and computes r (Spearman:
    on the replicate's own ranks); replicates in which either variable is constant are
    discarded. The interval is the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles.

    Parameters
    ----------
    %(models_xy)s
    %(corr_method)s
    %(n_boot)s
    %(level)s
    %(seed)s

    Returns
    -------
    (low, high) : tuple of float
    """
    method = _check_method(method)
    x, y = _pair(x, y)
    if n_boot < 100:
        raise InputError(f"n_boot must be >= 100, got {n_boot}")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    n = x.size
    idx = rng.integers(0, n, size=(n_boot, n))
    xb, yb = x[idx], y[idx]
    if method == "spearman":
        xb, yb = _rank(xb, axis=1), _rank(yb, axis=1)
    xb = xb - xb.mean(axis=1, keepdims=True)
    yb = yb - yb.mean(axis=1, keepdims=True)
    den = np.sqrt(np.einsum("ij,ij->i", xb, xb) * np.einsum("ij,ij->i", yb, yb))
    ok = den > 1e-12
    if ok.sum() < n_boot // 2:
        raise InputError("too few bootstrap replicates with variance in both variables; add models")
    r = np.einsum("ij,ij->i", xb[ok], yb[ok]) / den[ok]
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@fill_doc
def partial_correlation(x, y, covariates, method: str = "pearson") -> tuple[float, float]:
    """Correlation of ``x`` and ``y`` controlling for ``covariates`` (e.g. log(parameters)).

    Both variables are regressed (least squares, with an intercept) on the covariates and the
    residuals are correlated. For ``method="spearman"`` all variables are rank-transformed
    first. With one covariate z this equals
    ``(r_xy − r_xz r_yz) / sqrt((1 − r_xz²)(1 − r_yz²))``.

    The p-value is two-sided from ``t = r sqrt(df / (1 − r²))`` with
    ``df = n − 2 − n_covariates``.

    Parameters
    ----------
    %(models_xy)s
    covariates : array-like of shape (n_models,) or (n_models, n_covariates)
        The variables regressed out of both x and y (with an intercept).
    %(corr_method)s

    Returns
    -------
    r, p : float
    """
    method = _check_method(method)
    x, y = _pair(x, y, min_n=4)
    z = np.asarray(covariates, dtype=np.float64)
    z = z[:, None] if z.ndim == 1 else z
    if z.ndim != 2 or z.shape[0] != x.size:
        raise InputError(f"covariates must have shape ({x.size},) or ({x.size}, n_covariates), got {np.shape(covariates)}")
    if not np.all(np.isfinite(z)):
        raise InputError("covariates contain non-finite values (log of a zero parameter count?)")
    k = z.shape[1]
    df = x.size - 2 - k
    if df < 1:
        raise InputError(f"partial correlation with {k} covariate(s) needs at least {k + 3} models, got {x.size}")
    if method == "spearman":
        x, y, z = _rank(x), _rank(y), _rank(z, axis=0)
    design = np.column_stack([np.ones(x.size), z])
    coef, *_ = np.linalg.lstsq(design, np.column_stack([x, y]), rcond=None)
    res = np.column_stack([x, y]) - design @ coef
    r = _r_only(res[:, 0], res[:, 1])
    if not np.isfinite(r):
        raise InputError("x or y is fully explained by the covariates: the partial correlation is undefined")
    if abs(r) >= 1:
        return float(np.sign(r)), 0.0
    t = r * np.sqrt(df / (1 - r * r))
    p = 2 * _st.t.sf(abs(t), df)
    return float(r), float(p)


@fill_doc
def max_over_k_test(
    values, y, ks=None, method: str = "pearson", n_perm: int = 5000, seed: int | None = 0
) -> pd.DataFrame:
    """r between a K-dependent measure and ``y`` for every K, with max-over-K corrected p-values.

    For each K, ``r_K = corr(values[:, K], y)`` across models. Trying many K and reporting the
    best one inflates false positives, so each K's p-value is corrected with the single-step
    max-statistic permutation test: ``y`` is permuted across models (the same permutation for
    every K, which preserves the dependence between K), ``T* = max_K |r*_K|`` is recorded, and ::

        p_corrected(K) = (1 + #{T* >= |r_K|}) / (1 + n_perm).

    The smallest corrected p is the p-value of "the best K"; it controls the family-wise error
    over the K tried.

    Parameters
    ----------
    %(values_y)s
    ks : array-like of shape (n_K,) or None
        The K values (labels of the columns; default 0..n_K−1).
    %(corr_method)s
    %(n_perm)s
    %(seed)s

    Returns
    -------
    DataFrame with columns ``K, r, p, p_corrected, n_models``, one row per K; ``p`` is the
    uncorrected parametric p-value of :func:`correlation`.
    """
    method = _check_method(method)
    V = np.asarray(values, dtype=np.float64)
    if V.ndim == 1:
        V = V[:, None]
    yv = np.asarray(y, dtype=np.float64).ravel()
    if V.ndim != 2 or V.shape[0] != yv.size:
        raise InputError(f"values must have shape (n_models, n_K) with n_models = {yv.size}, got {np.shape(values)}")
    ks = np.arange(V.shape[1]) if ks is None else np.asarray(ks)
    if ks.size != V.shape[1]:
        raise InputError(f"{ks.size} K labels for {V.shape[1]} columns")
    if n_perm < 100:
        raise InputError(f"n_perm must be >= 100, got {n_perm}")
    obs = np.array([correlation(V[:, j], yv, method) for j in range(V.shape[1])])
    Vt = _rank(V, axis=0) if method == "spearman" else V.copy()
    yt = _rank(yv) if method == "spearman" else yv.copy()
    Vt = (Vt - Vt.mean(axis=0)) / np.sqrt(((Vt - Vt.mean(axis=0)) ** 2).sum(axis=0))
    yt = (yt - yt.mean()) / np.sqrt(((yt - yt.mean()) ** 2).sum())
    rng = np.random.default_rng(seed)
    n = yv.size
    tmax = np.empty(n_perm)
    step = 1000
    for s in range(0, n_perm, step):
        m = min(step, n_perm - s)
        perms = np.argsort(rng.random((m, n)), axis=1)
        tmax[s : s + m] = np.abs(yt[perms] @ Vt).max(axis=1)
    abs_r = np.abs(obs[:, 0])
    p_corr = (1 + (tmax[None, :] >= abs_r[:, None] - 1e-12).sum(axis=1)) / (1 + n_perm)
    return pd.DataFrame({"K": ks, "r": obs[:, 0], "p": obs[:, 1], "p_corrected": p_corr, "n_models": n})


@fill_doc
def correlation_summary(
    x, y, log_params=None, n_boot: int = 2000, level: float = 0.95, seed: int | None = 0
) -> dict:
    """Pearson and Spearman r with p, bootstrap CIs over models and (optionally) the partial r.

    Parameters
    ----------
    %(models_xy)s
    log_params : array-like of shape (n_models,) or None
        log(parameter count) per model; when given, partial correlations controlling for it
        are added (NaN when there are too few models for them).
    n_boot, level, seed :
        As in :func:`bootstrap_corr_ci`.

    Returns
    -------
    dict
        dict with keys ``n_models, pearson_r, pearson_p, pearson_ci_low, pearson_ci_high,
        spearman_r, spearman_p, spearman_ci_low, spearman_ci_high, partial_pearson_r,
        partial_pearson_p, partial_spearman_r, partial_spearman_p``.
    """
    x, y = _pair(x, y)
    out: dict = {"n_models": int(x.size)}
    for m in METHODS:
        r, p = correlation(x, y, m)
        lo, hi = bootstrap_corr_ci(x, y, m, n_boot=n_boot, level=level, seed=seed)
        out.update({f"{m}_r": r, f"{m}_p": p, f"{m}_ci_low": lo, f"{m}_ci_high": hi})
    for m in METHODS:
        r = p = np.nan
        if log_params is not None:
            try:
                r, p = partial_correlation(x, y, log_params, m)
            except InputError as exc:
                warnings.warn(f"partial correlation skipped: {exc}", RuntimeWarning, stacklevel=2)
        out.update({f"partial_{m}_r": r, f"partial_{m}_p": p})
    return out

